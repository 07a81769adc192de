#include "core/expr.h"

#include <gtest/gtest.h>

#include "core/json.h"

using namespace cascade;

namespace {

bool eval(std::string_view expr, std::string_view record, std::string_view message = "{}") {
  return Expr::parse(expr).eval(parse_json(record), parse_json(message));
}

size_t error_offset(std::string_view text, std::string* msg = nullptr) {
  try {
    Expr::parse(text);
  } catch (const ExprError& e) {
    if (msg) *msg = e.what();
    return e.offset;
  }
  ADD_FAILURE() << "no ExprError for " << text;
  return SIZE_MAX;
}

}  // namespace

TEST(Expr, Comparisons) {
  const char* r = R"({"occupation": "salesperson", "n": 5, "f": 2.5, "s": "b"})";
  EXPECT_TRUE(eval(R"(occupation == "salesperson")", r));
  EXPECT_FALSE(eval(R"(occupation == 'manager')", r));
  EXPECT_TRUE(eval(R"(occupation != 'manager')", r));
  EXPECT_TRUE(eval("n == 5", r));
  EXPECT_TRUE(eval("n == 5.0", r));
  EXPECT_TRUE(eval("n < 6 && n <= 5 && n > 4 && n >= 5", r));
  EXPECT_FALSE(eval("n < 5", r));
  EXPECT_FALSE(eval("n > 5", r));
  EXPECT_TRUE(eval("f > 2 and f < 3", r));
  EXPECT_TRUE(eval("n > -1.5e1", r));
  EXPECT_TRUE(eval("s > 'a' and s < 'c' and s >= 'b' and s <= 'b'", r));
  EXPECT_TRUE(eval("'B' < 'a'", "{}"));  // bytewise
}

TEST(Expr, TypeMismatchesAndMissingFields) {
  const char* r = R"({"n": 5, "s": "5", "z": null})";
  EXPECT_FALSE(eval("s == 5", r));
  EXPECT_TRUE(eval("s != 5", r));
  EXPECT_FALSE(eval("s < 6", r));
  EXPECT_FALSE(eval("s >= 5", r));
  EXPECT_FALSE(eval("n < 'z'", r));
  EXPECT_TRUE(eval("missing == null", r));
  EXPECT_TRUE(eval("z == null", r));
  EXPECT_FALSE(eval("missing == 0", r));
  EXPECT_FALSE(eval("missing < 1", r));
  EXPECT_FALSE(eval("missing >= 1", r));
  EXPECT_FALSE(eval("missing.deeper.still == 1", r));
  EXPECT_FALSE(eval("null < null", r));
  EXPECT_FALSE(eval("true > false", r));
}

TEST(Expr, TruthinessOfBarePaths) {
  const char* r = R"({"t": true, "f": false, "zero": 0, "one": 1, "e": "", "s": "x", "n": null,
                      "a": [], "o": {}})";
  EXPECT_TRUE(eval("t", r));
  EXPECT_FALSE(eval("f", r));
  EXPECT_FALSE(eval("zero", r));
  EXPECT_TRUE(eval("one", r));
  EXPECT_FALSE(eval("e", r));
  EXPECT_TRUE(eval("s", r));
  EXPECT_FALSE(eval("n", r));
  EXPECT_FALSE(eval("missing", r));
  EXPECT_TRUE(eval("a and o", r));
  EXPECT_TRUE(eval("not f and !zero", r));
}

TEST(Expr, PrecedenceAndParentheses) {
  const char* r = R"({"a": true, "b": false, "c": true})";
  EXPECT_TRUE(eval("a or b and false", r));  // and binds tighter
  EXPECT_FALSE(eval("(a or b) and false", r));
  EXPECT_FALSE(eval("not a or b", r));  // not binds tightest
  EXPECT_TRUE(eval("not (a and b)", r));
  EXPECT_TRUE(eval("!b && (c || b)", r));
  EXPECT_TRUE(eval("not not a", r));
  EXPECT_TRUE(eval("a and not b and c", r));
}

TEST(Expr, InListsPathsAndMessage) {
  const char* r = R"({"city": "Scranton", "address": {"zip": 18503}, "items": [{"id": 9}]})";
  EXPECT_TRUE(eval("city in ['Akron', \"Scranton\"]", r));
  EXPECT_FALSE(eval("city in []", r));
  EXPECT_TRUE(eval("city not in ['Akron']", r));
  EXPECT_TRUE(eval("address.zip in [18503.0, null]", r));
  EXPECT_TRUE(eval("missing in [null]", r));
  EXPECT_TRUE(eval("record.address.zip == 18503", r));
  EXPECT_TRUE(eval("items.0.id == 9", r));
  EXPECT_TRUE(eval("message.branch_id == 3 and city == message.name", r,
                   R"({"branch_id": 3, "name": "Scranton"})"));
  EXPECT_FALSE(eval("message.branch_id == 3", r, "{}"));
  EXPECT_TRUE(eval(R"(city == "Scr\"an\\ton" or city == 'Scranton')", r));
}

TEST(Expr, PathsItReads) {
  Expr e = Expr::parse("a.b == 1 or (c and record.a.b != 2) or message.x or d in [1]");
  EXPECT_EQ(e.record_paths(), (std::vector<std::string>{"a.b", "c", "d"}));
  EXPECT_EQ(e.message_paths(), (std::vector<std::string>{"x"}));
}

TEST(Expr, ParseErrorsCarryOffsetsAndReasons) {
  std::string msg;
  EXPECT_EQ(error_offset("occupation ==", &msg), 13u);
  EXPECT_NE(msg.find("expected a value after '=='"), std::string::npos) << msg;
  EXPECT_EQ(error_offset("a = 1", &msg), 2u);
  EXPECT_NE(msg.find("'=='"), std::string::npos);
  EXPECT_EQ(error_offset("(a and b", &msg), 0u);
  EXPECT_NE(msg.find("unclosed '('"), std::string::npos);
  EXPECT_EQ(error_offset("a and b)", &msg), 7u);
  EXPECT_EQ(error_offset("a == 'x", &msg), 5u);
  EXPECT_NE(msg.find("unterminated"), std::string::npos);
  EXPECT_EQ(error_offset("a and", &msg), 5u);
  EXPECT_EQ(error_offset("a b", &msg), 2u);
  EXPECT_EQ(error_offset("a in 'x'", &msg), 5u);
  EXPECT_EQ(error_offset("a in [1, b]", &msg), 9u);
  EXPECT_EQ(error_offset("a in [1 2]", &msg), 8u);
  EXPECT_EQ(error_offset("a == #", &msg), 5u);
  EXPECT_EQ(error_offset("a & b", &msg), 2u);
  EXPECT_EQ(error_offset("", &msg), 0u);
  EXPECT_EQ(error_offset("()", &msg), 1u);
  EXPECT_EQ(error_offset("a == 1.2.3", &msg), 5u);
  EXPECT_EQ(error_offset("message == 1", &msg), 0u);
}
