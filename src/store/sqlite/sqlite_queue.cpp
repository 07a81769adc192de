#include <charconv>
#include <stdexcept>

#include "store/sqlite/sqlite_parts.h"

namespace cascade::sqlite {
namespace {

// A receipt is "<message id>.<nonce hex>"; the nonce changes on every receive, which is what
// makes an older receipt stale.
std::string make_receipt(int64_t id, int64_t nonce) {
  char buf[48];
  auto r = std::to_chars(buf, buf + 24, id);
  *r.ptr++ = '.';
  r = std::to_chars(r.ptr, buf + sizeof buf, static_cast<uint64_t>(nonce), 16);
  return std::string(buf, r.ptr);
}

bool parse_receipt(std::string_view receipt, int64_t& id, int64_t& nonce) {
  auto dot = receipt.find('.');
  if (dot == std::string_view::npos) return false;
  const char* end = receipt.data() + dot;
  auto r = std::from_chars(receipt.data(), end, id);
  if (r.ec != std::errc() || r.ptr != end) return false;
  uint64_t n = 0;
  end = receipt.data() + receipt.size();
  r = std::from_chars(receipt.data() + dot + 1, end, n, 16);
  if (r.ec != std::errc() || r.ptr != end) return false;
  nonce = static_cast<int64_t>(n);
  return true;
}

bool parse_id(std::string_view s, int64_t& id) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), id);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

SqliteQueue::SqliteQueue(Db& db, const Clock& clock)
    : db_(db), clock_(clock), rng_(std::random_device{}()) {
  sqlite3* d = db.get();
  find_queue_ = Stmt(d,
                     "SELECT id, visibility_ms, max_receive_count, retention_ms FROM "
                     "cascade_queues WHERE name=?1");
  upsert_queue_ = Stmt(d,
                       "INSERT INTO cascade_queues(name, visibility_ms, max_receive_count, "
                       "retention_ms) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET "
                       "visibility_ms=excluded.visibility_ms, "
                       "max_receive_count=excluded.max_receive_count, "
                       "retention_ms=excluded.retention_ms");
  // OR IGNORE + the partial unique index on never-received bodies is the coalescing.
  insert_ = Stmt(d,
                 "INSERT OR IGNORE INTO cascade_messages(queue, body, sent_at, visible_at, "
                 "receive_count) VALUES(?1, ?2, ?3, ?4, 0)");
  expire_ = Stmt(d, "DELETE FROM cascade_messages WHERE queue=?1 AND sent_at<?2");
  select_visible_ = Stmt(d,
                         "SELECT id, body, receive_count, sent_at FROM cascade_messages "
                         "WHERE queue=?1 AND visible_at<=?2 ORDER BY visible_at, id LIMIT ?3");
  hide_ = Stmt(d,
               "UPDATE cascade_messages SET visible_at=?2, receive_count=receive_count+1, "
               "receipt=?3 WHERE id=?1");
  to_dlq_ = Stmt(d,
                 "INSERT INTO cascade_dead_letters(id, queue, body, receive_count, reason, "
                 "sent_at, dead_at) SELECT id, queue, body, receive_count, "
                 "COALESCE(?2, last_error, 'max receive count exceeded'), sent_at, ?3 "
                 "FROM cascade_messages WHERE id=?1 AND queue=?4 AND (?5 IS NULL OR receipt=?5)");
  delete_ = Stmt(d, "DELETE FROM cascade_messages WHERE id=?1");
  delete_receipt_ = Stmt(d, "DELETE FROM cascade_messages WHERE id=?1 AND queue=?2 AND receipt=?3");
  set_visibility_ = Stmt(d,
                         "UPDATE cascade_messages SET visible_at=?4, "
                         "last_error=COALESCE(?5, last_error) "
                         "WHERE id=?1 AND queue=?2 AND receipt=?3");
  // OR IGNORE: back at zero receives, the row may collide with an identical waiting body on the
  // coalescing index; release() then lets that one absorb it.
  uncount_ = Stmt(d,
                  "UPDATE OR IGNORE cascade_messages SET visible_at=?4, "
                  "receive_count=max(receive_count-1, 0) WHERE id=?1 AND queue=?2 AND receipt=?3");
  absorb_released_ = Stmt(d,
                          "UPDATE cascade_messages SET visible_at=min(visible_at, ?4) "
                          "WHERE queue=?2 AND receive_count=0 AND body=(SELECT body FROM "
                          "cascade_messages WHERE id=?1 AND queue=?2 AND receipt=?3)");
  count_visible_ =
      Stmt(d, "SELECT count(*) FROM cascade_messages WHERE queue=?1 AND visible_at<=?2");
  count_hidden_ = Stmt(d, "SELECT count(*) FROM cascade_messages WHERE queue=?1 AND visible_at>?2");
  oldest_ = Stmt(d, "SELECT min(sent_at) FROM cascade_messages WHERE queue=?1");
  count_dlq_ = Stmt(d, "SELECT count(*) FROM cascade_dead_letters WHERE queue=?1");
  list_dlq_ = Stmt(d,
                   "SELECT id, body, receive_count, reason, sent_at, dead_at FROM "
                   "cascade_dead_letters WHERE queue=?1 ORDER BY dead_at, id LIMIT ?2");
  // A redriven message is a fresh send (new sent_at, zero receives), coalesced like one.
  redrive_all_ = Stmt(d,
                      "INSERT OR IGNORE INTO cascade_messages(id, queue, body, sent_at, "
                      "visible_at, receive_count) SELECT id, queue, body, ?2, ?2, 0 FROM "
                      "cascade_dead_letters WHERE queue=?1 ORDER BY dead_at, id");
  redrive_one_ = Stmt(d,
                      "INSERT OR IGNORE INTO cascade_messages(id, queue, body, sent_at, "
                      "visible_at, receive_count) SELECT id, queue, body, ?2, ?2, 0 FROM "
                      "cascade_dead_letters WHERE queue=?1 AND id=?3");
  purge_all_ = Stmt(d, "DELETE FROM cascade_dead_letters WHERE queue=?1");
  purge_one_ = Stmt(d, "DELETE FROM cascade_dead_letters WHERE queue=?1 AND id=?2");
  release_ = Stmt(d,
                  "UPDATE cascade_messages SET visible_at=?2 "
                  "WHERE queue=?1 AND visible_at>?2 AND receive_count>0");
}

