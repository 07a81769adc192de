#include "engine/select.h"

#include <fmt/format.h>
#include <simdjson.h>

#include "core/error.h"
#include "core/json_simd.h"

namespace cascade {

namespace od = simdjson::ondemand;

std::string excerpt(std::string_view body, size_t max) {
  std::string out;
  for (size_t i = 0; i < body.size() && out.size() < max; ++i) {
    unsigned char c = static_cast<unsigned char>(body[i]);
    if (c == '\n' || c == '\r' || c == '\t')
      out.push_back(' ');
    else if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(static_cast<char>(c));
  }
  if (body.size() > max) out += "...";
  return out;
}

static const char* json_type_name(od::json_type t) {
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "?";
}

size_t select_records(std::string& body, std::string_view path,
                      const std::function<void(Value&&)>& fn) {
  thread_local od::parser parser;
  size_t len = body.size();
  if (body.capacity() < len + simdjson::SIMDJSON_PADDING)
    body.reserve(len + simdjson::SIMDJSON_PADDING);
  size_t count = 0;
  std::string walked;
  const char* where = "response";
  od::document doc;
  bool started = false;  // current_location() is only safe on a document that began iterating
  try {
    doc = parser.iterate(body.data(), len, body.capacity());
    started = true;
    auto emit_from = [&](od::value v) {
      od::json_type t = v.type();
      if (t == od::json_type::array) {
        size_t index = 0;
        for (auto el : v.get_array()) {
          od::value item = el.value();
          if (item.type() != od::json_type::object)
            throw DataError(fmt::format("record {} at '{}' is {}, expected an object", index,
                                        path.empty() ? "(root)" : path,
                                        json_type_name(item.type())));
          fn(from_ondemand(item));
          ++count;
          ++index;
        }
      } else if (t == od::json_type::object) {
        fn(from_ondemand(v));
        ++count;
      } else {
        throw DataError(fmt::format("'{}' is {}, expected an array of records or an object",
                                    path.empty() ? "(root)" : path, json_type_name(t)));
      }
    };
    if (path.empty()) {
      od::json_type t = doc.type();
      if (t != od::json_type::array && t != od::json_type::object)
        throw DataError(
            fmt::format("the response is {}, expected an array or an object", json_type_name(t)));
      emit_from(doc.get_value());
    } else {
      od::value cur = doc.get_value();
      std::string_view rest = path;
      while (true) {
        size_t dot = rest.find('.');
        std::string_view seg = rest.substr(0, dot);
        if (cur.type() != od::json_type::object)
          throw DataError(fmt::format("'{}' is {}, expected an object containing '{}'",
                                      walked.empty() ? "(root)" : walked,
                                      json_type_name(cur.type()), seg));
        auto field = cur.find_field_unordered(seg);
        if (field.error() == simdjson::NO_SUCH_FIELD)
          throw DataError(fmt::format("records path '{}' not found: '{}' has no field '{}'", path,
                                      walked.empty() ? "(root)" : walked, seg));
        od::value next = field.value();
        if (!walked.empty()) walked.push_back('.');
        walked.append(seg);
        cur = next;
        if (dot == std::string_view::npos) break;
        rest = rest.substr(dot + 1);
      }
      if (cur.type() == od::json_type::null)
        throw DataError(
            fmt::format("records path '{}' is null, expected an array of records", path));
      emit_from(cur);
    }
    // On-demand parsing stops where the records end. Skim the rest so that a body cut short
    // after its records (or followed by junk) is refused, not taken for a complete response
    // whose missing records would then look deleted.
    if (auto rest = doc.raw_json(); rest.error()) throw simdjson::simdjson_error(rest.error());
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS)
      throw simdjson::simdjson_error(simdjson::TRAILING_CONTENT);
    (void)where;
  } catch (const simdjson::simdjson_error& e) {
    // Where the parser stood when it gave up, and the bytes around it, so a person can see it.
    std::string at;
    const char* loc = nullptr;
    if (started && doc.current_location().get(loc) == simdjson::SUCCESS && loc >= body.data() &&
        loc <= body.data() + len) {
      size_t offset = static_cast<size_t>(loc - body.data());
      size_t from = offset > 40 ? offset - 40 : 0;
      at = fmt::format(
          " near byte {} ({})", offset,
          excerpt(std::string_view(body).substr(from, std::min<size_t>(80, len - from)), 80));
    }
    throw DataError(fmt::format("malformed JSON ({}){} in a {}-byte body: {}",
                                simdjson::error_message(e.error()), at, len,
                                excerpt(std::string_view(body).substr(0, len))));
  }
  return count;
}

}  // namespace cascade
