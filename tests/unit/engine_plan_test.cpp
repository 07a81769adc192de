// Plan compilation (roots, queues, children) and the messages events and inputs make.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "config/loader.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/engine.h"
#include "engine/plan.h"

using namespace cascade;

namespace {

// Stages listed leaf first, so root detection cannot rely on order.
const char* kPipeline = R"(name: dunder-mifflin
env: ${APP_ENV:-dev}
source: { base_url: "http://127.0.0.1:8080" }
stages:
  sales:
    request: GET /sales?employee_id={employee_id}
    records: result.sales
    key: { sale_id: id, employee_id: "{message.employee_id}" }
    attach: { branch_id: "{message.branch_id}" }
  salespersons:
    request: GET /employees?branch_id={branch_id}
    records: result.employees
    key: { employee_id: id, branch_id: "{message.branch_id}" }
    emit: { sales: { employee_id: "{record.id}", branch_id: "{message.branch_id}" } }
  branches:
    inputs: { branch: [Scranton, Akron, New York] }
    event: { branches: branch }
    request: GET /branches?branch={branch}
    records: result
    key: { branch_id: id }
    emit: { salespersons: { branch_id: "{record.id}" } }
)";

const char* kGrid = R"(name: grid
source: { base_url: "http://h" }
stages:
  cells:
    inputs: { region: [east, west], year: [2023, 2024, 2025] }
    event: { regions: region }
    request: /cells?region={region}&year={year}
    key: { id: id }
  fixed:
    event: { ids: id }
    request: /fixed
    key: { id: id }
)";

Plan make_plan(const char* yaml, std::map<std::string, std::string> env = {}) {
  return Plan(load_pipeline_text(yaml, "test.yaml",
                                 [env](std::string_view name) -> std::optional<std::string> {
                                   auto it = env.find(std::string(name));
                                   if (it == env.end()) return std::nullopt;
                                   return it->second;
                                 }));
}

std::vector<std::string> texts(const std::vector<Value>& msgs) {
  std::vector<std::string> out;
  for (const auto& m : msgs) out.push_back(canonical_json(m));
  return out;
}

std::vector<std::string> roots(const Plan& plan, const char* stage, const char* event) {
  Value ev = parse_json(event);
  return texts(plan.root_messages(*plan.find(stage), &ev));
}

