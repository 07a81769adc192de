// Response processing for each stage of the reference pipeline: rows, keys, hashes, children.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "config/loader.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json.h"
#include "engine/plan.h"
#include "engine/processor.h"

using namespace cascade;

namespace {

const char* kPipeline = R"(name: dunder-mifflin
env: ${APP_ENV:-dev}
source: { base_url: "http://127.0.0.1:8080" }
stages:
  branches:
    inputs: { branch: [Scranton, Akron, New York] }
    event: { branches: branch }
    request: GET /branches?branch={branch}
    records: result
    key: { branch_id: id }
    emit: { salespersons: { branch_id: "{record.id}" } }
  salespersons:
    request: GET /employees?branch_id={branch_id}
    records: result.employees
    where: occupation == "salesperson"
    key: { employee_id: id, branch_id: "{message.branch_id}" }
    emit: { sales: { employee_id: "{record.id}", branch_id: "{message.branch_id}" } }
  sales:
    request: GET /sales?employee_id={employee_id}
    records: result.sales
    key: { sale_id: id, employee_id: "{message.employee_id}" }
    attach: { branch_id: "{message.branch_id}" }
)";

class EngineProcessor : public ::testing::Test {
 protected:
  EngineProcessor()
      : plan_(load_pipeline_text(kPipeline, "test.yaml",
                                 [](std::string_view) { return std::optional<std::string>(); })) {}

  const CompiledStage& stage(std::string_view name) {
    const CompiledStage* s = plan_.find(name);
    EXPECT_NE(s, nullptr) << name;
    return *s;
  }
  Processed run(std::string_view stage_name, const char* message, std::string body) {
    return process_response(plan_, stage(stage_name), parse_json(message), body);
  }
  std::string error_of(std::string_view stage_name, const char* message, std::string body) {
    try {
      run(stage_name, message, std::move(body));
    } catch (const DataError& e) {
      return e.what();
    }
    return "";
  }

  Plan plan_;
};

TEST_F(EngineProcessor, KeyRenamingDropsTheRenamedField) {
  auto p = run("branches", R"({"branch":"Akron"})",
               R"({"result":[{"id":2,"name":"Akron","manager":"Jan"}]})");
  ASSERT_EQ(p.rows.size(), 1u);
  const Value& img = p.rows[0].image;
  EXPECT_EQ(img.find("branch_id")->as_int(), 2);
  EXPECT_EQ(img.find("id"), nullptr);
  EXPECT_EQ(img.find("name")->as_string(), "Akron");
  EXPECT_EQ(img.find("manager")->as_string(), "Jan");
  EXPECT_EQ(img.as_object().front().first, "branch_id");  // key columns come first
  EXPECT_EQ(p.rows[0].key, "[2]");
  EXPECT_EQ(canonical_json(p.rows[0].image), canonical_json(img));
  EXPECT_EQ(p.records_seen, 1u);
}

TEST_F(EngineProcessor, TemplateKeysFromMessageKeepTheirType) {
  auto p =
      run("salespersons", R"({"branch_id":2})",
          R"({"result":{"employees":[{"id":10,"occupation":"salesperson","name":"Dwight"}]}})");
  ASSERT_EQ(p.rows.size(), 1u);
  const Value& img = p.rows[0].image;
  EXPECT_EQ(img.find("employee_id")->as_int(), 10);
  ASSERT_TRUE(img.find("branch_id")->is_int());  // not the string "2"
  EXPECT_EQ(img.find("branch_id")->as_int(), 2);
  EXPECT_EQ(img.find("id"), nullptr);
  EXPECT_EQ(p.rows[0].key, "[10,2]");

  auto s = run("salespersons", R"({"branch_id":"NY"})",
               R"({"result":{"employees":[{"id":10,"occupation":"salesperson"}]}})");
  EXPECT_EQ(s.rows[0].image.find("branch_id")->as_string(), "NY");
  EXPECT_EQ(s.rows[0].key, R"([10,"NY"])");
}

