// Paginator: the next page from a response, for each kind, and the URL and Link helpers.
#include <gtest/gtest.h>

#include "core/error.h"
#include "source/paginator.h"

using namespace cascade;
using Kind = PaginateOptions::Kind;

namespace {

PaginateOptions kind(Kind k) {
  PaginateOptions o;
  o.kind = k;
  return o;
}

std::vector<std::string> next(Paginator& p, size_t index, std::string body,
                              const HeaderList& headers = {}) {
  return p.next(index, headers, body);
}

}  // namespace

TEST(PaginatorLinks, FindsTheNextRelAmongSeveralLinksAndHeaders) {
  HeaderList h = {{"link",
                   "<https://a.test/x?page=1>; rel=\"prev\", <https://a.test/x?page=3, "
                   "y>; rel=\"next last\""},
                  {"link", "<https://a.test/x?page=9>; title=\"a;b,c\"; rel=first"}};
  EXPECT_EQ(find_link(h, "next"), "https://a.test/x?page=3, y");
  EXPECT_EQ(find_link(h, "LAST"), "https://a.test/x?page=3, y");
  EXPECT_EQ(find_link(h, "first"), "https://a.test/x?page=9");
  EXPECT_EQ(find_link(h, "prev"), "https://a.test/x?page=1");
  EXPECT_FALSE(find_link(h, "nex"));
  EXPECT_FALSE(find_link({{"link", "garbage without brackets; rel=next"}}, "next"));
  EXPECT_FALSE(find_link({{"link", "<unclosed; rel=next"}}, "next"));
}

TEST(PaginatorUrls, ResolveAndSetParameters) {
  const std::string base = "http://h.test:8080/api/v1/sales?employee_id=5&page=1";
  EXPECT_EQ(resolve_url(base, "https://o.test/p"), "https://o.test/p");
  EXPECT_EQ(resolve_url(base, "/sales?page=2"), "http://h.test:8080/sales?page=2");
  EXPECT_EQ(resolve_url(base, "?page=2"), "http://h.test:8080/api/v1/sales?page=2");
  EXPECT_EQ(resolve_url(base, "more?page=2#frag"), "http://h.test:8080/api/v1/more?page=2");
  EXPECT_EQ(resolve_url(base, "../v2/./sales?x=1"), "http://h.test:8080/api/v2/sales?x=1");
  EXPECT_EQ(resolve_url(base, "//cdn.test/a"), "http://cdn.test/a");
  EXPECT_EQ(url_origin("HTTP://H.test:8080/a?b"), "http://h.test:8080");
  EXPECT_EQ(url_origin("/relative"), "");
  EXPECT_EQ(with_query_param("http://h/s?a=1&cursor=old&b=2", "cursor", "x+y/z="),
            "http://h/s?a=1&b=2&cursor=x%2By%2Fz%3D");
  EXPECT_EQ(with_query_param("http://h/s", "page", "2"), "http://h/s?page=2");
}

TEST(Paginator, OffsetWithATotalFansOutEveryRemainingPageAtOnce) {
  PaginateOptions o = kind(Kind::Offset);
  o.limit = 10;
  Paginator p(o, "http://h/s?x=1", "records");
  EXPECT_EQ(p.first_url(), "http://h/s?x=1&offset=0&limit=10");
  auto urls = next(p, 0, R"({"records":[{"a":1}],"total":35})");
  ASSERT_EQ(urls.size(), 3u);
  EXPECT_EQ(urls[0], "http://h/s?x=1&offset=10&limit=10");
  EXPECT_EQ(urls[2], "http://h/s?x=1&offset=30&limit=10");
  EXPECT_TRUE(next(p, 1, R"({"records":[{"a":2}],"total":35})").empty());
}

TEST(Paginator, PageNumberWithoutTotalStopsOnAnEmptyPageAndRefusesARepeatedPage) {
  PaginateOptions o = kind(Kind::PageNumber);
  o.base_page = 1;
  Paginator p(o, "http://h/s", "data");
  EXPECT_EQ(p.first_url(), "http://h/s?page=1");
  EXPECT_EQ(next(p, 0, R"({"data":[{"a":1}]})"), std::vector<std::string>{"http://h/s?page=2"});
  EXPECT_THROW(next(p, 1, R"({"data":[{"a":1}]})"), DataError);  // identical to page 1
  Paginator q(o, "http://h/s", "data");
  next(q, 0, R"({"data":[{"a":1}]})");
  EXPECT_TRUE(next(q, 1, R"({"data":[]})").empty());
}

