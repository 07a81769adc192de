// A listing that suddenly shrinks deletes nothing until confirmed, on every storage backend
// (sync_contract.h): the real cascade binary syncs the example pipeline against a canned vendor
// whose employee listings the test changes between runs, and the warehouse, the change log and
// `sync --json` show what was deleted and what is held. Broken responses never reach the
// comparison at all.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/json.h"
#include "sim/http_server.h"
#include "store/change_log.h"
#include "support/cascade.h"
#include "support/contracts/sync_contract.h"
#include "support/sim.h"
#include "support/subprocess.h"
#include "support/sync_check.h"

namespace cascade::testing {
namespace {

constexpr const char* kBranches =
    "branch: [Scranton, Akron, Buffalo, Rochester, Syracuse, Utica, Binghamton,\n"
    "               Albany, Nashua, Pittsfield, Stamford, Yonkers, New York]";

// The vendor: branches Scranton (1) and Akron (2), whose employee listings the test sets; every
// salesperson has no sales. A branch may instead answer with a raw body (a broken response).
class Vendor {
 public:
  Vendor()
      : server_([this](const sim::HttpRequest& req, sim::HttpResponse& res) {
          std::lock_guard lock(mu_);
          serve(req, res);
        }) {}

  std::string url() const { return server_.url(); }

  void employees(int branch, std::vector<int> ids) {
    std::lock_guard lock(mu_);
    staff_[branch] = std::move(ids);
    raw_.erase(branch);
    truncate_.erase(branch);
  }
  // The next answers for `branch` are `body` with status 200 (and, with `cut` >= 0, a
  // Content-Length of the whole body but only `cut` bytes of it on the wire).
  void broken(int branch, std::string body, int64_t cut = -1) {
    std::lock_guard lock(mu_);
    raw_[branch] = std::move(body);
    truncate_[branch] = cut;
  }
  // A complete listing body for these employee ids.
  static std::string listing(const std::vector<int>& ids) {
    std::string out = R"({"result":{"employees":[)";
    for (size_t i = 0; i < ids.size(); ++i)
      out += (i ? "," : "") + std::string(R"({"id":)") + std::to_string(ids[i]) + R"(,"name":"e)" +
             std::to_string(ids[i]) + R"(","occupation":"salesperson"})";
    return out + "]}}";
  }

 private:
  void serve(const sim::HttpRequest& req, sim::HttpResponse& res) {
    if (req.path == "/branches") {
      const std::string* b = req.param("branch");
      int id = b && *b == "Scranton" ? 1 : b && *b == "Akron" ? 2 : 0;
      res.body = id ? R"({"result":[{"id":)" + std::to_string(id) + R"(,"name":")" + *b + "\"}]}"
                    : R"({"result":[]})";
    } else if (req.path == "/employees") {
      const std::string* b = req.param("branch_id");
      int id = b ? std::stoi(*b) : 0;
      if (auto it = raw_.find(id); it != raw_.end()) {
        res.body = it->second;
        res.truncate_body = truncate_[id];
      } else {
        res.body = listing(staff_[id]);
      }
    } else if (req.path == "/sales") {
      res.body = R"({"result":{"sales":[]}})";
    } else {
      res.status = 404;
      res.body = R"({"error":"no such endpoint"})";
    }
  }

  std::mutex mu_;
  std::map<int, std::vector<int>> staff_;
  std::map<int, std::string> raw_;
  std::map<int, int64_t> truncate_;
  CannedServer server_;  // last: stopped before the state its handler reads goes away
};

using Replace = std::map<std::string, std::string>;

std::vector<int> range(int from, int n) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(from + i);
  return out;
}

struct Fixture {
  Vendor vendor;
  std::string dir = temp_dir();
  std::string url;  // the storage
  std::string pipeline;

