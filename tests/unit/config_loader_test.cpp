#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "config/loader.h"

using namespace cascade;

namespace {

const char* kReference = R"(name: dunder-mifflin
env: ${APP_ENV:-dev}
source:
  base_url: ${DM_API_URL:-http://127.0.0.1:8080}
  headers: { Authorization: "Bearer ${DM_API_TOKEN:-}" }   # values secret: never in errors
  rate_limit: { per_second: 50, burst: 50 }
  quota: { requests: 100000, per: 1d }        # optional
  timeout: 10s
  retry: { attempts: 4, backoff: 200ms..30s }
  max_connections: 16                          # optional
storage: ${CASCADE_STORAGE:-sqlite:cascade.db}
queues: { visibility_timeout: 15m, max_receive_count: 10, retention: 14d }
stages:
  branches:
    schedule: rate(1 hour)
    inputs: { branch: [Scranton, Akron, New York] }
    event: { branches: branch }
    request: GET /branches?branch={branch}
    records: result
    key: { branch_id: id }
    emit: { salespersons: { branch_id: "{record.id}" } }
  salespersons:
    request: GET /employees?branch_id={branch_id}
    records: result.employees
    where: occupation == "salesperson"
    key: { employee_id: id, branch_id: "{message.branch_id}" }
    concurrency: 5
    emit: { sales: { employee_id: "{record.id}", branch_id: "{message.branch_id}" } }
  sales:
    request: GET /sales?employee_id={employee_id}
    records: result.sales
    key: { sale_id: id, employee_id: "{message.employee_id}" }
    attach: { branch_id: "{message.branch_id}" }
    concurrency: 3
    table: sales
    queue: { visibility_timeout: 5m }
alarms:
  - { name: errors, metric: errors, threshold: ">= 1", period: 5m }
notify:
  - { type: webhook, url: "${ALERT_WEBHOOK_URL:-}" }
)";

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

using std::chrono::milliseconds;

}  // namespace

