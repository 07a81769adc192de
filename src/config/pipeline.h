// PipelineSpec: a pipeline file after interpolation and validation, the only form the engine
// sees. Every field has its default here; positions are kept for errors found later.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/alarm.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/value.h"
#include "source/auth.h"
#include "source/paginate_options.h"
#include "store/queue.h"

namespace cascade {

struct RateLimitSpec {
  double per_second = 0;  // 0 = unlimited
  double burst = 0;       // tokens; defaults to max(1, per_second)
};

struct QuotaSpec {
  int64_t requests = 0;  // 0 = no quota
  Duration per = std::chrono::hours(24);
  // Further windows that must also allow each request (`quota:` given as a list).
  std::vector<std::pair<int64_t, Duration>> more_windows;
  // Share of each window kept for a stage (`reserve: { sales: 0.5 }`), so a busy parent cannot
  // starve its children. Stage names are checked against the stages when the plan compiles.
  std::vector<std::pair<std::string, double>> reserve;
  std::vector<SourcePos> reserve_pos;
  // A run waits for a spent quota only this long; past it, it stops and leaves the messages queued.
  Duration max_wait = std::chrono::seconds(60);
};

struct RetrySpec {
  int attempts = 4;  // tries of one request inside one message, first included
  Duration backoff_min = std::chrono::milliseconds(200);
  Duration backoff_max = std::chrono::seconds(30);
};

struct SourceSpec {
  std::string base_url;  // http(s)://..., without a trailing '/'
  std::vector<std::pair<std::string, std::string>> headers;  // values may be secret: never log
  RateLimitSpec rate_limit;
  QuotaSpec quota;
  Duration timeout = std::chrono::seconds(10);
  RetrySpec retry;
  int max_connections = 16;  // simultaneous requests to the source, over all stages
  AuthSpec auth;             // `auth:`; its values are secret (see source/auth.h)
};

// A template string such as "/sales?employee_id={employee_id}" or "{record.id}".
// References: {name} / {message.name} (the message), {record.path} (the record); see
// core/template.h. Environment variables are interpolated at load time, not here.
struct TemplateSpec {
  std::string text;
  SourcePos pos;
};

// How one output field is computed: a record field path (`id`, `result.x`) or a template.
struct FieldSpec {
  std::string name;  // output column / parameter name
  bool is_template = false;
  std::string path;   // when !is_template: dotted path into the record
  TemplateSpec tmpl;  // when is_template
  SourcePos pos;
};

struct EmitSpec {
  std::string stage;  // child stage name
  std::vector<FieldSpec> fields;
  SourcePos pos;
};

// When a listing deletes much of what its request returned before, the deletions wait for the
// next run to see the same listing: a vendor glitch (a `200` with an empty list) must not wipe a
// table. A deletion is held when more than `hold_above` of the request's previous rows would go
// and it had at least `min_rows` of them; `hold_above: 1` never holds.
struct DeletionSpec {
  double hold_above = 0.5;  // share of the previous rows, 0..1
  int64_t min_rows = 4;
  // Rows of a listing no complete crawl requests any more (its parent record is gone): kept
  // as they are, or marked deleted (the default).
  bool keep_orphans = false;
};

// How records become table rows, and what a field the table has no column for does.
struct SchemaSpec {
  // Levels of nested objects flattened into `parent__child` columns; 0 keeps objects and lists
  // as JSON (`flatten: { depth: N }`).
  int flatten_depth = 1;
  bool list_tables = true;  // lists of objects become child tables (`flatten: { lists: tables }`)
  // evolve: a new field adds a column; freeze: a record with one is dead-lettered; discard: its
  // value is dropped and counted. The first records of a table make its columns in every case.
  enum class Contract { Evolve, Freeze, Discard } contract = Contract::Evolve;
};

// What a response status means for a stage (`responses: [{status: 404, action: empty}]`),
// over the defaults (2xx: records; 408, 429 and 5xx: retried, then the message is retried
// later; any other status: the message is dead-lettered at once).
struct ResponseRule {
  int lo = 0, hi = 0;  // statuses lo..hi (one status, or a class such as 4xx)
  enum class Action {
    Empty,       // an empty listing: no records, and the rows the listing had are gone
    Retry,       // transient: retried like a 5xx, then the message is retried later
    DeadLetter,  // permanent: the message goes to the dead-letter queue at once, no retry
  } action = Action::Empty;
  SourcePos pos;
};

// `incremental:` a stage whose vendor lists only what changed since a value the request names
// (dlt's names): each message scope (one parent's listing) keeps its own cursor, the largest
// `cursor_path` value of the records it loaded, and sends it as query parameter `param`; a
// scope with none sends `initial_value`. Such a listing is partial, so it never infers
// deletions.
struct IncrementalSpec {
  std::string cursor_path;  // dotted path into each record, e.g. updated_at
  std::string param;        // query parameter the cursor goes into, e.g. updated_since
  Value initial_value;      // a string or a number
  SourcePos pos;
};

struct StageSpec {
  std::string name;
  SourcePos pos;
  std::string table;  // warehouse table; defaults to the stage name
  std::string method = "GET";
  TemplateSpec request;  // path + query, appended to base_url
  // `params:` query parameters added to the request (names and rendered values URL-encoded).
  std::vector<std::pair<std::string, TemplateSpec>> params;
  // `body:` the JSON body: strings with braces are templates over the message (a string that is
  // exactly "{x}" keeps x's type). Absent: no body.
  std::optional<Value> body;
  SourcePos body_pos;
  // `headers:` sent with this stage's requests, over source.headers (same name, case ignored:
  // the stage's value wins). Values may be secret: never log.
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<ResponseRule> responses;  // first match wins
  std::string records_path;             // dotted; empty = the response root
  std::optional<std::string> where;     // filter expression text
  SourcePos where_pos;
  std::vector<FieldSpec> key;  // at least one
  std::vector<FieldSpec> attach;
  std::vector<EmitSpec> emit;
  int concurrency = 4;                  // messages of this stage in flight at once
  std::optional<std::string> schedule;  // rate(...) / cron(...); only root stages
  SourcePos schedule_pos;
  // IANA zone (e.g. Europe/Berlin) whose wall clock the schedule's cron() follows; UTC when
  // absent. Only with a schedule, so only on root stages; the loader has checked that it loads.
  std::optional<std::string> timezone;
  SourcePos timezone_pos;
  // Default messages for a root stage: the cartesian product of these lists.
  std::vector<std::pair<std::string, std::vector<Value>>> inputs;
  // Event fields that override inputs: {"branches": [...]} lists values of `branch`.
  std::map<std::string, std::string> event_fields;  // event field -> input parameter
  QueueOptions queue;  // pipeline-wide `queues:` unless the stage overrides
  DeletionSpec deletions;
  // The record field holding the vendor's date from which a version is valid (e.g.
  // branch_since): history intervals start there rather than when the change was observed.
  std::optional<std::string> effective;
  SchemaSpec schema;
  // How the listing is paged (`paginate:`); Kind::None: one request per message.
  PaginateOptions paginate;
  std::optional<IncrementalSpec> incremental;
  // `records_from: lines`: the stage sends no request; its records are the list the parent's
  // emit put in this message field (an embedded list, such as an order's lines). The list is
  // the complete listing of that parent, so items gone from it are deleted as usual.
  std::optional<std::string> records_from;
  SourcePos records_from_pos;
};

// An analysts' view over the warehouse tables: `CREATE VIEW name AS select`.
struct ViewSpec {
  std::string name;
  std::string select;
  SourcePos pos;
};

struct PipelineSpec {
  std::string file;  // path it was loaded from
  std::string name;
  std::string env = "dev";
  SourceSpec source;
  std::string storage = "sqlite:cascade.db";
  QueueOptions queues;
  std::vector<StageSpec> stages;  // in file order
  std::vector<AlarmSpec> alarms;
  std::vector<NotifySpec> notify;
  std::vector<ViewSpec> views;  // in file order

  const StageSpec* stage(std::string_view name) const;
  // Stages that no emit points at (where runs start).
  std::vector<const StageSpec*> roots() const;
};

}  // namespace cascade
