#include "aws/aws_store.h"

#include <stdexcept>

#include "aws/dynamo_staging.h"
#include "aws/dynamo_warehouse.h"
#include "aws/sqs_queue.h"
#include "aws/streams_reader.h"

namespace cascade::aws {
namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

class AwsStore final : public Store {
 public:
  AwsStore(AwsStorageUrl url, std::unique_ptr<Store> inner, Clock& clock,
           std::optional<AwsConfig> config, QueueFactory queues)
      : url_(std::move(url)),
        inner_(std::move(inner)),
        clock_(clock),
        config_(std::move(config)),
        queues_(std::move(queues)) {}

  ~AwsStore() override {
    if (unit_ && unit_->active()) unit_->rollback();
  }

  Queue& queue() override {
    aws();
    if (!queue_) throw std::runtime_error("this aws: store was opened without queues");
    return *queue_;
  }
  Staging& staging() override {
    aws();
    return *staging_;
  }
  ChangeLog& change_log() override { return inner_->change_log(); }
  Warehouse& warehouse() override {
    // Reading needs no AWS; writing goes through the item tables.
    if (inner_read_only()) return inner_->warehouse();
    aws();
    return *warehouse_;
  }

  void begin() override {
    inner_->begin();
    in_savepoint_ = false;
    if (client_) unit_->begin();
    began_ = true;
  }
  void commit() override {
    try {
      if (unit_ && unit_->active()) unit_->commit();
    } catch (...) {
      inner_->rollback();
      began_ = false;
      throw;
    }
    began_ = false;
    inner_->commit();
  }
  void rollback() override {
    if (unit_ && unit_->active()) unit_->rollback();
    began_ = false;
    inner_->rollback();
  }
  bool in_transaction() const override { return inner_->in_transaction(); }
  void savepoint() override {
    inner_->savepoint();
    if (unit_ && unit_->active()) unit_->savepoint();
    in_savepoint_ = true;
  }
  void release_savepoint() override {
    in_savepoint_ = false;
    if (unit_ && unit_->active()) unit_->release_savepoint();
    inner_->release_savepoint();
  }
  void rollback_to_savepoint() override {
    in_savepoint_ = false;
    if (unit_ && unit_->active()) unit_->rollback_to_savepoint();
    inner_->rollback_to_savepoint();
  }
  void set_stop_flag(const std::atomic<bool>* flag) override {
    stop_ = flag;
    inner_->set_stop_flag(flag);
    // The Store contract: a stop ends waits, not the unit of work applying what the run holds.
    if (client_) client_->set_stop_flag(flag, /*waits_only=*/true);
  }
  std::optional<std::string> get_meta(std::string_view key) override {
    return inner_->get_meta(key);
  }
  void set_meta(std::string_view key, std::string_view value) override {
    inner_->set_meta(key, value);
  }
  // SQS is shared by every consumer: a received message only returns by its visibility.
  bool claim_consumer() override { return false; }
  bool compact() override { return inner_->compact(); }
  std::string describe() const override {
    return "AWS (SQS, DynamoDB" +
           std::string(url_.prefix.empty() ? "" : ", prefix " + url_.prefix) +
           ") with the warehouse in " + inner_->describe();
  }
  Coordination* coordination() override { return inner_->coordination(); }

  void settle() override { read_streams({}); }

  size_t read_streams(StreamReadOptions options) {
    aws();
    if (!options.stop) options.stop = stop_;
    StreamReader reader(*tables_, *inner_);
    return reader.catch_up(options).records;
  }

 private:
  bool inner_read_only() const { return read_only_; }

  // AWS parts, made on first use.
  void aws() {
    if (client_) return;
    client_ = std::make_unique<Client>(config_ ? *config_ : AwsConfig::from_environment());
    client_->set_stop_flag(stop_, /*waits_only=*/true);
    tables_ = std::make_unique<DynamoTables>(*client_, *inner_, url_.prefix, url_.create);
    unit_ = std::make_unique<UnitOfWork>(*tables_);
    staging_ = std::make_unique<DynamoStaging>(*tables_, *unit_);
    warehouse_ = std::make_unique<DynamoWarehouse>(inner_->warehouse(), *tables_, *unit_);
    sqs_ = queues_
               ? queues_(*client_, url_, clock_)
               : std::make_unique<SqsQueue>(*client_, SqsQueueOptions{url_.prefix, url_.create});
    if (sqs_) queue_ = std::make_unique<BufferedQueue>(*sqs_, *unit_);
    // Made inside a unit of work: its effects join it from here on.
    if (began_) unit_->begin();
    if (began_ && in_savepoint_) unit_->savepoint();
  }

