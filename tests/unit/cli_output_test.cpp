// How query results are written for files and for terminals: CSV and JSON cells, base64, and the
// escaping and cutting of the table format.
#include <gtest/gtest.h>

#include <limits>

#include "cli/output.h"

using namespace cascade;

namespace {

Cell text(std::string_view s) {
  Cell c;
  c.kind = Cell::Kind::Text;
  c.bytes = s;
  return c;
}
Cell blob(std::string_view s) {
  Cell c = text(s);
  c.kind = Cell::Kind::Blob;
  return c;
}
Cell integer(int64_t i) {
  Cell c;
  c.kind = Cell::Kind::Integer;
  c.integer = i;
  return c;
}
Cell real(double d) {
  Cell c;
  c.kind = Cell::Kind::Real;
  c.real = d;
  return c;
}

std::string csv(const Cell& c) {
  std::string out;
  append_csv_cell(c, out);
  return out;
}
std::string json(const Cell& c) {
  std::string out;
  append_json_cell(c, out);
  return out;
}

}  // namespace

TEST(CliOutput, Base64AsRfc4648) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64(std::string("\x00\xff\x10", 3)), "AP8Q");
}

TEST(CliOutput, CsvCellsKeepNullEmptyAndEveryDigitApart) {
  EXPECT_EQ(csv(Cell{}), "");
  EXPECT_EQ(csv(text("")), "\"\"");
  EXPECT_EQ(csv(text("plain")), "plain");
  EXPECT_EQ(csv(text("a,b")), "\"a,b\"");
  EXPECT_EQ(csv(text("say \"hi\"")), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv(text("cr\rlf\n")), "\"cr\rlf\n\"");
  EXPECT_EQ(csv(text("123456789012345678901234567890.000000001")),
            "123456789012345678901234567890.000000001");
  EXPECT_EQ(csv(integer(std::numeric_limits<int64_t>::min())), "-9223372036854775808");
  EXPECT_EQ(csv(real(0.1)), "0.1");
  EXPECT_EQ(csv(real(1.0 / 3)), "0.3333333333333333");
  EXPECT_EQ(csv(real(-std::numeric_limits<double>::infinity())), "-Infinity");
  // Older tables keep exact decimals in number columns as BLOBs of their digits.
  EXPECT_EQ(csv(blob("12345678901234567890.5")), "12345678901234567890.5");
  EXPECT_EQ(csv(blob(std::string("\x00\x01", 2))), "AAE=");
}

TEST(CliOutput, JsonCellsKeepExactDecimalsAsStrings) {
  EXPECT_EQ(json(Cell{}), "null");
  EXPECT_EQ(json(integer(-7)), "-7");
  EXPECT_EQ(json(real(2.5)), "2.5");
  EXPECT_EQ(json(real(std::numeric_limits<double>::infinity())), "\"Infinity\"");
  EXPECT_EQ(json(text("12345678901234567890123.45")), "\"12345678901234567890123.45\"");
  EXPECT_EQ(json(text("line\nbreak \"q\"")), "\"line\\nbreak \\\"q\\\"\"");
  EXPECT_EQ(json(blob("99999999999999999999")), "\"99999999999999999999\"");
  EXPECT_EQ(json(blob("\xff")), "\"/w==\"");
}

TEST(CliOutput, TerminalSafeEscapesWhatCouldMoveTheCursor) {
  EXPECT_EQ(terminal_safe("plain h\u00e9llo \u20ac \U0001F600"),
            "plain h\u00e9llo \u20ac \U0001F600");
  EXPECT_EQ(terminal_safe("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  EXPECT_EQ(terminal_safe("\x1b[2J\x07\x7f"), "\\x1b[2J\\x07\\x7f");
  EXPECT_EQ(terminal_safe(std::string("nul\0", 4)), "nul\\x00");
  EXPECT_EQ(terminal_safe("\u0085\u009b"), "\\u0085\\u009b");   // C1, CSI included
  EXPECT_EQ(terminal_safe("abc\u202edef"), "abc\\u202edef");    // a right-to-left override
  EXPECT_EQ(terminal_safe("\xff\xc3"), "\\xff\\xc3");           // not UTF-8
  EXPECT_EQ(terminal_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
}

TEST(CliOutput, TableAlignsByCodePointsCutsAndCounts) {
  TableOptions o;
  o.limit = 2;
  o.max_width = 5;
  TablePrinter p(o);
  std::vector<std::string> names{"n", "word", "nothing"};
  p.columns(names);
  std::vector<Cell> r1{integer(1), text("\u00e9t\u00e9"), Cell{}};
  std::vector<Cell> r2{text("12345678901234567890123"), text("toolongword"), Cell{}};
  std::vector<Cell> r3{integer(3), text("x"), Cell{}};
  EXPECT_TRUE(p.row(r1));
  EXPECT_TRUE(p.row(r2));
  EXPECT_TRUE(p.row(r3));
  EXPECT_EQ(p.render(),
            "    n  word   nothing\n"
            "-----  -----  -------\n"
            "    1  \u00e9t\u00e9    NULL\n"
            "1234\u2026  tool\u2026  NULL\n"
            "(showing first 2 of 3 rows)\n");
}
