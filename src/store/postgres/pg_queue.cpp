#include "store/postgres/pg_queue.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace cascade::pg {
namespace {

constexpr const char* kSchema[] = {
    "CREATE TABLE IF NOT EXISTS cascade_queues(id bigserial PRIMARY KEY, name text NOT NULL "
    "UNIQUE, visibility_ms bigint NOT NULL, max_receive_count integer NOT NULL, retention_ms "
    "bigint NOT NULL)",
    // bigserial ids are never reused, so a dead letter's id (kept on redrive) never collides.
    "CREATE TABLE IF NOT EXISTS cascade_messages(id bigserial PRIMARY KEY, queue bigint NOT NULL, "
    "body text NOT NULL, body_hash bytea NOT NULL, sent_at bigint NOT NULL, visible_at bigint NOT "
    "NULL, receive_count integer NOT NULL, receipt text, last_error text)",
    "CREATE INDEX IF NOT EXISTS cascade_messages_visible ON cascade_messages(queue, visible_at, "
    "id)",
    "CREATE INDEX IF NOT EXISTS cascade_messages_sent ON cascade_messages(queue, sent_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS cascade_messages_pending ON cascade_messages(queue, "
    "body_hash) WHERE receive_count = 0",
    "CREATE TABLE IF NOT EXISTS cascade_dead_letters(id bigint PRIMARY KEY, queue bigint NOT "
    "NULL, body text NOT NULL, receive_count integer NOT NULL, reason text NOT NULL, sent_at "
    "bigint NOT NULL, dead_at bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cascade_dead_letters_queue ON cascade_dead_letters(queue, "
    "dead_at, id)",
};

constexpr const char* kPending =
    "ON CONFLICT (queue, body_hash) WHERE receive_count = 0 DO NOTHING";
constexpr const char* kHash = "sha256(convert_to(body, 'UTF8'))";

bool parse_id(std::string_view s, int64_t& id) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), id);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_receipt(std::string_view receipt, int64_t& id, std::string_view& token) {
  auto dot = receipt.find('.');
  if (dot == std::string_view::npos || !parse_id(receipt.substr(0, dot), id)) return false;
  token = receipt.substr(dot + 1);
  return token.size() == 32 &&
         token.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::vector<int64_t> parse_ids(std::span<const std::string> ids) {
  std::vector<int64_t> out;
  for (const auto& s : ids)
    if (int64_t id = 0; parse_id(s, id)) out.push_back(id);
  return out;
}

}  // namespace

PgQueue::PgQueue(Conn& conn, const Clock& clock)
    : c_(conn), clock_(clock), rng_(std::random_device{}()) {
  // CREATE INDEX takes a share lock on its table even when the index exists, which waits for
  // every worker writing messages and holds up every later one: a database that has them all
  // is left alone.
  if (!c_.query("SELECT to_regclass('cascade_messages_visible') IS NOT NULL AND "
                "to_regclass('cascade_messages_sent') IS NOT NULL AND "
                "to_regclass('cascade_messages_pending') IS NOT NULL AND "
                "to_regclass('cascade_dead_letters_queue') IS NOT NULL")
           .text(0, 0)
           .starts_with("f"))
    return;
  Tx tx(c_);
  // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: one at a time.
  c_.query("SELECT pg_advisory_xact_lock(hashtext('cascade_schema'))");
  for (const char* sql : kSchema) c_.query(sql);
  tx.commit();
}

std::string PgQueue::token() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng_()),
                static_cast<unsigned long long>(rng_()));
  return std::string(buf, 32);
}

PgQueue::Info& PgQueue::info(std::string_view queue) {
  if (auto it = queues_.find(queue); it != queues_.end()) return it->second;
  // Another worker (or an earlier run) may have declared it.
  Result r = c_.query(
      "SELECT id, visibility_ms, max_receive_count, retention_ms FROM cascade_queues WHERE "
      "name=$1",
      queue);
  if (r.rows() == 0)
    throw std::runtime_error("queue '" + std::string(queue) + "' does not exist (create it first)");
  Info in;
  in.id = r.integer(0, 0);
  in.options.visibility_timeout = Duration(r.integer(0, 1));
  in.options.max_receive_count = static_cast<int>(r.integer(0, 2));
  in.options.retention = Duration(r.integer(0, 3));
  return queues_.emplace(std::string(queue), in).first->second;
}