 public:
  bool read_only_ = false;

 private:
  AwsStorageUrl url_;
  std::unique_ptr<Store> inner_;
  Clock& clock_;
  std::optional<AwsConfig> config_;
  QueueFactory queues_;
  const std::atomic<bool>* stop_ = nullptr;
  bool began_ = false;
  bool in_savepoint_ = false;
  std::unique_ptr<Client> client_;
  std::unique_ptr<DynamoTables> tables_;
  std::unique_ptr<UnitOfWork> unit_;
  std::unique_ptr<DynamoStaging> staging_;
  std::unique_ptr<DynamoWarehouse> warehouse_;
  std::unique_ptr<Queue> sqs_;
  std::unique_ptr<BufferedQueue> queue_;
};

std::unique_ptr<Store> open_registered(std::string_view url, Clock& clock, StoreOptions options) {
  return open_aws_store(url, clock, options);
}

}  // namespace

AwsStorageUrl parse_aws_url(std::string_view url) {
  if (!url.starts_with("aws:"))
    throw std::runtime_error("not an aws: storage URL: " + std::string(url));
  std::string_view rest = url.substr(4);
  if (rest.starts_with("//")) rest.remove_prefix(2);
  if (rest.starts_with("?")) rest.remove_prefix(1);
  AwsStorageUrl out;
  bool has_warehouse = false;
  std::string* last = nullptr;
  std::string pending;  // the raw text of the value under way
  auto finish = [&] {
    if (last) *last = percent_decode(pending);
  };
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    size_t eq = part.find('=');
    std::string_view name = part.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    if (eq != std::string_view::npos && (name == "warehouse" || name == "prefix")) {
      finish();
      last = name == "warehouse" ? &out.warehouse : &out.prefix;
      if (name == "warehouse") has_warehouse = true;
      pending = std::string(value);
    } else if (eq != std::string_view::npos && name == "create") {
      finish();
      last = nullptr;
      if (value == "true" || value == "1")
        out.create = true;
      else if (value == "false" || value == "0")
        out.create = false;
      else
        throw std::runtime_error("storage aws: create=" + std::string(value) +
                                 ": expected true or false");
    } else if (last == &out.warehouse) {
      // The warehouse URL's own query string (postgres://...?a=b&c=d).
      pending += '&';
      pending += part;
    } else {
      throw std::runtime_error("storage aws: unknown parameter '" + std::string(name) +
                               "' (expected warehouse=URL, create=false, prefix=NAME)");
    }
  }
  finish();
  if (!has_warehouse || out.warehouse.empty())
    throw std::runtime_error(
        "storage aws: needs warehouse=URL, the store of the warehouse tables (e.g. "
        "aws:?warehouse=sqlite:cascade.db or aws:?warehouse=postgres://host/db)");
  if (out.warehouse.starts_with("aws:"))
    throw std::runtime_error("storage aws: the warehouse cannot itself be an aws: storage");
  for (char c : out.prefix)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      throw std::runtime_error("storage aws: prefix '" + out.prefix +
                               "': only letters, digits, '-' and '_' (SQS and DynamoDB names)");
  return out;
}

std::unique_ptr<Store> open_aws_store(std::string_view url, Clock& clock, StoreOptions options,
                                      std::optional<AwsConfig> config, QueueFactory queues) {
  AwsStorageUrl parsed = parse_aws_url(url);
  StoreOptions inner_options = options;
  // The queues are SQS's: the warehouse store claims none.
  inner_options.claim_consumer = false;
  std::unique_ptr<Store> inner = open_store(parsed.warehouse, clock, inner_options);
  auto store = std::make_unique<AwsStore>(std::move(parsed), std::move(inner), clock,
                                          std::move(config), std::move(queues));
  store->read_only_ = options.read_only;
  return store;
}

void register_aws_storage() {
  register_store_scheme("aws:", &open_registered);
}

size_t settle_aws_store(Store& store, const StreamReadOptions& options) {
  auto* aws = dynamic_cast<AwsStore*>(&store);
  if (!aws) throw std::runtime_error("not an aws: storage");
  return aws->read_streams(options);
}

}  // namespace cascade::aws
