// Broken pipeline files, as data: each must be refused at an exact line:column with a reason.
#include <gtest/gtest.h>

#include "config/loader.h"

using namespace cascade;

namespace {

struct Broken {
  const char* yaml;
  const char* at;      // "line:column"
  const char* phrase;  // part of the message
};

// Every case starts from this valid header (3 lines) unless it replaces it.
#define HEAD "name: p\nsource: { base_url: \"http://h\" }\nstages:\n"
#define ROOT "  a:\n    inputs: { n: [1, 2] }\n    request: /a?n={n}\n    key: { id: id }\n"

const Broken kBroken[] = {
    // 1 unknown top-level key, with a suggestion
    {"name: p\nsorce: { base_url: \"http://h\" }\n", "2:1",
     "unknown key 'sorce' in the top level: did you mean 'source'?"},
    // 2 unknown stage key, suggestion + list
    {HEAD ROOT "    concurency: 5\n", "8:5",
     "unknown key 'concurency' in stage 'a': did you mean 'concurrency'? (expected one of: "
     "request, records, where"},
    // 3 missing name
    {"source: { base_url: \"http://h\" }\nstages:\n" ROOT, "1:1", "missing required key 'name'"},
    // 4 missing base_url
    {"name: p\nsource: { timeout: 1s }\nstages:\n" ROOT, "2:9",
     "missing required key 'base_url' in source"},
    // 5 base_url scheme
    {"name: p\nsource: { base_url: ftp://h }\nstages:\n" ROOT, "2:21",
     "base_url must be an http:// or https:// URL"},
    // 6 stages is a list
    {"name: p\nsource: { base_url: \"http://h\" }\nstages:\n  - a\n", "4:3",
     "expected a map for stages, found a list"},
    // 7 stages empty
    {"name: p\nsource: { base_url: \"http://h\" }\nstages: {}\n", "3:9", "stages is empty"},
    // 8 stage name not an identifier
    {HEAD "  my-stage:\n    inputs: { n: [1] }\n    request: /a\n    key: { id: id }\n", "4:3",
     "stage name 'my-stage' is not an identifier"},
    // 9 missing request
    {HEAD "  a:\n    inputs: { n: [1] }\n    key: { id: id }\n", "5:5",
     "missing required key 'request' in stage 'a'"},
    // 10 missing key
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: /a\n", "5:5",
     "missing required key 'key' in stage 'a'"},
    // 11 empty key
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: /a\n    key: {}\n", "7:10",
     "key of stage 'a' is empty"},
    // 12 key is a list
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: /a\n    key: [id]\n", "7:10",
     "expected a map for stage 'a' key, found a list"},
    // 13 field name not an identifier
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: /a\n    key: { 1id: id }\n", "7:12",
     "field name '1id' in stage 'a' key is not an identifier"},
    // 14 emit to an undefined stage, with suggestion
    {HEAD ROOT
     "    emit: { bb: { x: \"{record.id}\" } }\n  b:\n    request: /b\n    key: { id: id }\n",
     "8:13", "emits to unknown stage 'bb': did you mean 'b'?"},
    // 15 cycle
    {HEAD ROOT "    emit: { b: { n: \"{record.id}\" } }\n  b:\n    request: /b?n={n}\n    key: { "
               "id: id }\n    emit: { c: { n: \"{record.id}\" } }\n  c:\n    request: /c\n    key: "
               "{ id: id }\n    emit: { b: { n: \"{record.id}\" } }\n",
     "16:13", "emits form a cycle: b -> c -> b"},
    // 16 self cycle
    {HEAD ROOT "    emit: { a: { n: \"{record.id}\" } }\n", "8:13", "emits form a cycle: a -> a"},
    // 17 root without inputs or event
    {HEAD "  a:\n    request: /a\n    key: { id: id }\n", "4:3",
     "root stage 'a' has no inputs and no event"},
    // 18 unclosed template brace, column inside the scalar
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: GET /a?n={n\n    key: { id: id }\n", "6:23",
     "unclosed '{'"},
    // 19 record ref in request
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: /a?n={record.n}\n    key: { id: id }\n",
     "6:19", "request may only use message parameters"},
    // 20 root request param not in inputs
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: /a?n={n}&m={m}\n    key: { id: id }\n",
     "6:25", "parameter 'm' used in the request of root stage 'a' is not among its inputs"},
    // 21 child request param not provided by the parent's emit
    {HEAD ROOT
     "    emit: { b: { x: \"{record.id}\" } }\n  b:\n    request: /b?y={y}\n    key: { id: id }\n",
     "10:19",
     "parameter 'y' used in the request of stage 'b' is not provided by the emit of stage 'a' (it "
     "gives: x)"},
    // 22 child with two parents, one missing the param
    {HEAD ROOT "    emit: { c: { y: \"{record.id}\" } }\n  b:\n    inputs: { n: [1] }\n    "
               "request: /b\n    key: { id: id }\n    emit: { c: { z: id } }\n  c:\n    request: "
               "/c?y={y}\n    key: { id: id }\n",
     "15:19", "not provided by the emit of stage 'b' (it gives: z)"},
    // 23 bad where, column from the expression offset
    {HEAD ROOT "    where: occupation ==\n", "8:25", "expected a value after '=='"},
    // 24 bad duration
    {"name: p\nsource: { base_url: \"http://h\", timeout: 10 parsecs }\nstages:\n" ROOT, "2:42",
     "invalid duration '10 parsecs'"},
    // 25 zero duration
    {"name: p\nsource: { base_url: \"http://h\", timeout: 0s }\nstages:\n" ROOT, "2:42",
     "must be positive"},
    // 26 rate limit
    {"name: p\nsource: { base_url: \"http://h\", rate_limit: { per_second: 0 } }\nstages:\n" ROOT,
     "2:59", "per_second must be greater than 0"},
    // 27 burst
    {"name: p\nsource: { base_url: \"http://h\", rate_limit: { per_second: 5, burst: 0.5 } "
     "}\nstages:\n" ROOT,
     "2:69", "burst must be at least 1"},
    // 28 quota
    {"name: p\nsource: { base_url: \"http://h\", quota: { requests: 0 } }\nstages:\n" ROOT, "2:52",
     "quota.requests must be between 1 and"},
    // 29 retry attempts
    {"name: p\nsource: { base_url: \"http://h\", retry: { attempts: 101 } }\nstages:\n" ROOT,
     "2:52", "retry.attempts must be between 1 and 100, found 101"},
    // 30 backoff order
    {"name: p\nsource: { base_url: \"http://h\", retry: { backoff: 30s..200ms } }\nstages:\n" ROOT,
     "2:51", "backoff minimum is greater than its maximum"},
    // 31 backoff shape
    {"name: p\nsource: { base_url: \"http://h\", retry: { backoff: 200ms } }\nstages:\n" ROOT,
     "2:51", "expected a backoff range MIN..MAX"},
    // 32 concurrency
    {HEAD ROOT "    concurrency: 0\n", "8:18", "concurrency must be between 1 and 1000, found 0"},
    // 33 concurrency not a number
    {HEAD ROOT "    concurrency: lots\n", "8:18",
     "expected concurrency (an integer), found 'lots'"},
    // 34 max_receive_count
    {HEAD ROOT "queues: { max_receive_count: 5000 }\n", "8:30",
     "max_receive_count must be between 1 and 1000"},
    // 35 visibility timeout above the SQS limit
    {HEAD ROOT "queues: { visibility_timeout: 13h }\n", "8:31",
     "visibility_timeout must be at most 12h"},
    // 36 retention below the SQS limit
    {HEAD ROOT "queues: { retention: 30s }\n", "8:22", "retention must be between 1m and 14d"},
    // 37 per-stage queue override checked too
    {HEAD ROOT "    queue: { retention: 15d }\n", "8:25", "retention must be between 1m and 14d"},
    // 38 storage scheme not supported, only the scheme named
    {HEAD ROOT "storage: mysql://u:pw@db/x\n", "8:10", "storage scheme 'mysql' is not supported"},
    // 39 storage garbage
    {HEAD ROOT "storage: cascade.db\n", "8:10", "expected a storage URL such as sqlite:"},
    // 40 duplicate column between key and attach
    {HEAD ROOT "    attach: { id: \"{n}\" }\n", "8:15",
     "column 'id' of stage 'a' is both a key field and an attached field"},
    // 41 alarm threshold
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, threshold: \"about 3\" }\n", "9:43",
     "expected a threshold such as \">= 1\""},
    // 42 notify type
    {HEAD ROOT "notify:\n  - { type: email, url: \"\" }\n", "9:13",
     "unknown notifier type 'email' (expected one of: log, webhook, command)"},
    // 43 env not an identifier
    {HEAD ROOT "env: my env\n", "8:6", "env must be an identifier"},
    // 44 bad schedule
    {HEAD ROOT "    schedule: rate(1 fortnight)\n", "8:15", "invalid schedule 'rate(1 fortnight)'"},
    // 45 schedule on a non-root stage
    {HEAD ROOT "    emit: { b: { x: id } }\n  b:\n    schedule: rate(1 hour)\n    request: /b\n    "
               "key: { id: id }\n",
     "10:5", "schedule is only allowed on root stages"},
    // 46 invalid YAML
    {"name: p\nsource: { base_url: \"http://h\"\nstages:\n", "3:1", "invalid YAML"},
    // 47 duplicate key
    {HEAD ROOT "    key: { id: id }\n", "8:5", "duplicate key 'key' in stage 'a'"},
    // 48 unset environment variable, column of the ${
    {HEAD ROOT "storage: \"sqlite:${DB_DIR}/x.db\"\n", "8:18",
     "environment variable 'DB_DIR' is not set"},
    // 49 inputs value is a map
    {HEAD "  a:\n    inputs: { n: { x: 1 } }\n    request: /a\n    key: { id: id }\n", "5:18",
     "expected a list of values for input 'n', found a map"},
    // 50 event maps to an unknown input
    {HEAD ROOT "    event: { branches: branch }\n", "8:24",
     "maps to 'branch', which is not an input of stage 'a' (inputs: n)"},
    // 51 unknown method
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: FETCH /a\n    key: { id: id }\n", "6:14",
     "unknown HTTP method 'FETCH'"},
    // 52 request path without a slash
    {HEAD "  a:\n    inputs: { n: [1] }\n    request: GET a\n    key: { id: id }\n", "6:18",
     "request path must start with '/'"},
    // 53 template in a key field with an empty reference
    {HEAD ROOT "    attach: { x: \"n={}\" }\n", "8:21", "empty reference '{}'"},
    // 54 where with a message param the root does not have
    {HEAD ROOT "    where: x == message.m\n", "8:12",
     "parameter 'm' used in the where of root stage 'a'"},
    // 55 empty file
    {"", "1:1", "empty pipeline file"},
    // 56 two stages writing the same table
    {HEAD ROOT "  b:\n    inputs: { n: [1] }\n    request: /b\n    key: { id: id }\n    table: a\n",
     "8:3", "writes table 'a', which another stage writes too"},
    // 57 cron minutes out of range, at the schedule's value
    {HEAD ROOT "    schedule: cron(61 * * * ? *)\n", "8:15",
     "invalid schedule 'cron(61 * * * ? *)': minutes must be 0-59, found '61'"},
    // 58 cron hours out of range, quoted value
    {HEAD ROOT "    schedule: \"cron(0 25 * * ? *)\"\n", "8:15", "hours must be 0-23, found '25'"},
    // 59 both day fields given
    {HEAD ROOT "    schedule: cron(0 12 1 * MON *)\n", "8:15",
     "one of day-of-month and day-of-week must be '?'"},
    // 60 rate with a plural unit for 1
    {HEAD ROOT "    schedule: rate(1 hours)\n", "8:15", "takes the singular unit: rate(1 hour)"},
    // 61 a table named like one of cascade's own
    {HEAD ROOT "    table: cascade_changes\n", "8:12",
     "table name 'cascade_changes' is reserved: names starting with cascade_ or sqlite_"},
    // 62 the same, in another case
    {HEAD ROOT "    table: CASCADE_Meta\n", "8:12", "table name 'CASCADE_Meta' is reserved"},
    // 63 SQLite's own prefix
    {HEAD ROOT "    table: sqlite_stat1\n", "8:12", "table name 'sqlite_stat1' is reserved"},
    // 64 a stage name that would be the table, reserved
    {HEAD "  cascade_queues:\n    inputs: { n: [1] }\n    request: /a\n    key: { id: id }\n",
     "4:3", "stage name 'cascade_queues' is reserved"},
    // 65 two tables that differ only in case are one SQLite table
    {HEAD ROOT "  b:\n    inputs: { n: [1] }\n    request: /b\n    key: { id: id }\n    table: A\n",
     "8:3", "writes table 'A', which another stage writes too (stage 'a' writes 'a'"},
    // 68 deletions share above 1
    {HEAD ROOT "    deletions: { hold_above: 1.5 }\n", "8:30",
     "deletions.hold_above must be a share between 0 and 1"},
    // 69 deletions share not a number
    {HEAD ROOT "    deletions: { hold_above: half }\n", "8:30",
     "expected deletions.hold_above (a number), found 'half'"},
    // 70 deletions min_rows below 1
    {HEAD ROOT "    deletions: { min_rows: 0 }\n", "8:28",
     "deletions.min_rows must be between 1 and"},
    // 71 deletions misspelt key, with a suggestion
    {HEAD ROOT "    deletions: { hold_abov: 0.5 }\n", "8:18",
     "unknown key 'hold_abov' in stage 'a' deletions: did you mean 'hold_above'?"},
    // 72 deletions not a map
    {HEAD ROOT "    deletions: 0.5\n", "8:16",
     "expected a map for stage 'a' deletions, found a scalar"},
    // 73 unknown metric, with a suggestion
    {HEAD ROOT "alarms:\n  - { name: e, metric: errorz, threshold: \">= 1\" }\n", "9:24",
     "unknown metric 'errorz' in alarm 'e': did you mean 'errors'? (expected one of: errors, "
     "throttles, duration,"},
    // 74 alarm on an unknown stage
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, stage: b, threshold: \">= 1\" }\n", "9:39",
     "alarm 'e' watches unknown stage 'b': did you mean 'a'? (stages: a;"},
    // 75 unknown statistic
    {HEAD ROOT "alarms:\n  - { name: e, metric: duration, statistic: Max, threshold: \">= 1\" }\n",
     "9:45", "unknown statistic 'Max' in alarm 'e'"},
    // 76 percentile with three decimals
    {HEAD ROOT
     "alarms:\n  - { name: e, metric: duration, statistic: p99.999, threshold: \">= 1\" }\n",
     "9:45", "percentile p0..p100 with up to two decimals"},
    // 77 percentile above 100
    {HEAD ROOT "alarms:\n  - { name: e, metric: duration, statistic: p101, threshold: \">= 1\" }\n",
     "9:45", "unknown statistic 'p101'"},
    // 78 duration_max with another statistic
    {HEAD ROOT
     "alarms:\n  - { name: e, metric: duration_max, statistic: Sum, threshold: \">= 1\" }\n",
     "9:49",
     "metric duration_max is the Maximum of duration: write metric: duration with statistic: Sum"},
    // 79 evaluation_periods below 1
    {HEAD ROOT
     "alarms:\n  - { name: e, metric: errors, evaluation_periods: 0, threshold: \">= 1\" }\n",
     "9:52", "evaluation_periods must be between 1 and 100000, found 0"},
    // 80 M above N
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, evaluation_periods: 3, "
               "datapoints_to_alarm: 4, threshold: \">= 1\" }\n",
     "9:76", "datapoints_to_alarm must be between 1 and evaluation_periods (3), found 4"},
    // 81 window above a day
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, period: 1h, evaluation_periods: 25, "
               "threshold: \">= 1\" }\n",
     "9:64", "period × evaluation_periods of alarm 'e' is 25h: it must be at most 1d"},
    // 82 period not in whole seconds
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, period: 1500ms, threshold: \">= 1\" }\n",
     "9:40", "alarm period must be a whole number of seconds"},
    // 83 unknown comparison
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, comparison: GreaterThan, threshold: 1 }\n",
     "9:44",
     "unknown comparison 'GreaterThan' in alarm 'e' (expected one of: "
     "GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanOrEqualToThreshold, "
     "LessThanThreshold)"},
    // 84 comparison misspelt, with a suggestion
    {HEAD ROOT
     "alarms:\n  - { name: e, metric: errors, comparison: LessThanTreshold, threshold: 1 }\n",
     "9:44", "did you mean 'LessThanThreshold'?"},
    // 85 comparison and an operator in the threshold
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, comparison: GreaterThanThreshold, "
               "threshold: \">= 1\" }\n",
     "9:77", "has its own operator and comparison: is given too"},
    // 86 comparison with a threshold that is no number
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, comparison: GreaterThanThreshold, "
               "threshold: lots }\n",
     "9:77", "expected a number for the threshold of alarm 'e', found 'lots'"},
    // 87 a plain number without comparison
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, threshold: 1 }\n", "9:43",
     "expected a threshold such as \">= 1\" or \">= 750s\""},
    // 88 treat_missing_data in the wrong case
    {HEAD ROOT "alarms:\n  - { name: e, metric: errors, threshold: \">= 1\", treat_missing_data: "
               "notbreaching }\n",
     "9:71",
     "unknown treat_missing_data 'notbreaching' in alarm 'e': did you mean 'notBreaching'? "
     "(expected one of: missing, notBreaching, breaching, ignore)"},
    // 89 misspelt alarm key
    {HEAD ROOT
     "alarms:\n  - { name: e, metric: errors, threshold: \">= 1\", evaluation_period: 3 }\n",
     "9:51", "unknown key 'evaluation_period' in alarm: did you mean 'evaluation_periods'?"},
    // 90 notify type misspelt
    {HEAD ROOT "notify:\n  - { type: webhok, url: \"\" }\n", "9:13",
     "unknown notifier type 'webhok': did you mean 'webhook'? (expected one of: log, webhook, "
     "command)"},
    // 91 a url on a log notifier
    {HEAD ROOT "notify:\n  - { type: log, url: \"http://hooks\" }\n", "9:18",
     "url is a setting of webhook notifiers, not of a notifier of type log"},
    // 92 a command notifier without its command
    {HEAD ROOT "notify:\n  - { type: command }\n", "9:5",
     "missing required key 'command' in notify entry"},
    // 93 an empty command
    {HEAD ROOT "notify:\n  - { type: command, command: \" \" }\n", "9:31",
     "command of a notifier is empty"},
    // 94 a time zone the tz database does not have, at the value
    {HEAD ROOT "    schedule: cron(30 2 * * ? *)\n    timezone: Europe/Berln\n", "9:15",
     "unknown time zone 'Europe/Berln'"},
    // 95 a time zone name that is a path
    {HEAD ROOT "    schedule: rate(1 hour)\n    timezone: ../../etc/passwd\n", "9:15",
     "invalid time zone name '../../etc/passwd'"},
    // 96 a time zone without a schedule, at its key
    {HEAD ROOT "    timezone: Europe/Berlin\n", "8:5", "timezone without a schedule in stage 'a'"},
    // 97 a time zone on a non-root stage
    {HEAD ROOT "    emit: { b: { x: id } }\n  b:\n    timezone: UTC\n    request: /b\n    "
               "key: { id: id }\n",
     "10:5", "timezone is only allowed on root stages"},
    // 98 a contract that is none of the three
    {HEAD ROOT "    contract: strict\n", "8:15",
     "contract must be evolve, freeze or discard, found 'strict'"},
    // 99 a negative flatten depth
    {HEAD ROOT "    flatten: { depth: -1 }\n", "8:23", "flatten.depth must be between 0 and 16"},
    // 100 a flatten depth that is no number
    {HEAD ROOT "    flatten: { depth: deep }\n", "8:23",
     "expected flatten.depth (an integer), found 'deep'"},
    // 101 flatten.lists that is neither tables nor json
    {HEAD ROOT "    flatten: { lists: rows }\n", "8:23",
     "flatten.lists must be tables or json, found 'rows'"},
    // 102 an effective date that names no field
    {HEAD ROOT "    effective: \"\"\n", "8:16", "effective names no field"},
    // 103 orphans neither kept nor deleted
    {HEAD ROOT "    deletions: { orphans: maybe }\n", "8:27",
     "deletions.orphans must be keep or delete, found 'maybe'"},
    // 104 a view that is not a query
    {HEAD ROOT "views:\n  v: DROP TABLE a\n", "9:6",
     "view 'v' must be a SELECT (or WITH ... SELECT) statement"},
    // 105 a view named as a stage's history table
    {HEAD ROOT "views:\n  A_History: SELECT 1\n", "9:3",
     "view 'A_History' has the name of the history table of stage 'a'"},
    // 106 a view whose name is no identifier
    {HEAD ROOT "views:\n  \"by branch\": SELECT 1\n", "9:3",
     "view name 'by branch' is not an identifier"},
    // 107 a records_from stage that also names a request
    {HEAD ROOT "    emit: { b: { l: \"{record.l}\" } }\n  b:\n    records_from: l\n"
               "    request: /b\n    key: { n: n }\n",
     "11:5", "request has no meaning in stage 'b': its records are the list in message field 'l'"},
    // 108 a records_from stage nothing emits to
    {HEAD ROOT "  b:\n    records_from: l\n    key: { n: n }\n", "9:19",
     "stage 'b' reads its records from message field 'l' of its parent (records_from), but no "
     "stage emits to it"},
    // 109 a records_from field the parent's emit does not give
    {HEAD ROOT "    emit: { b: { x: id } }\n  b:\n    records_from: l\n    key: { n: n }\n",
     "10:19", "parameter 'l' used in the records_from of stage 'b' is not provided by the emit"},
    // 110 a records_from that is a path
    {HEAD ROOT "    emit: { b: { l: l } }\n  b:\n    records_from: a.l\n    key: { n: n }\n",
     "10:19", "records_from must name a message field"},
};

}  // namespace

TEST(ConfigErrors, BrokenPipelinesAreRefusedAtTheirPosition) {
  ASSERT_GE(std::size(kBroken), 30u);
  // Sanity: the valid header plus ROOT loads.
  EXPECT_NO_THROW(load_pipeline_text(
      HEAD ROOT, "ok.yaml", [](std::string_view) { return std::optional<std::string>(); }));
  int index = 0;
  for (const Broken& b : kBroken) {
    ++index;
    SCOPED_TRACE("case " + std::to_string(index) + ":\n" + b.yaml);
    try {
      load_pipeline_text(b.yaml, "p.yaml",
                         [](std::string_view) { return std::optional<std::string>(); });
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.pos().str(), std::string("p.yaml:") + b.at) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.phrase), std::string::npos) << e.what();
      EXPECT_EQ(e.pos().file, "p.yaml");
    }
  }
}
