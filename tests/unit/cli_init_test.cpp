// `cascade init`'s analysis of a sample response: the record list, the key, the paging, the
// credentials, and the file written from them.
#include <gtest/gtest.h>

#include "cli/init_analysis.h"
#include "config/loader.h"
#include "core/json.h"

using namespace cascade;
using namespace cascade::cli;

namespace {

SampleUrl url_of(const std::string& u) {
  std::string why;
  auto p = parse_sample_url(u, &why);
  EXPECT_TRUE(p) << why;
  return p ? *p : SampleUrl{};
}

PaginationGuess paging(const std::string& json, const std::string& url = "https://x.io/items",
                       std::vector<std::pair<std::string, std::string>> headers = {}) {
  Value body = parse_json(json);
  return detect_pagination(body, find_records(body), headers, url_of(url));
}

std::string param(const PaginationGuess& g, const std::string& name) {
  for (const auto& [k, v] : g.params)
    if (k == name) return v;
  return "<absent>";
}

}  // namespace

TEST(InitUrl, TakesTheURLApartAndRefusesOtherSchemes) {
  SampleUrl u =
      url_of("HTTPS://user:pw@API.Example.com:8443/v2/sales.json?employee_id=5&q=a%20b#x");
  EXPECT_EQ(u.origin, "https://api.example.com:8443");
  EXPECT_EQ(u.host, "api.example.com");
  EXPECT_EQ(u.path, "/v2/sales.json");
  ASSERT_EQ(u.query.size(), 2u);
  EXPECT_EQ(u.query[1].second, "a b");
  EXPECT_TRUE(u.has_userinfo);
  std::string why;
  EXPECT_FALSE(parse_sample_url("ftp://x/y", &why));
  EXPECT_NE(why.find("ftp"), std::string::npos);
  EXPECT_FALSE(parse_sample_url("example.com/items", &why));
}

TEST(InitNames, StageFromThePathPipelineFromTheHost) {
  EXPECT_EQ(stage_name_for(url_of("https://a.io/v2/sales.json")), "sales");
  EXPECT_EQ(stage_name_for(url_of("https://a.io/api/v1/users/42/orders/")), "orders");
  EXPECT_EQ(stage_name_for(url_of("https://a.io/users/42")), "users");
  EXPECT_EQ(stage_name_for(url_of("https://a.io/")), "records");
  EXPECT_EQ(stage_name_for(url_of("https://a.io/cascade_x")), "records");
  EXPECT_EQ(stage_name_for(url_of("https://a.io/Line-Items")), "line_items");
  EXPECT_EQ(pipeline_name_for(url_of("https://api.example.com/v2/sales")), "example");
  EXPECT_EQ(pipeline_name_for(url_of("https://jsonplaceholder.typicode.com/posts")),
            "jsonplaceholder-typicode");
  EXPECT_EQ(pipeline_name_for(url_of("http://127.0.0.1:8080/sales")), "sales");
  EXPECT_EQ(env_prefix_for("jsonplaceholder-typicode"), "JSONPLACEHOLDER_TYPICODE");
  EXPECT_EQ(env_prefix_for("3d"), "API_3D");
}

TEST(InitRecords, RootArrayLargestNestedListOrTheObjectItself) {
  RecordsGuess g = find_records(parse_json(R"([{"id":1},{"id":2}])"));
  EXPECT_TRUE(g.found);
  EXPECT_EQ(g.path, "");
  EXPECT_EQ(g.count, 2u);

  g = find_records(parse_json(R"({"data":[{"id":1},{"id":2}],"meta":{"total":2}})"));
  EXPECT_EQ(g.path, "data");

  // The largest list of objects wins, wherever it is; lists of scalars are not records.
  g = find_records(parse_json(
      R"({"result":{"employee_id":3,"tags":[1,2,3,4,5],"warnings":[{"w":1}],
          "sales":[{"id":1},{"id":2},{"id":3}]}})"));
  EXPECT_EQ(g.path, "result.sales");
  EXPECT_EQ(g.count, 3u);

  // A tie goes to the shallower list.
  g = find_records(parse_json(R"({"x":{"a":[{"id":1}]},"results":[{"id":2}]})"));
  EXPECT_EQ(g.path, "results");

  // Only empty lists: the empty one is the listing (on a day without records).
  g = find_records(parse_json(R"({"items":[],"next":null})"));
  EXPECT_TRUE(g.found);
  EXPECT_EQ(g.path, "items");
  EXPECT_EQ(g.count, 0u);

  g = find_records(parse_json(R"({"id":7,"name":"one"})"));
  EXPECT_FALSE(g.found);
  EXPECT_EQ(g.path, "");
  EXPECT_EQ(g.count, 1u);
}

