// Numbers are kept exactly: which JSON numbers stay int64 or double, which become Decimals, how
// Decimals are spelled, and that canonical JSON round-trips them.
#include <gtest/gtest.h>

#include "core/json.h"
#include "core/value.h"

using namespace cascade;

TEST(ExactNumbers, NumbersThatFitStayIntegersAndDoubles) {
  EXPECT_TRUE(number_from_token("9223372036854775807").is_int());
  EXPECT_TRUE(number_from_token("-9223372036854775808").is_int());
  EXPECT_TRUE(number_from_token("0.1").is_double());
  EXPECT_TRUE(number_from_token("12.5").is_double());
  EXPECT_TRUE(number_from_token("1.5e-3").is_double());
  EXPECT_TRUE(number_from_token("0.30000000000000004").is_double());
  EXPECT_TRUE(number_from_token("1.7976931348623157e308").is_decimal()) << "an integral value";
  EXPECT_TRUE(number_from_token("2.2250738585072014e-308").is_double());
  EXPECT_TRUE(number_from_token("x").is_null());
  EXPECT_TRUE(number_from_token("1.").is_null());
  EXPECT_TRUE(number_from_token("").is_null());
}

TEST(ExactNumbers, AnIntegralValueHasOneKindHoweverItIsSpelled) {
  EXPECT_EQ(number_from_token("1.0"), Value(int64_t{1}));
  EXPECT_TRUE(number_from_token("1.0").is_int());
  EXPECT_TRUE(number_from_token("1.5e1").is_int());
  EXPECT_EQ(number_from_token("1e16").as_int(), 10000000000000000);
  EXPECT_EQ(number_from_token("-0.0").as_int(), 0);
  EXPECT_EQ(number_from_token("9.223372036854775807e18").as_int(), INT64_MAX);
  EXPECT_EQ(number_from_token("1e20").as_decimal(), "100000000000000000000");
  EXPECT_EQ(number_from_token("1e20"), number_from_token("100000000000000000000"));
  EXPECT_EQ(number_from_token("1E+20"), number_from_token("100000000000000000000.000"));
  // Parsed documents take the fast paths; they must agree with the token rule.
  for (const char* spelled : {"[1e16]", "[1.0e16]", "[10000000000000000]", "[1e16 ]"})
    EXPECT_EQ(canonical_json(parse_json(spelled)), "[10000000000000000]") << spelled;
  for (const char* spelled : {"[1e20]", "[100000000000000000000]", "[1.00e20]"})
    EXPECT_EQ(canonical_json(parse_json(spelled)), "[100000000000000000000]") << spelled;
  EXPECT_TRUE(parse_json("[2.0]").as_array()[0].is_int());
  // A double computed to an integral value beyond 2^53 is spelled in digits too.
  EXPECT_EQ(canonical_json(Value(1e16)), "10000000000000000");
  EXPECT_EQ(canonical_json(Value(1e20)), "100000000000000000000");
  EXPECT_EQ(Value(1e20), number_from_token("1e20"));
}

TEST(ExactNumbers, NumbersBeyondInt64AndDoubleAreExactDecimals) {
  struct Case {
    const char* token;
    const char* text;
  } cases[] = {
      {"9223372036854775808", "9223372036854775808"},
      {"-9223372036854775809", "-9223372036854775809"},
      {"123456789012345678901234567890", "123456789012345678901234567890"},
      {"12345678901234567.89", "12345678901234567.89"},
      {"100000000000000000000.5", "100000000000000000000.5"},
      {"1e400", "1e400"},
      {"-1.5E-400", "-1.5e-400"},
      {"0.1000000000000000055511151231257827", "0.1000000000000000055511151231257827"},
      {"1.23456789012345678e30", "1234567890123456780000000000000"},
      {"-0.000000000000000000001234567890123456789", "-0.000000000000000000001234567890123456789"},
      {"12345678901234567.890", "12345678901234567.89"},
  };
  for (const auto& c : cases) {
    Value v = number_from_token(c.token);
    ASSERT_TRUE(v.is_decimal()) << c.token;
    EXPECT_EQ(v.as_decimal(), c.text) << c.token;
    EXPECT_TRUE(v.is_number());
  }
}

