#include "deploy/sam_template.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/error.h"

namespace cascade::deploy {

std::string logical_name(std::string_view stage) {
  std::string out;
  bool upper = true;
  for (char ch : stage) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
    upper = false;
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "Stage" + out;
  return out;
}

namespace {

// The functions read the same pipeline file, so every ${VAR} it references (other than those the
// template sets itself) becomes a parameter handed to them: the file's defaults are defaults,
// values are never in the printed template.
struct FileVariable {
  std::string name;                     // DM_API_TOKEN
  std::string parameter;                // DmApiToken
  std::optional<std::string> fallback;  // the `:-` default
};

// DM_API_TOKEN -> DmApiToken.
std::string parameter_name(const std::string& variable) {
  std::string lower;
  for (char ch : variable) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return logical_name(lower);
}

std::vector<FileVariable> file_variables(const std::string& file) {
  std::vector<FileVariable> out;
  std::ifstream in(file, std::ios::binary);
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  static const std::regex re(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\})");
  std::set<std::string> seen = {"APP_ENV", "CASCADE_STORAGE", "CASCADE_PIPELINE", "CASCADE_STAGE",
                                "LOGGING_LEVEL"};
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    const auto& m = *it;
    size_t at = static_cast<size_t>(m.position(0));
    if (at > 0 && text[at - 1] == '$') continue;  // $${ is a literal ${
    std::string name = m[1].str();
    // A commented-out line references nothing.
    size_t line_start = text.rfind('\n', at);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    if (text.find('#', line_start) < at) continue;
    if (!seen.insert(name).second) continue;
    FileVariable v{name, parameter_name(name), std::nullopt};
    if (m[2].matched) v.fallback = m[3].str();
    out.push_back(std::move(v));
  }
  return out;
}

std::string stage_names_suffix(const PipelineSpec& spec) {
  return spec.env.empty() ? "" : "-${Environment}";
}

// Logical ids of the stages, unique even when two names CamelCase alike.
std::vector<std::string> stage_ids(const PipelineSpec& spec) {
  std::vector<std::string> ids;
  std::set<std::string> used;
  for (const auto& st : spec.stages) {
    std::string id = logical_name(st.name);
    std::string base = id;
    for (int n = 2; !used.insert(id).second; ++n) id = base + std::to_string(n);
    ids.push_back(id);
  }
  return ids;
}