TEST_F(EngineProcessor, AttachFieldsComeFromTheMessage) {
  auto p = run("sales", R"({"employee_id":1235,"branch_id":2})",
               R"({"result":{"sales":[{"id":3972,"amount":12.5,"product":"paper"}]}})");
  ASSERT_EQ(p.rows.size(), 1u);
  const Value& img = p.rows[0].image;
  EXPECT_EQ(img.find("sale_id")->as_int(), 3972);
  EXPECT_EQ(img.find("employee_id")->as_int(), 1235);
  EXPECT_EQ(img.find("branch_id")->as_int(), 2);
  EXPECT_DOUBLE_EQ(img.find("amount")->as_double(), 12.5);
  EXPECT_EQ(img.find("id"), nullptr);
  const Object& o = img.as_object();
  ASSERT_GE(o.size(), 3u);
  EXPECT_EQ(o[0].first, "sale_id");
  EXPECT_EQ(o[1].first, "employee_id");
  EXPECT_EQ(o[2].first, "branch_id");
  // A missing attach value in the message is the message's fault: a DataError naming it.
  std::string e =
      error_of("sales", R"({"employee_id":1235})", R"({"result":{"sales":[{"id":3972}]}})");
  EXPECT_NE(e.find("branch_id"), std::string::npos) << e;
}

TEST_F(EngineProcessor, WhereFilterCountsFilteredOut) {
  auto p = run("salespersons", R"({"branch_id":2})", R"({"result":{"employees":[
      {"id":10,"occupation":"salesperson"},
      {"id":11,"occupation":"manager"},
      {"id":12,"occupation":"salesperson"},
      {"id":13,"occupation":"receptionist"}]}})");
  EXPECT_EQ(p.records_seen, 4u);
  EXPECT_EQ(p.filtered_out, 2u);
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[0].image.find("employee_id")->as_int(), 10);
  EXPECT_EQ(p.rows[1].image.find("employee_id")->as_int(), 12);
  // Filtered records emit no children either.
  ASSERT_EQ(p.children.size(), 1u);
  EXPECT_EQ(p.children[0].second.size(), 2u);
}

TEST_F(EngineProcessor, ChildrenAreCanonicalJsonRenderedBeforeRenaming) {
  auto p = run("branches", R"({"branch":"Akron"})",
               R"({"result":[{"name":"Akron","id":2},{"id":5,"name":"Scranton"}]})");
  ASSERT_EQ(p.children.size(), 1u);
  EXPECT_EQ(p.children[0].first, stage("salespersons").index);
  ASSERT_EQ(p.children[0].second.size(), 2u);
  EXPECT_EQ(p.children[0].second[0], R"({"branch_id":2})");
  EXPECT_EQ(p.children[0].second[1], R"({"branch_id":5})");

  auto s = run("salespersons", R"({"branch_id":2})",
               R"({"result":{"employees":[{"occupation":"salesperson","id":10}]}})");
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].first, stage("sales").index);
  ASSERT_EQ(s.children[0].second.size(), 1u);
  // Sorted keys, typed values: one spelling whatever the template order.
  EXPECT_EQ(s.children[0].second[0], R"({"branch_id":2,"employee_id":10})");

  auto leaf =
      run("sales", R"({"employee_id":1,"branch_id":2})", R"({"result":{"sales":[{"id":1}]}})");
  EXPECT_TRUE(leaf.children.empty());
}

TEST_F(EngineProcessor, IdenticalRepeatsAreOneRowDifferingOnesAreRefused) {
  auto p = run("sales", R"({"employee_id":1,"branch_id":2})", R"({"result":{"sales":[
      {"id":1,"amount":10},{"id":2,"amount":20},{"amount":10,"id":1}]}})");
  EXPECT_EQ(p.records_seen, 3u);
  EXPECT_EQ(p.duplicates, 1u);
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[0].key, "[1,1]");
  EXPECT_EQ(p.rows[0].image.find("amount")->as_int(), 10);
  EXPECT_EQ(p.rows[1].image.find("amount")->as_int(), 20);
  EXPECT_EQ(p.rows[0].hash, hash_bytes(canonical_json(p.rows[0].image)));

  std::string e = error_of("sales", R"({"employee_id":1,"branch_id":2})",
                           R"({"result":{"sales":[{"id":1,"amount":10},{"id":1,"amount":30}]}})");
  EXPECT_NE(e.find("record 1: key [1,1] appears again"), std::string::npos) << e;
  EXPECT_NE(e.find("30"), std::string::npos) << e;
}