template <class F>
std::string data_error(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(EnginePlan, RootIsTheStageNoEmitPointsAt) {
  Plan plan = make_plan(kPipeline);
  ASSERT_EQ(plan.stages().size(), 3u);
  EXPECT_TRUE(plan.find("branches")->root);
  EXPECT_FALSE(plan.find("salespersons")->root);
  EXPECT_FALSE(plan.find("sales")->root);
  EXPECT_EQ(plan.find("nope"), nullptr);
  // Children resolve to the right stage index.
  const CompiledStage& b = *plan.find("branches");
  ASSERT_EQ(b.emit.size(), 1u);
  EXPECT_EQ(plan.stages()[b.emit[0].child].name, "salespersons");
  EXPECT_EQ(plan.stages()[plan.find("salespersons")->emit[0].child].name, "sales");
  // Every stage without a parent is a root.
  Plan grid = make_plan(kGrid);
  EXPECT_TRUE(grid.find("cells")->root);
  EXPECT_TRUE(grid.find("fixed")->root);
}

TEST(EnginePlan, QueueNamesCarryTheEnvSuffix) {
  Plan dev = make_plan(kPipeline);
  EXPECT_EQ(dev.find("sales")->queue, "sales-dev");
  EXPECT_EQ(dev.find("branches")->queue, "branches-dev");
  EXPECT_EQ(dev.find("sales")->table, "sales");
  Plan prod = make_plan(kPipeline, {{"APP_ENV", "prod"}});
  EXPECT_EQ(prod.find("salespersons")->queue, "salespersons-prod");
  Plan unset = make_plan(kGrid);  // no env key: the default environment
  EXPECT_EQ(unset.find("cells")->queue, "cells-dev");
}

TEST(EnginePlan, ConsumedFieldsAreTheRenamedOnes) {
  Plan plan = make_plan(kPipeline);
  EXPECT_EQ(plan.find("sales")->consumed, std::vector<std::string>{"id"});
  EXPECT_EQ(plan.find("branches")->consumed, std::vector<std::string>{"id"});
  EXPECT_TRUE(make_plan(kGrid).find("cells")->consumed.empty());  // `id: id` renames nothing
}

TEST(EnginePlan, RootMessagesAreTheCartesianProductOfInputs) {
  Plan plan = make_plan(kGrid);
  auto msgs = plan.root_messages(*plan.find("cells"), nullptr);
  ASSERT_EQ(msgs.size(), 6u);
  EXPECT_EQ(texts(msgs),
            (std::vector<std::string>{
                R"({"region":"east","year":2023})", R"({"region":"east","year":2024})",
                R"({"region":"east","year":2025})", R"({"region":"west","year":2023})",
                R"({"region":"west","year":2024})", R"({"region":"west","year":2025})"}));
  // A root without inputs makes one empty message.
  EXPECT_EQ(texts(plan.root_messages(*plan.find("fixed"), nullptr)),
            std::vector<std::string>{"{}"});
  // An event alias fills a parameter that has no default list.
  EXPECT_EQ(roots(plan, "fixed", R"({"ids":[1,2]})"),
            (std::vector<std::string>{R"({"id":1})", R"({"id":2})"}));
  Value null_event;
  EXPECT_EQ(plan.root_messages(*plan.find("cells"), &null_event).size(), 6u);
}

TEST(EnginePlan, EventAliasOverridesInputs) {
  Plan plan = make_plan(kPipeline);
  EXPECT_EQ(roots(plan, "branches", R"({"branches":["Akron"]})"),
            std::vector<std::string>{R"({"branch":"Akron"})"});
  EXPECT_EQ(roots(plan, "branches", R"({"branches":"Akron"})"),
            std::vector<std::string>{R"({"branch":"Akron"})"});
  // The parameter's own name works as well.
  EXPECT_EQ(roots(plan, "branches", R"({"branch":["Utica","Nashua"]})"),
            (std::vector<std::string>{R"({"branch":"Utica"})", R"({"branch":"Nashua"})"}));
  // Overriding one parameter keeps the others' defaults.
  Plan grid = make_plan(kGrid);
  EXPECT_EQ(roots(grid, "cells", R"({"regions":["north"],"year":1999})"),
            std::vector<std::string>{R"({"region":"north","year":1999})"});
  EXPECT_EQ(roots(grid, "cells", R"({"regions":["north"]})").size(), 3u);
}

TEST(EnginePlan, EmptyEventListMeansDefaults) {
  Plan plan = make_plan(kPipeline);
  EXPECT_EQ(roots(plan, "branches", R"({"branches":[]})"),
            (std::vector<std::string>{R"({"branch":"Scranton"})", R"({"branch":"Akron"})",
                                      R"({"branch":"New York"})"}));
  EXPECT_EQ(roots(plan, "branches", "{}").size(), 3u);
}

TEST(EnginePlan, BadEventValueIsADataError) {
  Plan plan = make_plan(kPipeline);
  std::string e = data_error([&] { roots(plan, "branches", R"({"branches":{"name":"Akron"}})"); });
  EXPECT_NE(e.find("'branch'"), std::string::npos) << e;
  e = data_error([&] { roots(plan, "branches", R"({"branches":["Akron",["x"]]})"); });
  EXPECT_NE(e.find("scalar"), std::string::npos) << e;
  e = data_error([&] { roots(plan, "branches", R"({"branches":[null]})"); });
  EXPECT_FALSE(e.empty());
  e = data_error([&] { roots(plan, "branches", R"(["Akron"])"); });
  EXPECT_NE(e.find("object"), std::string::npos) << e;
}

TEST(EngineEventMessages, SingleObject) {
  EXPECT_EQ(texts(event_messages(parse_json(R"({"branch_id":1})"))),
            std::vector<std::string>{R"({"branch_id":1})"});
}

TEST(EngineEventMessages, List) {
  EXPECT_EQ(texts(event_messages(parse_json(R"([{"branch_id":1},{"branch_id":2}])"))),
            (std::vector<std::string>{R"({"branch_id":1})", R"({"branch_id":2})"}));
  EXPECT_TRUE(event_messages(parse_json("[]")).empty());
}

TEST(EngineEventMessages, SqsRecords) {
  Value ev = parse_json(R"({"Records":[{"messageId":"m1","body":"{\"branch_id\":1}"},)"
                        R"({"messageId":"m2","body":"{\"branch_id\":2,\"x\":\"y\"}"}]})");
  EXPECT_EQ(texts(event_messages(ev)),
            (std::vector<std::string>{R"({"branch_id":1})", R"({"branch_id":2,"x":"y"})"}));
}

TEST(EngineEventMessages, BadShapesAreDataErrors) {
  auto err = [](const char* json) { return data_error([&] { event_messages(parse_json(json)); }); };
  EXPECT_NE(err("42").find("JSON object"), std::string::npos);
  EXPECT_NE(err(R"("text")").find("JSON object"), std::string::npos);
  EXPECT_NE(err(R"([{"a":1},2])").find("each message"), std::string::npos);
  EXPECT_NE(err(R"({"Records":[{"body":{"branch_id":1}}]})").find("'body'"), std::string::npos);
  EXPECT_NE(err(R"({"Records":[{"messageId":"m"}]})").find("'body'"), std::string::npos);
  EXPECT_NE(err(R"({"Records":[{"body":"[1,2]"}]})").find("JSON object"), std::string::npos);
}

TEST(EngineEventMessages, SqsBodyThatIsNotJsonIsRefused) {
  // The contract is a DataError (the CLI reports those against the event file), not a raw
  // JSON parse error escaping from the body inside the event.
  Value ev = parse_json(R"({"Records":[{"body":"{\"branch_id\":"}]})");
  std::string e = data_error([&] { event_messages(ev); });
  EXPECT_NE(e.find("body"), std::string::npos) << e;
}

}  // namespace
