#include "engine/engine.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "engine/cursor.h"
#include "engine/processor.h"
#include "engine/select.h"
#include "engine/shared_budget.h"
#include "engine/worker_pool.h"
#include "observe/log.h"
#include "source/auth.h"
#include "source/paginator.h"
#include "source/retry.h"

namespace cascade {

StageCounters RunSummary::total() const {
  StageCounters t;
  for (const auto& [name, c] : stages) {
    t.messages += c.messages;
    t.requests += c.requests;
    t.records += c.records;
    t.filtered += c.filtered;
    t.new_rows += c.new_rows;
    t.changed += c.changed;
    t.unchanged += c.unchanged;
    t.gone += c.gone;
    t.held += c.held;
    t.children += c.children;
    t.retried += c.retried;
    t.dead_lettered += c.dead_lettered;
    t.throttled += c.throttled;
    t.discarded_fields += c.discarded_fields;
    for (size_t k = 0; k < t.responses.size(); ++k) t.responses[k] += c.responses[k];
  }
  return t;
}

std::vector<Value> event_messages(const Value& event) {
  std::vector<Value> out;
  if (event.is_array()) {
    for (const auto& m : event.as_array()) {
      if (!m.is_object()) throw DataError("each message in an event list must be a JSON object");
      out.push_back(m);
    }
    return out;
  }
  if (!event.is_object()) throw DataError("an event must be a JSON object or a list of objects");
  if (const Value* records = event.find("Records"); records && records->is_array()) {
    for (const auto& r : records->as_array()) {
      const Value* body = r.find("body");
      if (!body || !body->is_string()) throw DataError("an SQS event record needs a string 'body'");
      Value m;
      try {
        m = parse_json(body->as_string());
      } catch (const JsonError& e) {
        throw DataError(fmt::format("an SQS event record body is not valid JSON: {}", e.what()));
      }
      if (!m.is_object()) throw DataError("an SQS event record body must be a JSON object");
      out.push_back(std::move(m));
    }
    return out;
  }
  out.push_back(event);
  return out;
}

namespace {

// Throttled: the vendor turned every try away for its own limits, which is no failure of the
// message.
enum class Outcome { Ok, Transient, Permanent, Cancelled, Throttled };

// Runs `body` in a unit of work of its own. Workers starting together may meet in the
// database's locks (a Contention), and a connection may be lost (ConnectionLost: the store
// reconnects at the next begin()): either undoes the unit, which runs again, a few times at
// most. `body` must be safe to run again: what it wrote is rolled back, what it keeps in memory
// it sets anew. Any other failure rolls back and propagates.
template <class F>
void run_unit(Store& store, const char* what, F&& body) {
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    try {
      store.begin();
      body();
      store.commit();
      return;
    } catch (const Contention&) {
      store.rollback();
      if (attempt == kAttempts) throw;
    } catch (const ConnectionLost& ex) {
      store.rollback();
      if (attempt == kAttempts) throw;
      spdlog::warn("connection lost while {}; trying again: {}", what, ex.what());
    } catch (...) {
      store.rollback();
      throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
  }
}

// The pages of one paged message. Each page is processed as it arrives; when the last one is in,
// the pages are merged so that the message is applied as one complete listing. Page callbacks
// run on the pool, several at once when pages are fetched in parallel: `mu` guards it all.
struct Listing {
  explicit Listing(Paginator p) : paginator(std::move(p)) {}
  std::mutex mu;
  Paginator paginator;
  std::vector<Processed> pages;                        // by page number
  std::deque<std::pair<size_t, std::string>> waiting;  // known pages not yet requested
  size_t fetching = 0;                                 // requested, response not yet in
  size_t open = 0;                                     // requested, not yet processed
  bool failed = false;  // the first failure decides the message's outcome; no page follows it
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
};

struct Task {
  size_t stage = 0;
  std::string receipt;  // empty for direct (invoked) messages
  std::string id;       // the queue's message id; empty for direct messages
  size_t origin = 0;    // direct messages: the position in the invoked list
  int receive_count = 0;
  Value message;
  std::string request;  // rendered path + query
  std::string body;     // rendered JSON body; empty for none
  uint64_t scope = 0;
  // Incremental stages: the stored cursor the request was made with (canonical JSON; none
  // when the scope had none).
  std::optional<std::string> cursor_sent;
  // Stages whose unchanged responses are skipped: what the scope's listing was recorded from
  // when the message started (none: process in full).
  std::optional<ListingDigest> prior;
  // Filled in when done:
  Outcome outcome = Outcome::Ok;
  std::string reason;
  Processed processed;
  int attempts = 0;
  int throttled = 0;
  std::array<int, 5> by_class{};
  Duration elapsed{};
  std::optional<TimePoint> retry_at;  // when the vendor said it takes requests again
  std::shared_ptr<Listing> listing;   // a paged stage's pages, until they are merged
  uint64_t digest = 0;                // of this response (see response_digest); 0: none
  bool same_response = false;         // digest == prior: the recorded listing, not parsed
};

// What decides the rows a stage makes of one response besides the message and the body: a
// change to any of it must not let a response that is byte-for-byte the same skip processing.
uint64_t rows_config_seed(const CompiledStage& st) {
  const StageSpec& s = *st.spec;
  std::string text = "cascade listing digest v1";
  auto add = [&text](std::string_view part) {
    text += '\x1f';
    text += std::to_string(part.size());
    text += ':';
    text += part;
  };
  add(st.name);
  add(st.table);
  add(s.records_path);
  add(s.where ? *s.where : std::string("\x01none"));
  for (const auto* fields : {&s.key, &s.attach})
    for (const FieldSpec& f : *fields) {
      add(f.name);
      add(f.is_template ? "t" : "p");
      add(f.is_template ? f.tmpl.text : f.path);
    }
  add(std::to_string(s.schema.flatten_depth));
  add(s.schema.list_tables ? "lists" : "json");
  add(std::to_string(static_cast<int>(s.schema.contract)));
  add(s.effective ? *s.effective : std::string("\x01none"));
  uint64_t h = hash_bytes(text);
  return h ? h : 1;
}

// Whether a stage's responses may be skipped when byte-for-byte what its listing was recorded
// from: only a stage whose whole output is its rows (no child messages to send again), from one
// response (not paged), compared with the full listing (not incremental).
bool skips_same_responses(const CompiledStage& st) {
  const StageSpec& s = *st.spec;
  return st.emit.empty() && !s.incremental && !s.records_from &&
         s.paginate.kind == PaginateOptions::Kind::None;
}

// The digest of one response of a stage: its message and body under the stage's seed. Never 0.
uint64_t response_digest(uint64_t seed, const Value& message, std::string_view body) {
  uint64_t parts[3] = {seed, hash_value(message), hash_bytes(body)};
  uint64_t h = hash_bytes(std::string_view(reinterpret_cast<const char*>(parts), sizeof parts));
  return h ? h : 1;
}

}  // namespace

struct Engine::Impl {
  Engine& e;
  const Plan& plan;
  std::vector<StageCounters> counters;
  std::vector<size_t> in_flight;  // per stage: received, not yet applied
  std::vector<bool> maybe_ready;  // per stage: worth calling receive()
  std::vector<TableSpec> tables;
  Loader loader;
  int64_t run_id = 0;
  std::unique_ptr<SharedBudget> shared_budget;  // while workers share the store's request budget
  std::optional<TimePoint> quota_until;
  bool quota_by_vendor = false;  // quota_until is the vendor's word, not the pipeline's quota
  // Per stage: scopes that may have a held deletion. Loaded when the run begins and only ever
  // grown, so a rolled-back unit of work leaves it a superset of the store's holds.
  std::vector<std::unordered_set<uint64_t>> held_scopes;
  // Per stage: scopes whose listing this run applied, the requests a full crawl makes.
  std::vector<std::unordered_set<uint64_t>> seen_scopes;
  // Other processes consume the same queues (Store::claim_consumer() was false): they apply part
  // of every crawl, and may hold a deletion during this very run.
  bool shared_queues = false;
  // invoke_messages(): where the positions of the direct messages that failed go.
  std::vector<size_t>* failed_out = nullptr;
  // Direct messages the vendor turned away are sent to their stage's queue again rather than
  // failed (invoke_messages: the batch's deliveries are the caller's, SQS's in a Lambda).
  bool requeue_throttled = false;
  // Units of work lost with their connection in a row (shared queues only; see apply_or_return).
  int lost_connections = 0;
  // Per stage: scopes with a held deletion when the run began. With shared queues only these
  // holds may be confirmed: one another worker made since is the same crawl, not a next run.
  std::vector<std::unordered_set<uint64_t>> held_before_run;
  // Per stage: rows_config_seed() where the stage skips responses it has seen, else 0.
  std::vector<uint64_t> digest_seeds;

