#include "aws/sqs_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include "core/json.h"

namespace cascade::aws {
namespace {

constexpr const char* kService = "sqs";
constexpr int64_t kMaxVisibilitySeconds = 43'200;  // 12 h
constexpr int64_t kMaxDelaySeconds = 900;
constexpr int kListVisibilitySeconds = 30;
constexpr size_t kMaxHeld = 100'000;
constexpr const char* kReceiveCountAttribute = "cascade_receive_count";
constexpr const char* kSentAtAttribute = "cascade_sent_at";
// On a released copy: the receives of the messages it replaces that counted (failed tries).
constexpr const char* kPriorReceivesAttribute = "cascade_prior_receives";

std::string target(const char* action) {
  return std::string("AmazonSQS.") + action;
}

std::string quoted(std::string_view s) {
  std::string out;
  append_json_string(s, out);
  return out;
}

int64_t seconds_of(Duration d, int64_t max) {
  int64_t s =
      std::chrono::duration_cast<std::chrono::seconds>(d + std::chrono::milliseconds(999)).count();
  return std::clamp<int64_t>(s, 0, max);
}

const std::string* str(const Value& v, std::string_view name) {
  const Value* m = v.find(name);
  return m && m->is_string() ? &m->as_string() : nullptr;
}

int64_t int_attr(const Value& msg, const char* name, int64_t fallback) {
  const Value* attrs = msg.find("Attributes");
  const std::string* s = attrs ? str(*attrs, name) : nullptr;
  if (!s) return fallback;
  try {
    return std::stoll(*s);
  } catch (const std::exception&) {
    return fallback;
  }
}

const std::string* message_attr(const Value& msg, const char* name) {
  const Value* attrs = msg.find("MessageAttributes");
  const Value* a = attrs ? attrs->find(name) : nullptr;
  return a ? str(*a, "StringValue") : nullptr;
}

// `"name":{...}`, a Number message attribute as SendMessage takes it.
std::string number_attribute(const char* name, int64_t value) {
  return std::string("\"") + name + "\":{\"DataType\":\"Number\",\"StringValue\":\"" +
         std::to_string(value) + "\"}";
}

// A Number message attribute, 0 when absent or not a number.
int64_t number_attr(const Value& msg, const char* name) {
  const std::string* s = message_attr(msg, name);
  if (!s) return 0;
  try {
    return std::stoll(*s);
  } catch (const std::exception&) {
    return 0;
  }
}

bool stale_receipt(const AwsError& e) {
  return e.code == "ReceiptHandleIsInvalid" || e.code == "MessageNotInflight" ||
         e.code == "InvalidReceiptHandle";
}

void check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 76;
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  }
  if (!ok) {
    throw std::invalid_argument("SQS queue name '" + name +
                                "': expected 1 to 76 letters, digits, '-' or '_' (SQS allows 80 "
                                "and the dead-letter queue adds \"-dlq\")");
  }
}

}  // namespace

SqsQueue::SqsQueue(Client& client, SqsQueueOptions options)
    : client_(client), options_(std::move(options)) {}

std::string SqsQueue::sqs_name(std::string_view queue) const {
  return options_.prefix + std::string(queue);
}

const std::string& SqsQueue::url(std::string_view name) {
  std::string full = sqs_name(name);
  if (auto it = urls_.find(full); it != urls_.end()) return it->second;
  try {
    Value v = parse_json(
        client_.json(kService, target("GetQueueUrl"), "{\"QueueName\":" + quoted(full) + "}"));
    const std::string* u = str(v, "QueueUrl");
    if (!u) throw std::runtime_error("SQS GetQueueUrl of '" + full + "' answered no QueueUrl");
    return urls_.emplace(full, *u).first->second;
  } catch (const AwsError& e) {
    if (e.code == "QueueDoesNotExist" || e.code == "AWS.SimpleQueueService.NonExistentQueue") {
      throw std::runtime_error("SQS queue '" + full + "' does not exist" +
                               (options_.create ? std::string()
                                                : " and the storage says create=false: create "
                                                  "it (cascade aws template declares it) or drop "
                                                  "create=false"));
    }
    throw;
  }
}

