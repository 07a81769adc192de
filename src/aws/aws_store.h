// The `aws:` storage: the engine's Store on AWS services, as the original design built it.
// URL: `aws:?warehouse=URL[&create=false][&prefix=NAME]`.
//   - queues on SQS (`{prefix}{queue}`, each with its DLQ `{prefix}{queue}-dlq`);
//   - staging on DynamoDB (DynamoWarehouse's item tables, DynamoStaging's listing records);
//   - the warehouse, its metadata and the change log analysts read in the store `warehouse=`
//     names (sqlite:FILE or postgres://...), loaded from the item tables' streams by settle().
// Missing queues and tables are made on first use unless create=false.
//
// The unit of work buffers every effect and flushes at commit (see dynamo_unit.h), then commits
// the warehouse store's own transaction (its DDL, metadata). Not thread-safe: one owner thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "aws/client.h"
#include "aws/streams_reader.h"
#include "store/store.h"

namespace cascade::aws {

struct AwsStorageUrl {
  std::string warehouse;  // the inner storage URL
  bool create = true;
  std::string prefix;
};

// Parses `aws:?warehouse=URL[&create=false][&prefix=NAME]` (values percent-decoded; a warehouse
// URL holding '&' keeps it where the text after it is no known parameter). Throws
// std::runtime_error saying what is wrong.
AwsStorageUrl parse_aws_url(std::string_view url);

// Makes the queue of an `aws:` store on `client` (SQS); null: a store without queues (tests of
// the DynamoDB parts alone).
using QueueFactory =
    std::function<std::unique_ptr<Queue>(Client& client, const AwsStorageUrl& url, Clock& clock)>;

// Opens the store: the warehouse store at once; AWS only on first use (so reading the warehouse
// needs no credentials). `config` null: AwsConfig::from_environment(). `queues` null: SQS.
std::unique_ptr<Store> open_aws_store(std::string_view url, Clock& clock, StoreOptions options,
                                      std::optional<AwsConfig> config = {},
                                      QueueFactory queues = {});

// Registers "aws:" with open_store(). Call once before opening storages (the CLI does).
void register_aws_storage();

// Brings the warehouse of an `aws:` store up to date from the streams; for the reader command.
// `store` must be an `aws:` store. Returns the number of stream records applied.
size_t settle_aws_store(Store& store, const StreamReadOptions& options);

}  // namespace cascade::aws
