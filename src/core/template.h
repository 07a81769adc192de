// Template: a parsed text with {message.x} / {record.a.b} references, rendered per message or
// record. Immutable after parse(); render() is const and safe to call from many threads at once.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.h"

namespace cascade {

// A template that cannot be parsed; `offset` is the byte offset into the template text.
struct TemplateError : std::runtime_error {
  TemplateError(size_t off, const std::string& what) : std::runtime_error(what), offset(off) {}
  size_t offset;
};

class Template {
 public:
  struct Ref {
    enum class Scope { Message, Record } scope;
    std::string path;   // dotted, without the scope prefix
    size_t offset = 0;  // of its '{' in the template text, for error positions
  };

  // Parses `text`. `{name}` and `{a.b}` refer to the message, `{message.x}` too, `{record.a.b}`
  // to the record; `{{` and `}}` are literal braces. Throws TemplateError on an unclosed or
  // unmatched brace, an empty `{}` or a malformed path.
  static Template parse(std::string_view text);

  const std::string& text() const { return text_; }
  const std::vector<Ref>& refs() const { return refs_; }
  // True when the template is exactly one "{...}" and nothing else.
  bool is_single_ref() const { return parts_.size() == 1 && parts_[0].ref >= 0; }

  // Renders with values as Value::to_text(). With url_encode every substituted value is
  // percent-encoded (RFC 3986 unreserved characters kept) so it cannot change path or query
  // structure. Throws DataError naming the field when a reference is absent or null.
  std::string render(const Value& message, const Value* record, bool url_encode = false) const;

  // For is_single_ref(): the referenced value itself (its type kept). Otherwise the rendered
  // string. Same errors as render().
  Value render_value(const Value& message, const Value* record) const;

 private:
  struct Part {
    std::string literal;  // when ref < 0
    int ref = -1;         // index into refs_
  };
  const Value& lookup(const Ref& ref, const Value& message, const Value* record) const;

  std::string text_;
  std::vector<Ref> refs_;
  std::vector<Part> parts_;
};

// Percent-encodes everything except RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
void append_url_encoded(std::string& out, std::string_view text);

}  // namespace cascade