int64_t seconds_of(Duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

YAML::Emitter& ref(YAML::Emitter& out, const std::string& id) {
  return out << YAML::LocalTag("Ref") << id;
}
YAML::Emitter& getatt(YAML::Emitter& out, const std::string& what) {
  return out << YAML::LocalTag("GetAtt") << what;
}
YAML::Emitter& sub(YAML::Emitter& out, const std::string& text) {
  return out << YAML::LocalTag("Sub") << YAML::DoubleQuoted << text;
}

bool secret_like(const std::string& name) {
  for (const char* word : {"TOKEN", "SECRET", "PASSWORD", "PASS", "KEY", "CREDENTIAL", "WEBHOOK"})
    if (name.find(word) != std::string::npos) return true;
  return false;
}

// Where a pipeline metric lives on AWS.
struct AwsMetric {
  std::string ns, name;
  double scale = 1;  // cascade's unit -> AWS's (seconds -> milliseconds for Lambda Duration)
  enum class Dim { Emf, Function, Queue, DeadLetterQueue } dim = Dim::Emf;
};

std::optional<AwsMetric> aws_metric(const std::string& metric) {
  if (metric == "errors" || metric == "throttles" || metric == "requests" ||
      metric == "records_new" || metric == "records_changed" || metric == "records_deleted")
    return AwsMetric{"cascade", metric, 1, AwsMetric::Dim::Emf};
  if (metric == "duration")
    return AwsMetric{"AWS/Lambda", "Duration", 1000, AwsMetric::Dim::Function};
  if (metric == "dlq_depth")
    return AwsMetric{"AWS/SQS", "ApproximateNumberOfMessagesVisible", 1,
                     AwsMetric::Dim::DeadLetterQueue};
  if (metric == "queue_depth")
    return AwsMetric{"AWS/SQS", "ApproximateNumberOfMessagesVisible", 1, AwsMetric::Dim::Queue};
  if (metric == "oldest_message_age_seconds")
    return AwsMetric{"AWS/SQS", "ApproximateAgeOfOldestMessage", 1, AwsMetric::Dim::Queue};
  return std::nullopt;
}

void metric_dimensions(YAML::Emitter& out, const PipelineSpec& spec, const AwsMetric& m,
                       const std::string& stage_name, const std::string& stage_id) {
  out << YAML::Key << "Dimensions" << YAML::Value << YAML::BeginSeq;
  switch (m.dim) {
    case AwsMetric::Dim::Emf:
      out << YAML::BeginMap << YAML::Key << "Name" << YAML::Value << "Pipeline" << YAML::Key
          << "Value" << YAML::Value << YAML::DoubleQuoted << spec.name << YAML::EndMap;
      if (!stage_name.empty())
        out << YAML::BeginMap << YAML::Key << "Name" << YAML::Value << "Stage" << YAML::Key
            << "Value" << YAML::Value << YAML::DoubleQuoted << stage_name << YAML::EndMap;
      break;
    case AwsMetric::Dim::Function:
      out << YAML::BeginMap << YAML::Key << "Name" << YAML::Value << "FunctionName" << YAML::Key
          << "Value" << YAML::Value;
      ref(out, stage_id + "Function") << YAML::EndMap;
      break;
    case AwsMetric::Dim::Queue:
    case AwsMetric::Dim::DeadLetterQueue:
      out << YAML::BeginMap << YAML::Key << "Name" << YAML::Value << "QueueName" << YAML::Key
          << "Value" << YAML::Value;
      getatt(out, stage_id + (m.dim == AwsMetric::Dim::Queue ? "Queue" : "DeadLetterQueue") +
                      ".QueueName")
          << YAML::EndMap;
      break;
  }
  out << YAML::EndSeq;
}

std::string math_function(const StatisticSpec& s) {
  switch (s.kind) {
    case StatisticSpec::Kind::Sum:
    case StatisticSpec::Kind::SampleCount:
      return "SUM";
    case StatisticSpec::Kind::Minimum:
      return "MIN";
    case StatisticSpec::Kind::Average:
      return "AVG";
    case StatisticSpec::Kind::Maximum:
    case StatisticSpec::Kind::Percentile:
      break;
  }
  return "MAX";
}

void emit_alarm(YAML::Emitter& out, const PipelineSpec& spec, const std::vector<std::string>& ids,
                const AlarmSpec& a, const AwsMetric& m, const std::string& alarm_id) {
  out << YAML::Key << alarm_id << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "AWS::CloudWatch::Alarm";
  out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "AlarmName" << YAML::Value;
  sub(out, "${AWS::StackName}-" + a.name);
  out << YAML::Key << "AlarmDescription" << YAML::Value
      << fmt::format("cascade alarm '{}': {} {} of {}{} {} {}", a.name, a.statistic.name(),
                     a.metric, a.stage.empty() ? "the pipeline" : "stage ", a.stage,
                     comparison_symbol(a.comparison), a.threshold);
  out << YAML::Key << "ComparisonOperator" << YAML::Value
      << std::string(comparison_name(a.comparison));
  out << YAML::Key << "EvaluationPeriods" << YAML::Value << a.evaluation_periods;
  out << YAML::Key << "DatapointsToAlarm" << YAML::Value << a.datapoints_to_alarm;
  out << YAML::Key << "Threshold" << YAML::Value << a.threshold * m.scale;
  out << YAML::Key << "TreatMissingData" << YAML::Value
      << std::string(missing_data_name(a.treat_missing_data));
  const int64_t period = seconds_of(a.period);
  const bool per_stage_metric = m.dim != AwsMetric::Dim::Emf;
  const bool percentile = a.statistic.kind == StatisticSpec::Kind::Percentile;
  if (!per_stage_metric || !a.stage.empty()) {
    std::string stage_id;
    for (size_t i = 0; i < spec.stages.size(); ++i)
      if (spec.stages[i].name == a.stage) stage_id = ids[i];
    out << YAML::Key << "Namespace" << YAML::Value << m.ns;
    out << YAML::Key << "MetricName" << YAML::Value << m.name;
    metric_dimensions(out, spec, m, a.stage, stage_id);
    out << YAML::Key << "Period" << YAML::Value << period;
    out << YAML::Key << (percentile ? "ExtendedStatistic" : "Statistic") << YAML::Value
        << a.statistic.name();
  } else {
    // The pipeline as a whole of a per-function or per-queue metric: metric math over every
    // stage's (a percentile of the union is approximated by the largest stage percentile).
    out << YAML::Key << "Metrics" << YAML::Value << YAML::BeginSeq;
    std::vector<std::string> parts;
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      std::string id = fmt::format("m{}", i);
      parts.push_back(id);
      out << YAML::BeginMap << YAML::Key << "Id" << YAML::Value << id;
      out << YAML::Key << "ReturnData" << YAML::Value << false;
      out << YAML::Key << "MetricStat" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "Metric" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "Namespace" << YAML::Value << m.ns;
      out << YAML::Key << "MetricName" << YAML::Value << m.name;
      metric_dimensions(out, spec, m, spec.stages[i].name, ids[i]);
      out << YAML::EndMap;
      out << YAML::Key << "Period" << YAML::Value << period;
      out << YAML::Key << "Stat" << YAML::Value << a.statistic.name();
      out << YAML::EndMap << YAML::EndMap;
    }
    out << YAML::BeginMap << YAML::Key << "Id" << YAML::Value << "total";
    out << YAML::Key << "Label" << YAML::Value << a.metric;
    out << YAML::Key << "Expression" << YAML::Value
        << fmt::format("{}([{}])", math_function(a.statistic), fmt::join(parts, ","));
    out << YAML::Key << "ReturnData" << YAML::Value << true << YAML::EndMap;
    out << YAML::EndSeq;
  }
  out << YAML::Key << "AlarmActions" << YAML::Value << YAML::BeginSeq;
  ref(out, "AlarmTopic") << YAML::EndSeq;
  out << YAML::Key << "OKActions" << YAML::Value << YAML::BeginSeq;
  ref(out, "AlarmTopic") << YAML::EndSeq;
  out << YAML::EndMap << YAML::EndMap;
}

