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

// A JSON document with templates in it: the `body:` of a POST search request. Each string that
// holds a brace is a Template over the message; one that is exactly "{x}" becomes x's value with
// its type (a number stays a number, an object stays an object), any other renders as a string.
// Everything else is copied as it is. Immutable after parse(); render() is thread-safe.
class JsonTemplate {
 public:
  // Throws TemplateError (its offset into the offending string) for a malformed template, or one
  // that refers to a record: a request is made before there is one.
  static JsonTemplate parse(const Value& shape);
  // The JSON text. Throws DataError naming the parameter when a reference is absent or null.
  std::string render(const Value& message) const;
  // Every template in the document, in document order.
  std::vector<const Template*> templates() const;

 private:
  struct Node {
    enum class Kind { Literal, Tmpl, Object, Array } kind = Kind::Literal;
    Value literal;
    std::vector<Template> tmpl;  // one, when kind == Tmpl (a vector keeps Template default-free)
    // An object's members, as two lists: a pair holding a Node would need Node complete here.
    std::vector<std::string> names;
    std::vector<Node> values;
    std::vector<Node> items;
  };
  static Node build(const Value& v);
  static Value render_node(const Node& n, const Value& message);
  static void collect(const Node& n, std::vector<const Template*>& out);
  Node root_;
};

// Percent-encodes everything except RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
void append_url_encoded(std::string& out, std::string_view text);

}  // namespace cascade