TEST(ConfigLoader, ReferencePipelineLoadsIntoSpec) {
  PipelineSpec p = load_pipeline_text(kReference, "ref.yaml", env_of({}));
  EXPECT_EQ(p.file, "ref.yaml");
  EXPECT_EQ(p.name, "dunder-mifflin");
  EXPECT_EQ(p.env, "dev");
  EXPECT_EQ(p.source.base_url, "http://127.0.0.1:8080");
  ASSERT_EQ(p.source.headers.size(), 1u);
  EXPECT_EQ(p.source.headers[0].first, "Authorization");
  EXPECT_EQ(p.source.headers[0].second, "Bearer ");
  EXPECT_EQ(p.source.rate_limit.per_second, 50);
  EXPECT_EQ(p.source.rate_limit.burst, 50);
  EXPECT_EQ(p.source.quota.requests, 100000);
  EXPECT_EQ(p.source.quota.per, std::chrono::hours(24));
  EXPECT_EQ(p.source.timeout, std::chrono::seconds(10));
  EXPECT_EQ(p.source.retry.attempts, 4);
  EXPECT_EQ(p.source.retry.backoff_min, milliseconds(200));
  EXPECT_EQ(p.source.retry.backoff_max, std::chrono::seconds(30));
  EXPECT_EQ(p.source.max_connections, 16);
  EXPECT_EQ(p.storage, "sqlite:cascade.db");
  EXPECT_EQ(p.queues.visibility_timeout, std::chrono::minutes(15));
  EXPECT_EQ(p.queues.max_receive_count, 10);
  EXPECT_EQ(p.queues.retention, std::chrono::days(14));

  ASSERT_EQ(p.stages.size(), 3u);
  const StageSpec& b = p.stages[0];
  EXPECT_EQ(b.name, "branches");
  EXPECT_EQ(b.pos.line, 14);
  EXPECT_EQ(b.pos.column, 3);
  EXPECT_EQ(b.table, "branches");
  EXPECT_EQ(b.method, "GET");
  EXPECT_EQ(b.request.text, "/branches?branch={branch}");
  EXPECT_EQ(b.request.pos.line, 18);
  EXPECT_EQ(b.request.pos.column, 18);
  EXPECT_EQ(b.records_path, "result");
  EXPECT_EQ(b.schedule, "rate(1 hour)");
  ASSERT_EQ(b.inputs.size(), 1u);
  EXPECT_EQ(b.inputs[0].first, "branch");
  EXPECT_EQ(b.inputs[0].second, (std::vector<Value>{"Scranton", "Akron", "New York"}));
  EXPECT_EQ(b.event_fields, (std::map<std::string, std::string>{{"branches", "branch"}}));
  ASSERT_EQ(b.key.size(), 1u);
  EXPECT_EQ(b.key[0].name, "branch_id");
  EXPECT_FALSE(b.key[0].is_template);
  EXPECT_EQ(b.key[0].path, "id");
  ASSERT_EQ(b.emit.size(), 1u);
  EXPECT_EQ(b.emit[0].stage, "salespersons");
  ASSERT_EQ(b.emit[0].fields.size(), 1u);
  EXPECT_TRUE(b.emit[0].fields[0].is_template);
  EXPECT_EQ(b.emit[0].fields[0].tmpl.text, "{record.id}");
  EXPECT_EQ(b.concurrency, 4);
  EXPECT_EQ(b.queue.visibility_timeout, std::chrono::minutes(15));

  const StageSpec& sp = p.stages[1];
  EXPECT_EQ(sp.where, "occupation == \"salesperson\"");
  EXPECT_EQ(sp.where_pos.line, 25);
  EXPECT_EQ(sp.concurrency, 5);
  ASSERT_EQ(sp.key.size(), 2u);
  EXPECT_EQ(sp.key[1].name, "branch_id");
  EXPECT_TRUE(sp.key[1].is_template);
  EXPECT_EQ(sp.key[1].tmpl.text, "{message.branch_id}");
  EXPECT_FALSE(sp.schedule.has_value());
  ASSERT_EQ(sp.emit.size(), 1u);
  EXPECT_EQ(sp.emit[0].fields.size(), 2u);

  const StageSpec& s = p.stages[2];
  EXPECT_EQ(s.records_path, "result.sales");
  ASSERT_EQ(s.attach.size(), 1u);
  EXPECT_EQ(s.attach[0].name, "branch_id");
  EXPECT_EQ(s.concurrency, 3);
  EXPECT_EQ(s.queue.visibility_timeout, std::chrono::minutes(5));
  EXPECT_EQ(s.queue.max_receive_count, 10);  // inherited from queues:

  ASSERT_EQ(p.alarms.size(), 1u);
  EXPECT_EQ(p.alarms[0].name, "errors");
  EXPECT_EQ(p.alarms[0].metric, "errors");
  EXPECT_EQ(p.alarms[0].comparison, Comparison::GreaterThanOrEqualToThreshold);
  EXPECT_EQ(p.alarms[0].threshold, 1.0);
  EXPECT_EQ(p.alarms[0].period, std::chrono::minutes(5));
  // CloudWatch's defaults for what the short form leaves out.
  EXPECT_EQ(p.alarms[0].stage, "");
  EXPECT_EQ(p.alarms[0].statistic, StatisticSpec{});
  EXPECT_EQ(p.alarms[0].evaluation_periods, 1);
  EXPECT_EQ(p.alarms[0].datapoints_to_alarm, 1);
  EXPECT_EQ(p.alarms[0].treat_missing_data, MissingData::Missing);
  ASSERT_EQ(p.notify.size(), 1u);
  EXPECT_EQ(p.notify[0].type, "webhook");
  EXPECT_EQ(p.notify[0].url, "");

  EXPECT_EQ(p.stage("sales"), &p.stages[2]);
  EXPECT_EQ(p.stage("nope"), nullptr);
  auto roots = p.roots();
  ASSERT_EQ(roots.size(), 1u);
  EXPECT_EQ(roots[0]->name, "branches");
}

TEST(ConfigLoader, InterpolatesEnvironment) {
  PipelineSpec p = load_pipeline_text(kReference, "ref.yaml",
                                      env_of({{"APP_ENV", "prod"},
                                              {"DM_API_URL", "https://api.example.com/"},
                                              {"DM_API_TOKEN", "s3cret"},
                                              {"CASCADE_STORAGE", "sqlite:/tmp/x.db"},
                                              {"ALERT_WEBHOOK_URL", ""}}));
  EXPECT_EQ(p.env, "prod");
  EXPECT_EQ(p.source.base_url, "https://api.example.com");
  EXPECT_EQ(p.source.headers[0].second, "Bearer s3cret");
  EXPECT_EQ(p.storage, "sqlite:/tmp/x.db");
  EXPECT_EQ(p.notify[0].url, "");  // empty takes the (empty) default
}