SqliteQueue::Info& SqliteQueue::info(std::string_view queue) {
  if (auto it = queues_.find(queue); it != queues_.end()) return it->second;
  // Another process (or an earlier run) may have declared it.
  Use u(find_queue_);
  find_queue_.bind(1, queue);
  if (!find_queue_.step())
    throw std::runtime_error("queue '" + std::string(queue) + "' does not exist (create it first)");
  Info in;
  in.id = find_queue_.col_int(0);
  in.options.visibility_timeout = Duration(find_queue_.col_int(1));
  in.options.max_receive_count = static_cast<int>(find_queue_.col_int(2));
  in.options.retention = Duration(find_queue_.col_int(3));
  return queues_.emplace(std::string(queue), in).first->second;
}

void SqliteQueue::create(std::string_view queue, const QueueOptions& options) {
  {
    Use u(upsert_queue_);
    upsert_queue_.bind(1, queue);
    upsert_queue_.bind(2, static_cast<int64_t>(options.visibility_timeout.count()));
    upsert_queue_.bind(3, static_cast<int64_t>(options.max_receive_count));
    upsert_queue_.bind(4, static_cast<int64_t>(options.retention.count()));
    upsert_queue_.step();
  }
  if (auto it = queues_.find(queue); it != queues_.end()) queues_.erase(it);
  info(queue);
}

size_t SqliteQueue::send(std::string_view queue, std::span<const std::string> bodies,
                         Duration delay) {
  int64_t qid = info(queue).id;
  if (bodies.empty()) return 0;
  int64_t t = now();
  Implicit tx(db_);
  size_t created = 0;
  insert_.bind(1, qid);
  insert_.bind(3, t);
  insert_.bind(4, t + delay.count());
  for (const auto& body : bodies) {
    insert_.bind(2, body);
    insert_.exec();
    created += static_cast<size_t>(db_.changes());
  }
  tx.done();
  return created;
}