TEST_F(EngineProcessor, MissingKeyFieldNamesTheField) {
  std::string e = error_of("sales", R"({"employee_id":1,"branch_id":2})",
                           R"({"result":{"sales":[{"id":1},{"amount":5}]}})");
  EXPECT_NE(e.find("'id'"), std::string::npos) << e;
  EXPECT_NE(e.find("sale_id"), std::string::npos) << e;
  EXPECT_NE(e.find("record 1"), std::string::npos) << e;
  // A null key is as unusable as an absent one.
  e = error_of("sales", R"({"employee_id":1,"branch_id":2})",
               R"({"result":{"sales":[{"id":null}]}})");
  EXPECT_NE(e.find("'id'"), std::string::npos) << e;
  // So is a message without the key value the template needs.
  e = error_of("sales", R"({"branch_id":2})", R"({"result":{"sales":[{"id":1}]}})");
  EXPECT_NE(e.find("employee_id"), std::string::npos) << e;
}

TEST_F(EngineProcessor, ObjectKeyIsAnError) {
  std::string e = error_of("sales", R"({"employee_id":1,"branch_id":2})",
                           R"({"result":{"sales":[{"id":{"n":1}}]}})");
  EXPECT_NE(e.find("sale_id"), std::string::npos) << e;
  EXPECT_NE(e.find("scalar"), std::string::npos) << e;
  e = error_of("salespersons", R"({"branch_id":[1,2]})",
               R"({"result":{"employees":[{"id":1,"occupation":"salesperson"}]}})");
  EXPECT_NE(e.find("branch_id"), std::string::npos) << e;
}

TEST_F(EngineProcessor, BadBodyIsADataError) {
  EXPECT_NE(error_of("sales", R"({"employee_id":1,"branch_id":2})", R"({"result":{"sales":[)")
                .find("malformed"),
            std::string::npos);
  EXPECT_NE(
      error_of("sales", R"({"employee_id":1,"branch_id":2})", R"({"result":{}})").find("'sales'"),
      std::string::npos);
}

TEST_F(EngineProcessor, RowHashIgnoresKeyOrderAndNumberSpelling) {
  const char* msg = R"({"employee_id":1,"branch_id":2})";
  auto a =
      run("sales", msg, R"({"result":{"sales":[{"id":7,"amount":1.0,"tags":{"a":1,"b":2}}]}})");
  auto b =
      run("sales", msg, R"({"result":{"sales":[ {"tags":{"b":2,"a":1e0}, "amount":1, "id":7} ]}})");
  auto c =
      run("sales", msg, R"({"result":{"sales":[{"id":7,"amount":1.5,"tags":{"a":1,"b":2}}]}})");
  auto d = run("sales", msg, R"({"result":{"sales":[{"id":7,"amount":1,"tags":{"a":1,"b":3}}]}})");
  ASSERT_EQ(a.rows.size(), 1u);
  ASSERT_EQ(b.rows.size(), 1u);
  EXPECT_EQ(canonical_json(a.rows[0].image), canonical_json(b.rows[0].image));
  EXPECT_EQ(a.rows[0].hash, b.rows[0].hash);
  EXPECT_EQ(a.rows[0].hash, b.rows[0].hash);
  EXPECT_EQ(a.rows[0].key, b.rows[0].key);
  EXPECT_NE(a.rows[0].hash, c.rows[0].hash);
  EXPECT_NE(a.rows[0].hash, d.rows[0].hash);
  // The message's values are part of the image too.
  auto e = run("sales", R"({"employee_id":1,"branch_id":3})",
               R"({"result":{"sales":[{"id":7,"amount":1,"tags":{"a":1,"b":2}}]}})");
  EXPECT_NE(a.rows[0].hash, e.rows[0].hash);
  EXPECT_EQ(a.rows[0].key, e.rows[0].key);
}

TEST_F(EngineProcessor, KeyStringFormat) {
  const CompiledStage& sales = stage("sales");
  Value img = parse_json(R"({"sale_id":3972,"employee_id":1235,"amount":3})");
  EXPECT_EQ(key_string(sales, img), "[3972,1235]");
  // Key order is the stage's, not the image's.
  EXPECT_EQ(key_string(sales, parse_json(R"({"employee_id":1235,"sale_id":3972})")), "[3972,1235]");
  EXPECT_EQ(key_string(sales, parse_json(R"({"sale_id":"a\"b","employee_id":1.0})")),
            R"(["a\"b",1])");
  EXPECT_EQ(key_string(stage("branches"), parse_json(R"({"branch_id":true})")), "[true]");
}

TEST_F(EngineProcessor, ScopeDiffersPerRequestAndStage) {
  const CompiledStage& sales = stage("sales");
  uint64_t a = scope_of(sales, "/sales?employee_id=1");
  EXPECT_EQ(a, scope_of(sales, "/sales?employee_id=1"));
  EXPECT_NE(a, scope_of(sales, "/sales?employee_id=2"));
  EXPECT_NE(a, scope_of(stage("salespersons"), "/sales?employee_id=1"));
}

}  // namespace

