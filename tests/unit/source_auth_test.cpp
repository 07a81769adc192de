// source/auth helpers, the JSON body template, and the loader's source.auth and stage request
// keys (method, params, headers, body, responses).
#include <gtest/gtest.h>

#include "config/loader.h"
#include "core/error.h"
#include "core/json.h"
#include "core/template.h"
#include "source/auth.h"

using namespace cascade;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

PipelineSpec load(const std::string& source_extra, const std::string& stage_extra,
                  std::map<std::string, std::string> vars = {}) {
  std::string text =
      "name: p\nsource:\n  base_url: http://h\n" + source_extra +
      "stages:\n  a:\n    inputs: { n: [1] }\n    request: /a\n    key: { id: id }\n" + stage_extra;
  return load_pipeline_text(text, "p.yaml", env_of(std::move(vars)));
}

std::string error_of(const std::string& source_extra, const std::string& stage_extra,
                     std::map<std::string, std::string> vars = {}) {
  try {
    load(source_extra, stage_extra, std::move(vars));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(SourceAuth, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("\xff\xfe"), "//4=");
}

TEST(SourceAuth, HeadersAndQueryOfEachKind) {
  AuthSpec a;
  a.kind = AuthSpec::Kind::Bearer;
  a.token = "t0k";
  EXPECT_EQ(auth_header_name(a), "Authorization");
  EXPECT_EQ(auth_header_value(a), "Bearer t0k");
  a.kind = AuthSpec::Kind::HttpBasic;
  a.username = "Aladdin";
  a.password = "open sesame";
  EXPECT_EQ(auth_header_value(a), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  a.kind = AuthSpec::Kind::ApiKey;
  a.name = "X-Key";
  a.api_key = "k";
  EXPECT_EQ(auth_header_name(a), "X-Key");
  a.in_query = true;
  EXPECT_EQ(auth_header_name(a), "");
  a.kind = AuthSpec::Kind::OAuth2ClientCredentials;
  EXPECT_EQ(auth_header_value(a, "abc"), "Bearer abc");
  EXPECT_EQ(add_query_param("http://h/a", "api key", "k&=1"), "http://h/a?api%20key=k%26%3D1");
  EXPECT_EQ(add_query_param("http://h/a?x=1", "k", "v"), "http://h/a?x=1&k=v");
  EXPECT_EQ(add_query_param("http://h/a?x=1#frag", "k", "v"), "http://h/a?x=1&k=v#frag");
}

TEST(SourceAuth, TokenRequestCarriesGrantScopeAudienceAndCredentials) {
  AuthSpec a;
  a.kind = AuthSpec::Kind::OAuth2ClientCredentials;
  a.client_id = "id 1";
  a.client_secret = "s&cret";
  a.scope = "read write";
  a.audience = "https://api";
  a.token_request_data = {{"resource", "x"}};
  EXPECT_EQ(token_request_body(a),
            "grant_type=client_credentials&scope=read%20write&audience=https%3A%2F%2Fapi&"
            "resource=x");
  auto h = token_request_headers(a);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[2].second, "Basic " + base64_encode("id 1:s&cret"));
  a.client_auth_in_body = true;
  EXPECT_EQ(token_request_body(a),
            "grant_type=client_credentials&client_id=id%201&client_secret=s%26cret&"
            "scope=read%20write&audience=https%3A%2F%2Fapi&resource=x");
  EXPECT_EQ(token_request_headers(a).size(), 2u);
}

TEST(SourceAuth, TokenResponsesAreReadAndBadOnesRefusedWithoutTheirValues) {
  OAuthToken t = parse_token_response(R"({"access_token":"abc","expires_in":3600})");
  EXPECT_EQ(t.access_token, "abc");
  EXPECT_EQ(t.expires_in, std::chrono::seconds(3600));
  EXPECT_EQ(parse_token_response(R"({"access_token":"abc","expires_in":"60"})").expires_in,
            std::chrono::seconds(60));
  EXPECT_FALSE(parse_token_response(R"({"access_token":"abc"})").expires_in);
  for (const char* bad : {R"({"token":"sekrit-1"})", R"({"access_token":7})", "sekrit-1",
                          R"({"access_token":"sekrit-1","expires_in":-5})",
                          R"({"access_token":"sekrit-1","expires_in":"soon"})"}) {
    try {
      parse_token_response(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).find("sekrit"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(token_refresh_after(std::chrono::seconds(1)), std::chrono::milliseconds(900));
  EXPECT_EQ(token_refresh_after(std::chrono::hours(1)), std::chrono::seconds(3570));
}

TEST(SourceAuth, SecretsAreMasked) {
  AuthSpec a;
  a.kind = AuthSpec::Kind::HttpBasic;
  a.username = "u";
  a.password = "pass-word";
  std::string masked = mask_secrets("x pass-word y " + base64_encode("u:pass-word"), a.secrets());
  EXPECT_EQ(masked, "x *** y ***");
}

TEST(JsonTemplateTest, SingleReferencesKeepTheirTypeOthersRenderAsStrings) {
  Value shape = parse_json(
      R"({"id":"{employee_id}","tags":"{tags}","label":"emp {employee_id}","lit":"{{x}}",)"
      R"("n":5,"nested":[{"b":"{message.flag}"},null,true]})");
  JsonTemplate t = JsonTemplate::parse(shape);
  Value msg = parse_json(R"({"employee_id":12345678901234567890,"tags":["a","b"],"flag":false})");
  EXPECT_EQ(t.render(msg),
            R"({"id":12345678901234567890,"tags":["a","b"],"label":"emp 12345678901234567890",)"
            R"("lit":"{x}","n":5,"nested":[{"b":false},null,true]})");
  EXPECT_EQ(t.templates().size(), 5u);  // "{{x}}" is a template without references
  EXPECT_THROW(t.render(parse_json(R"({"tags":[]})")), DataError);
  EXPECT_THROW(JsonTemplate::parse(parse_json(R"({"a":"{record.id}"})")), TemplateError);
}

TEST(ConfigAuth, EachKindLoads) {
  PipelineSpec p = load("  auth: { type: bearer, token: \"${T}\" }\n", "", {{"T", "tok"}});
  EXPECT_EQ(p.source.auth.kind, AuthSpec::Kind::Bearer);
  EXPECT_EQ(p.source.auth.token, "tok");
  p = load("  auth: { type: http_basic, username: u, password: \"${P}\" }\n", "", {{"P", "pw"}});
  EXPECT_EQ(p.source.auth.kind, AuthSpec::Kind::HttpBasic);
  EXPECT_EQ(p.source.auth.password, "pw");
  p = load("  auth: { type: api_key, name: key, location: query, api_key: k1 }\n", "");
  EXPECT_TRUE(p.source.auth.in_query);
  EXPECT_EQ(p.source.auth.name, "key");
  p = load("  auth: { type: api_key, api_key: k1 }\n", "");
  EXPECT_FALSE(p.source.auth.in_query);
  EXPECT_EQ(p.source.auth.name, "Authorization");
  p = load(
      "  auth:\n    type: oauth2_client_credentials\n    access_token_url: https://a/t\n"
      "    client_id: c\n    client_secret: s3\n    scopes: [a, b]\n    audience: x\n"
      "    access_token_request_data: { resource: r }\n    client_auth: body\n"
      "    default_token_expiration: 10m\n",
      "");
  const AuthSpec& o = p.source.auth;
  EXPECT_EQ(o.kind, AuthSpec::Kind::OAuth2ClientCredentials);
  EXPECT_EQ(o.scope, "a b");
  EXPECT_TRUE(o.client_auth_in_body);
  EXPECT_EQ(o.default_token_expiration, std::chrono::minutes(10));
  ASSERT_EQ(o.token_request_data.size(), 1u);
  p = load(
      "  auth: { type: oauth2_client_credentials, access_token_url: \"http://a/t\", client_id: c,"
      " client_secret: s, default_token_expiration: 600 }\n",
      "");
  EXPECT_EQ(p.source.auth.default_token_expiration, std::chrono::seconds(600));
  EXPECT_FALSE(p.source.auth.client_auth_in_body);
}

TEST(ConfigAuth, ErrorsHavePositionsAndNoSecret) {
  EXPECT_EQ(error_of("  auth: { type: bearer }\n", ""),
            "p.yaml:4:9: missing required key 'token' in source.auth (give it from the "
            "environment, as in token: ${MY_TOKEN})");
  EXPECT_EQ(error_of("  auth: { type: bearer, token: \"${T:-}\" }\n", ""),
            "p.yaml:4:32: source.auth.token is empty (is the environment variable it reads set?)");
  std::string e = error_of("  auth: { type: oauth2 }\n", "");
  EXPECT_NE(e.find("p.yaml:4:17: unknown auth type 'oauth2'"), std::string::npos) << e;
  e = error_of("  auth: { type: api_key, api_key: \"${K}\", location: cookie }\n", "",
               {{"K", "kk-secret"}});
  EXPECT_NE(e.find("location must be header or query"), std::string::npos) << e;
  EXPECT_EQ(e.find("kk-secret"), std::string::npos);
  e = error_of("  auth: { type: api_key, api_key: k, location: query }\n", "");
  EXPECT_NE(e.find("missing required key 'name'"), std::string::npos) << e;
  e = error_of("  auth: { type: http_basic, username: \"a:b\", password: p }\n", "");
  EXPECT_NE(e.find("may not contain ':'"), std::string::npos) << e;
  e = error_of(
      "  auth: { type: oauth2_client_credentials, access_token_url: ftp://x, "
      "client_id: c, client_secret: s }\n",
      "");
  EXPECT_NE(e.find("access_token_url must be an http"), std::string::npos) << e;
}

TEST(ConfigRequests, MethodParamsHeadersBodyAndResponsesLoad) {
  PipelineSpec p =
      load("",
           "    method: POST\n    params: { q: \"{n}\", lit: x }\n    headers: { X-A: b }\n"
           "    body: { n: \"{n}\", k: [1, \"two\", true] }\n"
           "    responses:\n      - { status: 404, action: empty }\n"
           "      - { status: [409, 4xx], action: retry }\n"
           "      - { status: 5XX, action: dead_letter }\n");
  const StageSpec& s = p.stages[0];
  EXPECT_EQ(s.method, "POST");
  ASSERT_EQ(s.params.size(), 2u);
  EXPECT_EQ(s.params[0].second.text, "{n}");
  ASSERT_EQ(s.headers.size(), 1u);
  ASSERT_TRUE(s.body);
  EXPECT_EQ(to_json(*s.body), R"({"n":"{n}","k":[1,"two",true]})");
  ASSERT_EQ(s.responses.size(), 4u);
  EXPECT_EQ(s.responses[0].lo, 404);
  EXPECT_EQ(s.responses[2].lo, 400);
  EXPECT_EQ(s.responses[2].hi, 499);
  EXPECT_EQ(s.responses[3].action, ResponseRule::Action::DeadLetter);
}

TEST(ConfigRequests, ErrorsHavePositions) {
  EXPECT_EQ(error_of("", "    responses: [{ status: 404, action: skip }]\n"),
            "p.yaml:9:40: unknown response action 'skip' (expected one of: empty, retry, "
            "dead_letter)");
  EXPECT_EQ(error_of("", "    responses: [{ status: 600, action: empty }]\n"),
            "p.yaml:9:27: expected an HTTP status (100..599) or a class such as 4xx, found '600'");
  EXPECT_EQ(error_of("", "    body: { a: \"{n}\" }\n"),
            "p.yaml:9:5: stage 'a' has a body but its method is GET (write method: POST, or "
            "request: POST /path)");
  EXPECT_EQ(error_of("", "    method: POST\n    body: { a: \"{nope\" }\n"),
            "p.yaml:10:16: invalid template: unclosed '{' (write '{{' for a literal brace)");
  EXPECT_EQ(error_of("", "    method: POST\n    body: { a: \"{m}\" }\n"),
            "p.yaml:10:16: parameter 'm' used in the body of root stage 'a' is not among its "
            "inputs (inputs: n)");
  EXPECT_EQ(error_of("", "    method: FETCH\n"),
            "p.yaml:9:13: unknown HTTP method 'FETCH' (expected one of: GET, POST, PUT, PATCH, "
            "DELETE, HEAD)");
  EXPECT_EQ(error_of("", "    params: { q: \"{record.id}\" }\n"),
            "p.yaml:9:18: params may only use message parameters, found '{record.id}'");
}