std::vector<ReceivedMessage> SqliteQueue::receive(std::string_view queue, size_t max,
                                                  std::optional<Duration> visibility) {
  Info& in = info(queue);
  std::vector<ReceivedMessage> out;
  if (max == 0) return out;
  int64_t t = now();
  int64_t hidden_until = t + visibility.value_or(in.options.visibility_timeout).count();
  Implicit tx(db_);
  expire_.bind(1, in.id);
  expire_.bind(2, t - in.options.retention.count());
  expire_.exec();

  // Collect first: updating visible_at while the index scan runs could revisit rows.
  {
    Use u(select_visible_);
    select_visible_.bind(1, in.id);
    select_visible_.bind(2, t);
    select_visible_.bind(3, static_cast<int64_t>(max));
    while (select_visible_.step()) {
      ReceivedMessage m;
      m.id = std::to_string(select_visible_.col_int(0));
      m.body = select_visible_.col_text(1);
      m.receive_count = static_cast<int>(select_visible_.col_int(2)) + 1;
      m.sent_at = from_millis(select_visible_.col_int(3));
      out.push_back(std::move(m));
    }
  }
  size_t kept = 0;
  for (auto& m : out) {
    int64_t id = std::stoll(m.id);
    if (m.receive_count > in.options.max_receive_count) {
      to_dlq_.bind(1, id);
      to_dlq_.bind_null(2);
      to_dlq_.bind(3, t);
      to_dlq_.bind(4, in.id);
      to_dlq_.bind_null(5);
      to_dlq_.exec();
      delete_.bind(1, id);
      delete_.exec();
      continue;
    }
    int64_t nonce = static_cast<int64_t>(rng_());
    hide_.bind(1, id);
    hide_.bind(2, hidden_until);
    hide_.bind(3, nonce);
    hide_.exec();
    m.receipt = make_receipt(id, nonce);
    if (&out[kept] != &m) out[kept] = std::move(m);
    ++kept;
  }
  out.resize(kept);
  tx.done();
  return out;
}

bool SqliteQueue::remove(std::string_view queue, std::string_view receipt) {
  int64_t qid = info(queue).id, id = 0, nonce = 0;
  if (!parse_receipt(receipt, id, nonce)) return false;
  delete_receipt_.bind(1, id);
  delete_receipt_.bind(2, qid);
  delete_receipt_.bind(3, nonce);
  delete_receipt_.exec();
  return db_.changes() == 1;
}

bool SqliteQueue::change_visibility(std::string_view queue, std::string_view receipt,
                                    Duration timeout, std::string_view error) {
  int64_t qid = info(queue).id, id = 0, nonce = 0;
  if (!parse_receipt(receipt, id, nonce)) return false;
  set_visibility_.bind(1, id);
  set_visibility_.bind(2, qid);
  set_visibility_.bind(3, nonce);
  set_visibility_.bind(4, now() + timeout.count());
  if (error.empty())
    set_visibility_.bind_null(5);
  else
    set_visibility_.bind(5, error);
  set_visibility_.exec();
  return db_.changes() == 1;
}

bool SqliteQueue::release(std::string_view queue, std::string_view receipt, Duration delay) {
  int64_t qid = info(queue).id, id = 0, nonce = 0;
  if (!parse_receipt(receipt, id, nonce)) return false;
  int64_t visible_at = now() + delay.count();
  Implicit tx(db_);
  for (Stmt* st : {&uncount_, &absorb_released_}) {
    st->bind(1, id);
    st->bind(2, qid);
    st->bind(3, nonce);
    st->bind(4, visible_at);
    st->exec();
    if (db_.changes() == 0) continue;
    if (st == &absorb_released_) {
      delete_receipt_.bind(1, id);
      delete_receipt_.bind(2, qid);
      delete_receipt_.bind(3, nonce);
      delete_receipt_.exec();
    }
    tx.done();
    return true;
  }
  return false;
}

