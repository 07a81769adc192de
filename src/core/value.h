// Value: a JSON value held in memory (records, messages, row images).
// Objects keep insertion order; canonical output sorts keys. Not thread-safe to mutate; const use
// is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cascade {

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;

// A number kept as its exact decimal text because neither int64 nor double holds it: an integer
// beyond 64 bits, or a decimal with more significant digits than a double round-trips. The text
// is normalized (see normalize_decimal), so equal numbers have equal text.
struct Decimal {
  std::string text;
  friend bool operator==(const Decimal&, const Decimal&) = default;
};

class Value {
 public:
  enum class Type : uint8_t { Null, Bool, Int, Double, String, Array, Object, Decimal };

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int v) : v_(int64_t{v}) {}
  Value(int64_t v) : v_(v) {}
  Value(double v) : v_(v) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(cascade::Array a) : v_(std::move(a)) {}
  Value(cascade::Object o) : v_(std::move(o)) {}
  Value(cascade::Decimal d) : v_(std::move(d)) {}

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::Null; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_int() const { return type() == Type::Int; }
  bool is_double() const { return type() == Type::Double; }
  bool is_decimal() const { return type() == Type::Decimal; }
  bool is_number() const { return is_int() || is_double() || is_decimal(); }
  bool is_string() const { return type() == Type::String; }
  bool is_array() const { return type() == Type::Array; }
  bool is_object() const { return type() == Type::Object; }
  bool is_scalar() const { return !is_array() && !is_object(); }

  // Accessors require the matching type (checked by std::get: throws std::bad_variant_access).
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const { return std::get<double>(v_); }
  // The normalized decimal text of a Decimal.
  const std::string& as_decimal() const { return std::get<cascade::Decimal>(v_).text; }
  // Numeric value as double for any number type (a Decimal rounds: for arithmetic, never for
  // storage).
  double as_number() const;
  const std::string& as_string() const { return std::get<std::string>(v_); }
  std::string& as_string() { return std::get<std::string>(v_); }
  const cascade::Array& as_array() const { return std::get<cascade::Array>(v_); }
  cascade::Array& as_array() { return std::get<cascade::Array>(v_); }
  const cascade::Object& as_object() const { return std::get<cascade::Object>(v_); }
  cascade::Object& as_object() { return std::get<cascade::Object>(v_); }

  // Member lookup on an object: nullptr when absent or when this is not an object. Linear; records
  // are small.
  const Value* find(std::string_view name) const;
  Value* find(std::string_view name);
  // Follows a dotted path ("result.employees"); an empty path is this value. nullptr when absent.
  const Value* find_path(std::string_view dotted) const;
  // Sets (replacing) a member; this must be an object (a null becomes an empty object first).
  void set(std::string_view name, Value v);

  // Semantic equality: numbers compare by value (1 == 1.0), objects ignore member order.
  friend bool operator==(const Value& a, const Value& b);

  // Scalar rendered as text for templates and keys: strings raw, numbers canonical, null as "".
  // Arrays and objects render as canonical JSON.
  std::string to_text() const;

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, cascade::Array, cascade::Object,
               cascade::Decimal>
      v_;
};

const char* type_name(Value::Type t);

// The normalized spelling of a JSON number token, or "" when `token` is not one: no sign for
// positives, no leading zeros, no trailing fractional zeros; an integer of up to 40 digits as
// plain digits, a fraction within 40 places as plain decimal, anything else as d.ddde[-]N. Equal
// values give equal text.
std::string normalize_decimal(std::string_view token);

// The Value for a JSON number token, by value rather than spelling: Int when the value is an
// integer that fits int64 (`1`, `1.0`, `1e16`), Decimal digits for a larger integer (`1e20`),
// Double when a double reproduces a fractional value exactly in shortest form, otherwise a
// Decimal holding its exact normalized text. Returns Null when `token` is not a JSON number or
// its written exponent exceeds 999,999,999: such a value can be neither stored exactly nor told
// apart, so the document is refused (its message is dead-lettered with the reason).
Value number_from_token(std::string_view token);

}  // namespace cascade
