#include <gtest/gtest.h>

#include "core/duration.h"
#include "core/hash.h"
#include "core/json.h"

using namespace cascade;

TEST(Json, CanonicalIgnoresKeyOrderWhitespaceAndNumberSpelling) {
  Value a = parse_json(R"({"b": 1.0, "a": [1e2, "x"], "c": {"z": null, "y": true}})");
  Value b = parse_json(R"({"c":{"y":true,"z":null},"a":[100,"x"],"b":1})");
  EXPECT_EQ(canonical_json(a), canonical_json(b));
  EXPECT_EQ(canonical_json(a), R"({"a":[100,"x"],"b":1,"c":{"y":true,"z":null}})");
  EXPECT_EQ(hash_value(a), hash_value(b));
}

TEST(Json, DifferentDataHashesDifferently) {
  EXPECT_NE(hash_value(parse_json(R"({"a":1})")), hash_value(parse_json(R"({"a":2})")));
  EXPECT_NE(hash_value(parse_json(R"({"a":"1"})")), hash_value(parse_json(R"({"a":1})")));
  EXPECT_NE(hash_value(parse_json(R"({"a":1.5})")), hash_value(parse_json(R"({"a":1})")));
}

TEST(Json, UnicodeEscapesCanonicalise) {
  EXPECT_EQ(canonical_json(parse_json(R"({"n":"\u0041\u00e9"})")), "{\"n\":\"A\xc3\xa9\"}");
}

TEST(Json, MalformedThrowsWithReason) {
  EXPECT_THROW(parse_json(R"({"a": )"), JsonError);
  EXPECT_THROW(parse_json(R"({"a": 1} x)"), JsonError);
  EXPECT_THROW(parse_json(""), JsonError);
}

TEST(Json, ScalarsAndPaths) {
  Value v = parse_json(R"({"result":{"employees":[{"id":7}]}})");
  const Value* e = v.find_path("result.employees.0.id");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->as_int(), 7);
  EXPECT_EQ(v.find_path("result.missing"), nullptr);
  EXPECT_EQ(&v, v.find_path(""));
  EXPECT_EQ(parse_json("42").as_int(), 42);
  EXPECT_TRUE(parse_json("null").is_null());
}

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(parse_duration("200ms")->count(), 200);
  EXPECT_EQ(parse_duration("10s")->count(), 10000);
  EXPECT_EQ(parse_duration("15m")->count(), 900000);
  EXPECT_EQ(parse_duration("1 hour")->count(), 3600000);
  EXPECT_EQ(parse_duration("14d")->count(), 1209600000);
  EXPECT_FALSE(parse_duration("ten seconds"));
  EXPECT_FALSE(parse_duration("5 parsecs"));
  EXPECT_EQ(format_duration(std::chrono::minutes(15)), "15m");
}
