#include "core/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

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

double Value::as_number() const {
  if (is_int()) return static_cast<double>(as_int());
  if (is_decimal()) return std::strtod(as_decimal().c_str(), nullptr);
  return as_double();
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_decimal() || b.is_decimal()) {
    if (a.is_decimal() && b.is_decimal()) return a.as_decimal() == b.as_decimal();
    // A computed double may hold an integral value that only a Decimal spells exactly.
    if (a.is_number() && b.is_number()) return canonical_json(a) == canonical_json(b);
    return false;
  }
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
    case Value::Type::Decimal:
      return "decimal";
  }
  return "?";
}

namespace {

// A number token split into sign, significant digits (no leading or trailing zeros) and the
// power of ten of the last digit: value = sign * digits * 10^exp.
constexpr int64_t kMaxExponent = 999'999'999;

struct Parts {
  bool negative = false;
  std::string digits;
  int64_t exp = 0;
};

bool split_number(std::string_view t, Parts& p) {
  size_t i = 0;
  if (i < t.size() && t[i] == '-') p.negative = true, ++i;
  size_t int_start = i;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  if (i == int_start) return false;
  std::string all(t.substr(int_start, i - int_start));
  int64_t frac_len = 0;
  if (i < t.size() && t[i] == '.') {
    size_t f = ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    if (i == f) return false;
    all.append(t.substr(f, i - f));
    frac_len = static_cast<int64_t>(i - f);
  }
  int64_t e = 0;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) eneg = t[i] == '-', ++i;
    size_t es = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      // An exponent is kept exactly or the token is refused: clamping it merged distinct
      // values (1e-4056789012 and 1e-40567890123456789345) into one.
      e = e * 10 + (t[i] - '0');
      if (e > kMaxExponent) return false;
      ++i;
    }
    if (i == es) return false;
    if (eneg) e = -e;
  }
  if (i != t.size()) return false;
  size_t first = all.find_first_not_of('0');
  if (first == std::string::npos) {
    p.negative = false;
    p.digits.clear();
    p.exp = 0;
    return true;
  }
  size_t last = all.find_last_not_of('0');
  p.digits = all.substr(first, last - first + 1);
  p.exp = e - frac_len + static_cast<int64_t>(all.size() - 1 - last);
  return true;
}

std::string render(const Parts& p) {
  if (p.digits.empty()) return "0";
  std::string out = p.negative ? "-" : "";
  int64_t n = static_cast<int64_t>(p.digits.size());
  if (p.exp >= 0 && n + p.exp <= 40) {
    out += p.digits;
    out.append(static_cast<size_t>(p.exp), '0');
  } else if (p.exp < 0 && -p.exp < n + 40) {
    int64_t int_len = n + p.exp;
    if (int_len > 0) {
      out.append(p.digits, 0, static_cast<size_t>(int_len));
      out += '.';
      out.append(p.digits, static_cast<size_t>(int_len));
    } else {
      out += "0.";
      out.append(static_cast<size_t>(-int_len), '0');
      out += p.digits;
    }
  } else {
    out += p.digits[0];
    if (n > 1) {
      out += '.';
      out.append(p.digits, 1);
    }
    out += 'e';
    out += std::to_string(p.exp + n - 1);
  }
  return out;
}

}  // namespace

std::string normalize_decimal(std::string_view token) {
  Parts p;
  if (!split_number(token, p)) return {};
  return render(p);
}

Value number_from_token(std::string_view token) {
  Parts p;
  if (!split_number(token, p)) return Value();
  bool integral_token = token.find_first_of(".eE") == std::string_view::npos;
  if (integral_token) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(std::string(token).c_str(), &end, 10);
    if (errno != ERANGE) return Value(int64_t{v});
    return Value(Decimal{render(p)});
  }
  // An integral value has one kind however it is spelled (1.0, 1e16, 1.5e1): Int when it fits,
  // else Decimal digits, so `1e20` and `100000000000000000000` are one key.
  if (p.exp >= 0 || p.digits.empty()) {
    if (p.digits.empty()) return Value(int64_t{0});
    if (static_cast<int64_t>(p.digits.size()) + p.exp <= 19) {
      std::string digits = (p.negative ? "-" : "") + p.digits;
      digits.append(static_cast<size_t>(p.exp), '0');
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(digits.c_str(), &end, 10);
      if (errno != ERANGE) return Value(int64_t{v});
    }
    return Value(Decimal{render(p)});
  }
  // Up to 15 significant digits always survive a double; longer ones only if the double's
  // shortest spelling is the same number.
  std::string text(token);
  char* end = nullptr;
  double d = std::strtod(text.c_str(), &end);
  if (std::isfinite(d)) {
    if (p.digits.size() <= 15 && p.exp > -300 && p.exp < 290) return Value(d);
    Parts q;
    std::string shortest = fmt::format("{}", d);
    if (split_number(shortest, q) && q.digits == p.digits && q.exp == p.exp &&
        (q.negative == p.negative || p.digits.empty()))
      return Value(d);
  }
  return Value(Decimal{render(p)});
}

}  // namespace cascade
