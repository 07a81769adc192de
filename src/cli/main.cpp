// The `cascade` command line.
#include <curl/curl.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdlib>

#include "aws/aws_store.h"
#include "cli/aws.h"
#include "cli/commands.h"
#include "core/duration.h"
#include "lambda/lambda.h"
#include "observe/log.h"

using namespace cascade::cli;

namespace {

// LOGGING_LEVEL, the old design's variable (Python's level names), when set; else `fallback`.
std::string lambda_log_level(std::string fallback) {
  const char* env_level = std::getenv("LOGGING_LEVEL");
  if (!env_level || !*env_level) return fallback;
  std::string l(env_level);
  for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (l == "warning") l = "warn";
  if (l == "critical" || l == "fatal") l = "error";
  if (l == "notset") l = "trace";
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  cascade::aws::register_aws_storage();
  // Started by Lambda as the function's `bootstrap` (a package may ship the binary under that
  // name): the custom runtime, configured by the environment alone.
  if (argc > 0 && std::getenv("AWS_LAMBDA_RUNTIME_API")) {
    std::string_view self = argv[0];
    if (size_t slash = self.rfind('/'); slash != std::string_view::npos)
      self.remove_prefix(slash + 1);
    if (self == "bootstrap") {
      cascade::setup_logging(lambda_log_level("info"), "json");
      return cascade::lambda::run_lambda();
    }
  }
  install_stop_handlers();
  CLI::App app{
      "cascade keeps a SQL warehouse in sync with a hierarchical (cascading) HTTP API.\n"
      "Parent records fan out into child requests through durable queues; only records that\n"
      "changed are written; the API's rate limit is never exceeded; failures land in\n"
      "dead-letter queues with their reasons."};
  app.require_subcommand(1);
  // Global options may come after the subcommand too (`cascade run FILE --log-level info`).
  app.fallthrough();
  app.set_version_flag("--version", std::string("cascade ") + kCascadeVersion);
  std::string log_level = "warn", log_format = "json";
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error or off (logs go to stderr)")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "json or text")->capture_default_str();

  Common c;
  const char* env_pipeline = std::getenv("CASCADE_PIPELINE");
  c.pipeline = env_pipeline ? env_pipeline : "cascade.yaml";
  auto add_pipeline = [&](CLI::App* sub, bool positional) {
    if (positional)
      sub->add_option("pipeline", c.pipeline,
                      "pipeline file (default: $CASCADE_PIPELINE or cascade.yaml)");
    sub->add_option("-p,--pipeline", c.pipeline,
                    "pipeline file (default: $CASCADE_PIPELINE or cascade.yaml)");
  };
  auto add_storage = [&](CLI::App* sub) {
    sub->add_option("--storage", c.storage,
                    "storage URL overriding the pipeline's, e.g. sqlite:cascade.db or "
                    "postgresql://USER@HOST:5432/DB");
  };

  auto* validate = app.add_subcommand("validate", "Check a pipeline file without running anything");
  add_pipeline(validate, true);

  size_t alarm_history = 5;
  auto* alarms = app.add_subcommand("alarms", "Alarm states and their recent changes");
  add_pipeline(alarms, true);
  add_storage(alarms);
  alarms->add_flag("--json", c.json, "print JSON");
  alarms->add_option("--history", alarm_history, "changes shown per alarm")->capture_default_str();

  RunOptions run_opts;
  std::string run_poll = "1s";
  auto* run = app.add_subcommand(
      "run",
      "Run as a service: fire each root stage on its schedule, work the queues continuously, "
      "pause while a quota is spent; SIGTERM stops it (exit 0)");
  add_pipeline(run, true);
  add_storage(run);
  run->add_option("--listen", run_opts.listen,
                  "ADDRESS:PORT of /metrics, /healthz, /status and the status page "
                  "(default 127.0.0.1:9464; port 0 picks a free one)");
  run->add_flag("--no-listen", run_opts.no_listen, "serve no HTTP endpoints");
  run->add_option("--poll", run_poll,
                  "how often queues, gauges and alarms are looked at between ticks (e.g. 1s, "
                  "200ms)")
      ->capture_default_str();
  run->add_flag("--allow-unauthenticated", run_opts.allow_unauthenticated,
                "serve a non-loopback address without the bearer token of CASCADE_STATUS_TOKEN");

  std::string event_file;
  auto* sync = app.add_subcommand("sync",
                                  "Run the pipeline once: enqueue the root stages' inputs and "
                                  "cascade until every queue is drained");
  add_pipeline(sync, true);
  add_storage(sync);
  sync->add_option(
      "--event", event_file,
      "JSON event overriding the root inputs, inline as {\"branches\": [\"Scranton\"]} "
      "or a file holding it (- reads standard input)");
  sync->add_flag("--json", c.json, "print the run summary as JSON");
  std::string progress_every = "10s";
  sync->add_option("--progress-every", progress_every,
                   "when stdout is not a terminal, print plain progress lines this often "
                   "(0 never)")
      ->capture_default_str();
  bool full_refresh = false;
  sync->add_flag("--full-refresh", full_refresh,
                 "forget the cursors of incremental stages first, so they list everything "
                 "again (unchanged rows are not rewritten)");
  bool drain_only = false;
  sync->add_flag("--drain", drain_only,
                 "only process what is already queued (e.g. after `dlq redrive`); do not enqueue "
                 "the root inputs");

  std::string stage;
  auto* invoke = app.add_subcommand(
      "invoke",
      "Run one stage on one event, like a local Lambda invoke; child messages are queued, not run");
  invoke->add_option("stage", stage, "stage name")->required();
  invoke->add_option("--event", event_file, "event JSON file ('-' for stdin)")->required();
  add_pipeline(invoke, false);
  add_storage(invoke);
  invoke->add_flag("--json", c.json, "print the summary as JSON");

  std::string query;
  SqlOptions sql_opts;
  auto* sql = app.add_subcommand("sql", "Run SQL against the warehouse (read-only)");
  sql->add_option("query", query, "SQL, e.g. \"SELECT count(*) FROM sales\"")->required();
  add_pipeline(sql, false);
  add_storage(sql);
  sql->add_option("-f,--format", sql_opts.format,
                  "table, csv or json (default: table on a terminal, csv otherwise)")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  sql->add_option("--limit", sql_opts.limit,
                  "rows the table format shows; the footer counts the rest (0: all)")
      ->capture_default_str();
  sql->add_option("--max-width", sql_opts.max_width,
                  "characters per table cell before it is cut with … (0: no limit)")
      ->capture_default_str();
  sql->add_option("--null", sql_opts.null, "how the table format shows NULL")
      ->capture_default_str();

  ExportOptions export_opts;
  uint64_t export_limit = 0;
  bool export_no_header = false;
  auto* export_cmd = app.add_subcommand(
      "export", "Stream a table or view to CSV or JSON Lines, row by row (any size, read-only)");
  export_cmd->add_option("table", export_opts.table, "table or view, e.g. sales")->required();
  add_pipeline(export_cmd, false);
  add_storage(export_cmd);
  export_cmd
      ->add_option("-f,--format", export_opts.format,
                   "csv or jsonl (default: from the --output extension, .jsonl/.ndjson -> jsonl, "
                   "else csv)")
      ->check(CLI::IsMember({"csv", "jsonl"}));
  export_cmd->add_option(
      "-o,--output", export_opts.output,
      "file to write ('-' or none: stdout); written under FILE.partial and renamed "
      "when complete");
  export_cmd->add_option("--to", export_opts.to,
                         "s3://BUCKET/KEY: write to S3 instead (AWS credentials and region from "
                         "the usual variables or profile; a KEY ending .gz is gzip)");
  export_cmd->add_option("--where", export_opts.where,
                         "SQL condition on the rows, e.g. \"amount > 100\"");
  auto* limit_opt = export_cmd->add_option("--limit", export_limit, "at most this many rows");
  export_cmd->add_flag("--no-header", export_no_header, "csv: no header row");

  std::string ship_to;
  auto* ship = app.add_subcommand(
      "ship", "Ship the change log to S3 as gzip JSON Lines by table and date (for Athena)");
  add_pipeline(ship, true);
  add_storage(ship);
  ship->add_option("--to", ship_to,
                   "s3://BUCKET/PREFIX: objects PREFIX/table=T/date=YYYY-MM-DD/SEQ.json.gz, "
                   "checkpoint PREFIX/_cascade/checkpoint.json")
      ->required();
  ship->add_flag("--json", c.json, "print the summary as JSON");

  auto* queues = app.add_subcommand(
      "queues", "Show each stage's queue: depth, in flight, oldest message age, DLQ depth");
  add_pipeline(queues, true);
  add_storage(queues);
  queues->add_flag("--json", c.json, "print as JSON");

  std::string dlq_action;
  DlqFilter dlq_filter;
  auto* dlq = app.add_subcommand(
      "dlq", "Inspect and act on dead letters: messages that failed for good, with the reason");
  dlq->require_subcommand(1);
  struct DlqCmd {
    const char* name;
    const char* help;
  };
  for (DlqCmd d : {DlqCmd{"list", "List dead letters (stage, id, receives, when, message, reason)"},
                   DlqCmd{"show", "Show dead letters in full, as JSON"},
                   DlqCmd{"redrive", "Move dead letters back to their queue (receive count reset)"},
                   DlqCmd{"purge", "Delete dead letters for good"}}) {
    auto* sub = dlq->add_subcommand(d.name, d.help);
    sub->add_option("ids", dlq_filter.ids, "message ids (default: all that match the filters)");
    sub->add_option("-s,--stage", dlq_filter.stage, "only this stage");
    sub->add_option("--reason", dlq_filter.reason,
                    "only dead letters whose reason contains this text");
    sub->add_option("--message", dlq_filter.message,
                    "only dead letters whose message body contains this text");
    add_pipeline(sub, false);
    add_storage(sub);
    if (std::string(d.name) == "list") sub->add_flag("--json", c.json, "print as JSON");
    sub->callback([&dlq_action, name = std::string(d.name)] { dlq_action = name; });
  }

  InitOptions init_opts;
  auto* init = app.add_subcommand(
      "init",
      "Write a commented pipeline file from one response of URL: the record list, a key, the "
      "paging; TODO marks what it must ask you");
  init->add_option("url", init_opts.url,
                   "a listing of the API, e.g. https://api.example.com/v2/items")
      ->required();
  init->add_option("-o,--out", init_opts.out, "the pipeline file to write ('-': standard output)")
      ->capture_default_str();
  init->add_option("-H,--header", init_opts.headers,
                   "'Name: value' sent with the call (e.g. credentials); the file gets an "
                   "environment variable reference, never the value")
      ->allow_extra_args(false);
  init->add_flag("--force", init_opts.force, "replace an existing file");

  DemoOptions demo_opts;
  auto* demo = app.add_subcommand("demo",
                                  "Start the vendor API simulator, sync the Dunder Mifflin "
                                  "pipeline into a fresh SQLite warehouse, "
                                  "query it, advance time and sync again");
  demo->add_option("--dir", demo_opts.dir,
                   "directory for the pipeline file and database (default: a new temp dir)");
  demo->add_option("--seed", demo_opts.seed, "simulator seed")->capture_default_str();
  demo->add_option("--employees-per-branch", demo_opts.employees_per_branch)->capture_default_str();
  demo->add_option("--sales-per-salesperson", demo_opts.sales_per_salesperson)
      ->capture_default_str();
  demo->add_option("--ticks", demo_opts.ticks, "simulated hours between the two syncs")
      ->capture_default_str();

  auto* lambda = app.add_subcommand(
      "lambda",
      "Run as a Lambda custom runtime: the Runtime API loop at $AWS_LAMBDA_RUNTIME_API, for the "
      "stage $CASCADE_STAGE of $CASCADE_PIPELINE (docs/aws.md)");
  size_t max_invocations = 0;
  lambda
      ->add_option("--max-invocations", max_invocations,
                   "end (exit 0) after this many events; 0: never, as inside Lambda")
      ->capture_default_str();
  AwsCommands aws_cmds(app, c);
  auto* streams = app.add_subcommand(
      "streams",
      "aws: storage only: apply what the DynamoDB Streams of the staging tables hold to the "
      "warehouse now, from each shard's checkpoint (`sync` does it at its end)");
  add_pipeline(streams, true);
  add_storage(streams);
  streams->add_flag("--json", c.json, "print the result as JSON");
  int stream_batch = 1000;
  streams
      ->add_option("--batch", stream_batch,
                   "stream records per GetRecords call, each batch committed with its "
                   "checkpoint")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();

  auto* level_opt = app.get_option("--log-level");
  try {
    app.parse(argc, argv);
    // The old design's variable, when the flag is not given: Python's level names.
    if (level_opt->count() == 0) log_level = lambda_log_level(log_level);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    cascade::setup_logging(log_level, log_format);
    if (*validate) return cmd_validate(c);
    if (*lambda) return cascade::lambda::run_lambda(max_invocations);
    if (aws_cmds.chosen()) return aws_cmds.run();
    if (*run) {
      std::optional<cascade::Duration> poll = cascade::parse_duration(run_poll);
      if (!poll || poll->count() <= 0) {
        fmt::print(stderr, "error: --poll expects a duration such as 1s or 200ms, found '{}'\n",
                   run_poll);
        return 2;
      }
      run_opts.idle_poll = *poll;
      return cmd_run(c, run_opts);
    }
    if (*alarms) return cmd_alarms(c, alarm_history);
    if (*sync) {
      std::optional<cascade::Duration> every = progress_every == "0"
                                                   ? cascade::Duration::zero()
                                                   : cascade::parse_duration(progress_every);
      if (!every || every->count() < 0) {
        fmt::print(stderr,
                   "error: --progress-every expects a duration such as 10s or 1m (0: never), "
                   "found '{}'\n",
                   progress_every);
        return 2;
      }
      return cmd_sync(c, event_file, drain_only,
                      std::chrono::duration_cast<std::chrono::seconds>(*every), full_refresh);
    }
    if (*dlq) return cmd_dlq(c, dlq_action, dlq_filter);
    if (*invoke) return cmd_invoke(c, stage, event_file);
    if (*sql) return cmd_sql(c, query, sql_opts);
    if (*export_cmd) {
      if (limit_opt->count() > 0) export_opts.limit = export_limit;
      export_opts.header = !export_no_header;
      return cmd_export(c, export_opts);
    }
    if (*ship) return cmd_ship(c, ship_to);
    if (*queues) return cmd_queues(c);
    if (*streams) return cmd_streams(c, stream_batch);
    if (*demo) return cmd_demo(demo_opts);
    if (*init) return cmd_init(init_opts);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