TEST(ExactNumbers, EqualValuesHaveOneSpellingAndEveryDigitCounts) {
  EXPECT_EQ(normalize_decimal("1.50"), "1.5");
  EXPECT_EQ(normalize_decimal("0001"), "1");
  EXPECT_EQ(normalize_decimal("-0.0"), "0");
  EXPECT_EQ(normalize_decimal("15e-1"), "1.5");
  EXPECT_EQ(normalize_decimal("1.5e2"), "150");
  EXPECT_EQ(normalize_decimal("1.5e300"), "1.5e300");
  EXPECT_EQ(normalize_decimal("1" + std::string(40, '0')), "1e40");
  EXPECT_EQ(normalize_decimal("1" + std::string(39, '0')), "1" + std::string(39, '0'));
  EXPECT_EQ(normalize_decimal("abc"), "");
  EXPECT_EQ(number_from_token("123456789012345678901"), number_from_token("123456789012345678901"));
  EXPECT_FALSE(number_from_token("123456789012345678901") ==
               number_from_token("123456789012345678902"));
  EXPECT_EQ(number_from_token("12345678901234567.890"), number_from_token("12345678901234567.89"));
}

TEST(ExactNumbers, ParsedDocumentsKeepEveryDigitAndCanonicalJsonRoundTrips) {
  const char* doc =
      R"({"id":123456789012345678901,"amount":12345678901234567.89,"big":100000000000000000000.5,)"
      R"("small":0.1,"n":1,"one":1.0,"huge":1e400})";
  Value v = parse_json(doc);
  EXPECT_EQ(v.find("id")->as_decimal(), "123456789012345678901");
  EXPECT_EQ(v.find("amount")->as_decimal(), "12345678901234567.89");
  EXPECT_EQ(v.find("big")->as_decimal(), "100000000000000000000.5");
  EXPECT_TRUE(v.find("small")->is_double());
  EXPECT_TRUE(v.find("n")->is_int());
  std::string canon = canonical_json(v);
  EXPECT_EQ(canon, R"({"amount":12345678901234567.89,"big":100000000000000000000.5,"huge":1e400,)"
                   R"("id":123456789012345678901,"n":1,"one":1,"small":0.1})");
  EXPECT_EQ(canonical_json(parse_json(canon)), canon);
  EXPECT_EQ(parse_json(canon), v);
  // Keys spelled 1 and 1.0 are one key, "1" another.
  EXPECT_EQ(canonical_json(parse_json("[1]")), canonical_json(parse_json("[1.0]")));
  EXPECT_NE(canonical_json(parse_json("[1]")), canonical_json(parse_json("[\"1\"]")));
}

TEST(ExactNumbers, ShortTokensWithExponentsBeyondADoubleStayExact) {
  // Short enough for the double fast path, but no double holds them (found by records_fuzz).
  EXPECT_EQ(parse_json("1e-400").as_decimal(), "1e-400");
  EXPECT_EQ(parse_json("[-2.5e-999]").as_array()[0].as_decimal(), "-2.5e-999");
  EXPECT_EQ(parse_json("1e-4056789").as_decimal(), "1e-4056789");
  EXPECT_TRUE(parse_json("0.0e-400").is_int());
  EXPECT_EQ(parse_json("0.0e-400").as_int(), 0);
  std::string canon = canonical_json(parse_json(R"({"branch_id":1e-405678901})"));
  EXPECT_EQ(canon, R"({"branch_id":1e-405678901})");
  EXPECT_EQ(canonical_json(parse_json(canon)), canon);
  // Exponents are kept exactly or refused, never clamped into one value.
  EXPECT_FALSE(parse_json("1e-999999999") == parse_json("1e-999999998"));
  EXPECT_TRUE(number_from_token("1e-40567890123456789345").is_null());
  EXPECT_TRUE(number_from_token("1e1000000000").is_null());
  EXPECT_THROW(parse_json(R"({"id":1e-40567890123456789345})"), JsonError);
}

TEST(ExactNumbers, ParseJsonStillRefusesTrailingContentAndBrokenDocuments) {
  EXPECT_THROW(parse_json("{} {}"), JsonError);
  EXPECT_THROW(parse_json("1 2"), JsonError);
  EXPECT_THROW(parse_json("[1],[2]"), JsonError);
  EXPECT_THROW(parse_json(""), JsonError);
  EXPECT_THROW(parse_json("{\"a\":}"), JsonError);
  EXPECT_EQ(parse_json(" 7 ").as_int(), 7);
  EXPECT_EQ(parse_json("\"s\"").as_string(), "s");
  EXPECT_TRUE(parse_json("null").is_null());
}
