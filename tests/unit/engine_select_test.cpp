// Record selection from raw response bodies: paths, shapes, and the errors a bad body must give.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "engine/select.h"

using namespace cascade;

namespace {

std::vector<Value> select(std::string body, std::string_view path) {
  std::vector<Value> out;
  size_t n = select_records(body, path, [&](Value&& v) { out.push_back(std::move(v)); });
  EXPECT_EQ(n, out.size());
  return out;
}

// The DataError message select_records throws, or "" when it does not throw.
std::string error_of(std::string body, std::string_view path) {
  try {
    select_records(body, path, [](Value&&) {});
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(EngineSelect, RecordsAtNestedPath) {
  auto recs = select(R"({"status":"ok","result":{"employees":[{"id":1},{"id":2},{"id":3}]}})",
                     "result.employees");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].find("id")->as_int(), 1);
  EXPECT_EQ(recs[2].find("id")->as_int(), 3);
}

TEST(EngineSelect, FieldsBeforeAndAfterThePathAreSkipped) {
  auto recs =
      select(R"({"a":{"result":[{"id":9}]},"result":[{"id":1}],"z":[1,2,{"q":3}]})", "result");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].find("id")->as_int(), 1);
}

TEST(EngineSelect, RootArray) {
  auto recs = select(R"([{"id":1,"name":"a"},{"id":2,"name":"b"}])", "");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].find("name")->as_string(), "b");
}

TEST(EngineSelect, SingleObjectAtPathIsOneRecord) {
  auto recs = select(R"({"result":{"id":7,"tags":["x"]}})", "result");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].find("id")->as_int(), 7);
  EXPECT_EQ(recs[0].find("tags")->as_array().size(), 1u);
}

TEST(EngineSelect, RootObjectIsOneRecord) {
  auto recs = select(R"({"id":7})", "");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].find("id")->as_int(), 7);
}

TEST(EngineSelect, EmptyArrayYieldsNothing) {
  EXPECT_TRUE(select(R"({"result":{"sales":[]}})", "result.sales").empty());
  EXPECT_TRUE(select("[]", "").empty());
}

TEST(EngineSelect, MissingSegmentNamesPathAndSegment) {
  std::string e = error_of(R"({"result":{"staff":[]}})", "result.employees");
  EXPECT_NE(e.find("'result.employees'"), std::string::npos) << e;
  EXPECT_NE(e.find("'employees'"), std::string::npos) << e;
  EXPECT_NE(e.find("'result'"), std::string::npos) << e;  // where it stopped

  e = error_of(R"({"data":[]})", "result.employees");
  EXPECT_NE(e.find("no field 'result'"), std::string::npos) << e;
}

TEST(EngineSelect, NullAtPathIsAnError) {
  std::string e = error_of(R"({"result":{"employees":null}})", "result.employees");
  EXPECT_NE(e.find("'result.employees'"), std::string::npos) << e;
  EXPECT_NE(e.find("null"), std::string::npos) << e;
}

TEST(EngineSelect, ScalarAtPathNamesItsType) {
  std::string e = error_of(R"({"result":"no records today"})", "result");
  EXPECT_NE(e.find("a string"), std::string::npos) << e;
  EXPECT_NE(e.find("'result'"), std::string::npos) << e;
  e = error_of(R"({"result":42})", "result");
  EXPECT_NE(e.find("a number"), std::string::npos) << e;
  e = error_of(R"({"result":true})", "result");
  EXPECT_NE(e.find("a boolean"), std::string::npos) << e;
  e = error_of(R"("just text")", "");
  EXPECT_NE(e.find("a string"), std::string::npos) << e;
}

TEST(EngineSelect, IntermediateScalarNamesWhereItStopped) {
  std::string e = error_of(R"({"result":[1,2]})", "result.employees");
  EXPECT_NE(e.find("an array"), std::string::npos) << e;
  EXPECT_NE(e.find("'employees'"), std::string::npos) << e;
}

TEST(EngineSelect, NonObjectElementNamesItsIndex) {
  std::string e = error_of(R"({"result":[{"id":1},{"id":2},5]})", "result");
  EXPECT_NE(e.find("record 2"), std::string::npos) << e;
  EXPECT_NE(e.find("a number"), std::string::npos) << e;
  e = error_of(R"([{"id":1},["nested"]])", "");
  EXPECT_NE(e.find("record 1"), std::string::npos) << e;
  EXPECT_NE(e.find("an array"), std::string::npos) << e;
}