// The type of a key attribute. The storage types a key column by the values it holds (N for
// numbers), which the template cannot know: a column named `id` or `..._id` is taken to hold
// numbers (N), any other S. docs/aws.md states the rule.
std::string key_attribute_type(const std::string& column) {
  std::string lower;
  for (char ch : column) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lower == "id" || lower.ends_with("_id") ? "N" : "S";
}

// One IAM statement.
void statement(YAML::Emitter& out, const std::string& sid, const std::vector<std::string>& actions,
               const std::function<void(YAML::Emitter&)>& resources) {
  out << YAML::BeginMap << YAML::Key << "Sid" << YAML::Value << sid;
  out << YAML::Key << "Effect" << YAML::Value << "Allow";
  out << YAML::Key << "Action" << YAML::Value << YAML::BeginSeq;
  for (const auto& a : actions) out << a;
  out << YAML::EndSeq;
  out << YAML::Key << "Resource" << YAML::Value << YAML::BeginSeq;
  resources(out);
  out << YAML::EndSeq << YAML::EndMap;
}

// A function's log group, so its role needs no logs:CreateLogGroup and retention is bounded.
void log_group(YAML::Emitter& out, const std::string& id, const std::string& function_name) {
  out << YAML::Key << id + "LogGroup" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "AWS::Logs::LogGroup";
  out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "LogGroupName" << YAML::Value;
  sub(out, "/aws/lambda/" + function_name);
  out << YAML::Key << "RetentionInDays" << YAML::Value << 30;
  out << YAML::EndMap << YAML::EndMap;
}

// Opens a function's role (assumed by Lambda, one inline policy named `policy`) and leaves the
// emitter inside its Statement list, its first statement the log group's; close_role() ends it.
void open_role(YAML::Emitter& out, const std::string& id, const std::string& policy) {
  out << YAML::Key << id + "Role" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "AWS::IAM::Role";
  out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "AssumeRolePolicyDocument" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Version" << YAML::Value << YAML::SingleQuoted << "2012-10-17";
  out << YAML::Key << "Statement" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "Effect" << YAML::Value << "Allow";
  out << YAML::Key << "Principal" << YAML::Value << YAML::BeginMap << YAML::Key << "Service"
      << YAML::Value << "lambda.amazonaws.com" << YAML::EndMap;
  out << YAML::Key << "Action" << YAML::Value << "sts:AssumeRole";
  out << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
  out << YAML::Key << "Policies" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "PolicyName" << YAML::Value << policy;
  out << YAML::Key << "PolicyDocument" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Version" << YAML::Value << YAML::SingleQuoted << "2012-10-17";
  out << YAML::Key << "Statement" << YAML::Value << YAML::BeginSeq;
  statement(out, "Logs", {"logs:CreateLogStream", "logs:PutLogEvents"},
            [&](YAML::Emitter& e) { getatt(e, id + "LogGroup.Arn"); });
}

void close_role(YAML::Emitter& out) {
  out << YAML::EndSeq << YAML::EndMap;  // Statement, PolicyDocument
  out << YAML::EndMap << YAML::EndSeq;  // policy, Policies
  out << YAML::EndMap << YAML::EndMap;  // Properties, role
}

