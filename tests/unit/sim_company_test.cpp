// The simulator's company model, in process: determinism, time, consistency, shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "core/json.h"
#include "sim/company.h"
#include "sim/truth.h"

namespace cascade::sim {
namespace {

std::string truth_of(const Company& c, size_t chunk = 256 * 1024) {
  TruthWriter w(c);
  std::string out;
  while (w.next(out, chunk)) {
  }
  return out;
}

// Rates high enough that a few ticks exercise every kind of event.
SimConfig busy(uint64_t seed = 7) {
  SimConfig c;
  c.seed = seed;
  c.branches = 4;
  c.employees_per_branch = 10;
  c.sales_per_salesperson = 6;
  c.new_sales_per_tick = 5;
  c.late_sales_per_tick = 2;
  c.corrections_per_tick = 3;
  c.transfers_per_tick = 1.5;
  c.departures_per_tick = 0.5;
  c.hires_per_tick = 0.7;
  c.promotions_per_tick = 0.3;
  return c;
}

// The truth without its truth-only fields (sim/truth.h): what the paths alone can rebuild.
Value served_part(Value truth) {
  auto strip = [&truth](const char* list, std::string_view field) {
    for (Value& r : truth.find(list)->as_array()) {
      Object& o = r.as_object();
      o.erase(std::remove_if(o.begin(), o.end(), [&](const Member& m) { return m.first == field; }),
              o.end());
    }
  };
  strip("employees", "branch_history");
  strip("sales", "branch_at_sale");
  return truth;
}

// Walks the API the way cascade does (branches -> employees -> sales) and builds the truth
// document from the responses alone.
Value walk_api(const Company& c) {
  Array branches, employees, sales;
  for (int64_t id = 1; id <= c.branch_count(); ++id) {
    std::string body;
    c.write_branches_response(c.branch(id)->name, body);
    Value b = parse_json(body);
    EXPECT_EQ(b.find("result")->as_array().size(), 1u);
    branches.push_back(b.find("result")->as_array()[0]);
  }
  for (const Value& b : branches) {
    std::string body;
    const int64_t bid = b.find("id")->as_int();
    c.write_employees_response(bid, body);
    Value r = parse_json(body);
    EXPECT_EQ(r.find_path("result.branch_id")->as_int(), bid);
    EXPECT_EQ(static_cast<int64_t>(r.find_path("result.employees")->as_array().size()),
              b.find("employees")->as_int());
    for (Value e : r.find_path("result.employees")->as_array()) {
      e.set("branch_id", bid);
      employees.push_back(std::move(e));
    }
  }
  // Sales ordered by (employee_id, id): visit employees in id order.
  std::vector<int64_t> ids;
  for (const Value& e : employees) ids.push_back(e.find("id")->as_int());
  std::sort(ids.begin(), ids.end());
  for (int64_t eid : ids) {
    std::string body;
    c.write_sales_response(eid, body);
    Value r = parse_json(body);
    for (Value s : r.find_path("result.sales")->as_array()) {
      s.set("employee_id", eid);
      sales.push_back(std::move(s));
    }
  }
  Object o;
  o.emplace_back("tick", c.tick());
  o.emplace_back("seed", static_cast<int64_t>(c.config().seed));
  o.emplace_back("branches", std::move(branches));
  o.emplace_back("employees", std::move(employees));
  o.emplace_back("sales", std::move(sales));
  return Value(std::move(o));
}

TEST(SimCompany, SameSeedSameDataOtherSeedOtherData) {
  Company a(busy(1)), b(busy(1)), c(busy(2));
  a.advance(30);
  b.advance(30);
  c.advance(30);
  EXPECT_EQ(truth_of(a), truth_of(b));
  EXPECT_NE(truth_of(a), truth_of(c));
}

TEST(SimCompany, AdvanceIsAdditive) {
  Company split(busy()), whole(busy());
  const AdvanceSummary s1 = split.advance(7);
  const AdvanceSummary s2 = split.advance(13);
  const AdvanceSummary s = whole.advance(20);
  EXPECT_EQ(split.tick(), 20);
  EXPECT_EQ(truth_of(split), truth_of(whole));
  EXPECT_EQ(s1.new_sales + s2.new_sales, s.new_sales);
  EXPECT_EQ(s1.transfers + s2.transfers, s.transfers);
  EXPECT_EQ(s1.hires + s2.hires, s.hires);
  // Every kind happened, so the comparison covered all of them.
  EXPECT_GT(s.late_sales, 0);
  EXPECT_GT(s.corrections, 0);
  EXPECT_GT(s.departures, 0);
  EXPECT_GT(s.promotions, 0);
}

TEST(SimCompany, InitialCountsFollowTheKnobs) {
  SimConfig cfg;  // defaults: 13 branches x 20 employees, 40% salespersons, 50 sales mean
  Company c(cfg);
  const Value t = parse_json(truth_of(c));
  ASSERT_EQ(t.find("branches")->as_array().size(), 13u);
  EXPECT_EQ(t.find("branches")->as_array()[0].find("branch_name")->as_string(), "Scranton");
  EXPECT_EQ(t.find("branches")->as_array()[12].find("branch_name")->as_string(), "New York");
  ASSERT_EQ(t.find("employees")->as_array().size(), 13u * 20u);
  std::map<int64_t, int> salespersons;
  for (const Value& e : t.find("employees")->as_array())
    if (e.find("occupation")->as_string() == "salesperson")
      ++salespersons[e.find("branch_id")->as_int()];
  ASSERT_EQ(salespersons.size(), 13u);
  for (const auto& [b, n] : salespersons) EXPECT_EQ(n, 8) << "branch " << b;
  std::map<int64_t, int> per_person;
  for (const Value& s : t.find("sales")->as_array()) ++per_person[s.find("employee_id")->as_int()];
  EXPECT_EQ(per_person.size(), 13u * 8u);
  for (const auto& [e, n] : per_person) {
    EXPECT_GE(n, 25);
    EXPECT_LE(n, 75);
  }
  const double mean = double(t.find("sales")->as_array().size()) / double(per_person.size());
  EXPECT_NEAR(mean, 50, 6);
}

TEST(SimCompany, MoreThanThirteenBranchesGetGeneratedNames) {
  SimConfig cfg;
  cfg.branches = 20;
  cfg.employees_per_branch = 2;
  Company c(cfg);
  ASSERT_TRUE(c.branch_by_name("Branch 17"));
  EXPECT_EQ(c.branch_by_name("Branch 17")->id, 17);
  EXPECT_FALSE(c.branch_by_name("Branch 21"));
  EXPECT_FALSE(c.branch_by_name("Branch 5"));  // 5 is Utica
  EXPECT_EQ(c.branch_by_name("Utica")->id, 6);
}

TEST(SimCompany, ResponsesHaveTheVendorShapes) {
  Company c(busy());
  c.advance(5);
  std::string body;
  c.write_branches_response("Scranton", body);
  const Value b = parse_json(body).find("result")->as_array().at(0);
  for (const char* f : {"branch_name", "location", "manager", "phone", "opened"})
    EXPECT_TRUE(b.find(f) && b.find(f)->is_string()) << f;
  EXPECT_TRUE(b.find("id")->is_int());
  EXPECT_TRUE(b.find("employees")->is_int());

  body.clear();
  c.write_employees_response(1, body);
  const Value emps = *parse_json(body).find_path("result.employees");
  ASSERT_FALSE(emps.as_array().empty());
  int64_t salesperson = 0;
  for (const Value& e : emps.as_array()) {
    for (const char* f : {"occupation", "name", "email", "hire_date"})
      EXPECT_TRUE(e.find(f) && e.find(f)->is_string()) << f;
    EXPECT_TRUE(e.find("salary")->is_int());
    EXPECT_EQ(e.find("hire_date")->as_string().size(), 10u);
    if (e.find("occupation")->as_string() == "salesperson") salesperson = e.find("id")->as_int();
  }
  ASSERT_NE(salesperson, 0);
  body.clear();
  c.write_sales_response(salesperson, body);
  const Value sales = parse_json(body);
  EXPECT_EQ(sales.find_path("result.employee_id")->as_int(), salesperson);
  ASSERT_FALSE(sales.find_path("result.sales")->as_array().empty());
  for (const Value& s : sales.find_path("result.sales")->as_array()) {
    EXPECT_TRUE(s.find("id")->is_int());
    EXPECT_EQ(s.find("transaction_timestamp")->as_string().size(), 19u);
    EXPECT_EQ(s.find("updated_at")->as_string().size(), 19u);
    EXPECT_GE(s.find("updated_at")->as_string(), s.find("transaction_timestamp")->as_string());
    EXPECT_TRUE(s.find("product")->is_string());
    EXPECT_TRUE(s.find("customer")->is_string());
    const int64_t q = s.find("quantity")->as_int();
    EXPECT_NEAR(s.find("amount")->as_number(), double(q) * s.find("unit_price")->as_number(), 1e-6);
  }
}

TEST(SimCompany, UnknownIdsGiveEmptyResults) {
  Company c(busy());
  std::string body;
  c.write_branches_response("Springfield", body);
  EXPECT_EQ(body, R"({"result":[]})");
  body.clear();
  c.write_employees_response(99, body);
  EXPECT_EQ(body, R"({"result":{"branch_id":99,"employees":[]}})");
  body.clear();
  c.write_sales_response(5, body);
  EXPECT_EQ(body, R"({"result":{"employee_id":5,"sales":[]}})");
}

TEST(SimCompany, NonSalespersonsServeNoSales) {
  Company c(busy());
  int checked = 0;
  c.for_each_employee(1, [&](const Employee& e) {
    if (e.occupation == "salesperson") return;
    std::string body;
    c.write_sales_response(e.id, body);
    EXPECT_NE(body.find("\"sales\":[]"), std::string::npos) << e.id;
    ++checked;
  });
  EXPECT_GT(checked, 0);
}

TEST(SimCompany, TruthEqualsWhatThePathsServeAfterEvents) {
  Company c(busy(3));
  c.advance(40);
  const Value truth = parse_json(truth_of(c));
  EXPECT_EQ(truth.find("tick")->as_int(), 40);
  EXPECT_TRUE(served_part(truth) == walk_api(c));
  // Each employee appears once, in one branch; ids are unique per kind.
  std::set<int64_t> emp_ids, sale_ids;
  for (const Value& e : truth.find("employees")->as_array())
    EXPECT_TRUE(emp_ids.insert(e.find("id")->as_int()).second) << "employee twice";
  for (const Value& s : truth.find("sales")->as_array()) {
    EXPECT_TRUE(sale_ids.insert(s.find("id")->as_int()).second) << "sale twice";
    EXPECT_TRUE(emp_ids.count(s.find("employee_id")->as_int())) << "sale of a gone employee";
  }
  // Head counts in /branches add up to the employees listed.
  int64_t heads = 0;
  for (const Value& b : truth.find("branches")->as_array()) heads += b.find("employees")->as_int();
  EXPECT_EQ(heads, static_cast<int64_t>(emp_ids.size()));
}

TEST(SimCompany, EventsShowInTheData) {
  Company before(busy(5)), after(busy(5));
  after.advance(48);
  const Value t0 = parse_json(truth_of(before)), t1 = parse_json(truth_of(after));
  std::map<int64_t, int64_t> branch0, branch1;
  for (const Value& e : t0.find("employees")->as_array())
    branch0[e.find("id")->as_int()] = e.find("branch_id")->as_int();
  for (const Value& e : t1.find("employees")->as_array())
    branch1[e.find("id")->as_int()] = e.find("branch_id")->as_int();
  int moved = 0, gone = 0, hired = 0;
  for (const auto& [id, b] : branch0) {
    if (!branch1.count(id))
      ++gone;
    else if (branch1[id] != b)
      ++moved;
  }
  for (const auto& [id, b] : branch1) hired += !branch0.count(id);
  EXPECT_GT(moved, 0);
  EXPECT_GT(gone, 0);
  EXPECT_GT(hired, 0);

  std::map<int64_t, Value> sales0;
  for (const Value& s : t0.find("sales")->as_array()) sales0[s.find("id")->as_int()] = s;
  int fresh = 0, late = 0, corrected = 0;
  const std::string now = format_timestamp(after.now());
  for (const Value& s : t1.find("sales")->as_array()) {
    auto it = sales0.find(s.find("id")->as_int());
    if (it == sales0.end()) {
      ++fresh;
      EXPECT_LE(s.find("updated_at")->as_string(), now);
      // Published late: happened more than a day before it appeared.
      if (s.find("transaction_timestamp")->as_string() < format_timestamp(after.now() - 48 * 3600))
        ++late;
    } else if (!(it->second == s)) {
      ++corrected;
      EXPECT_NE(it->second.find("quantity")->as_int(), s.find("quantity")->as_int());
      EXPECT_GT(s.find("updated_at")->as_string(), it->second.find("updated_at")->as_string());
    }
  }
  EXPECT_GT(fresh, 0);
  EXPECT_GT(late, 0);
  EXPECT_GT(corrected, 0);
}

TEST(SimCompany, TruthChunksDoNotChangeTheDocument) {
  Company c(busy());
  c.advance(10);
  EXPECT_EQ(truth_of(c, 1), truth_of(c));
}

TEST(SimCompany, LargeCompanyStartsFastAndStoresOnlyChanges) {
  SimConfig cfg;
  cfg.branches = 100;
  cfg.employees_per_branch = 1000;
  cfg.salesperson_share = 0.5;
  cfg.sales_per_salesperson = 200;  // ~10M sales
  const auto t0 = std::chrono::steady_clock::now();
  Company c(cfg);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(ms.count(), 1000);
  EXPECT_EQ(c.stored_changes(), 0u);
  const AdvanceSummary s = c.advance(10);
  // A transfer stores at most its employee, two branch spells (the hire's and the new one) and
  // three sales awaiting publication (late_sales_per_transfer 2 gives 1..3).
  EXPECT_LE(c.stored_changes(),
            static_cast<size_t>(s.new_sales + s.late_sales + s.corrections + 6 * s.transfers +
                                s.departures + s.hires + s.promotions));
  // The last initial salesperson's sales have ids near 10M: nothing before them was stored.
  int64_t last_sale = 0;
  for (int64_t id = c.employee_id_end() - 1; id > 0 && last_sale == 0; --id)
    c.for_each_sale(id, [&](const Sale& sale) { last_sale = std::max(last_sale, sale.id); });
  EXPECT_GT(last_sale, 9'000'000);
}

TEST(SimCompany, InvalidKnobsAreRefused) {
  SimConfig cfg;
  cfg.salesperson_share = 1.5;
  EXPECT_THROW(Company{cfg}, std::invalid_argument);
  cfg = SimConfig();
  cfg.branches = 0;
  EXPECT_THROW(Company{cfg}, std::invalid_argument);
  Company c{SimConfig()};
  EXPECT_THROW(c.advance(-1), std::invalid_argument);
}

}  // namespace
}  // namespace cascade::sim
