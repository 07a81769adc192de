// The SAM template of a pipeline: what `cascade aws template PIPELINE` prints, to deploy the
// pipeline on Lambda, SQS, DynamoDB (+ Streams), EventBridge and CloudWatch (docs/aws.md).
// Pure: a function of the validated spec and the options; thread-safe.
#pragma once

#include <string>

#include "config/pipeline.h"

namespace cascade::deploy {

struct TemplateOptions {
  // CodeUri of every function: the directory `cascade aws package --out DIR` wrote.
  std::string code_uri = "cascade-package";
  // Where the package puts the pipeline file inside /var/task (CASCADE_PIPELINE).
  std::string pipeline_in_package = "pipeline.yaml";
  int memory_mb = 512;
  int batch_size = 10;  // SQS records per invocation
};

// The template as YAML. Resources, per stage S (CamelCased as S'):
//   S'Function      AWS::Serverless::Function, provided.al2023, handler bootstrap; env
//                   CASCADE_STAGE, CASCADE_PIPELINE, CASCADE_STORAGE and the old design's
//                   LOGGING_LEVEL, APP_ENV, SQS, TARGET_SQS, DB; ReservedConcurrentExecutions =
//                   the stage's concurrency; its queue as SQS event source with
//                   ReportBatchItemFailures; a root stage's schedule as a Schedule event
//                   (ScheduleV2 when the stage names a timezone).
//   S'Queue, S'DeadLetterQueue   the stage's queue options; RedrivePolicy maxReceiveCount.
//   S'Table         DynamoDB `${AWS::StackName}-TABLE` (the stage's warehouse table), keyed as
//                   the `aws:` storage keys it (first key column HASH, second RANGE, a longer key
//                   `_range` S; a column named `id` or `*_id` typed N, others S), streams
//                   NEW_IMAGE, PAY_PER_REQUEST.
//   S'Role, S'LogGroup           least privilege: the actions the stage's function needs on its
//                   own queue, DLQ, table and stream, the listings table, its children's
//                   queues, its log group, and metadata reads of the pipeline's tables and queues.
// plus ListingsTable (`${AWS::StackName}-cascade_listings`, hash `stage`, range `id`, both S),
// and AlarmTopic (SNS) with a subscription per webhook notify target (a NoEcho parameter each:
// the URL is a secret) and an optional AlarmEmail, and a CloudWatch alarm per pipeline alarm
// that AWS measures (see docs/aws.md for the mapping; others are listed in a comment).
// Queue and table names are `${AWS::StackName}-` + the store's names (queues `stage-env`, tables
// the warehouse table), which is the `prefix=` of the CASCADE_STORAGE URL the functions get.
// Throws std::invalid_argument when the pipeline has no stage.
std::string sam_template(const PipelineSpec& spec, const TemplateOptions& options = {});

// The CloudFormation logical id of a stage: its name CamelCased, alphanumerics only
// ("sales_items" -> "SalesItems").
std::string logical_name(std::string_view stage);

}  // namespace cascade::deploy