TEST(EngineSelect, MalformedJsonSaysMalformed) {
  std::string e = error_of(R"({"result":[{"id":1,}]})", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"({"result":[{"id":1},{"id":tru}]})", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of("<html>502 Bad Gateway</html>", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  EXPECT_NE(e.find("502 Bad Gateway"), std::string::npos) << e;  // the excerpt
}

TEST(EngineSelect, TruncatedJsonSaysMalformed) {
  // A cut connection: the records so far must not pass for the whole response.
  std::string e = error_of(R"({"result":[{"id":1},{"id":2},{"id")", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"({"result":[{"id":1},{"id":2}])", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"({"result":[{"id":1},{"id":2})", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"([{"id":1},{"name":"unterminated)", "");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  EXPECT_NE(error_of("", "").find("malformed"), std::string::npos);
  e = error_of(R"([{"id":1},{"id":2})", "");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  // Cut inside metadata that follows the records: the records themselves parsed fine.
  e = error_of(R"({"result":{"sales":[{"id":1}]},"meta":{"total":5)", "result.sales");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"({"result":{"sales":[{"id":1}],"next":)", "result.sales");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
}

TEST(EngineSelect, NoPrefixOfAListingPassesForAShorterListing) {
  // A shorter listing would delete rows: every cut of a body, wherever it falls, is refused.
  const std::string body =
      R"({"status":"ok","result":{"employees":[{"id":1,"name":"a"},{"id":2,"tags":[1,{"x":null}]},)"
      R"({"id":3,"name":"c\"}"}],"total":3},"meta":{"next":null}})";
  ASSERT_EQ(error_of(body, "result.employees"), "");
  for (size_t n = 0; n < body.size(); ++n) {
    std::string e = error_of(body.substr(0, n), "result.employees");
    EXPECT_NE(e, "") << "a body cut after " << n << " bytes was accepted";
  }
}

TEST(EngineSelect, TrailingContentSaysMalformed) {
  std::string e = error_of(R"({"result":[{"id":1}]} {"result":[]})", "result");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"([{"id":1}]])", "");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = error_of(R"({"id":1}})", "");
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  // Whitespace after the document is not content.
  EXPECT_EQ(select("{\"result\":[{\"id\":1}],\"meta\":{\"n\":[1,{}]}}\r\n  ", "result").size(), 1u);
}

TEST(EngineSelect, BodyWithoutPaddingCapacityWorks) {
  std::string body = R"({"result":[{"id":1},{"id":2}]})";
  body.shrink_to_fit();
  const size_t size = body.size();
  std::vector<Value> recs;
  EXPECT_EQ(select_records(body, "result", [&](Value&& v) { recs.push_back(std::move(v)); }), 2u);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].find("id")->as_int(), 2);
  EXPECT_EQ(body.size(), size);  // padded in capacity only; the text is unchanged
}

TEST(EngineSelect, UnicodeEscapesAndBigNumbersSurvive) {
  auto recs = select(R"({"r":[{"name":"Caf\u00e9 \ud83d\ude00 \"q\"","big":9007199254740993,)"
                     R"("neg":-9223372036854775808,"f":1.5e300,"small":0.1}]})",
                     "r");
  ASSERT_EQ(recs.size(), 1u);
  const Value& r = recs[0];
  EXPECT_EQ(r.find("name")->as_string(), "Caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"");
  ASSERT_TRUE(r.find("big")->is_int());
  EXPECT_EQ(r.find("big")->as_int(), 9007199254740993LL);  // not rounded through a double
  EXPECT_EQ(r.find("neg")->as_int(), INT64_MIN);
  EXPECT_EQ(r.find("f")->as_decimal(), "1.5e300");  // integral: exact, never a double
  EXPECT_DOUBLE_EQ(r.find("small")->as_double(), 0.1);
}

TEST(EngineSelect, ExcerptEscapesControlBytesAndTruncates) {
  EXPECT_EQ(excerpt("a\x01"
                    "b\x7f"),
            "a\\x01b\\x7f");
  EXPECT_EQ(excerpt("line1\nline2\ttab\r"), "line1 line2 tab ");
  EXPECT_EQ(excerpt(std::string_view("nul\0x", 5)), "nul\\x00x");
  std::string long_body(500, 'x');
  std::string ex = excerpt(long_body, 50);
  EXPECT_EQ(ex, std::string(50, 'x') + "...");
  EXPECT_EQ(excerpt("short", 50), "short");
  EXPECT_EQ(excerpt(std::string(200, 'y')).size(), 200u);  // exactly the limit: no ellipsis
}

}  // namespace
