#include "core/template.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/json.h"

using namespace cascade;

namespace {

size_t error_offset(std::string_view text) {
  try {
    Template::parse(text);
  } catch (const TemplateError& e) {
    return e.offset;
  }
  ADD_FAILURE() << "no TemplateError for " << text;
  return SIZE_MAX;
}

}  // namespace

TEST(Template, RendersMessageAndRecordRefs) {
  Template t =
      Template::parse("/sales?employee_id={employee_id}&b={message.branch_id}&r={record.a.b}");
  ASSERT_EQ(t.refs().size(), 3u);
  EXPECT_EQ(t.refs()[0].scope, Template::Ref::Scope::Message);
  EXPECT_EQ(t.refs()[0].path, "employee_id");
  EXPECT_EQ(t.refs()[1].path, "branch_id");
  EXPECT_EQ(t.refs()[2].scope, Template::Ref::Scope::Record);
  EXPECT_EQ(t.refs()[2].path, "a.b");
  EXPECT_EQ(t.refs()[2].offset, 57u);
  Value msg = parse_json(R"({"employee_id": 7, "branch_id": "x"})");
  Value rec = parse_json(R"({"a": {"b": 2.5}})");
  EXPECT_EQ(t.render(msg, &rec), "/sales?employee_id=7&b=x&r=2.5");
  EXPECT_FALSE(t.is_single_ref());
}

TEST(Template, DottedMessagePathAndLiteralBraces) {
  Template t = Template::parse("{{literal}} {a.b} }}");
  ASSERT_EQ(t.refs().size(), 1u);
  EXPECT_EQ(t.refs()[0].scope, Template::Ref::Scope::Message);
  EXPECT_EQ(t.refs()[0].path, "a.b");
  EXPECT_EQ(t.render(parse_json(R"({"a":{"b":"v"}})"), nullptr), "{literal} v }");
}

TEST(Template, UrlEncodingKeepsStructure) {
  Template t = Template::parse("/branches?branch={branch}");
  Value msg = parse_json(R"({"branch": "../admin?x=1#"})");
  EXPECT_EQ(t.render(msg, nullptr, true), "/branches?branch=..%2Fadmin%3Fx%3D1%23");
  EXPECT_EQ(t.render(msg, nullptr, false), "/branches?branch=../admin?x=1#");
  Value spaced = parse_json(R"({"branch": "New York&a=b~_-.é"})");
  EXPECT_EQ(t.render(spaced, nullptr, true), "/branches?branch=New%20York%26a%3Db~_-.%C3%A9");
}

TEST(Template, RenderValueKeepsTypeOfSingleRef) {
  Value rec = parse_json(R"({"id": 42, "f": 1.5, "ok": true, "o": {"x": 1}})");
  Value msg = parse_json(R"({"branch_id": 3})");
  Value v = Template::parse("{record.id}").render_value(msg, &rec);
  ASSERT_TRUE(v.is_int());
  EXPECT_EQ(v.as_int(), 42);
  EXPECT_TRUE(Template::parse("{record.ok}").render_value(msg, &rec).is_bool());
  EXPECT_TRUE(Template::parse("{record.o}").render_value(msg, &rec).is_object());
  Value m = Template::parse("{message.branch_id}").render_value(msg, &rec);
  ASSERT_TRUE(m.is_int());
  EXPECT_EQ(m.as_int(), 3);
  Value s = Template::parse("b-{branch_id}").render_value(msg, &rec);
  ASSERT_TRUE(s.is_string());
  EXPECT_EQ(s.as_string(), "b-3");
  EXPECT_TRUE(Template::parse("{record.id}").is_single_ref());
  EXPECT_FALSE(Template::parse("{record.id} ").is_single_ref());
}

TEST(Template, MissingOrNullRefsAreDataErrors) {
  Value msg = parse_json(R"({"branch": null})");
  Value rec = parse_json(R"({"name": "x"})");
  try {
    Template::parse("{record.id}").render(msg, &rec);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "record field 'id' is missing");
  }
  try {
    Template::parse("/b?x={branch}").render(msg, &rec);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "message parameter 'branch' is missing");
  }
  EXPECT_THROW(Template::parse("{record.id}").render_value(msg, nullptr), DataError);
  EXPECT_THROW(Template::parse("{other}").render_value(msg, &rec), DataError);
}

TEST(Template, ParseErrorsCarryOffsets) {
  EXPECT_EQ(error_offset("/a?b={branch"), 5u);
  EXPECT_EQ(error_offset("/a?b={}"), 5u);
  EXPECT_EQ(error_offset("/a}b"), 2u);
  EXPECT_EQ(error_offset("{a{b}"), 0u);
  EXPECT_EQ(error_offset("x{record.}"), 9u);
  EXPECT_EQ(error_offset("x{a..b}"), 4u);
  EXPECT_EQ(error_offset("x{a b}"), 3u);
  EXPECT_EQ(error_offset("{record}"), 1u);
  EXPECT_NO_THROW(Template::parse("no refs at all"));
  EXPECT_TRUE(Template::parse("no refs").refs().empty());
}