void PgQueue::create(std::string_view queue, const QueueOptions& options) {
  c_.query(
      "INSERT INTO cascade_queues(name, visibility_ms, max_receive_count, retention_ms) "
      "VALUES($1, $2, $3, $4) ON CONFLICT(name) DO UPDATE SET "
      "visibility_ms=excluded.visibility_ms, max_receive_count=excluded.max_receive_count, "
      "retention_ms=excluded.retention_ms",
      queue, static_cast<int64_t>(options.visibility_timeout.count()), options.max_receive_count,
      static_cast<int64_t>(options.retention.count()));
  if (auto it = queues_.find(queue); it != queues_.end()) queues_.erase(it);
  info(queue);
}

size_t PgQueue::send(std::string_view queue, std::span<const std::string> bodies, Duration delay) {
  int64_t qid = info(queue).id;
  if (bodies.empty()) return 0;
  int64_t t = now();
  // Bounded statements: a huge batch goes in slices of one transaction.
  constexpr size_t kSlice = 1000;
  Tx tx(c_);
  size_t created = 0;
  for (size_t i = 0; i < bodies.size(); i += kSlice) {
    auto slice = bodies.subspan(i, std::min(kSlice, bodies.size() - i));
    Result r = c_.query(std::string("INSERT INTO cascade_messages(queue, body, body_hash, sent_at, "
                                    "visible_at, receive_count) SELECT $1, body, ") +
                            kHash +
                            ", $2, $3, 0 FROM unnest($4::text[]) WITH ORDINALITY AS t(body, n) "
                            "ORDER BY n " +
                            kPending,
                        qid, t, t + static_cast<int64_t>(delay.count()), text_array(slice));
    created += static_cast<size_t>(r.affected());
  }
  tx.commit();
  return created;
}

std::vector<ReceivedMessage> PgQueue::receive(std::string_view queue, size_t max,
                                              std::optional<Duration> visibility) {
  Info& in = info(queue);
  std::vector<ReceivedMessage> out;
  if (max == 0) return out;
  int64_t t = now();
  int64_t hidden_until = t + visibility.value_or(in.options.visibility_timeout).count();
  // Retention: rows another worker holds are skipped, not waited for; a later receive gets them.
  c_.query(
      "DELETE FROM cascade_messages WHERE id IN (SELECT id FROM cascade_messages WHERE queue=$1 "
      "AND sent_at<$2 FOR UPDATE SKIP LOCKED)",
      in.id, t - static_cast<int64_t>(in.options.retention.count()));
  std::string tok = token();
  // One statement: pick (skipping rows other workers hold), dead-letter those past the limit,
  // hide and count the rest.
  Result r = c_.query(
      "WITH picked AS (SELECT id, visible_at AS was, receive_count AS rc FROM cascade_messages "
      "WHERE queue=$1 AND visible_at<=$2 ORDER BY visible_at, id LIMIT $3 FOR UPDATE SKIP "
      "LOCKED), "
      "dead AS (DELETE FROM cascade_messages m USING picked p WHERE m.id=p.id AND p.rc>=$6 "
      "RETURNING m.id, m.queue, m.body, m.receive_count, m.last_error, m.sent_at), "
      "buried AS (INSERT INTO cascade_dead_letters(id, queue, body, receive_count, reason, "
      "sent_at, dead_at) SELECT id, queue, body, receive_count, COALESCE(last_error, 'max "
      "receive count exceeded'), sent_at, $2 FROM dead) "
      "UPDATE cascade_messages m SET visible_at=$4, receive_count=m.receive_count+1, receipt=$5 "
      "FROM picked p WHERE m.id=p.id AND p.rc<$6 "
      "RETURNING m.id, m.body, m.receive_count, m.sent_at, p.was",
      in.id, t, static_cast<int64_t>(std::min<size_t>(max, INT32_MAX)), hidden_until, tok,
      in.options.max_receive_count);
  struct Row {
    int64_t was, id;
    ReceivedMessage m;
  };
  std::vector<Row> rows;
  rows.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    Row row{r.integer(i, 4), r.integer(i, 0), {}};
    row.m.id = std::to_string(row.id);
    row.m.receipt = row.m.id + "." + tok;
    row.m.body = std::string(r.text(i, 1));
    row.m.receive_count = static_cast<int>(r.integer(i, 2));
    row.m.sent_at = from_millis(r.integer(i, 3));
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.was, a.id) < std::tie(b.was, b.id);
  });
  out.reserve(rows.size());
  for (auto& row : rows) out.push_back(std::move(row.m));
  return out;
}