// Opens a function resource and its Properties, with what every cascade function shares.
void open_function(YAML::Emitter& out, const std::string& id, const std::string& function_name,
                   const std::string& description, const TemplateOptions& o) {
  out << YAML::Key << id + "Function" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "AWS::Serverless::Function";
  out << YAML::Key << "DependsOn" << YAML::Value << id + "LogGroup";
  out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "FunctionName" << YAML::Value;
  sub(out, function_name);
  out << YAML::Key << "Description" << YAML::Value << description;
  out << YAML::Key << "Runtime" << YAML::Value << "provided.al2023";
  out << YAML::Key << "Architectures" << YAML::Value << YAML::Flow << YAML::BeginSeq << "x86_64"
      << YAML::EndSeq;
  out << YAML::Key << "Handler" << YAML::Value << "bootstrap";
  out << YAML::Key << "CodeUri" << YAML::Value << o.code_uri;
  out << YAML::Key << "MemorySize" << YAML::Value << o.memory_mb;
}

// The environment every function shares: the packaged pipeline, the stack's storage (which
// creates nothing), and the pipeline file's ${VARS} from the template's parameters.
void pipeline_environment(YAML::Emitter& out, const TemplateOptions& o,
                          const std::vector<FileVariable>& vars) {
  out << YAML::Key << "CASCADE_PIPELINE" << YAML::Value << "/var/task/" + o.pipeline_in_package;
  out << YAML::Key << "CASCADE_STORAGE" << YAML::Value;
  sub(out, "aws:?warehouse=${Warehouse}&create=false&prefix=${AWS::StackName}-");
  for (const auto& v : vars) {
    out << YAML::Key << v.name << YAML::Value;
    ref(out, v.parameter);
  }
}

}  // namespace

