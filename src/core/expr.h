// Expr: a compiled filter expression (a stage's `where:`), evaluated once per record.
// Immutable after parse(); eval() is const, allocation-free and safe from many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.h"

namespace cascade {

// An expression that cannot be parsed; `offset` is the byte offset into the expression text.
struct ExprError : std::runtime_error {
  ExprError(size_t off, const std::string& what) : std::runtime_error(what), offset(off) {}
  size_t offset;
};

class Expr {
 public:
  // Grammar: `or`/`||`, `and`/`&&`, `not`/`!`, parentheses, `== != < <= > >=`, `in [..]`,
  // `not in [..]`, literals ("str", 'str', 12, -1.5, true, false, null) and operands that are
  // dotted record paths (`address.city`, optionally `record.` prefixed) or `message.x`.
  // Throws ExprError with the offset of the offending token.
  static Expr parse(std::string_view text);

  // Missing fields are null; numbers compare by value; a string never equals a number;
  // ordering across types is false; strings order bytewise. A bare operand is truthy when
  // present and not null/false/0/"". Never throws.
  bool eval(const Value& record, const Value& message) const;

  // Record fields the expression reads (dotted, without `record.`), in order, without repeats.
  std::vector<std::string> record_paths() const;
  // Message parameters it reads (dotted, without `message.`), same order rules.
  std::vector<std::string> message_paths() const;
  const std::string& text() const { return text_; }

 private:
  enum class Op : uint8_t {
    Literal,
    RecordPath,
    MessagePath,  // operands
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,  // comparisons: a, b (In: b is a list literal)
    And,
    Or,
    Not,
    Truthy,
  };
  struct Node {
    Op op;
    int a = -1, b = -1;  // child node indices
    Value literal;       // Literal (In/NotIn: an array)
    std::string path;    // RecordPath / MessagePath
  };
  friend class ExprParser;

  std::vector<std::string> paths(Op kind) const;
  const Value* operand(int i, const Value& record, const Value& message) const;
  bool eval_node(int i, const Value& record, const Value& message) const;

  std::string text_;
  std::vector<Node> nodes_;
  int root_ = -1;
};

}  // namespace cascade