bool PgQueue::remove(std::string_view queue, std::string_view receipt) {
  int64_t qid = info(queue).id, id = 0;
  std::string_view tok;
  if (!parse_receipt(receipt, id, tok)) return false;
  return c_.query("DELETE FROM cascade_messages WHERE id=$1 AND queue=$2 AND receipt=$3", id, qid,
                  tok)
             .affected() == 1;
}

bool PgQueue::change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                                std::string_view error) {
  int64_t qid = info(queue).id, id = 0;
  std::string_view tok;
  if (!parse_receipt(receipt, id, tok)) return false;
  Param err = error.empty() ? Param() : Param(std::string(error));
  return c_.query(
               "UPDATE cascade_messages SET visible_at=$4, last_error=COALESCE($5, last_error) "
               "WHERE id=$1 AND queue=$2 AND receipt=$3",
               id, qid, tok, now() + static_cast<int64_t>(timeout.count()), err)
             .affected() == 1;
}

bool PgQueue::release(std::string_view queue, std::string_view receipt, Duration delay) {
  int64_t qid = info(queue).id, id = 0;
  std::string_view tok;
  if (!parse_receipt(receipt, id, tok)) return false;
  int64_t visible_at = now() + static_cast<int64_t>(delay.count());
  Tx tx(c_);
  Result own = c_.query(
      "SELECT receive_count FROM cascade_messages WHERE id=$1 AND queue=$2 AND receipt=$3 FOR "
      "UPDATE",
      id, qid, tok);
  if (own.rows() == 0) return false;
  bool back_to_zero = own.integer(0, 0) <= 1;
  // Back at zero receives it joins the coalescing index: an identical waiting body absorbs it.
  // A sender may add such a body between the two steps; the second round then finds it.
  for (int round = 0; round < 2; ++round) {
    if (back_to_zero) {
      Result absorbed = c_.query(
          "UPDATE cascade_messages SET visible_at=LEAST(visible_at, $3) WHERE queue=$2 AND "
          "receive_count=0 AND id<>$1 AND body_hash=(SELECT body_hash FROM cascade_messages WHERE "
          "id=$1)",
          id, qid, visible_at);
      if (absorbed.affected() > 0) {
        c_.query("DELETE FROM cascade_messages WHERE id=$1", id);
        tx.commit();
        return true;
      }
      c_.query("SAVEPOINT cascade_release");
    }
    try {
      c_.query(
          "UPDATE cascade_messages SET visible_at=$2, receive_count=GREATEST(receive_count-1, 0) "
          "WHERE id=$1",
          id, visible_at);
    } catch (const QueryError& e) {
      if (!back_to_zero || e.sqlstate() != "23505" || round == 1) throw;
      c_.query("ROLLBACK TO SAVEPOINT cascade_release");
      continue;
    }
    if (back_to_zero) c_.query("RELEASE SAVEPOINT cascade_release");
    tx.commit();
    return true;
  }
  return false;
}

bool PgQueue::dead_letter(std::string_view queue, std::string_view receipt,
                          std::string_view reason) {
  int64_t qid = info(queue).id, id = 0;
  std::string_view tok;
  if (!parse_receipt(receipt, id, tok)) return false;
  Param why = reason.empty() ? Param() : Param(std::string(reason));
  return c_.query(
               "WITH gone AS (DELETE FROM cascade_messages WHERE id=$1 AND queue=$2 AND "
               "receipt=$3 RETURNING id, queue, body, receive_count, last_error, sent_at) "
               "INSERT INTO cascade_dead_letters(id, queue, body, receive_count, reason, sent_at, "
               "dead_at) SELECT id, queue, body, receive_count, COALESCE($4, last_error, 'max "
               "receive count exceeded'), sent_at, $5 FROM gone",
               id, qid, tok, why, now())
             .affected() == 1;
}