std::string sam_template(const PipelineSpec& spec, const TemplateOptions& o) {
  if (spec.stages.empty()) throw std::invalid_argument(spec.file + ": the pipeline has no stage");
  const std::vector<std::string> ids = stage_ids(spec);
  const std::vector<FileVariable> vars = file_variables(spec.file);
  const std::string suffix = stage_names_suffix(spec);
  std::vector<const NotifySpec*> webhooks;
  for (const auto& n : spec.notify)
    if (n.type == "webhook") webhooks.push_back(&n);
  auto index_of = [&](const std::string& name) -> size_t {
    for (size_t i = 0; i < spec.stages.size(); ++i)
      if (spec.stages[i].name == name) return i;
    return spec.stages.size();
  };
  std::vector<bool> is_root(spec.stages.size(), true);
  for (const auto& st : spec.stages)
    for (const auto& e : st.emit)
      if (size_t c = index_of(e.stage); c < spec.stages.size()) is_root[c] = false;

  YAML::Emitter out;
  out.SetIndent(2);
  out << YAML::Comment(fmt::format(
      "SAM template of pipeline '{}' ({}), written by `cascade aws template`. Deploy: docs/aws.md",
      spec.name, spec.file));
  out << YAML::BeginMap;
  out << YAML::Key << "AWSTemplateFormatVersion" << YAML::Value << YAML::SingleQuoted
      << "2010-09-09";
  out << YAML::Key << "Transform" << YAML::Value << "AWS::Serverless-2016-10-31";
  out << YAML::Key << "Description" << YAML::Value
      << fmt::format(
             "cascade pipeline {}: a function, queue, dead-letter queue and table per stage",
             spec.name);

  // Parameters.
  out << YAML::Key << "Parameters" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Environment" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "String";
  out << YAML::Key << "Default" << YAML::Value << (spec.env.empty() ? "dev" : spec.env);
  out << YAML::Key << "Description" << YAML::Value
      << "APP_ENV of the functions; suffix of queue names, as in the AWS design";
  out << YAML::EndMap;
  out << YAML::Key << "Warehouse" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "String";
  out << YAML::Key << "NoEcho" << YAML::Value << true;
  out << YAML::Key << "Description" << YAML::Value
      << "URL of the warehouse the change streams are loaded into (postgresql://...)";
  out << YAML::EndMap;
  out << YAML::Key << "LoggingLevel" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "String";
  out << YAML::Key << "Default" << YAML::Value << "INFO";
  out << YAML::Key << "AllowedValues" << YAML::Value << YAML::Flow << YAML::BeginSeq << "DEBUG"
      << "INFO"
      << "WARNING"
      << "ERROR" << YAML::EndSeq;
  out << YAML::EndMap;
  out << YAML::Key << "AlarmEmail" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "String";
  out << YAML::Key << "Default" << YAML::Value << YAML::SingleQuoted << "";
  out << YAML::Key << "Description" << YAML::Value
      << "an address subscribed to the alarm topic (empty: none)";
  out << YAML::EndMap;
  for (size_t i = 0; i < webhooks.size(); ++i) {
    out << YAML::Key << fmt::format("NotifyWebhook{}", i + 1) << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "String";
    out << YAML::Key << "NoEcho" << YAML::Value << true;
    out << YAML::Key << "Default" << YAML::Value << YAML::SingleQuoted << "";
    out << YAML::Key << "Description" << YAML::Value
        << fmt::format(
               "https URL of the pipeline's webhook notify target {} (line {}); empty: none", i + 1,
               webhooks[i]->pos.line);
    out << YAML::EndMap;
  }
  for (const auto& v : vars) {
    out << YAML::Key << v.parameter << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "String";
    if (!v.fallback || secret_like(v.name)) out << YAML::Key << "NoEcho" << YAML::Value << true;
    if (v.fallback)
      out << YAML::Key << "Default" << YAML::Value << YAML::SingleQuoted
          << (secret_like(v.name) ? std::string() : *v.fallback);
    out << YAML::Key << "Description" << YAML::Value
        << fmt::format("${{{}}} of the pipeline file", v.name);
    out << YAML::EndMap;
  }
  out << YAML::EndMap;

  // Conditions.
  out << YAML::Key << "Conditions" << YAML::Value << YAML::BeginMap;
  auto not_empty = [&](const std::string& cond, const std::string& param) {
    out << YAML::Key << cond << YAML::Value << YAML::LocalTag("Not") << YAML::BeginSeq
        << YAML::LocalTag("Equals") << YAML::Flow << YAML::BeginSeq;
    ref(out, param) << YAML::SingleQuoted << "" << YAML::EndSeq << YAML::EndSeq;
  };
  not_empty("HasAlarmEmail", "AlarmEmail");
  for (size_t i = 0; i < webhooks.size(); ++i)
    not_empty(fmt::format("HasNotifyWebhook{}", i + 1), fmt::format("NotifyWebhook{}", i + 1));
  out << YAML::EndMap;

  out << YAML::Key << "Resources" << YAML::Value << YAML::BeginMap;
  // The engine's listing records, as the storage makes them (`{prefix}cascade_listings`).
  out << YAML::Key << "ListingsTable" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "AWS::DynamoDB::Table";
  out << YAML::Key << "DeletionPolicy" << YAML::Value << "Retain";
  out << YAML::Key << "UpdateReplacePolicy" << YAML::Value << "Retain";
  out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "TableName" << YAML::Value;
  sub(out, "${AWS::StackName}-cascade_listings");
  out << YAML::Key << "BillingMode" << YAML::Value << "PAY_PER_REQUEST";
  out << YAML::Key << "AttributeDefinitions" << YAML::Value << YAML::BeginSeq;
  for (const char* attr : {"stage", "id"})
    out << YAML::BeginMap << YAML::Key << "AttributeName" << YAML::Value << attr << YAML::Key
        << "AttributeType" << YAML::Value << "S" << YAML::EndMap;
  out << YAML::EndSeq;
  out << YAML::Key << "KeySchema" << YAML::Value << YAML::BeginSeq;
  out << YAML::BeginMap << YAML::Key << "AttributeName" << YAML::Value << "stage" << YAML::Key
      << "KeyType" << YAML::Value << "HASH" << YAML::EndMap;
  out << YAML::BeginMap << YAML::Key << "AttributeName" << YAML::Value << "id" << YAML::Key
      << "KeyType" << YAML::Value << "RANGE" << YAML::EndMap;
  out << YAML::EndSeq;
  out << YAML::EndMap << YAML::EndMap;
  for (size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& st = spec.stages[i];
    const std::string& id = ids[i];
    const std::string name = st.name + suffix;
    const QueueOptions& q = st.queue;
    std::vector<size_t> children;
    for (const auto& e : st.emit)
      if (size_t c = index_of(e.stage); c < spec.stages.size()) children.push_back(c);

    // Queue and dead-letter queue.
    out << YAML::Key << id + "DeadLetterQueue" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "AWS::SQS::Queue";
    out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "QueueName" << YAML::Value;
    sub(out, "${AWS::StackName}-" + name + "-dlq");
    // A dead letter is kept at least as long as its queue kept it (SQS's maximum is 14 days).
    out << YAML::Key << "MessageRetentionPeriod" << YAML::Value << 1209600;
    out << YAML::EndMap << YAML::EndMap;

    out << YAML::Key << id + "Queue" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "AWS::SQS::Queue";
    out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "QueueName" << YAML::Value;
    sub(out, "${AWS::StackName}-" + name);
    out << YAML::Key << "VisibilityTimeout" << YAML::Value << seconds_of(q.visibility_timeout);
    out << YAML::Key << "MessageRetentionPeriod" << YAML::Value << seconds_of(q.retention);
    out << YAML::Key << "RedrivePolicy" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "deadLetterTargetArn" << YAML::Value;
    getatt(out, id + "DeadLetterQueue.Arn");
    out << YAML::Key << "maxReceiveCount" << YAML::Value << q.max_receive_count;
    out << YAML::EndMap;
    out << YAML::EndMap << YAML::EndMap;

    // Staging table: named and keyed as the `aws:` storage names and keys it
    // (src/aws/dynamo_tables.h), since the functions run with create=false: `{prefix}{table}`,
    // the first key column HASH, the second RANGE (a longer key: `_range`, the JSON text of the
    // rest).
    out << YAML::Key << id + "Table" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "AWS::DynamoDB::Table";
    out << YAML::Key << "DeletionPolicy" << YAML::Value << "Retain";
    out << YAML::Key << "UpdateReplacePolicy" << YAML::Value << "Retain";
    out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "TableName" << YAML::Value;
    sub(out, "${AWS::StackName}-" + st.table);
    out << YAML::Key << "BillingMode" << YAML::Value << "PAY_PER_REQUEST";
    std::vector<std::pair<std::string, std::string>> attributes;  // name, type
    attributes.emplace_back(st.key[0].name, key_attribute_type(st.key[0].name));
    if (st.key.size() == 2)
      attributes.emplace_back(st.key[1].name, key_attribute_type(st.key[1].name));
    else if (st.key.size() > 2)
      attributes.emplace_back("_range", "S");
    out << YAML::Key << "AttributeDefinitions" << YAML::Value << YAML::BeginSeq;
    for (const auto& [attr, type] : attributes)
      out << YAML::BeginMap << YAML::Key << "AttributeName" << YAML::Value << attr << YAML::Key
          << "AttributeType" << YAML::Value << type << YAML::EndMap;
    out << YAML::EndSeq;
    out << YAML::Key << "KeySchema" << YAML::Value << YAML::BeginSeq;
    for (size_t k = 0; k < attributes.size(); ++k)
      out << YAML::BeginMap << YAML::Key << "AttributeName" << YAML::Value << attributes[k].first
          << YAML::Key << "KeyType" << YAML::Value << (k == 0 ? "HASH" : "RANGE") << YAML::EndMap;
    out << YAML::EndSeq;
    out << YAML::Key << "StreamSpecification" << YAML::Value << YAML::BeginMap << YAML::Key
        << "StreamViewType" << YAML::Value << "NEW_IMAGE" << YAML::EndMap;
    out << YAML::EndMap << YAML::EndMap;

    // Log group, so the role needs no logs:CreateLogGroup and retention is bounded.
    const std::string function_name = "${AWS::StackName}-" + st.name;
    log_group(out, id, function_name);

    // Role: named actions on named resources only.
    open_role(out, id, "stage");
    // Its own queue: the event source mapping receives and deletes; a schedule seeds it; the
    // store reads its attributes and changes visibility.
    statement(out, "OwnQueue",
              {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
               "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"},
              [&](YAML::Emitter& e) { getatt(e, id + "Queue.Arn"); });
    // A permanent failure goes to the dead-letter queue at once, with its reason.
    statement(out, "OwnDeadLetterQueue",
              {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
              [&](YAML::Emitter& e) { getatt(e, id + "DeadLetterQueue.Arn"); });
    if (!children.empty())
      statement(out, "ChildQueues", {"sqs:SendMessage", "sqs:GetQueueUrl"}, [&](YAML::Emitter& e) {
        for (size_t c : children) getatt(e, ids[c] + "Queue.Arn");
      });
    // The store's calls on its item table: conditional PutItem, UpdateItem (a deletion marks
    // the item), BatchGetItem (stored hashes), Query (a parent's items), DescribeTable.
    statement(out, "OwnTable",
              {"dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
               "dynamodb:DescribeTable"},
              [&](YAML::Emitter& e) { getatt(e, id + "Table.Arn"); });
    // The engine's listing records (src/aws/dynamo_staging.cpp).
    statement(
        out, "Listings",
        {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable"},
        [&](YAML::Emitter& e) { getatt(e, "ListingsTable.Arn"); });
    // Opening the storage checks every table and queue of the pipeline exists (create=false):
    // metadata only, on the stack's own tables and queues.
    statement(out, "PipelineTables", {"dynamodb:DescribeTable"}, [&](YAML::Emitter& e) {
      for (const auto& other : ids) getatt(e, other + "Table.Arn");
    });
    statement(out, "PipelineQueues", {"sqs:GetQueueUrl", "sqs:GetQueueAttributes"},
              [&](YAML::Emitter& e) {
                for (const auto& other : ids) {
                  getatt(e, other + "Queue.Arn");
                  getatt(e, other + "DeadLetterQueue.Arn");
                }
              });
    statement(out, "OwnStream",
              {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
              [&](YAML::Emitter& e) { getatt(e, id + "Table.StreamArn"); });
    close_role(out);

    // Function.
    open_function(out, id, function_name,
                  fmt::format("cascade stage {}: {} {}", st.name, st.method, st.request.text), o);
    // SQS refuses an event source whose function may run longer than the visibility timeout.
    out << YAML::Key << "Timeout" << YAML::Value
        << std::clamp<int64_t>(seconds_of(q.visibility_timeout), 1, 900);
    out << YAML::Key << "ReservedConcurrentExecutions" << YAML::Value << st.concurrency;
    out << YAML::Key << "Role" << YAML::Value;
    getatt(out, id + "Role.Arn");
    out << YAML::Key << "Environment" << YAML::Value << YAML::BeginMap << YAML::Key << "Variables"
        << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "LOGGING_LEVEL" << YAML::Value;
    ref(out, "LoggingLevel");
    out << YAML::Key << "APP_ENV" << YAML::Value;
    ref(out, "Environment");
    out << YAML::Key << "SQS" << YAML::Value;
    ref(out, id + "Queue");
    if (!children.empty()) {
      out << YAML::Key << "TARGET_SQS" << YAML::Value << YAML::LocalTag("Join") << YAML::BeginSeq
          << "," << YAML::BeginSeq;
      for (size_t c : children) ref(out, ids[c] + "Queue");
      out << YAML::EndSeq << YAML::EndSeq;
    }
    out << YAML::Key << "DB" << YAML::Value;
    ref(out, id + "Table");
    out << YAML::Key << "CASCADE_STAGE" << YAML::Value << YAML::DoubleQuoted << st.name;
    pipeline_environment(out, o, vars);
    out << YAML::EndMap << YAML::EndMap;  // Variables, Environment
    out << YAML::Key << "Events" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Queue" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "SQS";
    out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Queue" << YAML::Value;
    getatt(out, id + "Queue.Arn");
    out << YAML::Key << "BatchSize" << YAML::Value << o.batch_size;
    // Without it the event source polls with more concurrency than the function is reserved, and
    // each throttled batch goes back to the queue with its receive count raised: messages would
    // reach the DLQ without ever having failed. SQS's minimum is 2.
    out << YAML::Key << "ScalingConfig" << YAML::Value << YAML::BeginMap << YAML::Key
        << "MaximumConcurrency" << YAML::Value << std::clamp(st.concurrency, 2, 1000)
        << YAML::EndMap;
    out << YAML::Key << "FunctionResponseTypes" << YAML::Value << YAML::BeginSeq
        << "ReportBatchItemFailures" << YAML::EndSeq;
    out << YAML::EndMap << YAML::EndMap;
    if (st.schedule && is_root[i]) {
      // cascade's schedules are EventBridge's expressions already (config/schedule.h).
      out << YAML::Key << "Schedule" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "Type" << YAML::Value << (st.timezone ? "ScheduleV2" : "Schedule");
      out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << (st.timezone ? "ScheduleExpression" : "Schedule") << YAML::Value
          << *st.schedule;
      if (st.timezone)
        out << YAML::Key << "ScheduleExpressionTimezone" << YAML::Value << *st.timezone;
      out << YAML::EndMap << YAML::EndMap;
    }
    out << YAML::EndMap;                  // Events
    out << YAML::EndMap << YAML::EndMap;  // Properties, function
  }

  // The warehouse loader: the stage functions write only their tables; this one reads the
  // tables' streams into the warehouse on a schedule (CASCADE_FUNCTION=warehouse), one at a
  // time, so two never apply the same shard together.
  {
    const std::string function_name = "${AWS::StackName}-warehouse";
    log_group(out, "WarehouseLoader", function_name);
    open_role(out, "WarehouseLoader", "warehouse");
    // The reader finds each table's stream (DescribeTable) and reads its shards.
    statement(out, "PipelineTables", {"dynamodb:DescribeTable"}, [&](YAML::Emitter& e) {
      for (const auto& other : ids) getatt(e, other + "Table.Arn");
    });
    statement(out, "PipelineStreams",
              {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
              [&](YAML::Emitter& e) {
                for (const auto& other : ids) getatt(e, other + "Table.StreamArn");
              });
    close_role(out);

    open_function(out, "WarehouseLoader", function_name,
                  "cascade warehouse loader: the tables' DynamoDB Streams into the warehouse", o);
    out << YAML::Key << "Timeout" << YAML::Value << 900;
    out << YAML::Key << "ReservedConcurrentExecutions" << YAML::Value << 1;
    out << YAML::Key << "Role" << YAML::Value;
    getatt(out, "WarehouseLoaderRole.Arn");
    out << YAML::Key << "Environment" << YAML::Value << YAML::BeginMap << YAML::Key << "Variables"
        << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "LOGGING_LEVEL" << YAML::Value;
    ref(out, "LoggingLevel");
    out << YAML::Key << "APP_ENV" << YAML::Value;
    ref(out, "Environment");
    out << YAML::Key << "CASCADE_FUNCTION" << YAML::Value << "warehouse";
    pipeline_environment(out, o, vars);
    out << YAML::EndMap << YAML::EndMap;  // Variables, Environment
    out << YAML::Key << "Events" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Schedule" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "Schedule";
    out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Schedule" << YAML::Value << "rate(1 minute)";
    out << YAML::EndMap << YAML::EndMap;
    out << YAML::EndMap;                  // Events
    out << YAML::EndMap << YAML::EndMap;  // Properties, function
  }

  // Alarms and where they go.
  out << YAML::Key << "AlarmTopic" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "Type" << YAML::Value << "AWS::SNS::Topic";
  out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "TopicName" << YAML::Value;
  sub(out, "${AWS::StackName}-alarms");
  out << YAML::EndMap << YAML::EndMap;
  auto subscription = [&](const std::string& id, const std::string& cond,
                          const std::string& protocol, const std::string& param) {
    out << YAML::Key << id << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "Type" << YAML::Value << "AWS::SNS::Subscription";
    out << YAML::Key << "Condition" << YAML::Value << cond;
    out << YAML::Key << "Properties" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "TopicArn" << YAML::Value;
    ref(out, "AlarmTopic");
    out << YAML::Key << "Protocol" << YAML::Value << protocol;
    out << YAML::Key << "Endpoint" << YAML::Value;
    ref(out, param);
    out << YAML::EndMap << YAML::EndMap;
  };
  subscription("AlarmEmailSubscription", "HasAlarmEmail", "email", "AlarmEmail");
  for (size_t i = 0; i < webhooks.size(); ++i)
    subscription(fmt::format("NotifyWebhook{}Subscription", i + 1),
                 fmt::format("HasNotifyWebhook{}", i + 1), "https",
                 fmt::format("NotifyWebhook{}", i + 1));
  std::vector<std::string> unmapped;
  std::set<std::string> used_ids;
  for (const auto& a : spec.alarms) {
    std::optional<AwsMetric> m = aws_metric(a.metric);
    if (!m) {
      unmapped.push_back(a.name);
      continue;
    }
    std::string alarm_id = logical_name(a.name) + "Alarm";
    for (int n = 2; !used_ids.insert(alarm_id).second; ++n)
      alarm_id = logical_name(a.name) + std::to_string(n) + "Alarm";
    emit_alarm(out, spec, ids, a, *m, alarm_id);
  }
  out << YAML::EndMap;  // Resources
  out << YAML::EndMap;
  std::string text = out.c_str();
  text += '\n';
  if (!unmapped.empty())
    text += fmt::format(
        "# Alarms with no CloudWatch metric on AWS (cascade run evaluates them, Lambda does not): "
        "{}\n",
        fmt::join(unmapped, ", "));
  std::vector<std::string> skipped;
  for (const auto& n : spec.notify)
    if (n.type != "webhook") skipped.push_back(n.type);
  if (!skipped.empty())
    text += fmt::format(
        "# Notify targets with no SNS equivalent (CloudWatch keeps the alarm history): {}\n",
        fmt::join(skipped, ", "));
  return text;
}

}  // namespace cascade::deploy