void SqsQueue::create(std::string_view queue, const QueueOptions& options) {
  std::string name = sqs_name(queue);
  check_name(name);
  int64_t visibility =
      std::chrono::duration_cast<std::chrono::seconds>(options.visibility_timeout).count();
  int64_t retention = std::chrono::duration_cast<std::chrono::seconds>(options.retention).count();
  if (visibility < 0 || visibility > kMaxVisibilitySeconds)
    throw std::invalid_argument("SQS queue '" + name + "': visibility_timeout " +
                                std::to_string(visibility) + " s, SQS takes 0 to 43200 s (12 h)");
  if (retention < 60 || retention > 1'209'600)
    throw std::invalid_argument("SQS queue '" + name + "': retention " + std::to_string(retention) +
                                " s, SQS takes 60 s to 1209600 s (14 days)");
  if (options.max_receive_count < 1 || options.max_receive_count > 1000)
    throw std::invalid_argument("SQS queue '" + name + "': max_receive_count " +
                                std::to_string(options.max_receive_count) +
                                ", an SQS redrive policy takes 1 to 1000");
  std::string dlq = std::string(queue) + "-dlq";
  max_receives_[std::string(queue)] = options.max_receive_count;
  if (!options_.create) {
    url(dlq);
    url(queue);
    return;
  }
  auto ensure = [&](const std::string& full, const std::string& attributes) {
    Value v = parse_json(
        client_.json(kService, target("CreateQueue"), "{\"QueueName\":" + quoted(full) + "}"));
    const std::string* u = str(v, "QueueUrl");
    if (!u) throw std::runtime_error("SQS CreateQueue of '" + full + "' answered no QueueUrl");
    urls_[full] = *u;
    // CreateQueue refuses an existing queue whose attributes differ: they are set apart.
    client_.json(kService, target("SetQueueAttributes"),
                 "{\"QueueUrl\":" + quoted(*u) + ",\"Attributes\":{" + attributes + "}}");
    return *u;
  };
  std::string dlq_url =
      ensure(sqs_name(dlq), "\"MessageRetentionPeriod\":" + quoted(std::to_string(retention)));
  Value attrs = parse_json(
      client_.json(kService, target("GetQueueAttributes"),
                   "{\"QueueUrl\":" + quoted(dlq_url) + ",\"AttributeNames\":[\"QueueArn\"]}"));
  const Value* a = attrs.find("Attributes");
  const std::string* arn = a ? str(*a, "QueueArn") : nullptr;
  if (!arn)
    throw std::runtime_error("SQS GetQueueAttributes of '" + sqs_name(dlq) + "': no QueueArn");
  std::string redrive = "{\"deadLetterTargetArn\":" + quoted(*arn) + ",\"maxReceiveCount\":\"" +
                        std::to_string(options.max_receive_count) + "\"}";
  ensure(name, "\"VisibilityTimeout\":" + quoted(std::to_string(visibility)) +
                   ",\"MessageRetentionPeriod\":" + quoted(std::to_string(retention)) +
                   ",\"RedrivePolicy\":" + quoted(redrive));
}

