#include "core/template.h"

#include "core/error.h"
#include "core/json.h"

namespace cascade {

namespace {

bool is_path_char(char c) {
  // Record fields come from foreign JSON: allow anything that cannot be confused with template
  // or path syntax.
  return c != '{' && c != '}' && c != '.' && c != ' ' && c != '\t' && c != '\n' && c != '\r';
}

}  // namespace

Template Template::parse(std::string_view text) {
  Template t;
  t.text_ = std::string(text);
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) t.parts_.push_back(Part{std::move(literal), -1});
    literal.clear();
  };
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      literal += '{';
      i += 2;
    } else if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal += '}';
        i += 2;
      } else {
        throw TemplateError(i, "unmatched '}' (write '}}' for a literal brace)");
      }
    } else if (c == '{') {
      size_t close = text.find_first_of("{}", i + 1);
      if (close == std::string_view::npos || text[close] == '{')
        throw TemplateError(i, "unclosed '{' (write '{{' for a literal brace)");
      std::string_view body = text.substr(i + 1, close - i - 1);
      if (body.empty()) throw TemplateError(i, "empty reference '{}'");
      Ref ref{Ref::Scope::Message, {}, i};
      size_t body_off = i + 1;
      if (body.starts_with("record.")) {
        ref.scope = Ref::Scope::Record;
        body.remove_prefix(7);
        body_off += 7;
      } else if (body.starts_with("message.")) {
        body.remove_prefix(8);
        body_off += 8;
      } else if (body == "record" || body == "message") {
        throw TemplateError(i + 1, "'" + std::string(body) + "' needs a field, as in {" +
                                       std::string(body) + ".id}");
      }
      // Each dot-separated segment must be non-empty and free of spaces and braces.
      size_t seg_start = 0;
      for (size_t k = 0; k <= body.size(); ++k) {
        if (k == body.size() || body[k] == '.') {
          if (k == seg_start)
            throw TemplateError(body_off + k, "empty field name in reference '{" +
                                                  std::string(text.substr(i + 1, close - i - 1)) +
                                                  "}'");
          seg_start = k + 1;
        } else if (!is_path_char(body[k])) {
          throw TemplateError(body_off + k, "unexpected character in reference '{" +
                                                std::string(text.substr(i + 1, close - i - 1)) +
                                                "}'");
        }
      }
      ref.path = std::string(body);
      flush();
      t.parts_.push_back(Part{{}, static_cast<int>(t.refs_.size())});
      t.refs_.push_back(std::move(ref));
      i = close + 1;
    } else {
      literal += c;
      ++i;
    }
  }
  flush();
  return t;
}

const Value& Template::lookup(const Ref& ref, const Value& message, const Value* record) const {
  const Value* v = nullptr;
  if (ref.scope == Ref::Scope::Record) {
    if (record) v = record->find_path(ref.path);
    if (!v || v->is_null()) throw DataError("record field '" + ref.path + "' is missing");
  } else {
    v = message.find_path(ref.path);
    if (!v || v->is_null()) throw DataError("message parameter '" + ref.path + "' is missing");
  }
  return *v;
}

void append_url_encoded(std::string& out, std::string_view text) {
  static const char hex[] = "0123456789ABCDEF";
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

std::string Template::render(const Value& message, const Value* record, bool url_encode) const {
  std::string out;
  out.reserve(text_.size() + 16);
  for (const Part& p : parts_) {
    if (p.ref < 0) {
      out += p.literal;
      continue;
    }
    const Value& v = lookup(refs_[static_cast<size_t>(p.ref)], message, record);
    if (v.is_string()) {
      if (url_encode)
        append_url_encoded(out, v.as_string());
      else
        out += v.as_string();
    } else {
      std::string s = v.to_text();
      if (url_encode)
        append_url_encoded(out, s);
      else
        out += s;
    }
  }
  return out;
}

Value Template::render_value(const Value& message, const Value* record) const {
  if (is_single_ref()) return lookup(refs_[0], message, record);
  return Value(render(message, record));
}

JsonTemplate::Node JsonTemplate::build(const Value& v) {
  Node n;
  if (v.is_object()) {
    n.kind = Node::Kind::Object;
    for (const auto& [k, child] : v.as_object()) {
      n.names.push_back(k);
      n.values.push_back(build(child));
    }
  } else if (v.is_array()) {
    n.kind = Node::Kind::Array;
    for (const auto& child : v.as_array()) n.items.push_back(build(child));
  } else if (v.is_string() && v.as_string().find_first_of("{}") != std::string::npos) {
    Template t = Template::parse(v.as_string());
    for (const auto& r : t.refs())
      if (r.scope == Template::Ref::Scope::Record)
        throw TemplateError(
            r.offset,
            "a request body may only use message parameters, found '{record." + r.path + "}'");
    n.kind = Node::Kind::Tmpl;
    n.tmpl.push_back(std::move(t));
  } else {
    n.literal = v;
  }
  return n;
}

JsonTemplate JsonTemplate::parse(const Value& shape) {
  JsonTemplate t;
  t.root_ = build(shape);
  return t;
}

Value JsonTemplate::render_node(const Node& n, const Value& message) {
  switch (n.kind) {
    case Node::Kind::Literal:
      return n.literal;
    case Node::Kind::Tmpl:
      return n.tmpl.front().render_value(message, nullptr);
    case Node::Kind::Object: {
      Object o;
      o.reserve(n.names.size());
      for (size_t i = 0; i < n.names.size(); ++i)
        o.emplace_back(n.names[i], render_node(n.values[i], message));
      return Value(std::move(o));
    }
    case Node::Kind::Array: {
      Array a;
      a.reserve(n.items.size());
      for (const auto& child : n.items) a.push_back(render_node(child, message));
      return Value(std::move(a));
    }
  }
  return Value();
}

std::string JsonTemplate::render(const Value& message) const {
  return to_json(render_node(root_, message));
}

void JsonTemplate::collect(const Node& n, std::vector<const Template*>& out) {
  for (const auto& t : n.tmpl) out.push_back(&t);
  for (const auto& child : n.values) collect(child, out);
  for (const auto& child : n.items) collect(child, out);
}

std::vector<const Template*> JsonTemplate::templates() const {
  std::vector<const Template*> out;
  collect(root_, out);
  return out;
}

}  // namespace cascade
