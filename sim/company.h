// Company: the deterministic Dunder Mifflin model behind cascade-sim (branches, employees, sales)
// and its evolution in simulated time. Not thread-safe: callers serialise advance() against reads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cascade::sim {

// Size and rate knobs. Same SimConfig => same company, byte for byte, at every tick.
struct SimConfig {
  uint64_t seed = 1;
  int branches = 13;
  int employees_per_branch = 20;
  double salesperson_share = 0.4;
  // Mean initial sales per salesperson; each one gets uniformly 50%..150% of it.
  int sales_per_salesperson = 50;
  // Expected events per tick (one simulated hour). Fractions fire with that probability.
  double new_sales_per_tick = 20;
  double late_sales_per_tick = 3;
  double corrections_per_tick = 3;
  double transfers_per_tick = 0.2;
  double departures_per_tick = 0.1;
  double hires_per_tick = 0.2;
  double promotions_per_tick = 0.05;
  // Mean sales a transferring salesperson made on the day before the transfer (at the old
  // branch) that the vendor publishes only after it, 0..24 ticks later; each transfer gets
  // uniformly 50%..150% of it (2 gives 1..3).
  int late_sales_per_transfer = 2;

  // Throws std::invalid_argument naming the first knob out of range.
  void validate() const;
};

struct Branch {
  int64_t id = 0;
  std::string name;
  int64_t employees = 0;  // current head count
  std::string location;
  std::string manager;
  std::string phone;
  std::string opened;  // YYYY-MM-DD
};

struct Employee {
  int64_t id = 0;
  int64_t branch_id = 0;
  std::string_view occupation;  // points into static storage
  std::string name;
  std::string email;
  std::string hire_date;  // YYYY-MM-DD
  // YYYY-MM-DD: the date of the last transfer, or hire_date if never transferred. A transfer
  // counts from the start of its date: the vendor's dates carry no time.
  std::string branch_since;
  int64_t salary = 0;
};

// One spell of an employee at a branch, from the start of a vendor date until the next spell.
struct BranchSpell {
  int64_t branch_id = 0;
  int64_t from_day = 0;  // days since 1970-01-01 (UTC)
};

struct Sale {
  int64_t id = 0;
  int64_t employee_id = 0;
  int64_t transaction_time = 0;  // Unix seconds
  int64_t updated_at = 0;        // Unix seconds
  int32_t product = 0;           // index into the product catalogue
  int32_t customer = 0;          // index into the customer list
  int32_t quantity = 0;
  int64_t unit_price_cents = 0;
  int64_t amount_cents = 0;
};

// What one advance() did, by kind. late_sales counts those a transfer brought too, when they are
// published.
struct AdvanceSummary {
  int64_t ticks = 0;
  int64_t new_sales = 0, late_sales = 0, corrections = 0, transfers = 0, departures = 0, hires = 0,
          promotions = 0;
};

class Company {
 public:
  // Builds tick 0 in O(branches * employees_per_branch) time and memory; no sale is stored.
  // Throws std::invalid_argument if the config is invalid.
  explicit Company(SimConfig cfg);

  const SimConfig& config() const { return cfg_; }
  int64_t tick() const { return tick_; }
  // Simulated wall time at the current tick (Unix seconds): a fixed start + one hour per tick.
  int64_t now() const;

  // Moves the company forward `ticks` hours, one tick at a time, so advance(a); advance(b)
  // leaves the same state as advance(a + b). ticks < 0 throws std::invalid_argument.
  AdvanceSummary advance(int64_t ticks);

  // --- reads: what the API serves at the current tick ---
  std::optional<Branch> branch_by_name(std::string_view name) const;
  // nullopt for an unknown id.
  std::optional<Branch> branch(int64_t id) const;
  int64_t branch_count() const { return cfg_.branches; }
  // Current employees of a branch in id order (nothing for an unknown branch).
  void for_each_employee(int64_t branch_id, const std::function<void(const Employee&)>& fn) const;
  // Sales served for an employee, in id order: nothing unless it is a current salesperson.
  void for_each_sale(int64_t employee_id, const std::function<void(const Sale&)>& fn) const;
  // Every employee id ever issued is below this bound (departed ones included).
  int64_t employee_id_end() const { return next_employee_id_; }
  // True if the employee currently works here as a salesperson.
  bool is_current_salesperson(int64_t employee_id) const;
  // The branches of a current employee, oldest first: the hire's, then one spell per date with
  // transfers (the day's last transfer wins, as only dates are published). The last spell's
  // from_day is branch_since. Empty for an id never issued.
  std::vector<BranchSpell> branch_history(int64_t employee_id) const;
  // The branch of the spell holding the date of Unix time t (the first spell's for an earlier
  // time); 0 for an empty history.
  static int64_t branch_at(const std::vector<BranchSpell>& history, int64_t t);