  // Crawl bookkeeping on shared queues (null coord otherwise), so that a complete crawl still
  // sweeps orphans although no worker applies all of it. Crawls are numbered by the marker
  // `crawl_key`, raised by a worker that seeds every root while every queue is empty. Every
  // applied listing of a stage that may be swept is stamped with the marker as read after its
  // message was received (batch_crawl), in the unit of work that applies it. A dead letter or a
  // held deletion raises `faulted_key` to that number first. A worker whose full seed and whose
  // drained end both saw crawl C knows that every listing the crawl requested was applied since
  // C began, hence stamped C: when nothing faulted in C, the one that wins `swept_key` marks
  // deleted the listings stamped below C (see sweep_shared).
  Coordination* coord = nullptr;
  std::string crawl_key, faulted_key, swept_key;
  int64_t batch_crawl = 0;
  bool batch_faulted = false;  // the unit under way dead-lettered or held something

  void attach_crawls() {
    if (!shared_queues) return;
    coord = e.store_.coordination();
    if (!coord) return;
    if (!e.store_.staging().keeps_crawl_stamps()) {
      // Shared queues, but no way to record which listings a crawl applied: no orphan sweep.
      coord = nullptr;
      return;
    }
    crawl_key = "crawl:" + plan.spec().name;
    faulted_key = "crawl_faulted:" + plan.spec().name;
    swept_key = "crawl_swept:" + plan.spec().name;
  }

  // A stage whose listings an orphan sweep may mark deleted.
  static bool sweepable(const CompiledStage& st) {
    return !st.root && !st.spec->deletions.keep_orphans && !st.spec->incremental;
  }

  // The crawl this worker's full seed belongs to: a new one when every queue is empty (`idle`),
  // else the one under way. Read before the seed commits. Nullopt when the coordination cannot
  // tell (this run then sweeps nothing).
  std::optional<int64_t> join_crawl(bool idle) {
    try {
      int64_t current = coord->marker(crawl_key).value_or(0);
      if (idle && coord->advance(crawl_key, current + 1)) {
        spdlog::info("crawl {} begins", current + 1);
        return current + 1;
      }
      return coord->marker(crawl_key).value_or(0);
    } catch (const StorageError& ex) {
      spdlog::warn("cannot number this crawl; it sweeps no orphans: {}", ex.what());
      return std::nullopt;
    }
  }

