#include "aws/dynamo_unit.h"

#include <stdexcept>
#include <unordered_set>

#include "core/error.h"

namespace cascade::aws {

void UnitOfWork::begin() {
  if (active_) throw std::logic_error("nested unit of work");
  clear();
  active_ = true;
}

void UnitOfWork::clear() {
  items_.clear();
  listings_.clear();
  sends_.clear();
  acks_.clear();
  item_overlay_.clear();
  record_overlay_.clear();
  undo_.clear();
  mark_.reset();
}

void UnitOfWork::run_writes(std::vector<Write>& writes) {
  // Writes of distinct items go concurrently; a second write of an item waits for the next
  // round, so each item's writes land in their order.
  size_t i = 0;
  while (i < writes.size()) {
    std::unordered_set<std::string_view> seen;
    std::string op = writes[i].op;
    std::vector<std::string> bodies;
    size_t j = i;
    for (; j < writes.size() && writes[j].op == op && seen.insert(writes[j].identity).second; ++j)
      bodies.push_back(std::move(writes[j].body));
    std::vector<Outcome> out = tables_.client().json_many(kDynamo, std::string(kDynamoTarget) + op,
                                                          std::span<const std::string>(bodies));
    for (const auto& o : out) {
      if (o.ok()) continue;
      // The stored item already holds this content (a replay), or is not what the deletion
      // expected: nothing to write, as intended.
      if (o.error->code == "ConditionalCheckFailedException") continue;
      throw StorageError("DynamoDB " + op + " failed: " + o.error->code + ": " + o.error->what());
    }
    i = j;
  }
}

void UnitOfWork::commit() {
  if (!active_) throw std::logic_error("commit without begin");
  try {
    run_writes(items_);
    run_writes(listings_);
    for (auto& f : sends_) f();
    for (auto& f : acks_) f();
  } catch (...) {
    clear();
    active_ = false;
    throw;
  }
  clear();
  active_ = false;
}

void UnitOfWork::rollback() {
  clear();
  active_ = false;
}

void UnitOfWork::savepoint() {
  if (mark_) throw std::logic_error("nested savepoint");
  mark_ = Mark{items_.size(), listings_.size(), sends_.size(), acks_.size(), undo_.size()};
}

void UnitOfWork::release_savepoint() {
  mark_.reset();
}

void UnitOfWork::rollback_to_savepoint() {
  if (!mark_) throw std::logic_error("no savepoint");
  items_.resize(mark_->items);
  listings_.resize(mark_->listings);
  sends_.resize(mark_->sends);
  acks_.resize(mark_->acks);
  while (undo_.size() > mark_->undo) {
    undo_.back()();
    undo_.pop_back();
  }
  mark_.reset();
}

void UnitOfWork::write_item(std::string_view op, std::string body, std::string identity) {
  items_.push_back({std::string(op), std::move(body), std::move(identity)});
  if (!active_) {
    std::vector<Write> now = std::move(items_);
    items_.clear();
    run_writes(now);
  }
}

void UnitOfWork::write_listing(std::string_view op, std::string body, std::string identity) {
  listings_.push_back({std::string(op), std::move(body), std::move(identity)});
  if (!active_) {
    std::vector<Write> now = std::move(listings_);
    listings_.clear();
    run_writes(now);
  }
}

void UnitOfWork::queue_send(std::function<void()> fn) {
  if (!active_) return fn();
  sends_.push_back(std::move(fn));
}

void UnitOfWork::queue_ack(std::function<void()> fn) {
  if (!active_) return fn();
  acks_.push_back(std::move(fn));
}

const ItemState* UnitOfWork::item(const std::string& identity) const {
  auto it = item_overlay_.find(identity);
  return it == item_overlay_.end() ? nullptr : &it->second;
}

void UnitOfWork::set_item(const std::string& identity, const ItemState& s) {
  if (!active_) return;
  auto it = item_overlay_.find(identity);
  if (it == item_overlay_.end()) {
    item_overlay_.emplace(identity, s);
    undo_.push_back([this, identity] { item_overlay_.erase(identity); });
  } else {
    ItemState before = it->second;
    it->second = s;
    undo_.push_back([this, identity, before] { item_overlay_[identity] = before; });
  }
}

const std::optional<std::string>* UnitOfWork::record(const std::string& name) const {
  auto it = record_overlay_.find(name);
  return it == record_overlay_.end() ? nullptr : &it->second;
}

void UnitOfWork::set_record(const std::string& name, std::optional<std::string> value) {
  if (!active_) return;
  auto it = record_overlay_.find(name);
  if (it == record_overlay_.end()) {
    record_overlay_.emplace(name, std::move(value));
    undo_.push_back([this, name] { record_overlay_.erase(name); });
  } else {
    std::optional<std::string> before = std::move(it->second);
    it->second = std::move(value);
    undo_.push_back([this, name, before = std::move(before)] { record_overlay_[name] = before; });
  }
}

std::vector<std::pair<std::string, std::optional<std::string>>> UnitOfWork::records_with(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  for (const auto& [name, v] : record_overlay_)
    if (std::string_view(name).starts_with(prefix)) out.emplace_back(name, v);
  return out;
}

// --- BufferedQueue ---

void BufferedQueue::create(std::string_view queue, const QueueOptions& options) {
  inner_.create(queue, options);
}

size_t BufferedQueue::send(std::string_view queue, std::span<const std::string> bodies,
                           Duration delay) {
  if (bodies.empty()) return 0;
  unit_.queue_send([this, q = std::string(queue),
                    b = std::vector<std::string>(bodies.begin(), bodies.end()),
                    delay] { inner_.send(q, b, delay); });
  return bodies.size();
}

std::vector<ReceivedMessage> BufferedQueue::receive(std::string_view queue, size_t max,
                                                    std::optional<Duration> visibility) {
  return inner_.receive(queue, max, visibility);
}

bool BufferedQueue::remove(std::string_view queue, std::string_view receipt) {
  unit_.queue_ack(
      [this, q = std::string(queue), r = std::string(receipt)] { inner_.remove(q, r); });
  return true;
}

bool BufferedQueue::change_visibility(std::string_view queue, std::string_view receipt,
                                      Duration timeout, std::string_view error) {
  unit_.queue_ack([this, q = std::string(queue), r = std::string(receipt), timeout,
                   e = std::string(error)] { inner_.change_visibility(q, r, timeout, e); });
  return true;
}

bool BufferedQueue::release(std::string_view queue, std::string_view receipt, Duration delay) {
  unit_.queue_ack([this, q = std::string(queue), r = std::string(receipt), delay] {
    inner_.release(q, r, delay);
  });
  return true;
}

bool BufferedQueue::dead_letter(std::string_view queue, std::string_view receipt,
                                std::string_view reason) {
  unit_.queue_ack([this, q = std::string(queue), r = std::string(receipt),
                   why = std::string(reason)] { inner_.dead_letter(q, r, why); });
  return true;
}

QueueStats BufferedQueue::stats(std::string_view queue) {
  return inner_.stats(queue);
}

std::vector<DeadLetter> BufferedQueue::dead_letters(std::string_view queue, size_t limit) {
  return inner_.dead_letters(queue, limit);
}

size_t BufferedQueue::redrive(std::string_view queue, std::span<const std::string> ids) {
  return inner_.redrive(queue, ids);
}

size_t BufferedQueue::purge_dead_letters(std::string_view queue, std::span<const std::string> ids) {
  return inner_.purge_dead_letters(queue, ids);
}

size_t BufferedQueue::release_in_flight(std::string_view queue) {
  return inner_.release_in_flight(queue);
}

}  // namespace cascade::aws