bool SqliteQueue::dead_letter(std::string_view queue, std::string_view receipt,
                              std::string_view reason) {
  int64_t qid = info(queue).id, id = 0, nonce = 0;
  if (!parse_receipt(receipt, id, nonce)) return false;
  Implicit tx(db_);
  to_dlq_.bind(1, id);
  if (reason.empty())
    to_dlq_.bind_null(2);
  else
    to_dlq_.bind(2, reason);
  to_dlq_.bind(3, now());
  to_dlq_.bind(4, qid);
  to_dlq_.bind(5, nonce);
  to_dlq_.exec();
  if (db_.changes() != 1) return false;
  delete_.bind(1, id);
  delete_.exec();
  tx.done();
  return true;
}

QueueStats SqliteQueue::stats(std::string_view queue) {
  int64_t qid = info(queue).id, t = now();
  QueueStats s;
  auto scalar = [&](Stmt& st, bool with_time) -> std::optional<int64_t> {
    Use u(st);
    st.bind(1, qid);
    if (with_time) st.bind(2, t);
    if (!st.step() || st.col_null(0)) return std::nullopt;
    return st.col_int(0);
  };
  s.depth = scalar(count_visible_, true).value_or(0);
  s.in_flight = scalar(count_hidden_, true).value_or(0);
  if (auto oldest = scalar(oldest_, false)) s.oldest_age_ms = std::max<int64_t>(0, t - *oldest);
  s.dlq_depth = scalar(count_dlq_, false).value_or(0);
  return s;
}

std::vector<DeadLetter> SqliteQueue::dead_letters(std::string_view queue, size_t limit) {
  int64_t qid = info(queue).id;
  std::vector<DeadLetter> out;
  Use u(list_dlq_);
  list_dlq_.bind(1, qid);
  list_dlq_.bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  while (list_dlq_.step()) {
    DeadLetter d;
    d.id = std::to_string(list_dlq_.col_int(0));
    d.queue = queue;
    d.body = list_dlq_.col_text(1);
    d.receive_count = static_cast<int>(list_dlq_.col_int(2));
    d.reason = list_dlq_.col_text(3);
    d.sent_at = from_millis(list_dlq_.col_int(4));
    d.dead_at = from_millis(list_dlq_.col_int(5));
    out.push_back(std::move(d));
  }
  return out;
}

size_t SqliteQueue::redrive(std::string_view queue, std::span<const std::string> ids) {
  int64_t qid = info(queue).id, t = now();
  Implicit tx(db_);
  size_t moved = 0;
  if (ids.empty()) {
    redrive_all_.bind(1, qid);
    redrive_all_.bind(2, t);
    redrive_all_.exec();
    purge_all_.bind(1, qid);
    purge_all_.exec();
    moved = static_cast<size_t>(db_.changes());
  } else {
    for (const auto& s : ids) {
      int64_t id = 0;
      if (!parse_id(s, id)) continue;
      redrive_one_.bind(1, qid);
      redrive_one_.bind(2, t);
      redrive_one_.bind(3, id);
      redrive_one_.exec();
      purge_one_.bind(1, qid);
      purge_one_.bind(2, id);
      purge_one_.exec();
      moved += static_cast<size_t>(db_.changes());
    }
  }
  tx.done();
  return moved;
}

size_t SqliteQueue::purge_dead_letters(std::string_view queue, std::span<const std::string> ids) {
  int64_t qid = info(queue).id;
  Implicit tx(db_);
  size_t deleted = 0;
  if (ids.empty()) {
    purge_all_.bind(1, qid);
    purge_all_.exec();
    deleted = static_cast<size_t>(db_.changes());
  } else {
    for (const auto& s : ids) {
      int64_t id = 0;
      if (!parse_id(s, id)) continue;
      purge_one_.bind(1, qid);
      purge_one_.bind(2, id);
      purge_one_.exec();
      deleted += static_cast<size_t>(db_.changes());
    }
  }
  tx.done();
  return deleted;
}

size_t SqliteQueue::release_in_flight(std::string_view queue) {
  int64_t qid = info(queue).id;
  release_.bind(1, qid);
  release_.bind(2, now());
  release_.exec();
  return static_cast<size_t>(db_.changes());
}

}  // namespace cascade::sqlite
