// The simulator around transfers: branch_since, the late sales a transfer brings, and the
// truth's branch_history and branch_at_sale that attribution tests check against.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/json.h"
#include "sim/company.h"
#include "sim/truth.h"

namespace cascade::sim {
namespace {

constexpr int64_t kDay = 24 * 3600;

std::string truth_of(const Company& c) {
  TruthWriter w(c);
  std::string out;
  while (w.next(out)) {
  }
  return out;
}

// Transfers and nothing else that adds sales, so every sale published after tick 0 is one a
// transfer brought.
SimConfig transfers_only(uint64_t seed = 3) {
  SimConfig c;
  c.seed = seed;
  c.branches = 4;
  c.employees_per_branch = 10;
  c.salesperson_share = 0.5;
  c.sales_per_salesperson = 4;
  c.new_sales_per_tick = 0;
  c.late_sales_per_tick = 0;
  c.corrections_per_tick = 0;
  c.transfers_per_tick = 1.5;
  c.departures_per_tick = 0;
  c.hires_per_tick = 0;
  c.promotions_per_tick = 0;
  return c;
}

// Every kind of event at once.
SimConfig busy(uint64_t seed = 9) {
  SimConfig c;
  c.seed = seed;
  c.branches = 4;
  c.employees_per_branch = 10;
  c.sales_per_salesperson = 6;
  c.new_sales_per_tick = 4;
  c.late_sales_per_tick = 1;
  c.corrections_per_tick = 2;
  c.transfers_per_tick = 2;
  c.departures_per_tick = 0.3;
  c.hires_per_tick = 0.5;
  c.promotions_per_tick = 0.2;
  return c;
}

struct Seen {
  int64_t branch = 0;
  std::string branch_since, hire_date;
  bool salesperson = false;
};

// Current employees as /employees serves them, by id.
std::map<int64_t, Seen> employees(const Company& c) {
  std::map<int64_t, Seen> out;
  for (int64_t b = 1; b <= c.branch_count(); ++b) {
    std::string body;
    c.write_employees_response(b, body);
    const Value r = parse_json(body);
    for (const Value& e : r.find_path("result.employees")->as_array()) {
      Seen& s = out[e.find("id")->as_int()];
      s.branch = b;
      s.branch_since = e.find("branch_since")->as_string();
      s.hire_date = e.find("hire_date")->as_string();
      s.salesperson = e.find("occupation")->as_string() == "salesperson";
    }
  }
  return out;
}

// Sales /sales serves for an employee, by id.
std::map<int64_t, Value> served_sales(const Company& c, int64_t employee_id) {
  std::string body;
  c.write_sales_response(employee_id, body);
  std::map<int64_t, Value> out;
  const Value r = parse_json(body);
  for (const Value& s : r.find_path("result.sales")->as_array())
    out.emplace(s.find("id")->as_int(), s);
  return out;
}

std::string date_of(const Value& sale) {
  return sale.find("transaction_timestamp")->as_string().substr(0, 10);
}

TEST(SimTransfers, BranchSinceIsTheTransferDateOrTheHireDate) {
  Company c(busy());
  std::map<int64_t, Seen> before = employees(c);
  for (const auto& [id, e] : before) EXPECT_EQ(e.branch_since, e.hire_date) << id;
  std::set<int64_t> transferred;
  for (int tick = 1; tick <= 72; ++tick) {
    c.advance(1);
    const std::string today = format_date(c.now());
    const std::map<int64_t, Seen> after = employees(c);
    for (const auto& [id, e] : after) {
      auto it = before.find(id);
      if (it == before.end()) {  // hired this tick, possibly moved the same day
        EXPECT_EQ(e.hire_date, today) << id;
        EXPECT_EQ(e.branch_since, today) << id;
        continue;
      }
      if (it->second.branch != e.branch || it->second.branch_since != e.branch_since) {
        EXPECT_EQ(e.branch_since, today) << "employee " << id << " at tick " << tick;
        transferred.insert(id);
      }
    }
    before = after;
  }
  ASSERT_GT(transferred.size(), 10u);
  int never = 0;
  for (const auto& [id, e] : before) {
    const std::vector<BranchSpell> h = c.branch_history(id);
    ASSERT_FALSE(h.empty());
    EXPECT_EQ(h.back().branch_id, e.branch) << id;
    EXPECT_EQ(format_date(h.back().from_day * kDay), e.branch_since) << id;
    EXPECT_EQ(format_date(h.front().from_day * kDay), e.hire_date) << id;
    if (!transferred.count(id) && e.hire_date < format_date(c.now())) {
      ++never;
      EXPECT_EQ(e.branch_since, e.hire_date) << id;
      EXPECT_EQ(h.size(), 1u) << id;
    }
  }
  EXPECT_GT(never, 0);
}

TEST(SimTransfers, LateSalesAreDatedTheDayBeforeATransferAndPublishedAfterIt) {
  Company c(transfers_only());
  std::map<int64_t, Seen> before = employees(c);
  std::map<int64_t, int64_t> first_served;  // sale id -> tick it was first served
  for (const auto& [id, e] : before)
    for (const auto& [sid, s] : served_sales(c, id)) first_served[sid] = 0;
  struct Transfer {
    int64_t tick;
    std::string date;
    int64_t from;
  };
  std::map<int64_t, std::vector<Transfer>> transfers;   // by employee, in time order
  std::map<int64_t, std::pair<int64_t, int64_t>> late;  // sale id -> (employee, old branch)
  for (int64_t tick = 1; tick <= 96; ++tick) {
    c.advance(1);
    const std::string today = format_date(c.now());
    const std::map<int64_t, Seen> after = employees(c);
    for (const auto& [id, e] : after) {
      const Seen& was = before.at(id);
      if (was.branch != e.branch || was.branch_since != e.branch_since)
        transfers[id].push_back({tick, today, was.branch});
    }
    for (const auto& [id, e] : after) {
      for (const auto& [sid, s] : served_sales(c, id)) {
        if (first_served.count(sid)) continue;
        first_served[sid] = tick;
        // Published now, by a transfer of this salesperson at most 24 ticks ago, and dated the
        // day before that transfer's date.
        EXPECT_EQ(s.find("updated_at")->as_string(), format_timestamp(c.now())) << sid;
        const Transfer* match = nullptr;
        for (const Transfer& t : transfers[id]) {
          if (t.tick <= tick && tick - t.tick <= 24 &&
              date_of(s) == format_date(c.now() - (tick - t.tick) * 3600 - kDay) &&
              t.date > date_of(s)) {
            match = &t;
            break;
          }
        }
        ASSERT_NE(match, nullptr) << "sale " << sid << " of " << id << " dated " << date_of(s)
                                  << " published at tick " << tick << " with no transfer";
        late[sid] = {id, match->from};
      }
    }
    before = after;
  }
  ASSERT_GE(late.size(), 20u);
  // The truth attributes each to the branch the salesperson left, not the current one.
  const Value truth = parse_json(truth_of(c));
  int moved_away = 0;
  for (const Value& s : truth.find("sales")->as_array()) {
    auto it = late.find(s.find("id")->as_int());
    if (it == late.end()) continue;
    EXPECT_EQ(s.find("employee_id")->as_int(), it->second.first);
    EXPECT_EQ(s.find("branch_at_sale")->as_int(), it->second.second) << s.find("id")->as_int();
    moved_away += c.branch_history(it->second.first).back().branch_id != it->second.second;
  }
  EXPECT_GT(moved_away, 0);
}

TEST(SimTransfers, TruthAttributesEverySaleByTheBranchHistory) {
  Company c(busy());
  c.advance(120);
  const Value truth = parse_json(truth_of(c));
  std::map<int64_t, const Value*> by_id;
  for (const Value& e : truth.find("employees")->as_array()) {
    by_id[e.find("id")->as_int()] = &e;
    const Array& h = e.find("branch_history")->as_array();
    ASSERT_FALSE(h.empty());
    EXPECT_EQ(h.front().find("from")->as_string(), e.find("hire_date")->as_string());
    EXPECT_EQ(h.back().find("from")->as_string(), e.find("branch_since")->as_string());
    EXPECT_EQ(h.back().find("branch_id")->as_int(), e.find("branch_id")->as_int());
    for (size_t i = 1; i < h.size(); ++i)
      EXPECT_LT(h[i - 1].find("from")->as_string(), h[i].find("from")->as_string());
  }
  int old_branch = 0, new_branch = 0;
  for (const Value& s : truth.find("sales")->as_array()) {
    const Value& e = *by_id.at(s.find("employee_id")->as_int());
    const Array& h = e.find("branch_history")->as_array();
    const std::string day = date_of(s);
    int64_t want = h.front().find("branch_id")->as_int();
    for (const Value& spell : h)
      if (spell.find("from")->as_string() <= day) want = spell.find("branch_id")->as_int();
    EXPECT_EQ(s.find("branch_at_sale")->as_int(), want) << "sale " << s.find("id")->as_int();
    if (h.size() > 1) {
      if (want != e.find("branch_id")->as_int()) ++old_branch;
      if (day >= e.find("branch_since")->as_string()) ++new_branch;
    }
  }
  // Both sides of a transfer occur: sales kept at the branch left, sales made after moving.
  EXPECT_GT(old_branch, 0);
  EXPECT_GT(new_branch, 0);
}

TEST(SimTransfers, SameConfigSameBytesHoweverTimeIsSplit) {
  Company a(busy(4)), b(busy(4));
  a.advance(50);
  for (int i = 0; i < 5; ++i) b.advance(10);
  EXPECT_EQ(truth_of(a), truth_of(b));
  for (int64_t br = 1; br <= a.branch_count(); ++br) {
    std::string x, y;
    a.write_employees_response(br, x);
    b.write_employees_response(br, y);
    EXPECT_EQ(x, y);
  }
  for (int64_t id = 0; id < a.employee_id_end(); ++id) {
    std::string x, y;
    a.write_sales_response(id, x);
    b.write_sales_response(id, y);
    EXPECT_EQ(x, y) << id;
  }
  EXPECT_EQ(a.stored_changes(), b.stored_changes());
}

TEST(SimTransfers, TheKnobSetsHowManyLateSalesATransferBrings) {
  SimConfig none = transfers_only(5), many = transfers_only(5);
  none.late_sales_per_transfer = 0;
  many.late_sales_per_transfer = 6;
  Company n(none), m(many), d(transfers_only(5));
  const AdvanceSummary sn = n.advance(48), sm = m.advance(48), sd = d.advance(48);
  EXPECT_EQ(sn.transfers, sd.transfers);
  EXPECT_EQ(sn.late_sales, 0);
  EXPECT_GT(sd.late_sales, 0);
  EXPECT_GT(sm.late_sales, sd.late_sales);
  // Transfers (and so branch_since) do not depend on the knob.
  for (int64_t br = 1; br <= n.branch_count(); ++br) {
    std::string x, y;
    n.write_employees_response(br, x);
    m.write_employees_response(br, y);
    EXPECT_EQ(x, y);
  }
  SimConfig bad = transfers_only();
  bad.late_sales_per_transfer = -1;
  EXPECT_THROW(Company{bad}, std::invalid_argument);
}

}  // namespace
}  // namespace cascade::sim
