// Hostile API data: a small HTTP server in the test serves crafted bodies to a one-stage pipeline,
// the real cascade binary syncs it, and the outcome is read back through `cascade sql -f json`
// and `cascade dlq list --json`: odd field names and huge values round-trip, unusable data is
// dead-lettered with a reason, and the run always goes on.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "core/json.h"
#include "sim/http_server.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

std::string nested(int levels, const std::string& leaf) {
  return std::string(static_cast<size_t>(levels), '[') + leaf +
         std::string(static_cast<size_t>(levels), ']');
}

// A megabyte of text that exercises escaping: quotes, backslashes, control bytes, multi-byte
// UTF-8 (whole code points only, so the value stays valid UTF-8).
std::string megabyte_text() {
  const std::string unit = "quote\" back\\slash tab\t nl\n \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 ";
  std::string s;
  while (s.size() + unit.size() <= (1u << 20)) s += unit;
  return s;
}

struct Case {
  std::string name;
  int status;
  std::string content_type;
  std::string body;
};

struct Fixture {
  std::string dir = temp_dir();
  std::string db = dir + "/hostile.db";
  std::string pipeline = dir + "/hostile.yaml";

  void write_pipeline(const std::string& base_url, const std::vector<Case>& cases) {
    std::string list;
    for (const auto& c : cases) list += (list.empty() ? "" : ", ") + c.name;
    std::ofstream(pipeline) << "name: hostile\n"
                               "source:\n"
                               "  base_url: "
                            << base_url
                            << "\n"
                               "  timeout: 10s\n"
                               "  retry: { attempts: 1, backoff: 1ms..2ms }\n"
                               "storage: sqlite:"
                            << db
                            << "\n"
                               "queues: { visibility_timeout: 1s, max_receive_count: 1 }\n"
                               "stages:\n"
                               "  items:\n"
                               "    inputs: { case: ["
                            << list
                            << "] }\n"
                               "    request: GET /items?case={case}\n"
                               "    records: result\n"
                               "    key: { item_id: id }\n";
  }

