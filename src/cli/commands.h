// The `cascade` subcommands, each a function from parsed options to an exit code
// (0 ok, 1 failed run or runtime error, 2 bad pipeline file or usage). Not thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/pipeline.h"
#include "store/store.h"

namespace cascade::cli {

struct Common {
  std::string pipeline;  // path to the pipeline file
  std::string storage;   // overrides the pipeline's storage when set
  bool json = false;
};

// SIGINT/SIGTERM stop a run cleanly (its messages stay queued) from the moment the process
// starts, not only once the run is under way.
void install_stop_handlers();
// Raised by those handlers, for commands that poll it (cascade ship).
const std::atomic<bool>* stop_flag();

int cmd_validate(const Common& c);

struct RunOptions {
  std::chrono::milliseconds idle_poll{1000};  // how often queues are checked between ticks
  std::string listen;                         // ADDRESS:PORT of the status server; empty: default
  bool no_listen = false;                     // no status server at all
  bool allow_unauthenticated = false;         // serve a non-loopback address without a token
};

// The version the binary was built as (CMake's project version).
extern const char* const kCascadeVersion;
// The long-running mode: schedules, continuous consumers; exits 0 on SIGTERM/SIGINT.
int cmd_run(const Common& c, const RunOptions& o);
// progress_every: how often a sync whose output is not a terminal prints plain progress lines
// (0: never).
// full_refresh: the cursors of incremental stages are forgotten first, so they list everything.
int cmd_sync(const Common& c, const std::string& event_file, bool drain_only = false,
             std::chrono::seconds progress_every = std::chrono::seconds(10),
             bool full_refresh = false);
int cmd_invoke(const Common& c, const std::string& stage, const std::string& event_file);
struct SqlOptions {
  std::string format;     // table, csv or json; empty: table on a terminal, csv otherwise
  size_t limit = 1000;    // rows the table format shows (0: all); csv and json show all
  size_t max_width = 40;  // code points per table cell (0: no limit)
  std::string null = "NULL";
};
int cmd_sql(const Common& c, const std::string& query, const SqlOptions& o);

struct ExportOptions {
  std::string table;
  std::string format;  // csv or jsonl; empty: from the output file's extension, else csv
  std::string output;  // a file; empty or "-": stdout
  std::string to;      // s3://BUCKET/KEY: the S3 object to write instead (KEY.gz: gzip)
  std::string where;   // an SQL condition on the table's rows; empty: all rows
  std::optional<uint64_t> limit;
  bool header = true;  // csv only
};
// Streams a table or view row by row; 2 for an unknown table or a bad option, 1 when the query
// or a write fails.
int cmd_export(const Common& c, const ExportOptions& o);
// Ships the change log after its checkpoint to `to` (s3://BUCKET[/PREFIX]) as gzip JSON Lines
// partitioned by table and date (see aws/s3_shipper.h); 2 for a bad URL or missing AWS
// configuration, 1 when S3 fails.
int cmd_ship(const Common& c, const std::string& to);
// The storage URL of `c`: --storage, else the pipeline's. Throws ConfigError (already reported)
// when the pipeline cannot be loaded.
std::string storage_of(const Common& c);

// The store of --storage or the pipeline, opened read-only for queries; nullptr (the error
// printed as file:line:column) when the pipeline cannot be loaded.
std::unique_ptr<cascade::Store> open_for_reading(const Common& c);
int cmd_queues(const Common& c);
// `cascade streams`: applies the aws: storage's DynamoDB Streams to its warehouse (records per
// GetRecords call: `batch`). Exit 2 for a storage that is not aws:.
int cmd_streams(const Common& c, int batch);
// Alarm states saved by `cascade run`, with the last `history` changes of each.
int cmd_alarms(const Common& c, size_t history);

// Which dead letters a `cascade dlq` action applies to; empty fields match everything.
struct DlqFilter {
  std::string stage;
  std::vector<std::string> ids;
  std::string reason;   // substring of the recorded reason
  std::string message;  // substring of the message body
  size_t limit = 100000;
};
// action: list, show, redrive or purge.
int cmd_dlq(const Common& c, const std::string& action, const DlqFilter& filter);

struct InitOptions {
  std::string url;                   // the sample listing, called once with GET
  std::string out = "cascade.yaml";  // "-": standard output
  std::vector<std::string> headers;  // "Name: value", sent with the call, never written
  bool force = false;                // replace an existing `out`
};
// Writes a commented pipeline from one response of `url`: 0 written, 1 the call or its answer
// failed (nothing written), 2 bad usage or `out` exists without `force`.
int cmd_init(const InitOptions& o);

struct DemoOptions {
  std::string dir;  // empty: a new temporary directory
  int seed = 1;
  int employees_per_branch = 20;
  int sales_per_salesperson = 50;
  int ticks = 24;  // simulated hours between the first and the second sync
};
int cmd_demo(const DemoOptions& o);

// Shared by commands: runs a sync of `pipeline_file` with extra environment values (demo).
int run_sync(const std::string& pipeline_file, const std::map<std::string, std::string>& env,
             bool json, const std::string& storage_override, bool drain_only = false,
             std::chrono::seconds progress_every = std::chrono::seconds(10),
             bool full_refresh = false);

// Loads a pipeline from the process environment; prints a ConfigError (file:line:column) and
// returns nullopt when it cannot be used.
std::optional<cascade::PipelineSpec> load_pipeline_or_report(const std::string& file);

// The reference pipeline compiled into the binary (examples/dunder-mifflin.yaml).
extern const char* const kDunderMifflinYaml;

}  // namespace cascade::cli