TEST(ConfigLoader, AcceptsPostgresStorageUrlsAndRefusesAMalformedOne) {
  for (std::string url :
       {"postgres://u:pw@db:5432/x", "postgresql://u@db/x?sslmode=require", "postgresql:///x"}) {
    PipelineSpec p = load_pipeline_text(kReference, "ref.yaml",
                                        env_of({{"CASCADE_STORAGE", url}, {"DM_API_TOKEN", "t"}}));
    EXPECT_EQ(p.storage, url);
  }
  try {
    load_pipeline_text(kReference, "ref.yaml",
                       env_of({{"CASCADE_STORAGE", "postgresql:db"}, {"DM_API_TOKEN", "t"}}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("expected a PostgreSQL URL"), std::string::npos)
        << e.what();
  }
}

TEST(ConfigLoader, InterpolationEscapesAndDefaults) {
  const char* yaml = R"(name: p
source: { base_url: "http://h", headers: { X-A: "a$${B}c", X-B: "${NONE:-d:e}" } }
stages:
  a:
    inputs: { n: ["${N}", 2, x, "3", 1.5, true] }
    request: /a?n={n}
    key: { id: id }
)";
  PipelineSpec p = load_pipeline_text(yaml, "f.yaml", env_of({{"N", "7"}}));
  EXPECT_EQ(p.source.headers[0].second, "a${B}c");
  EXPECT_EQ(p.source.headers[1].second, "d:e");
  // Quoted scalars stay strings; plain ones are typed.
  EXPECT_EQ(p.stages[0].inputs[0].second, (std::vector<Value>{"7", 2, "x", "3", 1.5, true}));
  EXPECT_TRUE(p.stages[0].inputs[0].second[1].is_int());
  EXPECT_TRUE(p.stages[0].inputs[0].second[3].is_string());
}

