#include <algorithm>
#include <stdexcept>

#include "store/listing_blob.h"
#include "store/names.h"
#include "store/sqlite/sqlite_parts.h"

namespace cascade::sqlite {

// ---- Staging: one row per listing in cascade_listings, its keys and hashes in one BLOB sorted by
// key (store/listing_blob.h): a re-sync reads one record per request instead of one index entry
// per row, and a new row costs nothing here beyond its share of the listing's record.

void SqliteStaging::create_stage(std::string_view) {}

SqliteStaging::Stmts& SqliteStaging::stmts() {
  if (stmts_) return *stmts_;
  sqlite3* d = db_.get();
  auto s = std::make_unique<Stmts>();
  s->get = Stmt(d, "SELECT rows FROM cascade_listings WHERE stage=?1 AND scope=?2");
  s->put = Stmt(d,
                "INSERT INTO cascade_listings(stage, scope, rows) VALUES(?1, ?2, ?3) ON "
                "CONFLICT(stage, scope) DO UPDATE SET rows=excluded.rows");
  s->drop = Stmt(d, "DELETE FROM cascade_listings WHERE stage=?1 AND scope=?2");
  s->scopes = Stmt(d, "SELECT scope FROM cascade_listings WHERE stage=?1");
  s->digest =
      Stmt(d, "SELECT substr(rows, 1, 16) FROM cascade_listings WHERE stage=?1 AND scope=?2");
  stmts_ = std::move(s);
  return *stmts_;
}

void SqliteStaging::scope_rows(std::string_view name, uint64_t scope, std::vector<StagedRow>& out) {
  Stmt& st = stmts().get;
  Use u(st);
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  if (!st.step()) return;
  const auto* p = static_cast<const char*>(sqlite3_column_blob(st.get(), 0));
  size_t size = static_cast<size_t>(sqlite3_column_bytes(st.get(), 0));
  decode_listing(std::string_view(p ? p : "", size), name, out);
}

void SqliteStaging::set_scope_rows(std::string_view name, uint64_t scope,
                                   std::span<const StagedRef> rows) {
  record_listing(name, scope, rows, 0);
}

std::optional<ListingDigest> SqliteStaging::listing_digest(std::string_view name, uint64_t scope) {
  Stmt& st = stmts().digest;
  Use u(st);
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  if (!st.step()) return std::nullopt;
  const auto* p = static_cast<const char*>(sqlite3_column_blob(st.get(), 0));
  size_t size = static_cast<size_t>(sqlite3_column_bytes(st.get(), 0));
  return listing_blob_digest(std::string_view(p ? p : "", size));
}

void SqliteStaging::record_listing(std::string_view name, uint64_t scope,
                                   std::span<const StagedRef> rows, uint64_t digest) {
  Stmts& s = stmts();
  Implicit tx(db_);
  if (rows.empty()) {
    s.drop.bind(1, name);
    s.drop.bind(2, static_cast<int64_t>(scope));
    s.drop.exec();
    tx.done();
    return;
  }
  std::string blob = encode_listing(rows, digest);
  s.put.bind(1, name);
  s.put.bind(2, static_cast<int64_t>(scope));
  s.put.bind_blob(3, blob);
  s.put.exec();
  tx.done();
}

void SqliteStaging::scopes(std::string_view name, std::vector<uint64_t>& out) {
  Stmt& st = stmts().scopes;
  Use u(st);
  st.bind(1, name);
  while (st.step()) out.push_back(static_cast<uint64_t>(st.col_int(0)));
}

// ---- Held deletions: one small table for all stages (see kSchema); holds are rare.

SqliteStaging::Held& SqliteStaging::held() {
  if (held_) return *held_;
  sqlite3* d = db_.get();
  auto h = std::make_unique<Held>();
  h->get =
      Stmt(d, "SELECT listing, run_id FROM cascade_held_deletions WHERE stage=?1 AND scope=?2");
  h->scopes = Stmt(d, "SELECT scope FROM cascade_held_deletions WHERE stage=?1");
  h->put = Stmt(d,
                "INSERT INTO cascade_held_deletions(stage, scope, listing, run_id) "
                "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(stage, scope) DO UPDATE SET "
                "listing=excluded.listing, run_id=excluded.run_id");
  h->release = Stmt(d, "DELETE FROM cascade_held_deletions WHERE stage=?1 AND scope=?2");
  held_ = std::move(h);
  return *held_;
}

std::optional<HeldListing> SqliteStaging::held_listing(std::string_view name, uint64_t scope) {
  Stmt& st = held().get;
  Use u(st);
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  if (!st.step()) return std::nullopt;
  return HeldListing{static_cast<uint64_t>(st.col_int(0)), st.col_int(1)};
}

void SqliteStaging::held_scopes(std::string_view name, std::vector<uint64_t>& out) {
  Stmt& st = held().scopes;
  Use u(st);
  st.bind(1, name);
  while (st.step()) out.push_back(static_cast<uint64_t>(st.col_int(0)));
}

void SqliteStaging::hold_listing(std::string_view name, uint64_t scope,
                                 const HeldListing& listing) {
  Stmt& st = held().put;
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  st.bind(3, static_cast<int64_t>(listing.fingerprint));
  st.bind(4, listing.run_id);
  st.exec();
}

void SqliteStaging::release_listing(std::string_view name, uint64_t scope) {
  Stmt& st = held().release;
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  st.exec();
}

// ---- Incremental cursors: one small table for all stages (see kSchema), one row per scope.

SqliteStaging::Cursors& SqliteStaging::cursors() {
  if (cursors_) return *cursors_;
  sqlite3* d = db_.get();
  auto c = std::make_unique<Cursors>();
  c->get = Stmt(d, "SELECT value FROM cascade_cursors WHERE stage=?1 AND scope=?2");
  c->put = Stmt(d,
                "INSERT INTO cascade_cursors(stage, scope, value) VALUES(?1, ?2, ?3) "
                "ON CONFLICT(stage, scope) DO UPDATE SET value=excluded.value");
  c->clear = Stmt(d, "DELETE FROM cascade_cursors WHERE stage=?1");
  cursors_ = std::move(c);
  return *cursors_;
}

std::optional<std::string> SqliteStaging::cursor(std::string_view name, uint64_t scope) {
  Stmt& st = cursors().get;
  Use u(st);
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  if (!st.step()) return std::nullopt;
  return std::string(st.col_text(0));
}

void SqliteStaging::set_cursor(std::string_view name, uint64_t scope, std::string_view value) {
  Stmt& st = cursors().put;
  st.bind(1, name);
  st.bind(2, static_cast<int64_t>(scope));
  st.bind(3, value);
  st.exec();
}

size_t SqliteStaging::clear_cursors(std::string_view name) {
  Stmt& st = cursors().clear;
  st.bind(1, name);
  st.exec();
  return static_cast<size_t>(sqlite3_changes(db_.get()));
}

// ---- ChangeLog: the view SqliteWarehouse::define_change_log() keeps over every table's versions
// and the deletions.

SqliteChangeLog::SqliteChangeLog(Db& db, SqliteWarehouse& warehouse)
    : db_(db), warehouse_(warehouse) {}

SqliteChangeLog::Stmts& SqliteChangeLog::stmts() {
  if (stmts_) return *stmts_;
  sqlite3* d = db_.get();
  auto s = std::make_unique<Stmts>();
  std::string v = quote_ident(kChangeLogView);
  s->read = Stmt(d, "SELECT seq, table_name, operation, key, image, run_id, at FROM " + v +
                        " WHERE seq>?1 ORDER BY seq LIMIT ?2");
  s->count_all = Stmt(d, "SELECT count(*) FROM " + v);
  s->count_table = Stmt(d, "SELECT count(*) FROM " + v + " WHERE table_name=?1");
  s->count_run = Stmt(d, "SELECT count(*) FROM " + v + " WHERE run_id=?2");
  s->count_table_run = Stmt(d, "SELECT count(*) FROM " + v + " WHERE table_name=?1 AND run_id=?2");
  s->last = Stmt(d, "SELECT max(seq) FROM " + v);
  stmts_ = std::move(s);
  return *stmts_;
}

std::vector<Change> SqliteChangeLog::read(int64_t after, size_t limit) {
  std::vector<Change> out;
  Stmt& st = stmts().read;
  Use u(st);
  st.bind(1, after);
  st.bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  while (st.step()) {
    Change c;
    c.seq = st.col_int(0);
    c.table = st.col_text(1);
    std::string_view op = st.col_text(2);
    c.kind = op == "insert"   ? ChangeKind::New
             : op == "update" ? ChangeKind::Changed
                              : ChangeKind::Gone;
    c.key = st.col_text(3);
    c.image = st.col_text(4);
    c.run_id = st.col_int(5);
    c.at = st.col_text(6);
    out.push_back(std::move(c));
  }
  return out;
}

int64_t SqliteChangeLog::count(std::string_view table, int64_t run) {
  Stmts& s = stmts();
  Stmt& st =
      table.empty() ? (run ? s.count_run : s.count_all) : (run ? s.count_table_run : s.count_table);
  Use u(st);
  if (!table.empty()) st.bind(1, table);
  if (run) st.bind(2, run);
  return st.step() ? st.col_int(0) : 0;
}

int64_t SqliteChangeLog::last_seq() {
  Stmt& st = stmts().last;
  Use u(st);
  return st.step() ? st.col_int(0) : 0;
}

void SqliteChangeLog::define_view() {
  Implicit tx(db_);
  warehouse_.define_change_log();
  tx.done();
  stmts_.reset();
}

}  // namespace cascade::sqlite
