#include "core/expr.h"

#include <charconv>
#include <cstring>

namespace cascade {

namespace {

enum class Tok {
  End,
  Ident,
  String,
  Number,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Comma,
  Cmp,
  And,
  Or,
  Not
};

struct Token {
  Tok kind = Tok::End;
  size_t pos = 0;
  std::string_view text;  // as written
  std::string str;        // decoded string literal
};

bool ident_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool ident_char(char c) {
  return ident_start(c) || (c >= '0' && c <= '9');
}
bool digit(char c) {
  return c >= '0' && c <= '9';
}

std::string describe(const Token& t) {
  if (t.kind == Tok::End) return "the end of the expression";
  return "'" + std::string(t.text) + "'";
}

}  // namespace

class ExprParser {
 public:
  ExprParser(std::string_view text, Expr& out) : s_(text), e_(out) { next(); }

  int parse() {
    int root = parse_or();
    if (tok_.kind != Tok::End) {
      if (tok_.kind == Tok::RParen) throw ExprError(tok_.pos, "unmatched ')'");
      throw ExprError(tok_.pos, "unexpected " + describe(tok_) + " (expected and, or or the end)");
    }
    return root;
  }

 private:
  void next() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
    tok_ = Token{};
    tok_.pos = i_;
    if (i_ >= s_.size()) return;
    char c = s_[i_];
    auto single = [&](Tok k, size_t n) {
      tok_.kind = k;
      tok_.text = s_.substr(i_, n);
      i_ += n;
    };
    auto at = [&](size_t k) { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; };
    switch (c) {
      case '(':
        return single(Tok::LParen, 1);
      case ')':
        return single(Tok::RParen, 1);
      case '[':
        return single(Tok::LBracket, 1);
      case ']':
        return single(Tok::RBracket, 1);
      case ',':
        return single(Tok::Comma, 1);
      case '=':
        if (at(1) == '=') return single(Tok::Cmp, 2);
        throw ExprError(i_, "unexpected '=' (use '==' to compare)");
      case '!':
        return at(1) == '=' ? single(Tok::Cmp, 2) : single(Tok::Not, 1);
      case '<':
      case '>':
        return at(1) == '=' ? single(Tok::Cmp, 2) : single(Tok::Cmp, 1);
      case '&':
        if (at(1) == '&') return single(Tok::And, 2);
        throw ExprError(i_, "unexpected '&' (use '&&' or 'and')");
      case '|':
        if (at(1) == '|') return single(Tok::Or, 2);
        throw ExprError(i_, "unexpected '|' (use '||' or 'or')");
      case '"':
      case '\'':
        return lex_string(c);
      default:
        break;
    }
    if (digit(c) || ((c == '-' || c == '+') && (digit(at(1)) || at(1) == '.')) ||
        (c == '.' && digit(at(1)))) {
      size_t start = i_;
      ++i_;
      while (i_ < s_.size() &&
             (digit(s_[i_]) || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' ||
              ((s_[i_] == '-' || s_[i_] == '+') && (s_[i_ - 1] == 'e' || s_[i_ - 1] == 'E'))))
        ++i_;
      tok_.kind = Tok::Number;
      tok_.text = s_.substr(start, i_ - start);
      return;
    }
    if (ident_start(c)) {
      size_t start = i_;
      while (i_ < s_.size()) {
        if (ident_char(s_[i_])) {
          ++i_;
        } else if (s_[i_] == '.' && i_ + 1 < s_.size() && ident_char(s_[i_ + 1])) {
          ++i_;  // path segments after a dot may start with a digit (items.0.id)
        } else {
          break;
        }
      }
      tok_.text = s_.substr(start, i_ - start);
      if (tok_.text == "and")
        tok_.kind = Tok::And;
      else if (tok_.text == "or")
        tok_.kind = Tok::Or;
      else if (tok_.text == "not")
        tok_.kind = Tok::Not;
      else
        tok_.kind = Tok::Ident;
      return;
    }
    throw ExprError(i_, std::string("unexpected character '") + c + "'");
  }

