#include "core/json.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/json_simd.h"

namespace cascade {

namespace od = simdjson::ondemand;

// Containers nested deeper than this are refused: materialising and later destroying or
// printing a Value recurses once per level, so an unbounded depth from an API response would
// overflow the stack (found by fuzz/records_fuzz). Below simdjson's DOM limit (1024), so the
// canonical JSON of any accepted record parses back with parse_json.
constexpr int kMaxDepth = 1000;

static Value scalar_or_container(od::value v, int depth);

Value from_ondemand(od::value v) {
  return scalar_or_container(v, 0);
}

// Exactness over speed only where it matters: integers that fit and short decimals take the
// fast path; anything longer is decided from the token text (number_from_token).
static Value number_value(od::value v) {
  std::string_view tok = v.raw_json_token();
  while (!tok.empty() &&
         (tok.back() == ' ' || tok.back() == '\n' || tok.back() == '\r' || tok.back() == '\t'))
    tok.remove_suffix(1);
  bool integral = tok.find_first_of(".eE") == std::string_view::npos;
  if (integral && tok.size() <= 18) {
    int64_t i;
    if (!v.get_int64().get(i)) return Value(i);
  } else if (!integral && tok.size() <= 16) {
    // At most 15 significant digits: the double is exact, and below 2^53 so is an integral one.
    double d;
    // A short token may still carry an exponent no double holds (1e-400 parses as 0): only
    // normal, non-zero doubles take this path.
    if (!v.get_double().get(d) && d != 0 && std::fabs(d) >= 1e-290 && std::fabs(d) <= 1e290) {
      if (d != std::trunc(d)) return Value(d);
      if (std::fabs(d) < 9007199254740992.0) return Value(static_cast<int64_t>(d));
    }
  }
  Value n = number_from_token(tok);
  if (n.is_null()) throw simdjson::simdjson_error(simdjson::NUMBER_ERROR);
  return n;
}

static Value scalar_or_container(od::value v, int depth) {
  od::json_type type = v.type();
  if ((type == od::json_type::array || type == od::json_type::object) && ++depth > kMaxDepth)
    throw simdjson::simdjson_error(simdjson::DEPTH_ERROR);
  switch (type) {
    case od::json_type::null:
      if (!v.is_null()) throw simdjson::simdjson_error(simdjson::INCORRECT_TYPE);
      return Value();
    case od::json_type::boolean:
      return Value(bool(v.get_bool()));
    case od::json_type::number:
      return number_value(v);
    case od::json_type::string:
      return Value(std::string_view(v.get_string()));
    case od::json_type::array: {
      Array a;
      for (auto el : v.get_array()) a.push_back(scalar_or_container(el.value(), depth));
      return Value(std::move(a));
    }
    case od::json_type::object: {
      Object o;
      for (auto field : v.get_object()) {
        std::string_view key = field.unescaped_key();
        o.emplace_back(std::string(key), scalar_or_container(field.value(), depth));
      }
      return Value(std::move(o));
    }
  }
  throw simdjson::simdjson_error(simdjson::INCORRECT_TYPE);
}

Value parse_json(std::string_view text) {
  // The on-demand parser sees each number's text, which exact numbers need. Wrapping the
  // document in brackets makes a scalar root an ordinary element, and anything after the one
  // value (trailing content) fails the parse or is caught by at_end().
  thread_local od::parser parser;
  std::string wrapped;
  wrapped.reserve(text.size() + 2 + simdjson::SIMDJSON_PADDING);
  wrapped += '[';
  wrapped += text;
  wrapped += ']';
  size_t len = wrapped.size();
  wrapped.append(simdjson::SIMDJSON_PADDING, ' ');
  try {
    od::document doc = parser.iterate(wrapped.data(), len, wrapped.size());
    Value out;
    size_t n = 0;
    for (auto el : doc.get_array()) {
      if (n++) throw JsonError("trailing content after the JSON value", 0);
      out = scalar_or_container(el.value(), 0);
    }
    if (n == 0) throw JsonError("no JSON value", 0);
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS)
      throw JsonError("trailing content after the JSON value", 0);
    return out;
  } catch (const simdjson::simdjson_error& e) {
    throw JsonError(e.what(), 0);
  }
}