  // --- response bodies (exact bytes the API serves), appended to out ---
  void write_branches_response(std::string_view name, std::string& out) const;
  // `embed_sales`: each employee carries its sales (as /sales serves them) in a `sales` list,
  // the way vendors expand a related listing into its parent.
  void write_employees_response(int64_t branch_id, std::string& out,
                                bool embed_sales = false) const;
  // With updated_since (Unix seconds), only the sales whose updated_at is at or after it, as a
  // vendor's `updated_since` filter does.
  void write_sales_response(int64_t employee_id, std::string& out,
                            std::optional<int64_t> updated_since = std::nullopt) const;
  // One record as served; with_parent adds "branch_id" / "employee_id" for the ground truth.
  static void write_branch(const Branch& b, std::string& out);
  static void write_employee(const Employee& e, bool with_parent, std::string& out);
  static void write_sale(const Sale& s, bool with_parent, std::string& out);

  // Number of things stored because time produced them (sales, corrections, changed employees,
  // branch spells, sales awaiting publication): the model's memory grows with this, never with
  // the company's size.
  size_t stored_changes() const;

 private:
  struct EmpState {  // an employee that differs from its generated self (or was hired)
    int32_t branch = 0;
    int8_t occupation = 0;
    bool departed = false;
    int64_t hire_tick = -1;  // -1: part of the initial company
  };
  struct SaleFix {
    int32_t quantity;
    int64_t amount_cents;
    int64_t updated_at;
  };
  struct Spell {
    int32_t day;  // days since 1970-01-01
    int32_t branch;
  };
  struct PendingSale {  // made before a transfer, published later
    int64_t employee_id;
    int64_t transaction_time;
    uint64_t draw;
  };

  bool is_initial(int64_t id) const;
  int32_t base_branch(int64_t id) const;
  int8_t base_occupation(int64_t id) const;
  int64_t base_sales_count(int64_t id) const;  // 0 unless an initial salesperson
  int64_t base_sale_first_id(int64_t id) const;
  // Current state of an id below next_employee_id_ (initial or override).
  EmpState state(int64_t id) const;
  bool is_current(int64_t id) const;
  Employee make_employee(int64_t id, const EmpState& st) const;
  int64_t hire_time(int64_t id, const EmpState& st) const;  // Unix seconds
  Sale base_sale(int64_t employee_id, int64_t k) const;
  int64_t sales_count(int64_t employee_id) const;

  void run_tick(int64_t t, AdvanceSummary& sum);
  int64_t events(int64_t t, uint64_t kind, double rate) const;
  // Deterministic choice of a current employee (salesperson if asked); 0 if none found.
  int64_t pick_employee(int64_t t, uint64_t kind, int64_t n, bool salesperson) const;
  void move(int64_t id, EmpState& st, int32_t to_branch);
  // Remembers the spell a transfer starts and queues the sales the vendor publishes late.
  void record_transfer(int64_t t, int64_t n, int64_t id, const EmpState& before, int32_t to);
  void publish_sale(int64_t t, const PendingSale& p);
  void add_sale(int64_t t, int64_t n, uint64_t kind, int64_t employee_id, bool late);
  void correct_sale(int64_t t, int64_t n, int64_t employee_id);
  uint64_t h(std::initializer_list<uint64_t> parts) const;

  SimConfig cfg_;
  int64_t tick_ = 0;
  int64_t first_employee_id_ = 1001;
  int64_t next_employee_id_ = 0;
  int64_t salespersons_per_branch_ = 0;
  std::vector<int32_t> branch_rotation_;
  // sale_offset_[i]: initial sales of initial employees before index i (prefix sums).
  std::vector<int64_t> sale_offset_;
  int64_t next_sale_id_ = 0;

  std::unordered_map<int64_t, EmpState> overrides_;
  std::vector<std::set<int64_t>> moved_in_;  // per branch-1: current members not generated there
  std::vector<int64_t> headcount_;           // per branch-1
  std::unordered_map<int64_t, std::vector<Sale>> extra_sales_;  // by employee, id order
  std::unordered_map<int64_t, SaleFix> fixes_;                  // corrections of initial sales
  // Transferred employees only: every spell, the hire's first.
  std::unordered_map<int64_t, std::vector<Spell>> spells_;
  std::multimap<int64_t, PendingSale> pending_;  // by the tick that publishes them
};

// "YYYY-MM-DD HH:MM:SS" (UTC) for Unix seconds.
std::string format_timestamp(int64_t unix_seconds);
std::string format_date(int64_t unix_seconds);
// Unix seconds for a UTC time written YYYY-MM-DD, or YYYY-MM-DD HH:MM:SS with a 'T' or a space
// between date and time, an optional fraction (rounded up: whole seconds at or after it) and an
// optional Z or +00:00; nullopt for anything else.
std::optional<int64_t> parse_timestamp(std::string_view text);

}  // namespace cascade::sim
