#include "aws/dynamo_item.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/json.h"

namespace cascade::aws {
namespace {

bool is_meta(std::string_view name) {
  for (auto m : {kItemHash, kItemScope, kItemRunId, kItemChangedAt, kItemValidFrom, kItemDeletedAt,
                 kItemBig, kItemJson, kItemRange})
    if (name == m) return true;
  return false;
}

// Whether every number inside `v` fits a DynamoDB number.
bool all_fit(const Value& v) {
  if (v.is_number()) return fits_dynamo_number(number_text(v));
  if (v.is_array()) {
    for (const auto& x : v.as_array())
      if (!all_fit(x)) return false;
  } else if (v.is_object()) {
    for (const auto& [k, x] : v.as_object())
      if (!all_fit(x)) return false;
  }
  return true;
}

void append_plain(const Value& v, std::string& out) {
  switch (v.type()) {
    case Value::Type::Null:
      out += R"({"NULL":true})";
      return;
    case Value::Type::Bool:
      out += v.as_bool() ? R"({"BOOL":true})" : R"({"BOOL":false})";
      return;
    case Value::Type::Int:
    case Value::Type::Double:
    case Value::Type::Decimal:
      out += R"({"N":")";
      out += number_text(v);
      out += "\"}";
      return;
    case Value::Type::String:
      out += R"({"S":)";
      append_json_string(v.as_string(), out);
      out += '}';
      return;
    case Value::Type::Array: {
      out += R"({"L":[)";
      bool first = true;
      for (const auto& x : v.as_array()) {
        if (!first) out += ',';
        first = false;
        append_plain(x, out);
      }
      out += "]}";
      return;
    }
    case Value::Type::Object: {
      out += R"({"M":{)";
      bool first = true;
      for (const auto& [k, x] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        append_json_string(k, out);
        out += ':';
        append_plain(x, out);
      }
      out += "}}";
      return;
    }
  }
}

std::vector<std::string> names_of(const Value* list) {
  std::vector<std::string> out;
  if (!list) return out;
  const Value* l = list->find("L");
  if (!l || !l->is_array()) return out;
  for (const auto& x : l->as_array())
    if (const Value* s = x.find("S"); s && s->is_string()) out.push_back(s->as_string());
  return out;
}

}  // namespace

bool fits_dynamo_number(std::string_view t) {
  if (t.starts_with('-')) t.remove_prefix(1);
  long exp = 0;
  if (size_t e = t.find_first_of("eE"); e != std::string_view::npos) {
    try {
      exp = std::stol(std::string(t.substr(e + 1)));
    } catch (const std::exception&) {
      return false;
    }
    t = t.substr(0, e);
  }
  std::string digits;
  long int_digits = -1;  // digits before the point
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '.')
      int_digits = static_cast<long>(digits.size());
    else
      digits += t[i];
  }
  if (int_digits < 0) int_digits = static_cast<long>(digits.size());
  size_t lead = digits.find_first_not_of('0');
  if (lead == std::string::npos) return true;  // zero
  size_t trail = digits.find_last_not_of('0');
  size_t significant = trail - lead + 1;
  if (significant > 38) return false;
  // The decimal exponent of the leading significant digit.
  long magnitude = int_digits - static_cast<long>(lead) - 1 + exp;
  return magnitude <= 125 && magnitude >= -130;
}

std::string number_text(const Value& v) {
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_decimal()) return v.as_decimal();
  std::string out;
  append_canonical_number(v.as_double(), out);
  return out;
}

void append_attribute(const Value& v, std::string& out, bool* big, bool* json) {
  if (v.is_number() && !fits_dynamo_number(number_text(v))) {
    out += R"({"S":")";
    out += number_text(v);
    out += "\"}";
    *big = true;
    return;
  }
  if ((v.is_array() || v.is_object()) && !all_fit(v)) {
    out += R"({"S":)";
    append_json_string(canonical_json(v), out);
    out += '}';
    *json = true;
    return;
  }
  append_plain(v, out);
}

Value from_attribute(const Value& av) {
  if (!av.is_object() || av.as_object().size() != 1)
    throw std::runtime_error("not a DynamoDB attribute value: " + canonical_json(av));
  const auto& [type, v] = av.as_object().front();
  if (type == "S" && v.is_string()) return v;
  if (type == "N" && v.is_string()) {
    Value n = number_from_token(v.as_string());
    if (n.is_null()) throw std::runtime_error("not a number: " + v.as_string());
    return n;
  }
  if (type == "BOOL" && v.is_bool()) return v;
  if (type == "NULL") return Value();
  if (type == "L" && v.is_array()) {
    Array a;
    a.reserve(v.as_array().size());
    for (const auto& x : v.as_array()) a.push_back(from_attribute(x));
    return Value(std::move(a));
  }
  if (type == "M" && v.is_object()) {
    Object o;
    o.reserve(v.as_object().size());
    for (const auto& [k, x] : v.as_object()) o.emplace_back(k, from_attribute(x));
    return Value(std::move(o));
  }
  throw std::runtime_error("DynamoDB attribute of a type cascade does not write: " + type);
}

Value row_from_item(const Value& item) {
  std::vector<std::string> big = names_of(item.find(kItemBig));
  std::vector<std::string> json = names_of(item.find(kItemJson));
  Object row;
  row.reserve(item.as_object().size());
  for (const auto& [name, av] : item.as_object()) {
    if (is_meta(name)) continue;
    Value v = from_attribute(av);
    if (v.is_string()) {
      if (std::find(big.begin(), big.end(), name) != big.end()) {
        Value n = number_from_token(v.as_string());
        if (!n.is_null()) v = std::move(n);
      } else if (std::find(json.begin(), json.end(), name) != json.end()) {
        v = parse_json(v.as_string());
      }
    }
    row.emplace_back(name, std::move(v));
  }
  return Value(std::move(row));
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += kB64[n >> 18];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += kB64[n & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint32_t(uint8_t(in[i])) << 16;
    out += kB64[n >> 18];
    out += kB64[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8);
    out += kB64[n >> 18];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) throw std::runtime_error("not base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace cascade::aws