QueueStats PgQueue::stats(std::string_view queue) {
  int64_t qid = info(queue).id, t = now();
  Result r = c_.query(
      "SELECT count(*) FILTER (WHERE visible_at<=$2), count(*) FILTER (WHERE visible_at>$2), "
      "min(sent_at), (SELECT count(*) FROM cascade_dead_letters WHERE queue=$1) FROM "
      "cascade_messages WHERE queue=$1",
      qid, t);
  QueueStats s;
  s.depth = r.integer(0, 0);
  s.in_flight = r.integer(0, 1);
  if (!r.null(0, 2)) s.oldest_age_ms = std::max<int64_t>(0, t - r.integer(0, 2));
  s.dlq_depth = r.integer(0, 3);
  return s;
}

std::vector<DeadLetter> PgQueue::dead_letters(std::string_view queue, size_t limit) {
  int64_t qid = info(queue).id;
  Result r = c_.query(
      "SELECT id, body, receive_count, reason, sent_at, dead_at FROM cascade_dead_letters WHERE "
      "queue=$1 ORDER BY dead_at, id LIMIT $2",
      qid, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  std::vector<DeadLetter> out;
  for (int i = 0; i < r.rows(); ++i) {
    DeadLetter d;
    d.id = std::string(r.text(i, 0));
    d.queue = queue;
    d.body = std::string(r.text(i, 1));
    d.receive_count = static_cast<int>(r.integer(i, 2));
    d.reason = std::string(r.text(i, 3));
    d.sent_at = from_millis(r.integer(i, 4));
    d.dead_at = from_millis(r.integer(i, 5));
    out.push_back(std::move(d));
  }
  return out;
}

size_t PgQueue::redrive(std::string_view queue, std::span<const std::string> ids) {
  int64_t qid = info(queue).id;
  std::vector<int64_t> chosen = parse_ids(ids);
  if (!ids.empty() && chosen.empty()) return 0;
  Param which = ids.empty() ? Param() : Param(int_array(chosen));
  // One statement, so a dead letter added meanwhile is either moved or left, never lost. A
  // redriven message is a fresh send (new sent_at, zero receives), coalesced like one.
  Result r = c_.query(
      std::string("WITH gone AS (DELETE FROM cascade_dead_letters WHERE queue=$1 AND ($3::bigint[] "
                  "IS NULL OR id = ANY($3::bigint[])) RETURNING id, queue, body, dead_at), "
                  "moved AS (INSERT INTO cascade_messages(id, queue, body, body_hash, sent_at, "
                  "visible_at, receive_count) SELECT id, queue, body, ") +
          kHash + ", $2, $2, 0 FROM gone ORDER BY dead_at, id " + kPending +
          ") SELECT count(*) FROM gone",
      qid, now(), which);
  return static_cast<size_t>(r.integer(0, 0));
}

size_t PgQueue::purge_dead_letters(std::string_view queue, std::span<const std::string> ids) {
  int64_t qid = info(queue).id;
  std::vector<int64_t> chosen = parse_ids(ids);
  if (!ids.empty() && chosen.empty()) return 0;
  Param which = ids.empty() ? Param() : Param(int_array(chosen));
  return static_cast<size_t>(c_.query("DELETE FROM cascade_dead_letters WHERE queue=$1 AND "
                                      "($2::bigint[] IS NULL OR id = ANY($2::bigint[]))",
                                      qid, which)
                                 .affected());
}

size_t PgQueue::release_in_flight(std::string_view queue) {
  int64_t qid = info(queue).id;
  return static_cast<size_t>(
      c_.query("UPDATE cascade_messages SET visible_at=$2 WHERE queue=$1 AND visible_at>$2 AND "
               "receive_count>0",
               qid, now())
          .affected());
}

}  // namespace cascade::pg