  void lex_string(char quote) {
    size_t start = i_++;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) throw ExprError(start, "unterminated string");
      char c = s_[i_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) throw ExprError(start, "unterminated string");
      char e = s_[i_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
        case '"':
        case '\'':
          out += e;
          break;
        default:
          throw ExprError(i_ - 2, std::string("unknown escape '\\") + e + "'");
      }
    }
    tok_.kind = Tok::String;
    tok_.text = s_.substr(start, i_ - start);
    tok_.str = std::move(out);
  }

  int add(Expr::Node n) {
    e_.nodes_.push_back(std::move(n));
    return static_cast<int>(e_.nodes_.size() - 1);
  }

  int parse_or() {
    int left = parse_and();
    while (tok_.kind == Tok::Or) {
      Token op = tok_;
      next();
      int right = parse_and_after(op);
      left = add({Expr::Op::Or, left, right, {}, {}});
    }
    return left;
  }

  int parse_and_after(const Token& op) {
    if (tok_.kind == Tok::End || tok_.kind == Tok::RParen)
      throw ExprError(tok_.pos, "expected a condition after '" + std::string(op.text) + "'");
    return parse_and();
  }

  int parse_and() {
    int left = parse_not();
    while (tok_.kind == Tok::And) {
      Token op = tok_;
      next();
      if (tok_.kind == Tok::End || tok_.kind == Tok::RParen)
        throw ExprError(tok_.pos, "expected a condition after '" + std::string(op.text) + "'");
      int right = parse_not();
      left = add({Expr::Op::And, left, right, {}, {}});
    }
    return left;
  }

  int parse_not() {
    if (tok_.kind == Tok::Not) {
      Token op = tok_;
      next();
      if (tok_.kind == Tok::End || tok_.kind == Tok::RParen)
        throw ExprError(tok_.pos, "expected a condition after '" + std::string(op.text) + "'");
      int inner = parse_not();
      return add({Expr::Op::Not, inner, -1, {}, {}});
    }
    return parse_cmp();
  }

  int parse_cmp() {
    if (tok_.kind == Tok::LParen) {
      size_t open = tok_.pos;
      next();
      if (tok_.kind == Tok::RParen) throw ExprError(tok_.pos, "empty parentheses");
      int inner = parse_or();
      if (tok_.kind != Tok::RParen) {
        if (tok_.kind == Tok::End) throw ExprError(open, "unclosed '('");
        throw ExprError(tok_.pos, "expected ')' but found " + describe(tok_));
      }
      next();
      return inner;
    }
    int left = parse_operand(nullptr);
    if (tok_.kind == Tok::Cmp) {
      Token op = tok_;
      next();
      int right = parse_operand(&op);
      Expr::Op k = op.text == "=="   ? Expr::Op::Eq
                   : op.text == "!=" ? Expr::Op::Ne
                   : op.text == "<"  ? Expr::Op::Lt
                   : op.text == "<=" ? Expr::Op::Le
                   : op.text == ">"  ? Expr::Op::Gt
                                     : Expr::Op::Ge;
      return add({k, left, right, {}, {}});
    }
    bool negate = false;
    if (tok_.kind == Tok::Not) {
      // Only `not in` may follow an operand.
      negate = true;
      next();
      if (!(tok_.kind == Tok::Ident && tok_.text == "in"))
        throw ExprError(tok_.pos, "expected 'in' after 'not'");
    }
    if (tok_.kind == Tok::Ident && tok_.text == "in") {
      next();
      int list = parse_list();
      return add({negate ? Expr::Op::NotIn : Expr::Op::In, left, list, {}, {}});
    }
    return add({Expr::Op::Truthy, left, -1, {}, {}});
  }

  int parse_list() {
    if (tok_.kind != Tok::LBracket)
      throw ExprError(tok_.pos, "expected '[' after 'in' but found " + describe(tok_));
    next();
    Array items;
    if (tok_.kind != Tok::RBracket) {
      while (true) {
        Value v;
        if (!literal(v))
          throw ExprError(tok_.pos, "expected a literal in the list but found " + describe(tok_));
        items.push_back(std::move(v));
        next();
        if (tok_.kind == Tok::Comma) {
          next();
          continue;
        }
        if (tok_.kind == Tok::RBracket) break;
        throw ExprError(tok_.pos, "expected ',' or ']' but found " + describe(tok_));
      }
    }
    next();
    return add({Expr::Op::Literal, -1, -1, Value(std::move(items)), {}});
  }

  // Converts the current token to a literal value; false if it is not a literal.
  bool literal(Value& out) {
    if (tok_.kind == Tok::String) {
      out = Value(tok_.str);
      return true;
    }
    if (tok_.kind == Tok::Number) {
      std::string_view t = tok_.text;
      std::string_view digits = t.starts_with('+') ? t.substr(1) : t;
      int64_t iv = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), iv);
      if (ec == std::errc() && p == digits.data() + digits.size()) {
        out = Value(iv);
        return true;
      }
      double dv = 0;
      auto [p2, ec2] = std::from_chars(digits.data(), digits.data() + digits.size(), dv);
      if (ec2 == std::errc() && p2 == digits.data() + digits.size()) {
        out = Value(dv);
        return true;
      }
      throw ExprError(tok_.pos, "malformed number '" + std::string(t) + "'");
    }
    if (tok_.kind == Tok::Ident) {
      if (tok_.text == "true")
        out = Value(true);
      else if (tok_.text == "false")
        out = Value(false);
      else if (tok_.text == "null")
        out = Value();
      else
        return false;
      return true;
    }
    return false;
  }

  int parse_operand(const Token* after) {
    Value v;
    if (literal(v)) {
      next();
      return add({Expr::Op::Literal, -1, -1, std::move(v), {}});
    }
    if (tok_.kind == Tok::Ident && tok_.text != "in") {
      std::string_view path = tok_.text;
      Expr::Op k = Expr::Op::RecordPath;
      if (path.starts_with("message.")) {
        k = Expr::Op::MessagePath;
        path.remove_prefix(8);
      } else if (path.starts_with("record.")) {
        path.remove_prefix(7);
      } else if (path == "message" || path == "record") {
        throw ExprError(tok_.pos, "'" + std::string(path) + "' needs a field, as in " +
                                      std::string(path) + ".id");
      }
      next();
      return add({k, -1, -1, {}, std::string(path)});
    }
    if (after)
      throw ExprError(tok_.pos, "expected a value after '" + std::string(after->text) +
                                    "' but found " + describe(tok_));
    throw ExprError(tok_.pos, "expected a field, a value or '(' but found " + describe(tok_));
  }

  std::string_view s_;
  Expr& e_;
  size_t i_ = 0;
  Token tok_;
};