void SqsQueue::send_entries(const std::string& queue_url, std::span<const std::string> entries) {
  // `entries`: the members of each SendMessageBatch entry but its Id. A batch holds 10 entries
  // and 256 KiB; the entries' JSON is at least as long as what SQS counts.
  size_t i = 0;
  while (i < entries.size()) {
    size_t end = i, bytes = 0;
    while (end < entries.size() && end - i < 10 &&
           (end == i || bytes + entries[end].size() <= kMaxBody)) {
      bytes += entries[end].size();
      ++end;
    }
    std::vector<size_t> pending;
    for (size_t k = i; k < end; ++k) pending.push_back(k);
    for (int attempt = 0; !pending.empty(); ++attempt) {
      std::string body = "{\"QueueUrl\":" + quoted(queue_url) + ",\"Entries\":[";
      for (size_t k = 0; k < pending.size(); ++k) {
        if (k) body += ',';
        body += "{\"Id\":\"" + std::to_string(pending[k]) + "\"," + entries[pending[k]] + "}";
      }
      body += "]}";
      Value v = parse_json(client_.json(kService, target("SendMessageBatch"), body));
      std::vector<size_t> retry;
      const Value* failed = v.find("Failed");
      if (failed && failed->is_array()) {
        for (const Value& f : failed->as_array()) {
          const std::string* id = str(f, "Id");
          const std::string* code = str(f, "Code");
          const Value* sender = f.find("SenderFault");
          bool sender_fault = sender && sender->is_bool() && sender->as_bool();
          if (sender_fault || attempt >= 5 || !id) {
            throw std::runtime_error("SQS SendMessageBatch refused a message: " +
                                     (code ? *code : std::string("(no code)")) +
                                     (sender_fault ? "" : " (after 6 tries)"));
          }
          retry.push_back(std::stoul(*id));
        }
      }
      pending = std::move(retry);
      if (!pending.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
    }
    i = end;
  }
}

size_t SqsQueue::send(std::string_view queue, std::span<const std::string> bodies, Duration delay) {
  for (size_t k = 0; k < bodies.size(); ++k) {
    if (bodies[k].size() > kMaxBody) {
      throw std::invalid_argument("message " + std::to_string(k) + " for queue '" +
                                  std::string(queue) + "' is " + std::to_string(bodies[k].size()) +
                                  " bytes; SQS takes at most 262144 (256 KiB)");
    }
  }
  if (bodies.empty()) return 0;
  const std::string& u = url(queue);
  std::string delay_member =
      ",\"DelaySeconds\":" + std::to_string(seconds_of(delay, kMaxDelaySeconds));
  std::vector<std::string> entries;
  entries.reserve(bodies.size());
  for (const auto& b : bodies) entries.push_back("\"MessageBody\":" + quoted(b) + delay_member);
  send_entries(u, entries);
  return bodies.size();
}

void SqsQueue::remember(const std::string& receipt, Held held) {
  held_[receipt] = std::move(held);
  held_order_.push_back(receipt);
  // Receipts of messages the engine never acknowledged (it crashed mid-message, or another
  // consumer took them over) must not pile up.
  while (held_.size() > kMaxHeld && !held_order_.empty()) {
    held_.erase(held_order_.front());
    held_order_.pop_front();
  }
  if (held_order_.size() > 2 * kMaxHeld) {
    std::deque<std::string> live;
    for (auto& r : held_order_)
      if (held_.count(r)) live.push_back(std::move(r));
    held_order_ = std::move(live);
  }
}

void SqsQueue::adopt(const ReceivedMessage& m) {
  remember(m.receipt, {m.id, m.body, m.receive_count, m.sent_at});
}

std::optional<SqsQueue::Held> SqsQueue::forget(std::string_view receipt) {
  auto it = held_.find(std::string(receipt));
  if (it == held_.end()) return std::nullopt;
  Held h = std::move(it->second);
  held_.erase(it);
  if (held_.empty()) held_order_.clear();
  return h;
}

std::vector<ReceivedMessage> SqsQueue::receive(std::string_view queue, size_t max,
                                               std::optional<Duration> visibility) {
  std::vector<ReceivedMessage> out;
  if (max == 0) return out;
  const std::string& u = url(queue);
  std::string vis;
  if (visibility)
    vis =
        ",\"VisibilityTimeout\":" + std::to_string(seconds_of(*visibility, kMaxVisibilitySeconds));
  // Each call takes at most 10; an empty answer ends it.
  for (size_t calls = 0; out.size() < max && calls <= max / 10 + 1; ++calls) {
    size_t n = std::min<size_t>(10, max - out.size());
    Value v = parse_json(client_.json(
        kService, target("ReceiveMessage"),
        "{\"QueueUrl\":" + quoted(u) + ",\"MaxNumberOfMessages\":" + std::to_string(n) + vis +
            ",\"WaitTimeSeconds\":0,\"AttributeNames\":[\"ApproximateReceiveCount\","
            "\"SentTimestamp\"],\"MessageAttributeNames\":[\"" +
            kPriorReceivesAttribute + "\",\"" + kSentAtAttribute + "\"]}"));
    const Value* msgs = v.find("Messages");
    if (!msgs || !msgs->is_array() || msgs->as_array().empty()) break;
    auto max = max_receives_.find(queue);
    for (const Value& m : msgs->as_array()) {
      const std::string* id = str(m, "MessageId");
      const std::string* receipt = str(m, "ReceiptHandle");
      const std::string* body = str(m, "Body");
      if (!id || !receipt || !body) continue;
      ReceivedMessage r;
      r.id = *id;
      r.receipt = *receipt;
      r.body = *body;
      r.receive_count = static_cast<int>(int_attr(m, "ApproximateReceiveCount", 1)) +
                        static_cast<int>(number_attr(m, kPriorReceivesAttribute));
      int64_t first = number_attr(m, kSentAtAttribute);
      r.sent_at = TimePoint(Duration(first > 0 ? first : int_attr(m, "SentTimestamp", 0)));
      remember(r.receipt, {r.id, r.body, r.receive_count, r.sent_at});
      // SQS's redrive counts only the receives of this copy; the ones carried over are
      // counted here, as the Queue contract counts them.
      if (max != max_receives_.end() && r.receive_count > max->second) {
        dead_letter(queue, r.receipt,
                    "received " + std::to_string(r.receive_count) +
                        " times, more than max_receive_count (" + std::to_string(max->second) +
                        "); SQS keeps no message's last error");
        continue;
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

bool SqsQueue::remove(std::string_view queue, std::string_view receipt) {
  const std::string& u = url(queue);
  forget(receipt);
  try {
    client_.json(kService, target("DeleteMessage"),
                 "{\"QueueUrl\":" + quoted(u) + ",\"ReceiptHandle\":" + quoted(receipt) + "}");
    return true;
  } catch (const AwsError& e) {
    if (stale_receipt(e)) return false;
    throw;
  }
}

bool SqsQueue::change_visibility(std::string_view queue, std::string_view receipt, Duration timeout,
                                 std::string_view /*error*/) {
  const std::string& u = url(queue);
  try {
    client_.json(kService, target("ChangeMessageVisibility"),
                 "{\"QueueUrl\":" + quoted(u) + ",\"ReceiptHandle\":" + quoted(receipt) +
                     ",\"VisibilityTimeout\":" +
                     std::to_string(seconds_of(timeout, kMaxVisibilitySeconds)) + "}");
    forget(receipt);
    return true;
  } catch (const AwsError& e) {
    if (stale_receipt(e)) {
      forget(receipt);
      return false;
    }
    throw;
  }
}

bool SqsQueue::release(std::string_view queue, std::string_view receipt, Duration delay) {
  auto it = held_.find(std::string(receipt));
  if (it == held_.end()) return change_visibility(queue, receipt, delay);
  const Held& h = it->second;
  // SQS cannot take back a receive: a copy that carries the receives that counted replaces
  // the message. Sent first, deleted second: a crash between leaves both (a replayed message
  // writes nothing), never neither.
  std::string entry =
      "\"MessageBody\":" + quoted(h.body) +
      ",\"DelaySeconds\":" + std::to_string(seconds_of(delay, kMaxDelaySeconds)) +
      ",\"MessageAttributes\":{" +
      number_attribute(kPriorReceivesAttribute, std::max(0, h.receive_count - 1)) + "," +
      number_attribute(kSentAtAttribute, h.sent_at.time_since_epoch().count()) + "}";
  send_entries(url(queue), std::span<const std::string>(&entry, 1));
  return remove(queue, receipt);
}

bool SqsQueue::dead_letter(std::string_view queue, std::string_view receipt,
                           std::string_view reason) {
  auto it = held_.find(std::string(receipt));
  if (it == held_.end()) return false;
  const Held& h = it->second;
  std::string why(reason.empty() ? "(no reason given)" : reason);
  if (why.size() > 4096) why.resize(4096);  // the attributes count toward the 256 KiB
  const std::string& dlq = url(std::string(queue) + "-dlq");
  std::string body = "{\"QueueUrl\":" + quoted(dlq) + ",\"MessageBody\":" + quoted(h.body) +
                     ",\"MessageAttributes\":{\"" + kReasonAttribute +
                     "\":{\"DataType\":\"String\",\"StringValue\":" + quoted(why) + "}," +
                     number_attribute(kReceiveCountAttribute, h.receive_count) + "," +
                     number_attribute(kSentAtAttribute, h.sent_at.time_since_epoch().count()) +
                     "}}";
  client_.json(kService, target("SendMessage"), body);
  // Sent first, deleted second: a crash between leaves the message in both, never in neither.
  return remove(queue, receipt);
}

QueueStats SqsQueue::stats(std::string_view queue) {
  auto attributes = [&](const std::string& u) {
    Value v = parse_json(client_.json(
        kService, target("GetQueueAttributes"),
        "{\"QueueUrl\":" + quoted(u) +
            ",\"AttributeNames\":[\"ApproximateNumberOfMessages\","
            "\"ApproximateNumberOfMessagesNotVisible\",\"ApproximateNumberOfMessagesDelayed\"]}"));
    return v;  // {"Attributes": {...}}, as int_attr reads a message
  };
  QueueStats s;
  Value q = attributes(url(queue));
  s.depth = int_attr(q, "ApproximateNumberOfMessages", 0);
  s.in_flight = int_attr(q, "ApproximateNumberOfMessagesNotVisible", 0) +
                int_attr(q, "ApproximateNumberOfMessagesDelayed", 0);
  Value d = attributes(url(std::string(queue) + "-dlq"));
  s.dlq_depth = int_attr(d, "ApproximateNumberOfMessages", 0) +
                int_attr(d, "ApproximateNumberOfMessagesNotVisible", 0) +
                int_attr(d, "ApproximateNumberOfMessagesDelayed", 0);
  return s;
}

std::vector<SqsQueue::Listed> SqsQueue::list_dlq(std::string_view queue, size_t limit,
                                                 std::map<std::string, std::string>& latest) {
  std::vector<Listed> out;
  const std::string& dlq = url(std::string(queue) + "-dlq");
  // Messages seen again (their 30 s ran out during a long listing) give nothing new: a few such
  // answers in a row, or an empty one, end it.
  int idle = 0;
  for (size_t calls = 0; out.size() < limit && idle < 3 && calls < 100'000; ++calls) {
    size_t n = std::min<size_t>(10, limit - out.size());
    Value v = parse_json(client_.json(
        kService, target("ReceiveMessage"),
        "{\"QueueUrl\":" + quoted(dlq) + ",\"MaxNumberOfMessages\":" + std::to_string(n) +
            ",\"VisibilityTimeout\":" + std::to_string(kListVisibilitySeconds) +
            ",\"WaitTimeSeconds\":1,\"AttributeNames\":[\"ApproximateReceiveCount\","
            "\"SentTimestamp\"],\"MessageAttributeNames\":[\"All\"]}"));
    const Value* msgs = v.find("Messages");
    if (!msgs || !msgs->is_array() || msgs->as_array().empty()) break;
    bool fresh = false;
    for (const Value& m : msgs->as_array()) {
      const std::string* id = str(m, "MessageId");
      const std::string* receipt = str(m, "ReceiptHandle");
      const std::string* body = str(m, "Body");
      if (!id || !receipt || !body) continue;
      bool seen = latest.count(*id) > 0;
      latest[*id] = *receipt;
      if (seen) continue;
      fresh = true;
      Listed l;
      l.receipt = *receipt;
      DeadLetter& d = l.letter;
      d.id = *id;
      d.queue = std::string(queue);
      d.body = *body;
      int64_t sent = int_attr(m, "SentTimestamp", 0);
      if (const std::string* reason = message_attr(m, kReasonAttribute)) {
        d.reason = *reason;
        const std::string* count = message_attr(m, kReceiveCountAttribute);
        const std::string* first = message_attr(m, kSentAtAttribute);
        try {
          d.receive_count = count ? std::stoi(*count) : 0;
          d.sent_at = TimePoint(Duration(first ? std::stoll(*first) : sent));
        } catch (const std::exception&) {
          d.sent_at = TimePoint(Duration(sent));
        }
        d.dead_at = TimePoint(Duration(sent));
      } else {
        d.reason =
            "moved to the dead-letter queue by SQS: received more than maxReceiveCount times";
        d.receive_count =
            static_cast<int>(std::max<int64_t>(0, int_attr(m, "ApproximateReceiveCount", 1) - 1));
        d.sent_at = TimePoint(Duration(sent));
        d.dead_at = d.sent_at;
      }
      out.push_back(std::move(l));
    }
    idle = fresh ? 0 : idle + 1;
  }
  return out;
}

void SqsQueue::make_visible(const std::string& queue_url,
                            const std::vector<std::string>& receipts) {
  for (size_t i = 0; i < receipts.size(); i += 10) {
    std::string body = "{\"QueueUrl\":" + quoted(queue_url) + ",\"Entries\":[";
    for (size_t k = i; k < std::min(receipts.size(), i + 10); ++k) {
      if (k > i) body += ',';
      body += "{\"Id\":\"" + std::to_string(k) + "\",\"ReceiptHandle\":" + quoted(receipts[k]) +
              ",\"VisibilityTimeout\":0}";
    }
    body += "]}";
    // A failed entry only means the message shows again when its 30 s end.
    client_.json(kService, target("ChangeMessageVisibilityBatch"), body);
  }
}

size_t SqsQueue::delete_batch(const std::string& queue_url,
                              const std::vector<std::string>& receipts) {
  size_t deleted = 0;
  for (size_t i = 0; i < receipts.size(); i += 10) {
    std::string body = "{\"QueueUrl\":" + quoted(queue_url) + ",\"Entries\":[";
    for (size_t k = i; k < std::min(receipts.size(), i + 10); ++k) {
      if (k > i) body += ',';
      body +=
          "{\"Id\":\"" + std::to_string(k) + "\",\"ReceiptHandle\":" + quoted(receipts[k]) + "}";
    }
    body += "]}";
    Value v = parse_json(client_.json(kService, target("DeleteMessageBatch"), body));
    if (const Value* ok = v.find("Successful"); ok && ok->is_array())
      deleted += ok->as_array().size();
  }
  return deleted;
}

std::vector<DeadLetter> SqsQueue::dead_letters(std::string_view queue, size_t limit) {
  std::map<std::string, std::string> latest;
  std::vector<Listed> listed = list_dlq(queue, limit, latest);
  std::vector<std::string> receipts;
  for (auto& [id, receipt] : latest) receipts.push_back(receipt);
  make_visible(url(std::string(queue) + "-dlq"), receipts);
  std::vector<DeadLetter> out;
  for (auto& l : listed) out.push_back(std::move(l.letter));
  std::stable_sort(out.begin(), out.end(),
                   [](const DeadLetter& a, const DeadLetter& b) { return a.sent_at < b.sent_at; });
  return out;
}

size_t SqsQueue::redrive(std::string_view queue, std::span<const std::string> ids) {
  return move_dead_letters(queue, ids, true);
}

size_t SqsQueue::purge_dead_letters(std::string_view queue, std::span<const std::string> ids) {
  return move_dead_letters(queue, ids, false);
}

size_t SqsQueue::move_dead_letters(std::string_view queue, std::span<const std::string> ids,
                                   bool to_queue) {
  std::unordered_set<std::string> wanted(ids.begin(), ids.end());
  const std::string& dlq = url(std::string(queue) + "-dlq");
  const std::string* target_url = to_queue ? &url(queue) : nullptr;
  std::map<std::string, std::string> latest;
  size_t moved = 0, found = 0;
  for (int round = 0; round < 100'000; ++round) {
    std::vector<Listed> batch = list_dlq(queue, 10, latest);
    if (batch.empty()) break;
    std::vector<std::string> entries, receipts;
    for (auto& l : batch) {
      if (!wanted.empty() && !wanted.count(l.letter.id)) continue;
      ++found;
      if (to_queue) entries.push_back("\"MessageBody\":" + quoted(l.letter.body));
      receipts.push_back(latest[l.letter.id]);
      latest.erase(l.letter.id);
    }
    // Sent first, deleted second: a crash between leaves a copy in both, never in neither.
    if (to_queue && !entries.empty()) send_entries(*target_url, entries);
    moved += delete_batch(dlq, receipts);
    if (!wanted.empty() && found >= wanted.size()) break;
  }
  std::vector<std::string> rest;
  for (auto& [id, receipt] : latest) rest.push_back(receipt);
  make_visible(dlq, rest);
  return moved;
}

size_t SqsQueue::release_in_flight(std::string_view /*queue*/) {
  return 0;
}

}  // namespace cascade::aws
