// The Lambda custom runtime: `cascade lambda`, and `cascade` started as `bootstrap` with
// AWS_LAMBDA_RUNTIME_API set. One function per stage, as in the original design:
//   CASCADE_STAGE     the stage this function runs (the template sets it)
//   CASCADE_PIPELINE  the pipeline file (default /var/task/pipeline.yaml)
//   CASCADE_STORAGE   the storage URL, over the pipeline's (aws:?warehouse=...)
//   LOGGING_LEVEL     Python's level names, as the old design's functions read it
// Events:
//   EventBridge Schedule ({"source":"aws.events",...}): the root stage's messages (its inputs,
//     or the fields of a non-empty "detail") are sent to its queue; answers
//     {"stage": S, "seeded": N}. Only a root stage takes it.
//   SQS ({"Records":[{"messageId","body",...}]}): each body is one message of the stage,
//     processed through the engine; answers {"batchItemFailures":[{"itemIdentifier": ID}]} for
//     exactly the records that failed (a body that is no JSON object among them), so SQS
//     deletes the others and retries these until its redrive policy dead-letters them.
//   anything else: a direct invoke (`cascade invoke`'s event forms); answers the counts.
// A failure of the storage fails the whole invocation (every record is retried). Logs are JSON
// lines on stderr; after each invocation one CloudWatch embedded-metric-format line on stdout
// (namespace "cascade", dimensions Pipeline and Pipeline+Stage: errors, throttles, requests,
// records_new, records_changed, records_deleted).
#pragma once

#include <cstddef>

namespace cascade::lambda {

// Runs the loop until SIGTERM or SIGINT (handlers installed here: the event under way is stopped
// cleanly, its unprocessed records reported failed). Returns the process exit code: 0 after a
// signal, 1 when the Runtime API fails, 2 when initialization fails (reported to
// /runtime/init/error first). `max_invocations` > 0 ends the loop (exit 0) after that many
// events, for local runs and tests; Lambda itself never ends it. Call once per process.
int run_lambda(size_t max_invocations = 0);

}  // namespace cascade::lambda