  explicit Fixture(std::string storage, Replace replace = {}) : url(std::move(storage)) {
    replace.emplace(kBranches, "branch: [Scranton, Akron]");
    // Broken responses fail fast: one try per message, one receive, short backoff.
    replace.emplace("retry: { attempts: 4, backoff: 200ms..30s }",
                    "retry: { attempts: 1, backoff: 1ms..2ms }");
    replace.emplace("max_receive_count: 10", "max_receive_count: 1");
    pipeline = example_pipeline(dir, replace);
  }

  std::map<std::string, std::string> env() const {
    return {{"DM_API_URL", vendor.url()}, {"CASCADE_STORAGE", url}};
  }

  RunResult cli(std::vector<std::string> args) const {
    std::vector<std::string> argv{CASCADE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env());
  }

  Value sync() const {
    RunResult r = cli({"sync", pipeline, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    Value s = parse_json(r.out);
    EXPECT_TRUE(s.find("completed")->as_bool()) << r.out;
    return s;
  }

  int64_t salespersons(int branch) const {
    return query_storage(
               url, "SELECT count(*) FROM salespersons WHERE _deleted_at IS NULL AND branch_id = " +
                        std::to_string(branch))
        .rows[0][0]
        .as_int();
  }
  // Rows of the branch's listing that staging holds live: written by that listing (its scope)
  // and not deleted.
  int64_t staged(int branch) const {
    std::string b = std::to_string(branch);
    return query_storage(url,
                         "SELECT count(*) FROM salespersons WHERE _deleted_at IS NULL AND _scope = "
                         "(SELECT _scope FROM salespersons WHERE branch_id = " +
                             b + " LIMIT 1)")
        .rows[0][0]
        .as_int();
  }
  int64_t gone_changes() const {
    return query_storage(
               url,
               "SELECT count(*) FROM cascade_change_log WHERE table_name = 'salespersons' "
               "AND operation = 'delete'")
        .rows[0][0]
        .as_int();
  }
  int64_t holds() const {
    return query_storage(url, "SELECT count(*) FROM cascade_held_deletions").rows[0][0].as_int();
  }
};

}  // namespace

TEST_P(SyncContract, AnEmptyListingIsHeldThenConfirmedByTheNextRunThatSeesIt) {
  Fixture f(url_);
  f.vendor.employees(1, range(101, 6));
  Value s1 = f.sync();
  EXPECT_EQ(stage_stat(s1, "salespersons", "new"), 6);
  ASSERT_EQ(f.salespersons(1), 6);

  // The vendor glitches: a 200 with no employees at all.
  f.vendor.employees(1, {});
  RunResult r2 = f.cli({"sync", f.pipeline});
  ASSERT_EQ(r2.exit_code, 0) << r2.err << r2.out;
  EXPECT_NE(r2.out.find("6 deletions held awaiting confirmation by the next run"),
            std::string::npos)
      << r2.out;
  EXPECT_EQ(f.salespersons(1), 6) << "a held deletion leaves the warehouse as it was";
  EXPECT_EQ(f.staged(1), 6);
  EXPECT_EQ(f.holds(), 1);
  Value s2 = f.sync();  // the same listing, seen by the same pipeline again: confirmed
  EXPECT_EQ(stage_stat(s2, "salespersons", "held"), 0);
  EXPECT_EQ(stage_stat(s2, "salespersons", "gone"), 6);
  EXPECT_EQ(s2.find("total")->find("gone")->as_int(), 6);
  EXPECT_EQ(f.salespersons(1), 0);
  EXPECT_EQ(f.staged(1), 0);
  EXPECT_EQ(f.holds(), 0);
  EXPECT_EQ(f.gone_changes(), 6);
}

TEST_P(SyncContract, TheHoldingRunReportsHeldRowsInJsonAndTheNextDeletesThem) {
  Fixture f(url_);
  f.vendor.employees(1, range(101, 6));
  f.sync();
  f.vendor.employees(1, {});
  Value held = f.sync();
  EXPECT_EQ(stage_stat(held, "salespersons", "held"), 6);
  EXPECT_EQ(stage_stat(held, "salespersons", "gone"), 0);
  EXPECT_EQ(held.find("total")->find("held")->as_int(), 6);
  EXPECT_EQ(held.find("total")->find("dead_lettered")->as_int(), 0);
  EXPECT_EQ(f.salespersons(1), 6);
  EXPECT_EQ(f.gone_changes(), 0);
  Value confirmed = f.sync();
  EXPECT_EQ(stage_stat(confirmed, "salespersons", "gone"), 6);
  EXPECT_EQ(f.salespersons(1), 0);
  EXPECT_EQ(f.gone_changes(), 6);
}

TEST_P(SyncContract, AGlitchThatRecoversDeletesNothingAndAStaleHoldConfirmsNothing) {
  Fixture f(url_);
  f.vendor.employees(1, range(101, 6));
  f.sync();
  f.vendor.employees(1, {});
  EXPECT_EQ(stage_stat(f.sync(), "salespersons", "held"), 6);
  f.vendor.employees(1, range(101, 6));  // back to normal
  Value back = f.sync();
  EXPECT_EQ(stage_stat(back, "salespersons", "held"), 0);
  EXPECT_EQ(stage_stat(back, "salespersons", "gone"), 0);
  EXPECT_EQ(stage_stat(back, "salespersons", "unchanged"), 6);
  EXPECT_EQ(f.holds(), 0) << "the old listing drops the hold";
  EXPECT_EQ(f.salespersons(1), 6);
  // The glitch again: held anew, not confirmed by the hold the recovery dropped.
  f.vendor.employees(1, {});
  Value again = f.sync();
  EXPECT_EQ(stage_stat(again, "salespersons", "held"), 6);
  EXPECT_EQ(stage_stat(again, "salespersons", "gone"), 0);
  EXPECT_EQ(f.salespersons(1), 6);
  EXPECT_EQ(f.gone_changes(), 0);
}

TEST_P(SyncContract, ADifferentBigShrinkHoldsAgainUnderItsOwnListing) {
  Fixture f(url_);
  f.vendor.employees(1, range(101, 8));
  f.sync();
  f.vendor.employees(1, {101});
  EXPECT_EQ(stage_stat(f.sync(), "salespersons", "held"), 7);
  f.vendor.employees(1, {102, 103});  // another shrink, not the one held
  Value other = f.sync();
  EXPECT_EQ(stage_stat(other, "salespersons", "held"), 6);
  EXPECT_EQ(stage_stat(other, "salespersons", "gone"), 0);
  EXPECT_EQ(f.salespersons(1), 8);
  Value confirmed = f.sync();  // the same as the last one: confirmed
  EXPECT_EQ(stage_stat(confirmed, "salespersons", "gone"), 6);
  std::string live;
  for (const auto& row : query_storage(f.url,
                                       "SELECT employee_id FROM salespersons WHERE branch_id = 1 "
                                       "AND _deleted_at IS NULL ORDER BY employee_id")
                             .rows)
    live += (live.empty() ? "" : ",") + row[0].to_text();
  EXPECT_EQ(live, "102,103");
}

TEST_P(SyncContract, SmallShrinksAndSmallScopesDeleteAtOnce) {
  Fixture f(url_);
  f.vendor.employees(1, range(101, 6));
  f.vendor.employees(2, range(201, 3));
  f.sync();
  ASSERT_EQ(f.salespersons(1), 6);
  ASSERT_EQ(f.salespersons(2), 3);
  f.vendor.employees(1, range(101, 5));  // 1 of 6: below the share
  f.vendor.employees(2, {});             // 3 of 3, but a scope of fewer than 4 rows
  Value s = f.sync();
  EXPECT_EQ(stage_stat(s, "salespersons", "held"), 0);
  EXPECT_EQ(stage_stat(s, "salespersons", "gone"), 4);
  EXPECT_EQ(f.salespersons(1), 5);
  EXPECT_EQ(f.salespersons(2), 0);
  EXPECT_EQ(f.holds(), 0);
  // Exactly half of a scope is not more than half: deleted at once too.
  f.vendor.employees(1, range(101, 4));
  EXPECT_EQ(stage_stat(f.sync(), "salespersons", "gone"), 1);
  f.vendor.employees(1, {101, 102});
  Value half = f.sync();
  EXPECT_EQ(stage_stat(half, "salespersons", "held"), 0);
  EXPECT_EQ(stage_stat(half, "salespersons", "gone"), 2);
}

TEST_P(SyncContract, AStageMayTurnTheHoldOffOrTightenIt) {
  {
    Fixture off(url_, Replace{{"deletions: { hold_above: 0.5, min_rows: 4 }",
                               "deletions: { hold_above: 1 }"}});
    off.vendor.employees(1, range(101, 6));
    off.sync();
    off.vendor.employees(1, {});
    Value s = off.sync();
    EXPECT_EQ(stage_stat(s, "salespersons", "held"), 0);
    EXPECT_EQ(stage_stat(s, "salespersons", "gone"), 6);
    EXPECT_EQ(off.salespersons(1), 0);
  }
  {
    Fixture tight(fresh_storage("tight"), Replace{{"deletions: { hold_above: 0.5, min_rows: 4 }",
                                                   "deletions: { hold_above: 0.2, min_rows: 2 }"}});
    tight.vendor.employees(1, range(101, 3));
    tight.sync();
    tight.vendor.employees(1, {101, 102});  // 1 of 3 > 0.2
    Value s = tight.sync();
    EXPECT_EQ(stage_stat(s, "salespersons", "held"), 1);
    EXPECT_EQ(tight.salespersons(1), 3);
  }
}

TEST_P(SyncContract, BrokenListingsDeleteNothingAndAreDeadLetteredWithAReason) {
  Fixture f(url_);
  f.vendor.employees(1, range(101, 6));
  f.vendor.employees(2, range(201, 6));
  f.sync();
  const std::string full = Vendor::listing(range(101, 6));
  // Branch 1: the body ends early (the JSON is cut after its second record, and closes its
  // list), a 200 all the same. Branch 2: the connection drops mid-body.
  f.vendor.broken(1, full.substr(0, full.find(R"({"id":103)") - 1) + "]}");
  f.vendor.broken(2, Vendor::listing(range(201, 6)), 40);
  Value s = f.sync();
  EXPECT_EQ(stage_stat(s, "salespersons", "gone"), 0);
  EXPECT_EQ(stage_stat(s, "salespersons", "held"), 0);
  EXPECT_EQ(stage_stat(s, "salespersons", "dead_lettered"), 2);
  EXPECT_EQ(f.salespersons(1), 6);
  EXPECT_EQ(f.salespersons(2), 6);
  EXPECT_EQ(f.staged(1), 6);
  EXPECT_EQ(f.staged(2), 6);
  EXPECT_EQ(f.gone_changes(), 0);
  EXPECT_EQ(f.holds(), 0);

  RunResult list = f.cli({"dlq", "list", "-p", f.pipeline, "--json", "--stage", "salespersons"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::map<std::string, std::string> reasons;  // branch id -> reason
  Value letters = parse_json(list.out);
  for (const auto& d : letters.as_array())
    reasons[parse_json(d.find("body")->as_string()).find("branch_id")->to_text()] =
        d.find("reason")->as_string();
  ASSERT_EQ(reasons.size(), 2u) << list.out;
  EXPECT_NE(reasons["1"].find("malformed JSON"), std::string::npos) << reasons["1"];
  EXPECT_NE(reasons["1"].find("/employees?branch_id=1"), std::string::npos) << reasons["1"];
  EXPECT_NE(reasons["2"].find("/employees?branch_id=2"), std::string::npos) << reasons["2"];

  // Whole again: nothing was lost, nothing changed.
  f.vendor.employees(1, range(101, 6));
  f.vendor.employees(2, range(201, 6));
  Value fixed = f.sync();
  EXPECT_EQ(stage_stat(fixed, "salespersons", "gone"), 0);
  EXPECT_EQ(stage_stat(fixed, "salespersons", "unchanged"), 12);
}

}  // namespace cascade::testing