Expr Expr::parse(std::string_view text) {
  Expr e;
  e.text_ = std::string(text);
  ExprParser p(text, e);
  e.root_ = p.parse();
  return e;
}

namespace {

const Value kNull;

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::Null:
      return false;
    case Value::Type::Bool:
      return v.as_bool();
    case Value::Type::Int:
      return v.as_int() != 0;
    case Value::Type::Double:
      return v.as_double() != 0;
    case Value::Type::String:
      return !v.as_string().empty();
    default:
      return true;
  }
}

// -1, 0, 1, or 2 when the two values are not ordered (different types, or non-scalars).
int order(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int();
    double x = a.as_number(), y = b.as_number();
    if (x < y) return -1;
    if (x > y) return 1;
    return x == y ? 0 : 2;  // NaN
  }
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0;
  }
  return 2;
}

}  // namespace

const Value* Expr::operand(int i, const Value& record, const Value& message) const {
  const Node& n = nodes_[static_cast<size_t>(i)];
  const Value* v = nullptr;
  switch (n.op) {
    case Op::Literal:
      return &n.literal;
    case Op::RecordPath:
      v = record.find_path(n.path);
      break;
    case Op::MessagePath:
      v = message.find_path(n.path);
      break;
    default:
      break;
  }
  return v ? v : &kNull;
}

bool Expr::eval_node(int i, const Value& record, const Value& message) const {
  const Node& n = nodes_[static_cast<size_t>(i)];
  switch (n.op) {
    case Op::And:
      return eval_node(n.a, record, message) && eval_node(n.b, record, message);
    case Op::Or:
      return eval_node(n.a, record, message) || eval_node(n.b, record, message);
    case Op::Not:
      return !eval_node(n.a, record, message);
    case Op::Truthy:
      return truthy(*operand(n.a, record, message));
    case Op::Eq:
      return *operand(n.a, record, message) == *operand(n.b, record, message);
    case Op::Ne:
      return !(*operand(n.a, record, message) == *operand(n.b, record, message));
    case Op::Lt:
      return order(*operand(n.a, record, message), *operand(n.b, record, message)) == -1;
    case Op::Le: {
      int o = order(*operand(n.a, record, message), *operand(n.b, record, message));
      return o == -1 || o == 0;
    }
    case Op::Gt:
      return order(*operand(n.a, record, message), *operand(n.b, record, message)) == 1;
    case Op::Ge: {
      int o = order(*operand(n.a, record, message), *operand(n.b, record, message));
      return o == 1 || o == 0;
    }
    case Op::In:
    case Op::NotIn: {
      const Value& v = *operand(n.a, record, message);
      bool found = false;
      for (const Value& item : nodes_[static_cast<size_t>(n.b)].literal.as_array())
        if (v == item) {
          found = true;
          break;
        }
      return n.op == Op::In ? found : !found;
    }
    default:
      return truthy(*operand(i, record, message));
  }
}

bool Expr::eval(const Value& record, const Value& message) const {
  if (root_ < 0) return true;
  return eval_node(root_, record, message);
}

std::vector<std::string> Expr::record_paths() const {
  return paths(Op::RecordPath);
}

std::vector<std::string> Expr::message_paths() const {
  return paths(Op::MessagePath);
}

std::vector<std::string> Expr::paths(Op kind) const {
  std::vector<std::string> out;
  for (const Node& n : nodes_) {
    if (n.op != kind) continue;
    bool seen = false;
    for (const auto& p : out) seen = seen || p == n.path;
    if (!seen) out.push_back(n.path);
  }
  return out;
}

}  // namespace cascade
