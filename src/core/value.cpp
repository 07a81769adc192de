#include "core/value.h"

#include <algorithm>
#include <cmath>

#include "core/json.h"

namespace cascade {

const Value* Value::find(std::string_view name) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : as_object())
    if (k == name) return &v;
  return nullptr;
}

Value* Value::find(std::string_view name) {
  return const_cast<Value*>(static_cast<const Value*>(this)->find(name));
}

const Value* Value::find_path(std::string_view dotted) const {
  const Value* cur = this;
  while (!dotted.empty() && cur) {
    size_t dot = dotted.find('.');
    std::string_view part = dotted.substr(0, dot);
    if (cur->is_array()) {
      // A numeric segment indexes an array ("items.0.id").
      size_t idx = 0;
      bool numeric = !part.empty();
      for (char c : part) {
        if (c < '0' || c > '9')
          numeric = false;
        else
          idx = idx * 10 + static_cast<size_t>(c - '0');
      }
      cur = numeric && idx < cur->as_array().size() ? &cur->as_array()[idx] : nullptr;
    } else {
      cur = cur->find(part);
    }
    dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
  }
  return cur;
}

void Value::set(std::string_view name, Value v) {
  if (is_null()) v_ = cascade::Object{};
  if (Value* existing = find(name)) {
    *existing = std::move(v);
    return;
  }
  as_object().emplace_back(std::string(name), std::move(v));
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
    return a.as_number() == b.as_number();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::Null:
      return true;
    case Value::Type::Bool:
      return a.as_bool() == b.as_bool();
    case Value::Type::String:
      return a.as_string() == b.as_string();
    case Value::Type::Array:
      return a.as_array() == b.as_array();
    case Value::Type::Object: {
      const auto& x = a.as_object();
      const auto& y = b.as_object();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = b.find(k);
        if (!other || !(*other == v)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

std::string Value::to_text() const {
  switch (type()) {
    case Type::Null:
      return {};
    case Type::String:
      return as_string();
    default:
      return canonical_json(*this);
  }
}

const char* type_name(Value::Type t) {
  switch (t) {
    case Value::Type::Null:
      return "null";
    case Value::Type::Bool:
      return "boolean";
    case Value::Type::Int:
      return "integer";
    case Value::Type::Double:
      return "number";
    case Value::Type::String:
      return "string";
    case Value::Type::Array:
      return "array";
    case Value::Type::Object:
      return "object";
  }
  return "?";
}

}  // namespace cascade