  RunResult cli(std::vector<std::string> args) const {
    std::vector<std::string> argv{CASCADE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  Value sync() const {
    RunResult r = cli({"sync", pipeline, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    return parse_json(r.out);
  }

  // Rows of `cascade sql -f json`, as parsed JSON objects.
  Value sql(const std::string& query) const {
    RunResult r = cli({"sql", "-p", pipeline, "-f", "json", query});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out);
  }

  // Dead letters by the case name in their message body -> reason.
  std::map<std::string, std::string> dead_letters() const {
    RunResult r = cli({"dlq", "list", "-p", pipeline, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::string> out;
    Value letters = parse_json(r.out);
    for (const auto& d : letters.as_array()) {
      Value body = parse_json(d.find("body")->as_string());
      out[body.find("case")->as_string()] = d.find("reason")->as_string();
    }
    return out;
  }
};

sim::HttpHandler serve(const std::vector<Case>& cases) {
  return [cases](const sim::HttpRequest& req, sim::HttpResponse& res) {
    const std::string* c = req.param("case");
    for (const auto& k : cases)
      if (c && *c == k.name) {
        res.status = k.status;
        res.content_type = k.content_type;
        res.body = k.body;
        return;
      }
    res.status = 404;
    res.body = R"({"error":"unknown case"})";
  };
}

}  // namespace

TEST(HostileData, OddNamesHugeValuesAndBrokenRecordsAreStoredOrDeadLetteredAndTheRunGoesOn) {
  const std::string names_record =
      R"({"id":1,"select":"s","from":"f","order":3,"a\"b":"quote","it's":"apos",)"
      R"("semi;colon":"x; DROP TABLE items;--","dot.ted":"dot","sp ace":"space",)"
      R"("\u00fcn\u00efc\u00f8d\u00e9 \ud83d\ude00":"\u00ff\u20ac\ud83d\ude00"})";
  const std::string big = megabyte_text();
  std::string big_json;
  append_json_string(big, big_json);
  const std::string deep200 = nested(200, R"({"leaf":true})");
  const std::vector<Case> cases = {
      {"names", 200, "application/json", R"({"result":[)" + names_record + "]}"},
      {"big", 200, "application/json", R"({"result":[{"id":2,"text":)" + big_json + "}]}"},
      {"deep200", 200, "application/json", R"({"result":[{"id":3,"deep":)" + deep200 + "}]}"},
      {"toodeep", 200, "application/json",
       R"({"result":[{"id":4,"deep":)" + nested(5000, "1") + "}]}"},
      // Deep enough to overflow the stack of a recursive reader: must be refused, not crash.
      {"abyss", 200, "application/json",
       R"({"result":[{"id":10,"deep":)" + nested(200000, "1") + "}]}"},
      {"hugefloat", 200, "application/json", R"({"result":[{"id":5,"v":1e400}]})"},
      {"hugeint", 200, "application/json",
       R"({"result":[{"id":6,"v":123456789012345678901234567890}]})"},
      {"dupkeys", 200, "application/json", R"({"result":[{"id":7,"v":"first","v":"second"}]})"},
      {"nokey", 200, "application/json", R"({"result":[{"name":"no id here"}]})"},
      {"objkey", 200, "application/json", R"({"result":[{"id":{"nested":1},"name":"x"}]})"},
      {"html200", 200, "text/html", "<html><body><h1>Maintenance</h1></body></html>"},
      {"html404", 404, "text/html", "<html><body>Not Found</body></html>"},
  };
  CannedServer server(serve(cases));
  Fixture fx;
  fx.write_pipeline(server.url(), cases);

  Value summary = fx.sync();
  EXPECT_TRUE(summary.find("completed")->as_bool());

  // Field names that are SQL keywords, hold quotes, semicolons, dots, spaces or non-ASCII are
  // columns of their own, and every value reads back byte for byte.
  Value rows = fx.sql("SELECT * FROM items WHERE item_id = 1");
  ASSERT_EQ(rows.as_array().size(), 1u);
  Value expected = parse_json(names_record);
  for (const auto& [name, v] : expected.as_object()) {
    if (name == "id") continue;
    const Value* got = rows.as_array()[0].find(name);
    ASSERT_NE(got, nullptr) << "no column named " << name;
    EXPECT_EQ(canonical_json(*got), canonical_json(v)) << name;
  }

  Value big_row =
      fx.sql("SELECT text, length(CAST(text AS BLOB)) AS n FROM items WHERE item_id = 2");
  ASSERT_EQ(big_row.as_array().size(), 1u);
  EXPECT_EQ(big_row.as_array()[0].find("n")->as_int(), static_cast<int64_t>(big.size()));
  EXPECT_TRUE(big_row.as_array()[0].find("text")->as_string() == big) << "1 MB value changed";

  // 200 levels are well within the parser's limit: the field is kept as JSON text.
  Value deep_row = fx.sql("SELECT deep, typeof(deep) AS t FROM items WHERE item_id = 3");
  ASSERT_EQ(deep_row.as_array().size(), 1u);
  EXPECT_EQ(deep_row.as_array()[0].find("t")->as_string(), "text");
  EXPECT_EQ(parse_json(deep_row.as_array()[0].find("deep")->as_string()), parse_json(deep200));

  std::map<std::string, std::string> dlq = fx.dead_letters();
  auto reason = [&](const std::string& c) { return dlq.count(c) ? dlq[c] : "(not dead-lettered)"; };

  // Beyond the parser's depth limit: dead-lettered with the parser's reason.
  EXPECT_NE(reason("toodeep").find("too deep"), std::string::npos) << reason("toodeep");
  EXPECT_EQ(fx.sql("SELECT 1 FROM items WHERE item_id = 4").as_array().size(), 0u);
  EXPECT_NE(reason("abyss").find("too deep"), std::string::npos) << reason("abyss");

  // 1e400 does not fit a double and a 30-digit integer does not fit 64 bits: both are stored
  // exactly, as their decimal text, never as inf, 0 or the nearest double.
  EXPECT_EQ(dlq.count("hugefloat"), 0u) << reason("hugefloat");
  Value hugefloat = fx.sql("SELECT v, typeof(v) AS t FROM items WHERE item_id = 5");
  ASSERT_EQ(hugefloat.as_array().size(), 1u);
  EXPECT_EQ(hugefloat.as_array()[0].find("t")->as_string(), "text");
  EXPECT_EQ(hugefloat.as_array()[0].find("v")->as_string(), "1e400");
  EXPECT_EQ(dlq.count("hugeint"), 0u) << reason("hugeint");
  Value hugeint = fx.sql("SELECT v, typeof(v) AS t FROM items WHERE item_id = 6");
  ASSERT_EQ(hugeint.as_array().size(), 1u);
  EXPECT_EQ(hugeint.as_array()[0].find("t")->as_string(), "text");
  EXPECT_EQ(hugeint.as_array()[0].find("v")->as_string(), "123456789012345678901234567890");

  // Duplicate keys: stored with the last value, the same way on every sync.
  EXPECT_EQ(dlq.count("dupkeys"), 0u) << reason("dupkeys");
  Value dup = fx.sql("SELECT v FROM items WHERE item_id = 7");
  ASSERT_EQ(dup.as_array().size(), 1u);
  std::string dup_value = dup.as_array()[0].find("v")->as_string();
  EXPECT_EQ(dup_value, "second");  // the last one wins, as in JSON.parse

  // A key field missing or not a scalar: the reason names the field.
  EXPECT_NE(reason("nokey").find("'id'"), std::string::npos) << reason("nokey");
  EXPECT_NE(reason("objkey").find("'item_id'"), std::string::npos) << reason("objkey");
  EXPECT_NE(reason("objkey").find("object"), std::string::npos) << reason("objkey");

  // HTML instead of JSON: the status and an excerpt of what came back.
  EXPECT_NE(reason("html200").find("HTTP 200"), std::string::npos) << reason("html200");
  EXPECT_NE(reason("html200").find("<html><body><h1>Maintenance"), std::string::npos)
      << reason("html200");
  EXPECT_NE(reason("html404").find("HTTP 404"), std::string::npos) << reason("html404");
  EXPECT_NE(reason("html404").find("Not Found"), std::string::npos) << reason("html404");

  EXPECT_EQ(dlq.size(), 6u);  // toodeep, abyss, nokey, objkey, html200, html404
  EXPECT_EQ(summary.find("total")->find("dead_lettered")->as_int(), 6);
  EXPECT_EQ(fx.sql("SELECT count(*) AS n FROM items").as_array()[0].find("n")->as_int(), 6);

  // Same responses again: nothing changes, the duplicate-key record included.
  Value again = fx.sync();
  EXPECT_EQ(again.find("total")->find("new")->as_int(), 0);
  EXPECT_EQ(again.find("total")->find("changed")->as_int(), 0);
  EXPECT_EQ(fx.sql("SELECT v FROM items WHERE item_id = 7").as_array()[0].find("v")->as_string(),
            dup_value);
}

// Repeated keys keep their last value in canonical JSON, which is then a fixed point: the hash
// of a record does not depend on how the data was spelled or re-read.
TEST(HostileData, RepeatedKeysCanonicaliseToAFixedPointWithTheLastValue) {
  Value v = parse_json(R"({"b":1,"a":"x","b":2,"a":"y","c":{"k":1,"k":[3]}})");
  std::string canon = canonical_json(v);
  EXPECT_EQ(canon, R"({"a":"y","b":2,"c":{"k":[3]}})");
  EXPECT_EQ(canonical_json(parse_json(canon)), canon);
  EXPECT_EQ(canonical_json(parse_json(R"({"c":{"k":[3]},"b":2,"a":"y"})")), canon);
}