  // A coordination call on the path of a unit of work: its failure is a lost connection, so the
  // unit's messages are returned and tried again rather than applied unstamped.
  template <class F>
  static auto coordinated(F&& f) {
    try {
      return f();
    } catch (const ConnectionLost&) {
      throw;
    } catch (const StorageError& ex) {
      throw ConnectionLost(fmt::format("coordination: {}", ex.what()));
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Task>> done;
  size_t buffered_rows = 0;  // guarded by mu
  size_t outstanding = 0;    // tasks submitted and not yet applied (writer thread only)

  WorkerPool pool;
  // Values that must not reach a dead letter even when a vendor echoes them in an error body.
  std::vector<std::string> secrets;
  // Set when in-flight requests are being cancelled: paged listings request no further page.
  std::atomic<bool> halt{false};
  std::mutex warned_mu;
  std::vector<bool> warned;  // per stage: its auto pagination doubt was logged

  // True the first time it is called for `stage`. Thread-safe.
  bool warn_once(size_t stage) {
    std::lock_guard lock(warned_mu);
    if (warned.empty()) warned.resize(plan.stages().size());
    if (warned[stage]) return false;
    warned[stage] = true;
    return true;
  }

  Impl(Engine& engine)
      : e(engine),
        plan(engine.plan_),
        counters(plan.stages().size()),
        in_flight(plan.stages().size(), 0),
        maybe_ready(plan.stages().size(), true),
        loader(engine.store_.warehouse()),
        held_scopes(plan.stages().size()),
        seen_scopes(plan.stages().size()),
        held_before_run(plan.stages().size()),
        digest_seeds(plan.stages().size(), 0),
        pool(engine.options_.workers ? engine.options_.workers
                                     : std::max(1u, std::thread::hardware_concurrency() - 1)),
        secrets(plan.spec().source.auth.secrets()) {
    for (const auto& s : plan.stages())
      if (skips_same_responses(s)) digest_seeds[s.index] = rows_config_seed(s);
    for (const auto& s : plan.stages()) {
      TableSpec t;
      t.name = s.table;
      for (const auto& k : s.key) t.key.push_back(k.name);
      t.effective = s.spec->effective;
      t.flatten_depth = s.spec->schema.flatten_depth;
      t.list_tables = s.spec->schema.list_tables;
      t.contract = s.spec->schema.contract == SchemaSpec::Contract::Freeze    ? Contract::Freeze
                   : s.spec->schema.contract == SchemaSpec::Contract::Discard ? Contract::Discard
                                                                              : Contract::Evolve;
      tables.push_back(std::move(t));
    }
  }

  ~Impl() {
    // Tasks still inside the HTTP client or the pool reference this object: wait for them. After
    // an error nothing will apply them, so their requests are cancelled rather than waited out.
    std::unique_lock lock(mu);
    if (done.size() < outstanding) {
      lock.unlock();
      halt = true;
      e.http_.cancel_all();
      lock.lock();
    }
    cv.wait(lock, [&] { return done.size() >= outstanding; });
  }

  void finish(std::unique_ptr<Task> t) {
    {
      std::lock_guard lock(mu);
      buffered_rows += t->processed.rows.size();
      done.push_back(std::move(t));
    }
    cv.notify_all();
  }

  std::string url_of(const Task& t) const { return plan.spec().source.base_url + t.request; }

  // Starts one message: render, fetch, then process on the pool. Returns false (and records the
  // failure) when the message cannot even be rendered.
  void start(std::unique_ptr<Task> t) {
    const CompiledStage& st = plan.stages()[t->stage];
    ++in_flight[t->stage];
    ++outstanding;
    if (st.spec->records_from) {
      start_embedded(std::move(t));
      return;
    }
    try {
      t->request = st.request.render(t->message, nullptr, /*url_encode=*/true);
      for (const auto& [name, tmpl] : st.params) {
        if (t->request.find('?') == std::string::npos)
          t->request += '?';
        else if (!t->request.ends_with('?') && !t->request.ends_with('&'))
          t->request += '&';
        append_url_encoded(t->request, name);
        t->request += '=';
        // The whole value, literal parts too: a parameter's text cannot add parameters.
        append_url_encoded(t->request, tmpl.render(t->message, nullptr));
      }
      if (st.body) t->body = st.body->render(t->message);
    } catch (const std::exception& ex) {
      t->outcome = Outcome::Permanent;
      t->reason = fmt::format("cannot build the request from message {}: {}",
                              canonical_json(t->message), ex.what());
      finish(std::move(t));
      return;
    }
    // Two bodies to one URL are two listings.
    t->scope = scope_of(st, t->body.empty() ? t->request : t->request + '\0' + t->body);
    if (st.spec->incremental) add_cursor(*t, st);  // after the scope: a cursor is no new listing
    if (digest_seeds[t->stage]) t->prior = e.store_.staging().listing_digest(st.name, t->scope);
    if (st.spec->paginate.kind != PaginateOptions::Kind::None) {
      t->listing = std::make_shared<Listing>(
          Paginator(st.spec->paginate, url_of(*t), st.spec->records_path));
      Listing& l = *t->listing;
      l.pages.resize(1);
      l.fetching = l.open = 1;
      std::string first = l.paginator.first_url();
      Task* raw = t.release();
      send_page(raw, 0, std::move(first));
      return;
    }
    HttpRequest req = request_for(*t, url_of(*t));
    Task* raw = t.release();
    e.http_.submit(std::move(req), [this, raw](HttpResponse&& resp) {
      auto shared = std::make_shared<HttpResponse>(std::move(resp));
      pool.post([this, raw, shared] { process(std::unique_ptr<Task>(raw), *shared); });
    });
  }

  // A stage fed from its parent's record: the list in the message field is the listing, read
  // on the pool like a response. Its scope is the message without the list, so that the same
  // parent with other items is the same listing and the items it lost are deleted.
  void start_embedded(std::unique_ptr<Task> t) {
    const CompiledStage& st = plan.stages()[t->stage];
    const std::string& field = *st.spec->records_from;
    Value rest = t->message;
    const Value* list = t->message.find(field);
    if (rest.is_object()) {
      Object& o = rest.as_object();
      std::erase_if(o, [&](const auto& kv) { return kv.first == field; });
    }
    t->request = "records_from " + field;
    t->scope = scope_of(st, "records_from:" + canonical_json(rest));
    Task* raw = t.release();
    pool.post([this, raw, list] {
      std::unique_ptr<Task> t(raw);
      const CompiledStage& st = plan.stages()[t->stage];
      std::string what = fmt::format("message field '{}'", *st.spec->records_from);
      if (list && !list->is_null() && !list->is_array()) {
        t->outcome = Outcome::Permanent;
        t->reason = fmt::format("{} is {}, expected a list of records (records_from)", what,
                                type_name(list->type()));
      } else {
        std::string body = list && list->is_array() ? canonical_json(*list) : std::string("[]");
        try {
          t->processed = process_response(plan, st, t->message, body);
        } catch (const std::exception& ex) {
          t->outcome = Outcome::Permanent;
          t->reason = fmt::format("{}: {}", what, ex.what());
        }
      }
      if (!t->reason.empty() && !secrets.empty())
        t->reason = mask_secrets(std::move(t->reason), secrets);
      finish(std::move(t));
    });
  }

  // The request of one of a task's pages (the first is its rendered request): the stage's
  // method, headers, body and status rules.
  HttpRequest request_for(const Task& t, std::string url) const {
    const CompiledStage& st = plan.stages()[t.stage];
    HttpRequest req;
    req.method = st.method;
    req.url = std::move(url);
    req.headers = st.headers;
    req.body = t.body;
    req.quota_class = t.stage;
    for (const auto& rule : st.spec->responses)
      req.status_retry.push_back({rule.lo, rule.hi, rule.action == ResponseRule::Action::Retry});
    return req;
  }

  // What a response means for its message before its records are read: Ok (read them), Ok and
  // empty (the stage's `responses:` rule makes it a listing with no records), or a failure with
  // its reason (`what` names the request).
  struct Verdict {
    Outcome outcome = Outcome::Ok;
    bool empty = false;
    std::string reason;
  };
  static Verdict judge(const CompiledStage& st, const HttpResponse& resp, const std::string& what) {
    Verdict v;
    const ResponseRule* rule = nullptr;
    for (const auto& r : st.spec->responses)
      if (resp.status >= r.lo && resp.status <= r.hi) {
        rule = &r;
        break;
      }
    if (resp.status == 0 && resp.error == "cancelled") {
      v.outcome = Outcome::Cancelled;
    } else if (resp.status == 0) {
      v.outcome = resp.permanent ? Outcome::Permanent : Outcome::Transient;
      v.reason = fmt::format("{}: {} (after {} tries)", what, resp.error, resp.attempts);
    } else if (rule && rule->action == ResponseRule::Action::Empty) {
      v.empty = true;
    } else if (rule) {
      bool retry = rule->action == ResponseRule::Action::Retry;
      v.outcome = retry ? Outcome::Transient : Outcome::Permanent;
      if (retry && resp.held_off == resp.attempts) v.outcome = Outcome::Throttled;
      v.reason = fmt::format("{}: HTTP {} (after {} tries; responses: {}): {}", what, resp.status,
                             resp.attempts, retry ? "retry" : "dead_letter", excerpt(resp.body));
    } else if (resp.status < 200 || resp.status >= 300) {
      v.outcome = is_retryable_status(resp.status) ? Outcome::Transient : Outcome::Permanent;
      if (resp.held_off == resp.attempts) v.outcome = Outcome::Throttled;
      v.reason = fmt::format("{}: HTTP {} (after {} tries): {}", what, resp.status, resp.attempts,
                             excerpt(resp.body));
    }
    return v;
  }

  void process(std::unique_ptr<Task> t, HttpResponse& resp) {
    const CompiledStage& st = plan.stages()[t->stage];
    t->attempts = resp.attempts;
    t->throttled = resp.throttled;
    t->by_class = resp.by_class;
    t->elapsed = resp.elapsed;
    t->retry_at = resp.retry_at;
    std::string what = fmt::format("{} {}", st.method, url_of(*t));
    Verdict v = judge(st, resp, what);
    if (v.outcome != Outcome::Ok) {
      t->outcome = v.outcome;
      t->reason = std::move(v.reason);
    } else if (v.empty) {
      t->processed = Processed{};  // the stage's rule: this status is a listing with no records
    } else {
      if (uint64_t seed = digest_seeds[t->stage]) {
        t->digest = response_digest(seed, t->message, resp.body);
        t->same_response = t->prior && t->prior->digest == t->digest;
      }
      try {
        if (!t->same_response) t->processed = process_response(plan, st, t->message, resp.body);
      } catch (const DataError& ex) {
        t->outcome = Outcome::Permanent;
        t->reason = fmt::format("{}: HTTP {}: {}", what, resp.status, ex.what());
      } catch (const std::exception& ex) {
        t->outcome = Outcome::Permanent;
        t->reason = fmt::format("{}: HTTP {}: unusable response: {}", what, resp.status, ex.what());
      }
    }
    if (!t->reason.empty() && !secrets.empty())
      t->reason = mask_secrets(std::move(t->reason), secrets);
    finish(std::move(t));
  }

  // ---- paged listings ----

  // Requests page `index` of a paged task; its response is handled by page_done on the pool.
  void send_page(Task* t, size_t index, std::string url) {
    HttpRequest req = request_for(*t, std::move(url));
    e.http_.submit(std::move(req), [this, t, index](HttpResponse&& resp) {
      auto shared = std::make_shared<HttpResponse>(std::move(resp));
      pool.post([this, t, index, shared] { page_done(t, index, *shared); });
    });
  }

  // Records the listing's first failure; later pages are neither requested nor kept. Holds l.mu.
  static void fail_locked(Listing& l, Task& t, Outcome outcome, std::string reason,
                          std::optional<TimePoint> retry_at = std::nullopt) {
    if (!l.failed) {
      l.failed = true;
      t.outcome = outcome;
      t.reason = std::move(reason);
      t.retry_at = retry_at;
    }
    l.waiting.clear();
  }

  // Pages to request now: as many waiting ones as the stage's concurrency allows in flight for
  // one listing. None once the listing failed or the run is stopping. Holds l.mu.
  void take_sends(Listing& l, Task& t, std::vector<std::pair<size_t, std::string>>& sends) {
    if (l.failed) return;
    if (!l.waiting.empty() && (e.stop_.load() || halt.load())) {
      // Stopped in the middle of a listing: the message goes back to its queue whole.
      fail_locked(l, t, Outcome::Cancelled, {});
      return;
    }
    size_t cap = static_cast<size_t>(std::max(1, plan.stages()[t.stage].spec->concurrency));
    while (!l.waiting.empty() && l.fetching < cap) {
      sends.push_back(std::move(l.waiting.front()));
      l.waiting.pop_front();
      ++l.fetching;
      ++l.open;
    }
  }

  // One page's response: find the next page(s) and request them first, then process this page.
  // The last page to finish merges the listing and hands the task to the writer.
  void page_done(Task* t, size_t index, HttpResponse& resp) {
    const CompiledStage& st = plan.stages()[t->stage];
    Listing& l = *t->listing;
    std::string what;
    std::vector<std::pair<size_t, std::string>> sends;
    bool failed;
    bool empty = false;  // the stage's `responses:` rule: a page with no records, the last one
    {
      std::lock_guard lock(l.mu);
      --l.fetching;
      t->attempts += resp.attempts;
      t->throttled += resp.throttled;
      for (size_t k = 0; k < t->by_class.size(); ++k) t->by_class[k] += resp.by_class[k];
      what = fmt::format("{} {}: page {} ({})", st.method, url_of(*t), index + 1,
                         l.paginator.url(index));
      Verdict v = judge(st, resp, what);
      empty = v.empty;
      if (v.outcome != Outcome::Ok) {
        fail_locked(l, *t, v.outcome, std::move(v.reason), resp.retry_at);
      } else if (!l.failed && !v.empty) {
        PaginateOptions::Kind before = l.paginator.kind();
        try {
          for (auto& url : l.paginator.next(index, resp.headers, resp.body)) {
            l.waiting.emplace_back(l.pages.size(), std::move(url));
            l.pages.emplace_back();
          }
        } catch (const DataError& ex) {
          fail_locked(l, *t, Outcome::Permanent, fmt::format("{}: {}", what, ex.what()));
        }
        if (before != l.paginator.kind()) {
          spdlog::debug("{}: {} is paged as {}", st.name, url_of(*t),
                        paginate_kind_name(l.paginator.kind()));
          if (!l.paginator.auto_doubt().empty() && warn_once(st.index))
            spdlog::warn(
                "{}: paginate: auto found no next link, Link header or cursor in {}, so each "
                "listing is read as one page, but its first page has {}: if the API pages by "
                "offset or page number, name that kind in paginate:",
                st.name, url_of(*t), l.paginator.auto_doubt());
        }
      }
      take_sends(l, *t, sends);
      failed = l.failed;
    }
    for (auto& [i, url] : sends) send_page(t, i, std::move(url));
    if (!failed && !empty) {
      Processed p;
      std::string why;
      try {
        p = process_response(plan, st, t->message, resp.body);
      } catch (const DataError& ex) {
        why = fmt::format("{}: HTTP {}: {}", what, resp.status, ex.what());
      } catch (const std::exception& ex) {
        why = fmt::format("{}: HTTP {}: unusable response: {}", what, resp.status, ex.what());
      }
      std::lock_guard lock(l.mu);
      if (why.empty())
        l.pages[index] = std::move(p);
      else
        fail_locked(l, *t, Outcome::Permanent, std::move(why));
    }
    page_closed(t);
  }

  // A page is done with (processed, failed or ignored): request what may go now, and finish the
  // task when it was the last open page.
  void page_closed(Task* t) {
    Listing& l = *t->listing;
    std::vector<std::pair<size_t, std::string>> sends;
    bool last;
    {
      std::lock_guard lock(l.mu);
      --l.open;
      take_sends(l, *t, sends);
      last = l.open == 0 && l.waiting.empty();
    }
    for (auto& [i, url] : sends) send_page(t, i, std::move(url));
    if (!last) return;
    t->elapsed = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - l.t0);
    if (!l.failed) {
      try {
        t->processed = merge_pages(l.pages);
      } catch (const DataError& ex) {
        const CompiledStage& st = plan.stages()[t->stage];
        t->outcome = Outcome::Permanent;
        t->reason = fmt::format("{} {}: {}", st.method, url_of(*t), ex.what());
      }
    }
    if (!t->reason.empty() && !secrets.empty())
      t->reason = mask_secrets(std::move(t->reason), secrets);
    t->listing.reset();
    finish(std::unique_ptr<Task>(t));
  }

  // An incremental request lists from its scope's cursor, or from the initial value when the
  // scope has none yet (no parameter at all without one).
  void add_cursor(Task& t, const CompiledStage& st) {
    const IncrementalSpec& inc = *st.spec->incremental;
    t.cursor_sent = e.store_.staging().cursor(st.name, t.scope);
    Value from = t.cursor_sent ? parse_json(*t.cursor_sent) : inc.initial_value;
    if (from.is_null()) return;
    t.request += t.request.find('?') == std::string::npos               ? "?"
                 : t.request.ends_with('?') || t.request.ends_with('&') ? ""
                                                                        : "&";
    append_url_encoded(t.request, inc.param);
    t.request += '=';
    append_url_encoded(t.request, from.to_text());
  }

  // Whether the deletions a complete listing would cause in its scope wait for confirmation:
  // more than `hold_above` of the scope's `old` rows missing (with at least `min_rows` of them)
  // is what a vendor glitch looks like, so the first run to see it holds the deletions and
  // records the listing's fingerprint; a next run that sees the same listing confirms them. Any
  // other listing drops the hold (a further big shrink holds again, under its own fingerprint).
  bool hold_deletions(const Task& t, const std::vector<StagedRow>& old,
                      const std::unordered_set<std::string_view>& present) {
    const CompiledStage& st = plan.stages()[t.stage];
    const DeletionSpec& rule = st.spec->deletions;
    Staging& staging = e.store_.staging();
    size_t gone = 0;
    if (old.size() >= static_cast<size_t>(rule.min_rows) && rule.hold_above < 1)
      for (const auto& r : old) gone += present.count(r.key) ? 0 : 1;
    bool big = static_cast<double>(gone) > rule.hold_above * static_cast<double>(old.size());
    std::unordered_set<uint64_t>& scopes = held_scopes[t.stage];
    if (!big) {
      if (scopes.count(t.scope)) staging.release_listing(st.name, t.scope);
      return false;
    }
    // The listing is the set of keys the response produced, whatever their order.
    std::vector<std::string_view> keys;
    keys.reserve(t.processed.rows.size());
    for (const auto& row : t.processed.rows) keys.push_back(row.key);
    std::sort(keys.begin(), keys.end());
    std::string listing;
    for (auto k : keys) {
      listing += k;
      listing += '\n';  // canonical JSON never holds a raw line break
    }
    uint64_t fingerprint = hash_bytes(listing);
    std::string what = fmt::format("{} {}{}", st.method, plan.spec().source.base_url, t.request);
    std::optional<HeldListing> before = staging.held_listing(st.name, t.scope);
    // Seen again within the run that held it (the same request twice) confirms nothing.
    if (before && before->fingerprint == fingerprint && before->run_id != run_id &&
        (!shared_queues || held_before_run[t.stage].count(t.scope))) {
      staging.release_listing(st.name, t.scope);
      spdlog::info("{}: {} of {} rows missing from {} again: deleting them", st.name, gone,
                   old.size(), what);
      return false;
    }
    if (!before || before->fingerprint != fingerprint)
      staging.hold_listing(st.name, t.scope, HeldListing{fingerprint, run_id});
    scopes.insert(t.scope);
    counters[t.stage].held += gone;
    batch_faulted = true;
    spdlog::warn(
        "{}: {} of {} rows missing from {}: deleting none until a next run sees the same listing",
        st.name, gone, old.size(), what);
    return true;
  }

  // Applies one finished task inside the current unit of work.
  void apply(Task& t) {
    const CompiledStage& st = plan.stages()[t.stage];
    LogScope scope({0, st.name, t.id, std::chrono::duration<double>(t.elapsed).count()});
    StageCounters& c = counters[t.stage];
    Queue& q = e.store_.queue();
    c.requests += static_cast<uint64_t>(t.attempts);
    c.throttled += static_cast<uint64_t>(t.throttled);
    for (size_t k = 0; k < c.responses.size(); ++k)
      c.responses[k] += static_cast<uint64_t>(t.by_class[k]);
    // A message someone else delivered (an SQS batch handed to a Lambda) that the vendor turned
    // away or a stop cut short: failing it would count a receive, and a vendor that refuses
    // for hours would have it dead-lettered. It goes back to its own queue as a new message,
    // visible after `delay` (a queue caps it at what it takes: SQS 15 minutes), and its
    // delivery counts as done.
    auto requeue = [&](Duration delay) {
      std::string body = canonical_json(t.message);
      q.send(st.queue, std::span<const std::string>(&body, 1), delay);
      ++c.retried;
    };
    if (t.outcome == Outcome::Cancelled) {
      // Stopped before it was done: back to the queue at once (or when the vendor's block that
      // stopped the run ends), no error recorded, no receive counted against it.
      if (!t.receipt.empty()) {
        q.release(st.queue, t.receipt, Duration::zero());
      } else if (requeue_throttled) {
        requeue(quota_until ? std::max(Duration::zero(), *quota_until - e.clock_.now())
                            : Duration::zero());
      } else if (failed_out) {
        failed_out->push_back(t.origin);
      }
      return;
    }
    if (t.outcome == Outcome::Throttled && (!t.receipt.empty() || requeue_throttled)) {
      // The vendor's limits pause a message, they never fail it: it waits as long as the vendor
      // asked, uncounted. A wait past max_wait ends the run (see loop()), and the next run asks
      // again at once: the vendor may take requests sooner than it said.
      Duration delay = Duration::zero();
      if (t.retry_at) {
        delay = std::max(Duration::zero(), *t.retry_at - e.clock_.now());
        if (delay > plan.spec().source.quota.max_wait && !t.receipt.empty())
          delay = Duration::zero();
      } else {
        RetryPolicy policy{plan.spec().source.retry.attempts, plan.spec().source.retry.backoff_min,
                           plan.spec().source.retry.backoff_max};
        delay = backoff_delay(policy, t.receive_count);
      }
      if (t.receipt.empty()) {
        requeue(delay);
      } else {
        q.release(st.queue, t.receipt, delay);
        maybe_ready[t.stage] = true;
      }
      spdlog::info("{}: held off by the vendor: {}", st.name, t.reason);
      return;
    }
    if (t.outcome != Outcome::Ok) {
      c.last_error = t.reason;
      if (t.receipt.empty()) {
        spdlog::error("{}: {}", st.name, t.reason);
        ++c.dead_lettered;
        if (failed_out) failed_out->push_back(t.origin);
        return;
      }
      if (t.outcome == Outcome::Permanent) {
        if (q.dead_letter(st.queue, t.receipt, t.reason)) {
          ++c.dead_lettered;
          batch_faulted = true;
        }
        spdlog::warn("{}: dead-lettered: {}", st.name, t.reason);
      } else {
        RetryPolicy policy{plan.spec().source.retry.attempts, plan.spec().source.retry.backoff_min,
                           plan.spec().source.retry.backoff_max};
        Duration delay =
            std::min(backoff_delay(policy, t.receive_count), st.spec->queue.visibility_timeout);
        q.change_visibility(st.queue, t.receipt, delay, t.reason);
        ++c.retried;
        maybe_ready[t.stage] = true;
        spdlog::warn("{}: will retry: {}", st.name, t.reason);
      }
      return;
    }
    // Rows that would break the table (a key of the wrong type, a field its frozen schema
    // lacks) make the whole message a permanent failure: half a response is not applied.
    if (!t.processed.rows.empty()) {
      std::string why = loader.check_row(tables[t.stage], t.processed.rows.front().image);
      for (size_t i = 1; why.empty() && i < t.processed.rows.size(); ++i)
        why = loader.check_row(tables[t.stage], t.processed.rows[i].image);
      if (!why.empty()) {
        t.outcome = Outcome::Permanent;
        t.reason =
            fmt::format("{} {}{}: {}", st.method, plan.spec().source.base_url, t.request, why);
        // Its requests are counted above already.
        t.attempts = 0;
        t.throttled = 0;
        t.by_class = {};
        apply(t);
        return;
      }
    }
    // Incremental stages: where this response moves its scope's cursor, found before anything
    // is written, so a cursor field of the wrong type fails the whole message.
    std::optional<Value> moved;
    if (st.spec->incremental) {
      // On shared queues, the scope's lock first (scope_rows takes it; an incremental scope
      // records no listing): of two workers applying responses of one scope at once, the second
      // is retried after the first committed, and then sees the cursor it moved.
      if (shared_queues) {
        std::vector<StagedRow> none;
        e.store_.staging().scope_rows(st.name, t.scope, none);
      }
      std::optional<std::string> stored = e.store_.staging().cursor(st.name, t.scope);
      if (stored != t.cursor_sent && !t.receipt.empty()) {
        // Another message of this scope committed since this request was made: this response
        // may be older than rows already written. It asks again, from the newer cursor.
        q.release(st.queue, t.receipt, Duration::zero());
        maybe_ready[t.stage] = true;
        return;
      }
      Value current = stored ? parse_json(*stored) : st.spec->incremental->initial_value;
      try {
        moved = advance_cursor(t.processed.rows, cursor_image_path(st),
                               current.is_null() ? nullptr : &current);
      } catch (const DataError& ex) {
        t.outcome = Outcome::Permanent;
        t.reason = fmt::format("{} {}{}: {}", st.method, plan.spec().source.base_url, t.request,
                               ex.what());
        t.attempts = 0;
        t.throttled = 0;
        t.by_class = {};
        apply(t);
        return;
      }
    }
    // Ack first: a stale receipt means another consumer owns the message now, and its effects
    // are that consumer's to apply.
    if (!t.receipt.empty() && !q.remove(st.queue, t.receipt)) {
      spdlog::warn("{}: message was received again elsewhere; skipping its effects", st.name);
      return;
    }
    ++c.messages;
    seen_scopes[t.stage].insert(t.scope);
    if (coord && sweepable(st)) e.store_.staging().stamp_scope(st.name, t.scope, batch_crawl);
    if (e.options_.on_message) e.options_.on_message(t.stage, t.elapsed);
    if (t.same_response) {
      // The very response the scope's listing was recorded from: the same rows again, with no
      // held deletion (a listing with one is recorded without a digest).
      c.records += t.prior->rows;
      c.unchanged += t.prior->rows;
      return;
    }
    Processed& p = t.processed;
    c.records += p.records_seen;
    c.filtered += p.filtered_out;

    Staging& staging = e.store_.staging();
    // An incremental listing holds only what changed: there is no earlier listing to compare
    // it with, nothing is inferred gone from it, and each row's write compares hashes itself.
    const bool incremental = st.spec->incremental.has_value();
    std::vector<StagedRow> old;
    if (!incremental) staging.scope_rows(st.name, t.scope, old);
    std::unordered_map<std::string_view, uint64_t> prev;
    prev.reserve(old.size());
    for (const auto& r : old) prev.emplace(r.key, r.hash);

    // What the listing holds that its record does not say is unchanged is written; the write
    // itself compares hashes (a key another listing wrote, a revived row) and says what it did.
    std::vector<LoadRow> writes;
    std::unordered_set<std::string_view> present;
    if (!old.empty()) present.reserve(p.rows.size());
    size_t same = 0;
    for (auto& row : p.rows) {
      if (!old.empty()) present.insert(row.key);
      auto it = prev.find(row.key);
      if (it != prev.end() && it->second == row.hash) {
        ++same;
        continue;
      }
      writes.push_back({&row.image, row.hash, t.scope, it != prev.end()});
    }
    c.unchanged += same;
    WriteStamp stamp{run_id, format_time(e.clock_.now())};
    if (!writes.empty()) {
      std::vector<WriteOutcome> outcomes(writes.size());
      c.discarded_fields += loader.upsert(tables[t.stage], writes, stamp, outcomes);
      for (WriteOutcome o : outcomes) {
        if (o == WriteOutcome::Unchanged)
          ++c.unchanged;
        else if (o == WriteOutcome::Updated)
          ++c.changed;
        else
          ++c.new_rows;
      }
    }
    // Rows this request produced last time and not now are gone, unless their deletion is held
    // (then the listing's record keeps them, so the next run sees the same difference).
    bool held = !incremental && hold_deletions(t, old, present);
    std::vector<Value> gone_keys;
    std::vector<StagedRef> kept;
    for (const auto& r : old) {
      if (present.count(r.key)) continue;
      if (held)
        kept.push_back({r.key, r.hash});
      else
        gone_keys.push_back(key_object(st, r.key));
    }
    if (!gone_keys.empty()) {
      std::vector<const Value*> ptrs;
      ptrs.reserve(gone_keys.size());
      for (const auto& g : gone_keys) ptrs.push_back(&g);
      c.gone += loader.mark_deleted(tables[t.stage], ptrs, stamp, t.scope);
    }
    // Recorded again when only the response changed (the same rows in another order or
    // spelling), so that the next identical response is recognised without being read.
    uint64_t digest = held ? 0 : t.digest;
    bool new_digest = digest && (!t.prior || t.prior->digest != digest);
    if (!incremental && (same != old.size() || p.rows.size() != old.size() || new_digest)) {
      std::vector<StagedRef> listing;
      listing.reserve(p.rows.size() + kept.size());
      for (const auto& row : p.rows) listing.push_back({row.key, row.hash});
      listing.insert(listing.end(), kept.begin(), kept.end());
      staging.record_listing(st.name, t.scope, listing, digest);
    }
    // In the same unit of work as the rows: a crash never skips or repeats a record.
    if (moved) staging.set_cursor(st.name, t.scope, canonical_json(*moved));
    for (auto& [child, bodies] : p.children) {
      if (bodies.empty()) continue;
      size_t sent = q.send(plan.stages()[child].queue, bodies);
      c.children += sent;
      if (sent) maybe_ready[child] = true;
    }
  }

  // A staged key (the canonical JSON array of the key values) as an object of key columns.
  static Value key_object(const CompiledStage& st, const std::string& key) {
    Value key_obj{Object{}};
    Value arr = parse_json(key);
    for (size_t i = 0; i < st.key.size() && i < arr.as_array().size(); ++i)
      key_obj.set(st.key[i].name, arr.as_array()[i]);
    return key_obj;
  }

  // An orphaned listing: its rows (read under the listing's lock) are marked deleted and the
  // listing emptied, in the caller's unit of work. Returns how many rows were marked.
  size_t delete_listing(const CompiledStage& st, uint64_t scope, const std::vector<StagedRow>& rows,
                        const WriteStamp& stamp) {
    std::vector<Value> keys;
    keys.reserve(rows.size());
    for (const auto& r : rows) keys.push_back(key_object(st, r.key));
    std::vector<const Value*> ptrs;
    ptrs.reserve(keys.size());
    for (const auto& k : keys) ptrs.push_back(&k);
    size_t n = loader.mark_deleted(tables[st.index], ptrs, stamp, scope);
    e.store_.staging().set_scope_rows(st.name, scope, {});
    return n;
  }

  // After a complete crawl: rows of listings the crawl no longer requested belong to parents
  // that are gone (the sales of a salesperson who left), so they are marked deleted too, unless
  // their stage keeps orphans. Only a crawl that saw every listing may conclude that: every
  // root seeded from its inputs, nothing failed, dead-lettered or held anywhere.
  void sweep_orphans() {
    for (const auto& c : counters)
      if (c.dead_lettered || c.held) return;
    Staging& staging = e.store_.staging();
    for (const auto& st : plan.stages()) {
      if (st.root || st.spec->deletions.keep_orphans || st.spec->incremental) continue;
      std::vector<uint64_t> all;
      staging.scopes(st.name, all);
      std::vector<uint64_t> orphans;  // listings this crawl did not request
      for (uint64_t scope : all)
        if (!seen_scopes[st.index].count(scope)) orphans.push_back(scope);
      if (orphans.empty()) continue;
      WriteStamp stamp{run_id, format_time(e.clock_.now())};
      e.store_.begin();
      try {
        size_t gone = 0, listings = 0;
        for (uint64_t scope : orphans) {
          std::vector<StagedRow> rows;
          staging.scope_rows(st.name, scope, rows);
          size_t n = delete_listing(st, scope, rows, stamp);
          gone += n;
          listings += n ? 1 : 0;
        }
        e.store_.commit();
        counters[st.index].gone += gone;
        if (gone)
          spdlog::info(
              "{}: {} rows of {} listings no longer requested by a complete crawl marked "
              "deleted",
              st.name, gone, listings);
      } catch (...) {
        e.store_.rollback();
        loader.reset();
        throw;
      }
    }
  }

  // After a complete crawl on shared queues (see attach_crawls): when this worker's seed and its
  // drained end both saw crawl `crawl`, nothing faulted in it and this worker wins the sweep of
  // it, listings stamped below it are orphans. Each is re-checked under its listing's lock (a
  // next crawl may be applying it now) and skipped when contended: a sweep misses an orphan
  // rather than deleting what a newer listing holds. A lost connection ends the sweep early.
  void sweep_shared(int64_t crawl) {
    for (const auto& c : counters)
      if (c.dead_lettered || c.held) return;
    try {
      int64_t now = coord->marker(crawl_key).value_or(0);
      if (now != crawl) {
        spdlog::info("crawl {} was followed by crawl {} before it ended: no orphan sweep", crawl,
                     now);
        return;
      }
      if (auto faulted = coord->marker(faulted_key); faulted && *faulted >= crawl) {
        spdlog::info("crawl {} dead-lettered or held something: no orphan sweep", crawl);
        return;
      }
      if (!coord->advance(swept_key, crawl)) return;  // another worker sweeps it
    } catch (const StorageError& ex) {
      spdlog::warn("crawl {}: no orphan sweep: {}", crawl, ex.what());
      return;
    }
    Staging& staging = e.store_.staging();
    for (const auto& st : plan.stages()) {
      if (!sweepable(st)) continue;
      WriteStamp stamp{run_id, format_time(e.clock_.now())};
      size_t gone = 0, listings = 0, contended = 0;
      try {
        e.store_.begin();
        std::vector<uint64_t> orphans;
        staging.scopes_stamped_before(st.name, crawl, orphans);
        for (uint64_t scope : orphans) {
          e.store_.savepoint();
          try {
            std::vector<StagedRow> rows;
            staging.scope_rows(st.name, scope, rows);  // takes the listing's lock
            if (auto now = staging.scope_stamp(st.name, scope); now && *now >= crawl) {
              e.store_.release_savepoint();
              continue;
            }
            size_t n = delete_listing(st, scope, rows, stamp);
            e.store_.release_savepoint();
            gone += n;
            listings += n ? 1 : 0;
          } catch (const Contention&) {
            e.store_.rollback_to_savepoint();
            loader.reset();
            ++contended;
          }
        }
        e.store_.commit();
      } catch (const ConnectionLost& ex) {
        e.store_.rollback();
        loader.reset();
        spdlog::warn("crawl {}: connection lost during the orphan sweep; the next crawl sweeps: {}",
                     crawl, ex.what());
        return;
      } catch (...) {
        e.store_.rollback();
        loader.reset();
        throw;
      }
      counters[st.index].gone += gone;
      if (gone || contended)
        spdlog::info(
            "{}: {} rows of {} listings no longer requested by complete crawl {} marked deleted "
            "({} listings busy, left to the next crawl)",
            st.name, gone, listings, crawl, contended);
    }
  }

  // Applies one task inside its own savepoint. A message whose effects the storage refuses (a
  // column it cannot take, a value it rejects) is rolled back alone and dead-lettered with the
  // reason, so the rest of the group still commits; a failure of the storage itself propagates.
  void apply_isolated(Task& t) {
    Store& s = e.store_;
    StageCounters before = counters[t.stage];
    s.savepoint();
    try {
      apply(t);
      s.release_savepoint();
      return;
    } catch (const StorageError&) {
      throw;
    } catch (const Contention& ex) {
      // Another worker is applying what this message needs: its effects are undone and it is
      // retried once that worker has committed, uncounted; it compares with what was written.
      s.rollback_to_savepoint();
      loader.reset();
      counters[t.stage] = std::move(before);
      const CompiledStage& st = plan.stages()[t.stage];
      if (!t.receipt.empty()) {
        const Duration retry_in = std::chrono::milliseconds(100);
        s.savepoint();
        try {
          e.store_.queue().release(st.queue, t.receipt, retry_in);
        } catch (const Contention&) {
          // Returning it uncounted met another worker's lock too (an identical waiting body):
          // it comes back as soon, with this receive counted.
          s.rollback_to_savepoint();
          s.savepoint();
          e.store_.queue().change_visibility(st.queue, t.receipt, retry_in, {});
        }
        s.release_savepoint();
        maybe_ready[t.stage] = true;
        spdlog::debug("{}: {}: retrying shortly", st.name, ex.what());
        return;
      }
      t.outcome = Outcome::Permanent;
      t.reason =
          fmt::format("{} {}{}: {}", st.method, plan.spec().source.base_url, t.request, ex.what());
    } catch (const std::exception& ex) {
      s.rollback_to_savepoint();
      loader.reset();
      counters[t.stage] = std::move(before);
      const CompiledStage& st = plan.stages()[t.stage];
      t.outcome = Outcome::Permanent;
      t.reason = fmt::format("{} {}{}: cannot store the response: {}", st.method,
                             plan.spec().source.base_url, t.request, ex.what());
    }
    s.savepoint();
    apply(t);
    s.release_savepoint();
  }

  // Applies every finished task in one unit of work; returns how many were applied. When the
  // unit fails (the storage itself), its tasks are accounted for before the error propagates,
  // so nothing waits for them; their messages are still in flight and return to their queues.
  size_t apply_done(std::vector<std::unique_ptr<Task>>& batch) {
    if (batch.empty()) return 0;
    Store& s = e.store_;
    size_t rows = 0;
    for (auto& t : batch) rows += t->processed.rows.size();
    size_t n = batch.size();
    auto account = [&] {
      for (auto& t : batch) --in_flight[t->stage];
      std::lock_guard lock(mu);
      buffered_rows -= rows;
      outstanding -= n;
    };
    try {
      if (coord) {
        // Read after every message of the batch was received: see attach_crawls().
        batch_crawl = coordinated([&] { return coord->marker(crawl_key).value_or(0); });
        batch_faulted = false;
      }
      s.begin();
      for (auto& t : batch) apply_isolated(*t);
      if (e.options_.quota) s.set_meta("quota_ledger", e.options_.quota->serialize());
      if (e.options_.limiter)
        if (std::string v = e.options_.limiter->serialize_vendor(); !v.empty())
          s.set_meta("vendor_rate", v);
      // Before the commit: a fault that commits is always known to the sweep (one that is
      // rolled back after all only spares a sweep).
      if (coord && batch_faulted)
        coordinated([&] { return coord->advance(faulted_key, batch_crawl); });
      s.commit();
    } catch (...) {
      s.rollback();
      loader.reset();
      account();
      throw;
    }
    account();
    // Freeing a million small strings is real work: keep it off the writer.
    auto garbage = std::make_shared<std::vector<std::unique_ptr<Task>>>(std::move(batch));
    pool.post([garbage] { garbage->clear(); });
    return n;
  }

  // A unit of work cut short by a lost connection, on queues shared with other workers: its
  // effects and counters are undone and its messages returned to their queues at once (their
  // receipts are still this worker's: no one else received them), rather than leaving other
  // workers to wait out their visibility. Whether the lost COMMIT landed does not matter:
  // every write compares with what is there, so a message applied twice writes nothing the
  // second time. Any other failure, or too many lost connections in a row, ends the run.
  static constexpr int kMaxLostConnections = 10;
  void apply_or_return(std::vector<std::unique_ptr<Task>>& batch) {
    if (batch.empty()) return;
    std::vector<StageCounters> before = counters;
    try {
      apply_done(batch);
      lost_connections = 0;
      return;
    } catch (const ConnectionLost& ex) {
      if (!shared_queues || ++lost_connections > kMaxLostConnections) throw;
      counters = std::move(before);
      spdlog::warn("connection lost while committing {} messages; returning them: {}", batch.size(),
                   ex.what());
      // Direct messages (invoked) have no queue to return to: applied again in the next unit.
      std::vector<std::unique_ptr<Task>> again;
      for (auto& t : batch)
        if (t->receipt.empty()) again.push_back(std::move(t));
      std::erase_if(batch, [](const std::unique_ptr<Task>& t) { return !t; });
      if (!again.empty()) {
        size_t rows = 0;
        for (auto& t : again) {
          ++in_flight[t->stage];
          rows += t->processed.rows.size();
        }
        std::lock_guard lock(mu);
        buffered_rows += rows;
        outstanding += again.size();
        for (auto& t : again) done.push_back(std::move(t));
      }
    }
    Store& s = e.store_;
    try {
      s.begin();
      for (auto& t : batch) {
        maybe_ready[t->stage] = true;
        if (t->receipt.empty()) continue;
        s.savepoint();
        try {
          s.queue().release(plan.stages()[t->stage].queue, t->receipt, Duration::zero());
          s.release_savepoint();
        } catch (const Contention&) {
          // Another worker's lock on an identical waiting body: this one comes back by its
          // visibility deadline instead.
          s.rollback_to_savepoint();
        }
      }
      s.commit();
    } catch (const ConnectionLost& ex) {
      s.rollback();
      if (++lost_connections > kMaxLostConnections) throw;
      spdlog::warn("connection lost while returning messages; they return by visibility: {}",
                   ex.what());
    } catch (...) {
      s.rollback();
      throw;
    }
  }

  bool receive_more() {
    bool any = false;
    size_t buffered;
    {
      std::lock_guard lock(mu);
      buffered = buffered_rows;
    }
    if (buffered >= e.options_.max_buffered_rows) return false;
    Queue& q = e.store_.queue();
    for (const auto& st : plan.stages()) {
      if (!maybe_ready[st.index]) continue;
      size_t cap = static_cast<size_t>(st.spec->concurrency);
      if (in_flight[st.index] >= cap) continue;
      auto msgs = q.receive(st.queue, cap - in_flight[st.index]);
      if (msgs.empty()) {
        maybe_ready[st.index] = false;
        continue;
      }
      any = true;
      for (auto& m : msgs) {
        auto t = std::make_unique<Task>();
        t->stage = st.index;
        t->receipt = std::move(m.receipt);
        t->id = m.id;
        t->receive_count = m.receive_count;
        try {
          t->message = parse_json(m.body);
          if (!t->message.is_object()) throw DataError("a message must be a JSON object");
        } catch (const std::exception& ex) {
          ++in_flight[st.index];
          ++outstanding;
          t->outcome = Outcome::Permanent;
          t->reason = fmt::format("malformed message body {}: {}", excerpt(m.body), ex.what());
          finish(std::move(t));
          continue;
        }
        start(std::move(t));
      }
    }
    return any;
  }

  // Read outside a unit of work: a connection lost while idle is learnt here, and with shared
  // queues it means "not known to be drained" (the next unit of work reconnects).
  bool drained() {
    try {
      for (const auto& st : plan.stages()) {
        QueueStats qs = e.store_.queue().stats(st.queue);
        if (qs.depth > 0 || qs.in_flight > 0) return false;
      }
    } catch (const ConnectionLost& ex) {
      if (!shared_queues || ++lost_connections > kMaxLostConnections) throw;
      spdlog::warn("connection lost while checking the queues; retrying: {}", ex.what());
      return false;
    }
    return true;
  }

  void publish() {
    std::lock_guard lock(e.live_mu_);
    e.live_ = counters;
  }

  void loop(bool drain_queues, RunSummary& summary) {
    auto last_poll = std::chrono::steady_clock::now();
    auto last_tick = last_poll;
    publish();
    std::optional<std::chrono::steady_clock::time_point> stop_seen;
    bool cancelled = false;
    while (true) {
      // A spent quota whose window reopens too far ahead ends the run: the messages wait in
      // their queues for the next one, none fails for it. The quota is the pipeline's own, or
      // the vendor's (Retry-After, RateLimit-Reset), whichever reopens later.
      if (!e.stop_.load()) {
        std::optional<TimePoint> until;
        if (e.options_.quota) until = e.http_.quota_blocked_until();
        auto vendor = e.http_.vendor_blocked_until();
        bool by_vendor = vendor && (!until || *vendor > *until);
        if (by_vendor) until = vendor;
        const QuotaSpec& q = plan.spec().source.quota;
        // A vendor that turns every request away, however short each wait it names, has spent
        // its quota as surely as one that names a long wait.
        auto refusing = e.http_.vendor_refusing_since();
        bool refused_too_long = refusing && e.clock_.now() - *refusing > q.max_wait;
        if (refused_too_long && !until) {
          until = e.clock_.now();
          by_vendor = true;
        }
        if (until) {
          if (*until - e.clock_.now() > q.max_wait || refused_too_long) {
            quota_until = until;
            quota_by_vendor = by_vendor;
            e.stop_ = true;
            stop_seen = std::chrono::steady_clock::now() - e.options_.stop_grace;  // cancel now
          }
        }
      }
      if (e.stop_.load() && !cancelled) {
        // Requests already in flight get a short grace period, then are cancelled; their
        // messages go back to the queue, so a stop is quick and loses nothing.
        auto now = std::chrono::steady_clock::now();
        if (!stop_seen) stop_seen = now;
        if (now - *stop_seen > e.options_.stop_grace) {
          halt = true;
          e.http_.cancel_all();
          cancelled = true;
        }
      }
      std::vector<std::unique_ptr<Task>> batch;
      {
        std::unique_lock lock(mu);
        // Group commit: whatever finished while the last transaction ran goes into the next
        // one; waiting for more would leave the fetchers idle, as receiving happens here too.
        if (done.empty() && outstanding > 0)
          cv.wait_for(lock, e.options_.commit_interval, [&] { return !done.empty(); });
        // Group commit: take everything that finished.
        while (!done.empty()) {
          batch.push_back(std::move(done.front()));
          done.pop_front();
        }
      }
      apply_or_return(batch);
      bool stopping = e.stop_.load();
      if (!stopping && drain_queues) {
        auto now = std::chrono::steady_clock::now();
        // Delayed and returned messages become visible without a send: poll now and then.
        if (now - last_poll > std::chrono::milliseconds(200)) {
          std::fill(maybe_ready.begin(), maybe_ready.end(), true);
          last_poll = now;
        }
        e.store_.begin();
        try {
          receive_more();
          e.store_.commit();
        } catch (const Contention&) {
          // Workers sharing the queues met in the database's locks and this receive was undone
          // to break the cycle; the next turn receives again. Tasks it started hold receipts
          // that are now stale: their effects are skipped at the ack.
          e.store_.rollback();
        } catch (const ConnectionLost& ex) {
          // The same for a receive cut short with its connection: the store reconnects at the
          // next unit of work. Messages whose receive committed unseen come back by visibility.
          e.store_.rollback();
          if (!shared_queues || ++lost_connections > kMaxLostConnections) throw;
          spdlog::warn("connection lost while receiving; retrying: {}", ex.what());
        } catch (...) {
          e.store_.rollback();
          throw;
        }
      }
      if (now_steady() - last_tick >= e.options_.tick_interval) {
        last_tick = now_steady();
        publish();
        if (e.options_.on_tick) e.options_.on_tick();
      }
      if (outstanding == 0) {
        if (stopping || !drain_queues) break;
        if (drained()) {
          summary.completed = true;
          break;
        }
        // Only delayed messages remain: wait for them without spinning.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::fill(maybe_ready.begin(), maybe_ready.end(), true);
      }
    }
  }

  static std::chrono::steady_clock::time_point now_steady() {
    return std::chrono::steady_clock::now();
  }

  RunSummary summarize(bool completed, std::chrono::steady_clock::time_point t0) {
    {
      // The run is over: its counters now travel in the summary.
      std::lock_guard lock(e.live_mu_);
      e.live_.clear();
    }
    RunSummary s;
    s.run_id = run_id;
    s.completed = completed || s.completed;
    s.quota_exhausted_until = quota_until;
    s.quota_by_vendor = quota_by_vendor;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    s.peak_rss_kb = ru.ru_maxrss;
    for (const auto& st : plan.stages()) s.stages.emplace_back(st.name, counters[st.index]);
    return s;
  }

  void begin_run() {
    Store& s = e.store_;
    run_unit(s, "starting the run", [&] {
      for (const auto& st : plan.stages()) {
        std::vector<uint64_t> scopes;
        s.staging().held_scopes(st.name, scopes);
        held_scopes[st.index].insert(scopes.begin(), scopes.end());
        held_before_run[st.index].insert(scopes.begin(), scopes.end());
      }
      auto last = s.get_meta("last_run_id");
      run_id = last ? std::stoll(*last) + 1 : 1;
      s.set_meta("last_run_id", std::to_string(run_id));
      // Requests spent by earlier runs (or a killed one) in the current window still count.
      if (e.options_.quota)
        if (auto saved = s.get_meta("quota_ledger")) e.options_.quota->restore(*saved);
      if (e.options_.limiter)
        if (auto saved = s.get_meta("vendor_rate")) e.options_.limiter->restore_vendor(*saved);
    });
    shared_budget = SharedBudget::attach(s, e.options_.limiter, e.options_.quota, plan.spec().name);
  }
};

Engine::Engine(const Plan& plan, Store& store, HttpClient& http, Clock& clock,
               EngineOptions options)
    : plan_(plan), store_(store), http_(http), clock_(clock), options_(options) {}

void Engine::define_views() {
  store_.change_log().define_view();
  for (const auto& v : plan_.spec().views) store_.warehouse().define_view(v.name, v.select);
}

size_t Engine::reset_cursors() {
  size_t n = 0;
  run_unit(store_, "resetting cursors", [&] {
    n = 0;
    for (const auto& st : plan_.stages())
      if (st.spec->incremental) n += store_.staging().clear_cursors(st.name);
  });
  return n;
}

void Engine::prepare() {
  // Workers starting together on one database may meet in its locks, and the database then
  // fails one of them to break the cycle (a Contention): that one declares again, as one whose
  // connection was lost does (every declaration is idempotent).
  run_unit(store_, "declaring the pipeline's queues and views", [&] {
    for (const auto& st : plan_.stages()) {
      store_.queue().create(st.queue, st.spec->queue);
      store_.staging().create_stage(st.name);
    }
    define_views();
  });
}

namespace {

// A stop request also cuts short a wait for another process's database lock.
struct StopFlagOnStore {
  Store& store;
  StopFlagOnStore(Store& s, const std::atomic<bool>& flag) : store(s) {
    store.set_stop_flag(&flag);
  }
  ~StopFlagOnStore() { store.set_stop_flag(nullptr); }
};

}  // namespace

RunSummary Engine::sync(const Value* event, bool seed_roots) {
  return run_once(event, seed_roots, nullptr);
}

RunSummary Engine::sync_roots(const std::vector<std::string>& roots) {
  return run_once(nullptr, true, &roots);
}

RunSummary Engine::run_once(const Value* event, bool seed_roots,
                            const std::vector<std::string>* only_roots) {
  auto t0 = std::chrono::steady_clock::now();
  StopFlagOnStore stop_flag(store_, stop_);
  const bool only_consumer = store_.claim_consumer();
  Impl impl(*this);
  impl.shared_queues = !only_consumer;
  impl.attach_crawls();
  impl.begin_run();
  LogScope run_scope({impl.run_id, {}, {}, -1});
  std::vector<int64_t> dlq_before;
  // Every root seeded from its inputs: a crawl that may conclude orphans.
  bool full_seed = seed_roots && !event;
  if (full_seed && only_roots)
    for (const auto& st : plan_.stages())
      if (st.root &&
          std::find(only_roots->begin(), only_roots->end(), st.name) == only_roots->end())
        full_seed = false;
  std::optional<int64_t> crawl;  // shared queues: the crawl this run's seed belongs to
  // Again after a lost connection: a seed that did commit is coalesced with the one sent again,
  // or cascades twice, which writes nothing new.
  run_unit(store_, "seeding the run", [&] {
    // When this process is the only consumer, messages a killed run had received are released
    // now rather than after their visibility timeout; shared queues leave them to it, as
    // another worker may be applying them.
    dlq_before.clear();
    bool idle = true;
    for (const auto& st : plan_.stages()) {
      if (only_consumer) store_.queue().release_in_flight(st.queue);
      QueueStats qs = store_.queue().stats(st.queue);
      dlq_before.push_back(qs.dlq_depth);
      if (qs.depth > 0 || qs.in_flight > 0) idle = false;
    }
    if (full_seed && impl.coord) crawl = impl.join_crawl(idle);
    if (seed_roots) {
      for (const auto& st : plan_.stages()) {
        if (!st.root) continue;
        if (only_roots &&
            std::find(only_roots->begin(), only_roots->end(), st.name) == only_roots->end())
          continue;
        std::vector<std::string> bodies;
        for (const auto& m : plan_.root_messages(st, event)) bodies.push_back(canonical_json(m));
        store_.queue().send(st.queue, bodies);
      }
    }
  });
  RunSummary summary;
  impl.loop(true, summary);
  // Messages receive() moved to a DLQ (too many receives) are counted from the DLQ depth.
  // Read in a unit of work of its own, which reconnects a connection lost since the last one.
  std::vector<uint64_t> dlq_moved(plan_.stages().size(), 0);
  run_unit(store_, "reading the dead-letter queues", [&] {
    for (size_t i = 0; i < plan_.stages().size(); ++i) {
      int64_t after = store_.queue().stats(plan_.stages()[i].queue).dlq_depth;
      dlq_moved[i] = after > dlq_before[i] ? static_cast<uint64_t>(after - dlq_before[i]) : 0;
    }
  });
  bool full_crawl =
      summary.completed && !stop_ && full_seed &&
      std::all_of(dlq_moved.begin(), dlq_moved.end(), [](uint64_t n) { return n == 0; });
  // With shared queues this worker applied only its share of the crawl's listings: the crawl's
  // stamps in the store tell a listing no longer requested from one another worker applied.
  if (full_crawl && only_consumer) impl.sweep_orphans();
  if (full_crawl && crawl) impl.sweep_shared(*crawl);
  // A backend that loads its warehouse from elsewhere (the AWS one, from DynamoDB Streams) does
  // so now, so a sync ends with the warehouse holding what it wrote.
  store_.settle();
  stop_ = false;  // a stop ends this run only; one requested before it began counted for it
  RunSummary out = impl.summarize(summary.completed, t0);
  for (size_t i = 0; i < plan_.stages().size(); ++i)
    if (dlq_moved[i] > out.stages[i].second.dead_lettered)
      out.stages[i].second.dead_lettered = dlq_moved[i];
  return out;
}

RunSummary Engine::invoke(const CompiledStage& stage, const Value& event) {
  return invoke_messages(stage,
                         stage.root ? plan_.root_messages(stage, &event) : event_messages(event));
}

RunSummary Engine::invoke_messages(const CompiledStage& stage, std::vector<Value> messages,
                                   std::vector<size_t>* failed) {
  auto t0 = std::chrono::steady_clock::now();
  StopFlagOnStore stop_flag(store_, stop_);
  Impl impl(*this);
  impl.shared_queues = !store_.claim_consumer();
  impl.failed_out = failed;
  impl.requeue_throttled = true;
  impl.attach_crawls();
  impl.begin_run();
  for (size_t i = 0; i < messages.size(); ++i) {
    auto t = std::make_unique<Task>();
    t->stage = stage.index;
    t->origin = i;
    t->message = std::move(messages[i]);
    impl.start(std::move(t));
  }
  RunSummary summary;
  impl.loop(false, summary);
  stop_ = false;
  if (failed) {
    std::sort(failed->begin(), failed->end());
    failed->erase(std::unique(failed->begin(), failed->end()), failed->end());
  }
  bool ok = impl.counters[stage.index].dead_lettered == 0;
  return impl.summarize(ok, t0);
}

}  // namespace cascade