TEST(InitKey, IdThenOwnIdThenAnIdFieldThenTheFirstUniqueField) {
  auto key = [](const std::string& json, const std::string& stage = "sales") {
    return choose_key(parse_json(json).as_array(), stage);
  };
  KeyGuess k = key(R"([{"employee_id":1,"id":10},{"employee_id":1,"id":11}])");
  EXPECT_EQ(k.fields, std::vector<std::string>{"id"});
  EXPECT_TRUE(k.certain);

  // The foreign key employee_id repeats; sale_id (the stage's own) is unique.
  k = key(R"([{"employee_id":1,"sale_id":"a"},{"employee_id":1,"sale_id":"b"}])");
  EXPECT_EQ(k.fields, std::vector<std::string>{"sale_id"});
  EXPECT_TRUE(k.certain);

  k = key(R"([{"name":"x","orderId":5},{"name":"x","orderId":6}])");
  EXPECT_EQ(k.fields, std::vector<std::string>{"orderId"});

  // An `id` that repeats or is null is no key.
  k = key(R"([{"id":1,"code":"A"},{"id":1,"code":"B"}])");
  EXPECT_EQ(k.fields, std::vector<std::string>{"code"});
  EXPECT_TRUE(k.certain);
  k = key(R"([{"id":null,"sku":"A"},{"id":2,"sku":"B"}])");
  EXPECT_EQ(k.fields, std::vector<std::string>{"sku"});

  // Floats and booleans are no keys; a pair is proposed but not certain.
  k = key(R"([{"day":"mon","shop":1,"v":1.5},{"day":"mon","shop":2,"v":1.5},
             {"day":"tue","shop":1,"v":2.5}])");
  EXPECT_EQ(k.fields, (std::vector<std::string>{"day", "shop"}));
  EXPECT_FALSE(k.certain);

  k = key(R"([{"v":1.5},{"v":1.5}])");
  EXPECT_TRUE(k.fields.empty());
  k = key("[]");
  EXPECT_TRUE(k.fields.empty());

  // One record proves no uniqueness: only a field named as a key is certain.
  k = key(R"([{"name":"x"}])");
  EXPECT_EQ(k.fields, std::vector<std::string>{"name"});
  EXPECT_FALSE(k.certain);
}