TEST(Paginator, ExplicitTotalPathMissingOrNotANumberIsAnError) {
  PaginateOptions o = kind(Kind::Offset);
  o.limit = 5;
  o.total_path = "meta.total";
  o.total_path_explicit = true;
  Paginator p(o, "http://h/s", "records");
  EXPECT_THROW(next(p, 0, R"({"records":[{"a":1}]})"), DataError);
  Paginator q(o, "http://h/s", "records");
  EXPECT_THROW(next(q, 0, R"({"records":[{"a":1}],"meta":{"total":"many"}})"), DataError);
  Paginator r(o, "http://h/s", "records");
  EXPECT_EQ(next(r, 0, R"({"records":[{"a":1}],"meta":{"total":"7"}})").size(), 1u);
}

TEST(Paginator, JsonLinkFollowsRelativeLinksDetectsLoopsAndStaysOnTheHost) {
  Paginator p(kind(Kind::JsonLink), "http://h/s?e=1", "records");
  EXPECT_EQ(next(p, 0, R"({"records":[],"next":"/s?e=1&page=2"})"),
            std::vector<std::string>{"http://h/s?e=1&page=2"});
  EXPECT_THROW(next(p, 1, R"({"records":[],"next":"http://h/s?e=1"})"), DataError);
  Paginator q(kind(Kind::JsonLink), "http://h/s", "records");
  EXPECT_THROW(next(q, 0, R"({"records":[],"next":"http://evil.test/s?page=2"})"), DataError);
  Paginator r(kind(Kind::JsonLink), "http://h/s", "records");
  EXPECT_TRUE(next(r, 0, R"({"records":[],"next":null})").empty());
}

TEST(Paginator, MaxPagesEndsARunawayListing) {
  PaginateOptions o = kind(Kind::Cursor);
  o.max_pages = 3;
  Paginator p(o, "http://h/s", "data");
  EXPECT_EQ(next(p, 0, R"({"data":[1],"cursors":{"next":"a"}})").size(), 1u);
  EXPECT_EQ(next(p, 1, R"({"data":[1],"cursors":{"next":"b"}})").size(), 1u);
  EXPECT_THROW(next(p, 2, R"({"data":[1],"cursors":{"next":"c"}})"), DataError);
}

TEST(Paginator, AutoRecognisesEachKindFromTheFirstPage) {
  struct Case {
    std::string body;
    HeaderList headers;
    Kind want;
  };
  std::vector<Case> cases = {
      {R"([{"a":1}])", {{"link", "<http://h/s?page=2>; rel=\"next\""}}, Kind::HeaderLink},
      {R"({"records":[],"next":"http://h/s?page=2"})", {}, Kind::JsonLink},
      {R"({"items":[],"_links":{"next":{"href":"/s?p=2"}}})", {}, Kind::JsonLink},
      {R"({"data":[],"cursors":{"next":"abc"}})", {}, Kind::Cursor},
      {R"({"data":[],"meta":{"next_cursor":"abc"}})", {}, Kind::Cursor},
      {R"({"records":[],"next":null})", {}, Kind::SinglePage},
      {R"({"records":[{"next":"/x","cursor":"y"}]})", {}, Kind::SinglePage},
  };
  for (const auto& c : cases) {
    Paginator p(kind(Kind::Auto), "http://h/s", "records");
    std::string body = c.body;
    p.next(0, c.headers, body);
    EXPECT_EQ(p.kind(), c.want) << c.body;
  }
}

TEST(Paginator, AutoOnAnOffsetApiReadsOnePageButSaysWhyItDoubts) {
  Paginator p(kind(Kind::Auto), "http://h/s", "records");
  EXPECT_TRUE(next(p, 0, R"({"records":[{"a":1}],"meta":{"total_count":35}})").empty());
  EXPECT_EQ(p.kind(), Kind::SinglePage);
  EXPECT_EQ(p.auto_doubt(), "meta.total_count = 35");
  Paginator q(kind(Kind::Auto), "http://h/s", "records");
  next(q, 0, R"({"records":[{"a":1}],"has_more":false})");
  EXPECT_EQ(q.auto_doubt(), "");
}