TEST(ConfigLoader, UnsetVariableIsAnErrorAtItsPosition) {
  const char* yaml = "name: p\nsource:\n  base_url: http://${HOST}/x\n";
  try {
    load_pipeline_text(yaml, "f.yaml", env_of({}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.pos().str(), "f.yaml:3:20");
    EXPECT_NE(std::string(e.what()).find("'HOST' is not set"), std::string::npos) << e.what();
  }
}

TEST(ConfigLoader, SecretsNeverAppearInErrors) {
  const char* yaml = R"(name: p
source: { base_url: "http://h", headers: { Authorization: "Bearer ${TOKEN}" } }
storage: "mysql://user:${TOKEN}@db/x"
stages: { a: { inputs: { n: [1] }, request: /a, key: { id: id } } }
notify: [ { type: webhook, url: "ftp://${TOKEN}@hooks" } ]
)";
  try {
    load_pipeline_text(yaml, "f.yaml", env_of({{"TOKEN", "hunter2"}}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'mysql' is not supported"), std::string::npos);
  }
  std::string no_storage = yaml;
  no_storage.erase(no_storage.find("storage:"),
                   no_storage.find("stages:") - no_storage.find("storage:"));
  try {
    load_pipeline_text(no_storage, "f.yaml", env_of({{"TOKEN", "hunter2"}}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("webhook url"), std::string::npos) << e.what();
  }
  try {
    load_pipeline_text("name: p\nsource: { base_url: \"htp://hunter2@h\" }\nstages: {}\n", "f.yaml",
                       env_of({}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
}

TEST(ConfigLoader, ExampleFileLoads) {
  PipelineSpec p = load_pipeline_file(
      std::string(CASCADE_SOURCE_DIR) + "/examples/dunder-mifflin.yaml", env_of({}));
  EXPECT_EQ(p.name, "dunder-mifflin");
  ASSERT_EQ(p.stages.size(), 3u);
  ASSERT_EQ(p.stages[0].inputs.size(), 1u);
  EXPECT_EQ(p.stages[0].inputs[0].second.size(), 13u);
  EXPECT_EQ(p.stages[0].inputs[0].second.back(), Value("New York"));
  EXPECT_EQ(p.roots().size(), 1u);
  // The old design's three alarms per stage, a DLQ alarm, a staleness alarm and a backlog one.
  ASSERT_EQ(p.alarms.size(), 12u);
  for (size_t i = 0; i < 9; ++i)
    EXPECT_EQ(p.alarms[i].stage, p.stages[i / 3].name) << p.alarms[i].name;
  EXPECT_EQ(p.alarms[9].metric, "dlq_depth");
  EXPECT_EQ(p.alarms[10].metric, "seconds_since_last_complete_run");
  EXPECT_EQ(p.alarms[10].threshold, 7200.0);
  EXPECT_EQ(p.alarms[11].stage, "sales");
  EXPECT_EQ(p.alarms[11].datapoints_to_alarm, 2);
  ASSERT_EQ(p.notify.size(), 2u);
  EXPECT_EQ(p.notify[0].type, "log");
}

TEST(ConfigLoader, MissingFileIsConfigError) {
  EXPECT_THROW(load_pipeline_file("/nonexistent/pipeline.yaml", env_of({})), ConfigError);
}

TEST(ConfigLoader, SchedulesAreChecked) {
  EXPECT_EQ(check_schedule("rate(1 hour)"), "");
  EXPECT_EQ(check_schedule("rate(5 minutes)"), "");
  EXPECT_EQ(check_schedule("cron(0 12 * * ? *)"), "");
  EXPECT_EQ(check_schedule("cron(15 10 ? * MON-FRI *)"), "");
  EXPECT_NE(check_schedule("rate(0 hours)"), "");
  EXPECT_NE(check_schedule("rate(1 week)"), "");
  EXPECT_NE(check_schedule("cron(0 12 * * *)"), "");
  EXPECT_NE(check_schedule("cron(0 12 * * 1 *)"), "");
  EXPECT_NE(check_schedule("every hour"), "");
}

TEST(ConfigLoader, TwoParentsAndEventOnlyRootsAreAllowed) {
  const char* yaml = R"(name: p
source: { base_url: "https://h/" }
stages:
  a:
    event: { ids: id }
    request: POST /a/{id}
    key: { id: id }
    emit: { c: { y: "{record.id}", extra: name } }
  b:
    inputs: { n: [1] }
    request: /b
    key: { id: id }
    emit: { c: { y: id } }
  c:
    request: /c?y={y}
    key: { id: id, y: "{message.y}" }
    where: message.y > 0 and kind in ['x', 'y']
)";
  PipelineSpec p = load_pipeline_text(yaml, "f.yaml", env_of({}));
  EXPECT_EQ(p.stages[0].method, "POST");
  EXPECT_EQ(p.stages[0].request.text, "/a/{id}");
  EXPECT_EQ(p.source.base_url, "https://h");
  EXPECT_TRUE(p.stages[0].inputs.empty());
  EXPECT_EQ(p.stages[0].event_fields.at("ids"), "id");
  auto roots = p.roots();
  ASSERT_EQ(roots.size(), 2u);
  EXPECT_EQ(roots[0]->name, "a");
  EXPECT_EQ(roots[1]->name, "b");
  EXPECT_EQ(p.stages[2].emit.size(), 0u);
  EXPECT_EQ(p.stages[0].emit[0].fields[1].path, "name");
  EXPECT_FALSE(p.stages[0].emit[0].fields[1].is_template);
}

TEST(ConfigLoader, QuotaMayBeSeveralWindowsWithReserves) {
  std::string text = kReference;
  std::string from = "quota: { requests: 100000, per: 1d }";
  auto at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  text.replace(
      at, from.size(),
      "quota: [{ requests: 10, per: 1s }, { requests: 100000, per: 1d, reserve: { sales: 0.3 } }]");
  PipelineSpec p = load_pipeline_text(text, "q.yaml", env_of({}));
  EXPECT_EQ(p.source.quota.requests, 10);
  EXPECT_EQ(p.source.quota.per, std::chrono::seconds(1));
  ASSERT_EQ(p.source.quota.more_windows.size(), 1u);
  EXPECT_EQ(p.source.quota.more_windows[0].first, 100000);
  ASSERT_EQ(p.source.quota.reserve.size(), 1u);
  EXPECT_EQ(p.source.quota.reserve[0].first, "sales");
  text.replace(text.find("reserve: { sales: 0.3 }"), 23, "reserve: { sales: 1.5 }");
  try {
    load_pipeline_text(text, "q.yaml", env_of({}));
    FAIL() << "a share above 1 must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("between 0 and 1"), std::string::npos) << e.what();
    EXPECT_GT(e.pos().line, 0);
  }
}

TEST(ConfigLoader, QuotaMayOnlySayHowLongToWaitForTheVendors) {
  std::string text = kReference;
  std::string from = "quota: { requests: 100000, per: 1d }";
  auto at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, from.size(), "quota: { max_wait: 5m }");
  PipelineSpec p = load_pipeline_text(text, "q.yaml", env_of({}));
  EXPECT_EQ(p.source.quota.requests, 0) << "no budget of our own";
  EXPECT_EQ(p.source.quota.max_wait, std::chrono::minutes(5));
  // A window still needs its requests.
  text.replace(text.find("quota: { max_wait: 5m }"), 23, "quota: { max_wait: 5m, per: 1d }");
  try {
    load_pipeline_text(text, "q.yaml", env_of({}));
    FAIL() << "a window without requests must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("requests"), std::string::npos) << e.what();
  }
}

TEST(ConfigLoader, DeletionHoldsDefaultPerStageAndMayBeTurnedOff) {
  std::string text = kReference;
  std::string from = "    concurrency: 3\n";
  auto at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  text.insert(at + from.size(), "    deletions: { hold_above: 1, min_rows: 10 }\n");
  PipelineSpec p = load_pipeline_text(text, "d.yaml", env_of({}));
  EXPECT_EQ(p.stages[0].deletions.hold_above, 0.5);
  EXPECT_EQ(p.stages[0].deletions.min_rows, 4);
  EXPECT_EQ(p.stages[2].deletions.hold_above, 1.0);
  EXPECT_EQ(p.stages[2].deletions.min_rows, 10);
}

TEST(ConfigLoader, AlarmsInShortAndCloudWatchForms) {
  const char* yaml = R"(name: p
source: { base_url: "http://h" }
stages:
  a: { inputs: { n: [1] }, request: /a, key: { id: id } }
  b: { inputs: { n: [1] }, request: /b, key: { id: id } }
alarms:
  - { name: slow, metric: duration_max, threshold: ">= 750s", period: 1m }
  - { name: backlog, metric: oldest_message_age_seconds, stage: b, statistic: Maximum,
      threshold: "> 1h", evaluation_periods: 3 }
  - name: tail
    metric: duration
    stage: a
    statistic: p99.9
    period: 30s
    evaluation_periods: 5
    datapoints_to_alarm: 2
    comparison: LessThanThreshold
    threshold: 0.25
    treat_missing_data: notBreaching
  - { name: quick, metric: duration, statistic: p95, threshold: "<= 200ms" }
  - { name: idle, metric: requests, statistic: SampleCount, threshold: "< 1",
      treat_missing_data: breaching }
notify:
  - { type: log }
  - { type: webhook, url: "https://hooks.example.com/services/T0/B0/secret" }
  - { type: command, command: "cat > /tmp/alarm.json" }
)";
  PipelineSpec p = load_pipeline_text(yaml, "f.yaml", env_of({}));
  ASSERT_EQ(p.alarms.size(), 5u);
  const AlarmSpec& slow = p.alarms[0];
  EXPECT_EQ(slow.metric, "duration");  // duration_max = Maximum of duration
  EXPECT_EQ(slow.statistic, (StatisticSpec{StatisticSpec::Kind::Maximum, 0}));
  EXPECT_EQ(slow.threshold, 750.0);
  EXPECT_EQ(slow.period, std::chrono::minutes(1));

  const AlarmSpec& backlog = p.alarms[1];
  EXPECT_EQ(backlog.stage, "b");
  EXPECT_EQ(backlog.comparison, Comparison::GreaterThanThreshold);
  EXPECT_EQ(backlog.threshold, 3600.0);
  EXPECT_EQ(backlog.evaluation_periods, 3);
  EXPECT_EQ(backlog.datapoints_to_alarm, 3);  // defaults to evaluation_periods

  const AlarmSpec& tail = p.alarms[2];
  EXPECT_EQ(tail.stage, "a");
  EXPECT_EQ(tail.statistic.kind, StatisticSpec::Kind::Percentile);
  EXPECT_DOUBLE_EQ(tail.statistic.percentile, 99.9);
  EXPECT_EQ(tail.statistic.name(), "p99.9");
  EXPECT_EQ(tail.period, std::chrono::seconds(30));
  EXPECT_EQ(tail.evaluation_periods, 5);
  EXPECT_EQ(tail.datapoints_to_alarm, 2);
  EXPECT_EQ(tail.comparison, Comparison::LessThanThreshold);
  EXPECT_EQ(tail.threshold, 0.25);
  EXPECT_EQ(tail.treat_missing_data, MissingData::NotBreaching);

  EXPECT_EQ(p.alarms[3].comparison, Comparison::LessThanOrEqualToThreshold);
  EXPECT_DOUBLE_EQ(p.alarms[3].threshold, 0.2);
  EXPECT_EQ(p.alarms[3].statistic.name(), "p95");
  EXPECT_EQ(p.alarms[4].statistic.kind, StatisticSpec::Kind::SampleCount);
  EXPECT_EQ(p.alarms[4].treat_missing_data, MissingData::Breaching);

  ASSERT_EQ(p.notify.size(), 3u);
  EXPECT_EQ(p.notify[0].type, "log");
  EXPECT_EQ(p.notify[1].type, "webhook");
  EXPECT_EQ(p.notify[1].url, "https://hooks.example.com/services/T0/B0/secret");
  EXPECT_EQ(p.notify[2].type, "command");
  EXPECT_EQ(p.notify[2].command, "cat > /tmp/alarm.json");
}

TEST(ConfigLoader, StatisticNamesRoundTrip) {
  for (const char* name : {"Sum", "Maximum", "Minimum", "Average", "SampleCount", "p0", "p50",
                           "p95", "p99.9", "p99.99", "p100"}) {
    std::optional<StatisticSpec> s = StatisticSpec::parse(name);
    ASSERT_TRUE(s) << name;
    EXPECT_EQ(s->name(), name);
  }
  for (const char* bad :
       {"", "sum", "p", "p-1", "p100.01", "p99.999", "p1000", "p9x", "p95.", "P95", "Percentile"})
    EXPECT_FALSE(StatisticSpec::parse(bad)) << bad;
}

TEST(ConfigLoader, WebhookUrlNeverInErrors) {
  const char* yaml = R"(name: p
source: { base_url: "http://h" }
stages: { a: { inputs: { n: [1] }, request: /a, key: { id: id } } }
notify: [ { type: webhook, url: "https://hooks.example.com/T0/${TOKEN} x" } ]
)";
  try {
    load_pipeline_text(yaml, "f.yaml", env_of({{"TOKEN", "hunter2"}}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("hooks.example.com"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("webhook url must be"), std::string::npos) << e.what();
  }
}

TEST(ConfigLoader, PaginateTakesDltsKindsParametersAndDefaults) {
  auto stage_with = [](const std::string& paginate) {
    std::string text = std::string(kReference);
    std::string from = "    records: result.sales\n";
    text.replace(text.find(from), from.size(), from + "    paginate: " + paginate + "\n");
    PipelineSpec p = load_pipeline_text(text, "p.yaml", env_of({}));
    return p.stage("sales")->paginate;
  };
  using K = PaginateOptions::Kind;
  EXPECT_EQ(load_pipeline_text(kReference, "p.yaml", env_of({})).stage("sales")->paginate.kind,
            K::None);
  PaginateOptions o = stage_with("{ type: offset, limit: 50 }");
  EXPECT_EQ(o.kind, K::Offset);
  EXPECT_EQ(o.limit, 50);
  EXPECT_EQ(o.offset, 0);
  EXPECT_EQ(o.offset_param, "offset");
  EXPECT_EQ(o.limit_param, "limit");
  EXPECT_EQ(o.total_path, "total");
  EXPECT_FALSE(o.total_path_explicit);
  EXPECT_TRUE(o.stop_after_empty_page);
  EXPECT_EQ(o.max_pages, 100000);
  o = stage_with(
      "{ type: page_number, base_page: 1, page: 3, page_param: p, total_path: null, "
      "maximum_page: 9, stop_after_empty_page: false, max_pages: 20 }");
  EXPECT_EQ(o.kind, K::PageNumber);
  EXPECT_EQ(o.base_page, 1);
  EXPECT_EQ(o.page, 3);
  EXPECT_EQ(o.page_param, "p");
  EXPECT_FALSE(o.total_path);
  EXPECT_EQ(o.maximum_page, 9);
  EXPECT_FALSE(o.stop_after_empty_page);
  EXPECT_EQ(o.max_pages, 20);
  o = stage_with("{ type: json_link, next_url_path: $.links.next }");
  EXPECT_EQ(o.next_url_path, "links.next");
  o = stage_with("cursor");
  EXPECT_EQ(o.cursor_path, "cursors.next");
  EXPECT_EQ(o.cursor_param, "cursor");
  EXPECT_EQ(stage_with("header_link").links_next_key, "next");
  EXPECT_EQ(stage_with("json_response").kind, K::JsonLink);  // dlt's older name
  EXPECT_EQ(stage_with("auto").kind, K::Auto);
  EXPECT_EQ(stage_with("{ type: single_page }").kind, K::SinglePage);
  o = stage_with("{ type: offset, limit: 5, total_path: meta.count }");
  EXPECT_TRUE(o.total_path_explicit);
}