TEST(EngineFanOut, OneStageFeedsSeveralChildrenFourLevelsDeep) {
  const char* text = R"(name: fan
source: { base_url: "http://127.0.0.1:8080" }
stages:
  regions:
    inputs: { region: [east] }
    request: GET /regions?r={region}
    records: items
    key: { region_id: id }
    emit:
      branches: { region_id: "{record.id}" }
      audits: { region_id: "{record.id}", kind: "{record.kind}" }
  branches:
    request: GET /branches?region={region_id}
    records: items
    key: { branch_id: id }
    emit: { employees: { branch_id: "{record.id}" } }
  audits:
    request: GET /audits?region={region_id}&kind={kind}
    records: items
    key: { audit_id: id }
  employees:
    request: GET /employees?branch={branch_id}
    records: items
    key: { employee_id: id }
)";
  PipelineSpec spec =
      load_pipeline_text(text, "fan.yaml", [](std::string_view) { return std::nullopt; });
  Plan plan(spec);
  const CompiledStage* regions = plan.find("regions");
  ASSERT_NE(regions, nullptr);
  EXPECT_TRUE(regions->root);
  EXPECT_FALSE(plan.find("employees")->root);
  std::string body = R"({"items":[{"id":7,"kind":"fire"},{"id":8,"kind":"flood"}]})";
  Processed p = process_response(plan, *regions, parse_json(R"({"region":"east"})"), body);
  ASSERT_EQ(p.children.size(), 2u);
  EXPECT_EQ(plan.stages()[p.children[0].first].name, "branches");
  EXPECT_EQ(p.children[0].second,
            (std::vector<std::string>{R"({"region_id":7})", R"({"region_id":8})"}));
  EXPECT_EQ(plan.stages()[p.children[1].first].name, "audits");
  EXPECT_EQ(p.children[1].second, (std::vector<std::string>{R"({"kind":"fire","region_id":7})",
                                                            R"({"kind":"flood","region_id":8})"}));
  // The third level renders the fourth's messages the same way.
  std::string b = R"({"items":[{"id":70}]})";
  Processed q = process_response(plan, *plan.find("branches"), parse_json(R"({"region_id":7})"), b);
  ASSERT_EQ(q.children.size(), 1u);
  EXPECT_EQ(q.children[0].second, std::vector<std::string>{R"({"branch_id":70})"});
}

TEST_F(EngineProcessor, PagesMergeIntoOneListingKeepingARepeatedRecordOnce) {
  const char* msg = R"({"branch_id":2})";
  std::vector<Processed> pages;
  pages.push_back(run("salespersons", msg,
                      R"({"result":{"employees":[{"id":10,"occupation":"salesperson"},
                                                 {"id":11,"occupation":"salesperson"}]}})"));
  // A record that shifted onto the next page while the listing was read.
  pages.push_back(run("salespersons", msg,
                      R"({"result":{"employees":[{"id":11,"occupation":"salesperson"},
                                                 {"id":12,"occupation":"clerk"},
                                                 {"id":13,"occupation":"salesperson"}]}})"));
  Processed all = merge_pages(pages);
  ASSERT_EQ(all.rows.size(), 3u);
  EXPECT_EQ(all.rows[0].key, "[10,2]");
  EXPECT_EQ(all.rows[1].key, "[11,2]");
  EXPECT_EQ(all.rows[2].key, "[13,2]");
  EXPECT_EQ(all.records_seen, 5u);
  EXPECT_EQ(all.filtered_out, 1u);
  EXPECT_EQ(all.duplicates, 1u);
  ASSERT_EQ(all.children.size(), 1u);
  EXPECT_EQ(all.children[0].second.size(), 4u);  // the repeat's child coalesces in the queue

  std::vector<Processed> clash;
  clash.push_back(run("salespersons", msg,
                      R"({"result":{"employees":[{"id":10,"occupation":"salesperson"}]}})"));
  clash.push_back(run("salespersons", msg,
                      R"({"result":{"employees":[{"id":10,"occupation":"salesperson","x":1}]}})"));
  try {
    merge_pages(clash);
    FAIL() << "a key on two pages with other content must be refused";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("page 2: key [10,2]"), std::string::npos) << e.what();
  }
}