void append_json_string(std::string_view s, std::string& out) {
  out.push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

namespace {

// Appends what fmt's "{}" spells, through a stack buffer: a back_inserter into a std::string
// appends one character at a time.
template <class T>
void append_formatted(T v, std::string& out) {
  fmt::memory_buffer buf;
  fmt::format_to(std::back_inserter(buf), "{}", v);
  out.append(buf.data(), buf.size());
}

void append_int(int64_t v, std::string& out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

void append_canonical_number(double d, std::string& out) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  if (d == std::trunc(d)) {
    if (std::fabs(d) < 9007199254740992.0) {
      append_int(static_cast<int64_t>(d), out);
    } else {
      // Digits, as number_from_token spells the same integral value read from a token.
      out += normalize_decimal(fmt::format("{}", d));
    }
    return;
  }
  append_formatted(d, out);
}

template <bool Canonical>
static void append_value(const Value& v, std::string& out) {
  switch (v.type()) {
    case Value::Type::Null:
      out += "null";
      break;
    case Value::Type::Bool:
      out += v.as_bool() ? "true" : "false";
      break;
    case Value::Type::Int:
      append_int(v.as_int(), out);
      break;
    case Value::Type::Decimal:
      out += v.as_decimal();
      break;
    case Value::Type::Double:
      if constexpr (Canonical) {
        append_canonical_number(v.as_double(), out);
      } else {
        if (std::isfinite(v.as_double())) {
          append_formatted(v.as_double(), out);
        } else {
          out += "null";
        }
      }
      break;
    case Value::Type::String:
      append_json_string(v.as_string(), out);
      break;
    case Value::Type::Array: {
      out.push_back('[');
      bool first = true;
      for (const auto& el : v.as_array()) {
        if (!first) out.push_back(',');
        first = false;
        append_value<Canonical>(el, out);
      }
      out.push_back(']');
      break;
    }
    case Value::Type::Object: {
      const Object& o = v.as_object();
      out.push_back('{');
      if constexpr (Canonical) {
        // Small objects dominate: sort pointers on the stack-ish vector, not the members.
        std::vector<const Member*> order;
        order.reserve(o.size());
        for (const auto& m : o) order.push_back(&m);
        // Ties (a key repeated in one object) break by position, and only the last of them is
        // written, as JSON.parse keeps it: without that the output was not a fixed point of
        // parse + canonicalise, so equal data could hash differently (found by records_fuzz).
        std::sort(order.begin(), order.end(), [](const Member* a, const Member* b) {
          int c = a->first.compare(b->first);
          return c < 0 || (c == 0 && a < b);
        });
        bool first = true;
        for (size_t i = 0; i < order.size(); ++i) {
          if (i + 1 < order.size() && order[i + 1]->first == order[i]->first) continue;
          if (!first) out.push_back(',');
          first = false;
          append_json_string(order[i]->first, out);
          out.push_back(':');
          append_value<Canonical>(order[i]->second, out);
        }
      } else {
        bool first = true;
        for (const auto& [k, val] : o) {
          if (!first) out.push_back(',');
          first = false;
          append_json_string(k, out);
          out.push_back(':');
          append_value<Canonical>(val, out);
        }
      }
      out.push_back('}');
      break;
    }
  }
}

void append_canonical_json(const Value& v, std::string& out) {
  append_value<true>(v, out);
}
std::string canonical_json(const Value& v) {
  std::string out;
  append_canonical_json(v, out);
  return out;
}
void append_json(const Value& v, std::string& out) {
  append_value<false>(v, out);
}
std::string to_json(const Value& v) {
  std::string out;
  append_json(v, out);
  return out;
}

}  // namespace cascade