TEST(InitPaging, LinkHeaderAndNextUrlFields) {
  PaginationGuess g =
      paging("[]", "https://x.io/items", {{"link", "<https://x.io/items?page=2>; rel=\"next\""}});
  EXPECT_EQ(g.type, "header_link");
  EXPECT_NE(g.evidence.find("rel=\"next\""), std::string::npos);

  g = paging(R"({"results":[{"id":1}],"next":"https://x.io/items?page=2","count":9})");
  EXPECT_EQ(g.type, "json_link");
  EXPECT_EQ(param(g, "next_url_path"), "next");

  g = paging(R"({"data":[{"id":1}],"links":{"next":"/items?page=2","prev":null}})");
  EXPECT_EQ(g.type, "json_link");
  EXPECT_EQ(param(g, "next_url_path"), "links.next");

  g = paging(R"({"_embedded":{"items":[{"id":1}]},"_links":{"next":{"href":"/items?p=2"}}})");
  EXPECT_EQ(g.type, "json_link");
  EXPECT_EQ(param(g, "next_url_path"), "_links.next.href");

  // The last page of a json_link listing: the field is there, null.
  g = paging(R"({"items":[{"id":1}],"next_page_url":null})");
  EXPECT_EQ(g.type, "json_link");
  EXPECT_EQ(param(g, "next_url_path"), "next_page_url");

  // A `next` inside the records is a record's field, not the listing's.
  g = paging(R"({"items":[{"id":1,"next":"/x?y=1"}]})");
  EXPECT_EQ(g.type, "single_page");
}

TEST(InitPaging, CursorsPagesAndOffsets) {
  PaginationGuess g = paging(R"({"data":[{"id":1}],"next_cursor":"abc"})");
  EXPECT_EQ(g.type, "cursor");
  EXPECT_EQ(param(g, "cursor_path"), "next_cursor");
  EXPECT_EQ(param(g, "cursor_param"), "cursor");
  EXPECT_FALSE(g.question.empty());  // the parameter name is a guess

  g = paging(R"({"items":[{"id":1}],"nextPageToken":"t1"})", "https://x.io/items?pageToken=t0");
  EXPECT_EQ(g.type, "cursor");
  EXPECT_EQ(param(g, "cursor_param"), "pageToken");
  EXPECT_TRUE(g.question.empty());
  EXPECT_EQ(g.paginator_query, std::vector<std::string>{"pageToken"});

  g = paging(
      R"({"response_metadata":{"next_cursor":"dXNlcjpVMEc5V0ZYTlo="},"members":[{"id":1}]})");
  EXPECT_EQ(param(g, "cursor_path"), "response_metadata.next_cursor");

  // A `next` that is no URL is a cursor.
  g = paging(R"({"items":[{"id":1}],"next":"c2Vjb25k"})");
  EXPECT_EQ(g.type, "cursor");
  EXPECT_EQ(param(g, "cursor_path"), "next");

  g = paging(R"({"data":[{"id":1}],"page":1,"total_pages":7,"total":70})");
  EXPECT_EQ(g.type, "page_number");
  EXPECT_EQ(param(g, "base_page"), "1");
  EXPECT_EQ(param(g, "total_path"), "total_pages");

  // A total of records is not a number of pages.
  g = paging(R"({"data":[{"id":1}],"meta":{"page":0,"total":70}})");
  EXPECT_EQ(g.type, "page_number");
  EXPECT_EQ(param(g, "base_page"), "0");
  EXPECT_EQ(param(g, "total_path"), "null");

  g = paging(R"({"records":[{"id":1},{"id":2}],"total":40,"offset":0,"limit":2})");
  EXPECT_EQ(g.type, "offset");
  EXPECT_EQ(param(g, "limit"), "2");
  EXPECT_EQ(param(g, "total_path"), "<absent>");  // `total` is the default

  g = paging(R"({"rows":[{"id":1}],"meta":{"total_count":40}})",
             "https://x.io/rows?skip=0&take=25");
  EXPECT_EQ(g.type, "offset");
  EXPECT_EQ(param(g, "limit"), "25");
  EXPECT_EQ(param(g, "offset_param"), "skip");
  EXPECT_EQ(param(g, "limit_param"), "take");
  EXPECT_EQ(param(g, "total_path"), "meta.total_count");
  EXPECT_EQ(g.paginator_query, (std::vector<std::string>{"skip", "take"}));

  g = paging(R"({"result":{"employee_id":3,"sales":[{"id":1}]}})");
  EXPECT_EQ(g.type, "single_page");
  EXPECT_TRUE(g.question.empty());

  // More is said to exist but not how to ask for it: the user is asked.
  g = paging(R"({"data":[{"id":1}],"has_more":true})");
  EXPECT_EQ(g.type, "single_page");
  EXPECT_NE(g.question.find("has_more"), std::string::npos);
}

TEST(InitCredentials, ReferencesToTheEnvironmentNeverValues) {
  SampleUrl u = url_of("https://x.io/items?api_key=SEKRIT1&q=1");
  CredentialPlan c = plan_credentials({{"Authorization", "Bearer SEKRIT2"},
                                       {"X-Tenant-Token", "SEKRIT3"},
                                       {"Accept", "application/vnd.x+json"}},
                                      u, "X");
  std::string all = c.auth_yaml;
  for (const auto& [n, v] : c.headers) all += n + v;
  EXPECT_EQ(all.find("SEKRIT"), std::string::npos) << all;
  EXPECT_NE(c.auth_yaml.find("type: bearer"), std::string::npos);
  EXPECT_NE(c.auth_yaml.find("${X_TOKEN}"), std::string::npos);
  ASSERT_EQ(c.headers.size(), 2u);
  EXPECT_EQ(c.headers[0].second, "\"${X_X_TENANT_TOKEN}\"");
  EXPECT_EQ(c.headers[1].second, "\"application/vnd.x+json\"");
  EXPECT_EQ(c.secret_query, std::vector<std::string>{"api_key"});

  c = plan_credentials({{"X-Api-Key", "k"}}, url_of("https://x.io/a"), "X");
  EXPECT_NE(c.auth_yaml.find("type: api_key, name: X-Api-Key, location: header"),
            std::string::npos);
  c = plan_credentials({}, url_of("https://x.io/a?api_key=k"), "X");
  EXPECT_NE(c.auth_yaml.find("location: query"), std::string::npos);
  c = plan_credentials({{"Authorization", "Basic dTpw"}}, url_of("https://x.io/a"), "X");
  EXPECT_NE(c.auth_yaml.find("http_basic"), std::string::npos);
}

TEST(InitRender, TheFileLoadsAndSaysWhatItGuessed) {
  std::string url = "http://127.0.0.1:9/v1/sales?employee_id=5&region=north%20east&token=SEKRIT";
  Value body = parse_json(
      R"({"result":{"employee_id":5,"sales":[{"id":1,"amount":"1.50"},{"id":2,"amount":"7"}]}})");
  InitPlan plan = analyse_sample(url, url_of(url), 200, {}, body, {});
  std::string yaml = render_pipeline(plan);
  EXPECT_EQ(yaml.find("SEKRIT"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("records: result.sales"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("key: { id: id }"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("inputs: { employee_id: [5], region: [\"north east\"] }"), std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("request: GET /v1/sales"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("params: { employee_id: \"{employee_id}\", region: \"{region}\" }"),
            std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("base_url: http://127.0.0.1:9"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("# TODO: export SALES_API_KEY"), std::string::npos) << yaml;
  auto env = [](std::string_view n) -> std::optional<std::string> {
    if (n == "SALES_API_KEY") return std::string("k");
    return std::nullopt;
  };
  PipelineSpec spec = load_pipeline_text(yaml, "init.yaml", env);
  ASSERT_EQ(spec.stages.size(), 1u);
  EXPECT_EQ(spec.stages[0].name, "sales");
  EXPECT_EQ(spec.stages[0].records_path, "result.sales");
  EXPECT_EQ(spec.source.auth.kind_name(), std::string("api_key"));

  // Hostile names and values stay data: braces, quotes and ${ survive as literal text.
  url = "http://127.0.0.1:9/items?a[b]=%7Bx%7D&c=%24%7BHOME%7D";
  body = parse_json(R"([{"we\"ird":1,"id":"${HOME}"}])");
  plan = analyse_sample(url, url_of(url), 200, {}, body, {});
  yaml = render_pipeline(plan);
  spec = load_pipeline_text(yaml, "init.yaml", env);
  ASSERT_EQ(spec.stages[0].inputs.size(), 1u);
  EXPECT_EQ(spec.stages[0].inputs[0].first, "c");
  EXPECT_EQ(spec.stages[0].inputs[0].second.at(0).as_string(), "${HOME}");
  ASSERT_EQ(spec.stages[0].params.size(), 2u);
  EXPECT_EQ(spec.stages[0].params[0].first, "a[b]");
  EXPECT_EQ(spec.stages[0].params[0].second.text, "{{x}}");
}

TEST(InitRender, NoKeyCandidateIsATodoAndARefusedPagingIsCommentedOut) {
  std::string url = "http://127.0.0.1:9/readings";
  Value body = parse_json(R"({"data":[{"v":1.5},{"v":1.5}],"next":"/readings?page=2"})");
  InitPlan plan = analyse_sample(url, url_of(url), 200, {}, body, {});
  std::string yaml = render_pipeline(plan);
  EXPECT_NE(yaml.find("# TODO: name the field(s) that identify a record"), std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("paginate: { type: json_link, next_url_path: next }"), std::string::npos);
  EXPECT_EQ(yaml.find("# paginate:"), std::string::npos);
  plan.paginate_refused = "unknown key 'paginate'";
  yaml = render_pipeline(plan);
  EXPECT_NE(yaml.find("    # paginate: { type: json_link, next_url_path: next }"),
            std::string::npos)
      << yaml;
  EXPECT_NO_THROW(load_pipeline_text(
      yaml, "init.yaml", [](std::string_view) { return std::optional<std::string>{}; }));
}
