#include "sim/company.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <stdexcept>

#include "core/json.h"

namespace cascade::sim {
namespace {

constexpr int64_t kStart = 1704067200;  // 2024-01-01 00:00:00 UTC: tick 0
constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;

// Kinds of random draws; each draw hashes (seed, kind, ...), so adding a draw never shifts others.
enum Kind : uint64_t {
  kRotation = 1,
  kOccupation,
  kSalesCount,
  kName,
  kHireDate,
  kSalary,
  kSale,
  kEvents,
  kHire,
  kDeparture,
  kTransfer,
  kPromotion,
  kNewSale,
  kLateSale,
  kCorrection,
  kBranch,
  kTransferSale,
};

// Index 0 is the only occupation whose sales the API serves.
constexpr std::array<std::string_view, 11> kOccupations = {"salesperson",
                                                           "accountant",
                                                           "receptionist",
                                                           "warehouse worker",
                                                           "customer service",
                                                           "human resources",
                                                           "data engineer",
                                                           "regional manager",
                                                           "quality assurance",
                                                           "supplier relations",
                                                           "assistant to the regional manager"};
constexpr int8_t kPromotedTo = 10;
constexpr std::array<int64_t, 11> kBaseSalary = {48000, 52000, 34000, 38000, 36000, 50000,
                                                 95000, 90000, 45000, 47000, 55000};

struct Product {
  std::string_view name;
  int64_t cents;
};
constexpr std::array<Product, 12> kProducts = {{{"Copy paper 20lb", 499},
                                                {"Copy paper 24lb", 699},
                                                {"Cardstock 110lb", 1299},
                                                {"Printer toner", 6499},
                                                {"Envelopes #10 (500)", 2199},
                                                {"Legal pads (12)", 1499},
                                                {"Sticky notes (24)", 1899},
                                                {"Manila folders (100)", 1599},
                                                {"Binder clips", 599},
                                                {"Staples (5000)", 399},
                                                {"Ballpoint pens (60)", 1299},
                                                {"Shipping boxes (25)", 3499}}};

constexpr std::array<std::string_view, 16> kCustomers = {
    "Lackawanna County",    "Blue Cross of Pennsylvania",
    "Harper Collins",       "Apex Technology",
    "Scranton White Pages", "Vance Refrigeration",
    "Poor Richard's Pub",   "Stamford Country Club",
    "Cugino's Restaurant",  "Dunmore High School",
    "Steamtown Mall",       "Nashua Public Library",
    "Yonkers City Hall",    "Utica Insurance",
    "Buffalo Wings Co",     "Albany Law Office"};

constexpr std::array<std::string_view, 24> kFirst = {
    "Jim",      "Pam",   "Dwight", "Angela", "Oscar", "Kevin", "Stanley", "Phyllis",
    "Meredith", "Creed", "Kelly",  "Ryan",   "Toby",  "Andy",  "Erin",    "Darryl",
    "Karen",    "Holly", "Gabe",   "Nellie", "Clark", "Pete",  "Jan",     "Roy"};
constexpr std::array<std::string_view, 24> kLast = {
    "Doe",     "Halpert", "Beesly",  "Schrute", "Martin", "Martinez",   "Malone",   "Hudson",
    "Vance",   "Palmer",  "Bratton", "Kapoor",  "Howard", "Flenderson", "Bernard",  "Hannon",
    "Philbin", "Flax",    "Lewis",   "Bertram", "Green",  "Miller",     "Levinson", "Anderson"};

struct NamedBranch {
  std::string_view name, state, manager, area, opened;
};
constexpr std::array<NamedBranch, 13> kNamedBranches = {{
    {"Scranton", "PA", "Michael Scott", "570", "1983-04-11"},
    {"Akron", "OH", "Ed Truck", "330", "1985-09-02"},
    {"Buffalo", "NY", "Dan Gore", "716", "1987-03-16"},
    {"Rochester", "NY", "Robert Dunn", "585", "1988-06-01"},
    {"Syracuse", "NY", "Karen Keller", "315", "1990-01-22"},
    {"Utica", "NY", "Karen Filippelli", "315", "1991-05-13"},
    {"Binghamton", "NY", "Tony Gardner", "607", "1992-10-05"},
    {"Albany", "NY", "Gil Hart", "518", "1994-02-28"},
    {"Nashua", "NH", "Holly Flax", "603", "1996-07-08"},
    {"Pittsfield", "MA", "Grace Park", "413", "1998-11-30"},
    {"Stamford", "CT", "Josh Porter", "203", "2000-04-17"},
    {"Yonkers", "NY", "AJ Fontaine", "914", "2002-08-19"},
    {"New York", "NY", "David Wallace", "212", "2004-01-12"},
}};

double unit(uint64_t x) {
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

// Howard Hinnant's civil_from_days: days since 1970-01-01 -> (y, m, d).
void civil(int64_t days, int64_t& y, unsigned& m, unsigned& d) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += (m <= 2);
}

int64_t floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

void append2(std::string& out, unsigned v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

void append_date(std::string& out, int64_t secs) {
  int64_t y;
  unsigned m, d;
  civil(floor_div(secs, kDay), y, m, d);
  fmt::format_to(std::back_inserter(out), "{:04}-", y);
  append2(out, m);
  out.push_back('-');
  append2(out, d);
}

void append_timestamp(std::string& out, int64_t secs) {
  append_date(out, secs);
  const int64_t s = secs - floor_div(secs, kDay) * kDay;
  out.push_back(' ');
  append2(out, static_cast<unsigned>(s / kHour));
  out.push_back(':');
  append2(out, static_cast<unsigned>(s / 60 % 60));
  out.push_back(':');
  append2(out, static_cast<unsigned>(s % 60));
}

void append_int(std::string& out, int64_t v) {
  fmt::format_to(std::back_inserter(out), "{}", v);
}

void append_cents(std::string& out, int64_t cents) {
  fmt::format_to(std::back_inserter(out), "{}.{:02}", cents / 100, cents % 100);
}

// The priced part of a sale (product, customer, quantity, amounts), drawn from one hash.
void price(uint64_t hs, Sale& s) {
  s.product = static_cast<int32_t>((hs >> 8) % kProducts.size());
  s.customer = static_cast<int32_t>((hs >> 16) % kCustomers.size());
  s.quantity = static_cast<int32_t>(1 + (hs >> 40) % 40);
  s.unit_price_cents = kProducts[s.product].cents;
  s.amount_cents = s.unit_price_cents * s.quantity;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return r;
}

}  // namespace

std::string format_timestamp(int64_t unix_seconds) {
  std::string s;
  append_timestamp(s, unix_seconds);
  return s;
}

std::optional<int64_t> parse_timestamp(std::string_view t) {
  auto num = [&](size_t at, size_t n) -> std::optional<int64_t> {
    if (at + n > t.size()) return std::nullopt;
    int64_t v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2);
  if (!y || !mo || !d || t[4] != '-' || t[7] != '-' || *mo < 1 || *mo > 12 || *d < 1 || *d > 31)
    return std::nullopt;
  // Howard Hinnant's days_from_civil.
  const int64_t yy = *y - (*mo <= 2);
  const int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  const int64_t yoe = yy - era * 400;
  const int64_t doy = (153 * (*mo > 2 ? *mo - 3 : *mo + 9) + 2) / 5 + *d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t secs = (era * 146097 + doe - 719468) * kDay;
  size_t i = 10;
  if (i == t.size()) return secs;
  if (t[i] != 'T' && t[i] != ' ') return std::nullopt;
  auto h = num(11, 2), mi = num(14, 2), se = num(17, 2);
  if (!h || !mi || !se || t[13] != ':' || t[16] != ':' || *h > 23 || *mi > 59 || *se > 60)
    return std::nullopt;
  secs += *h * kHour + *mi * 60 + *se;
  i = 19;
  if (i < t.size() && t[i] == '.') {
    bool above = false;
    size_t f = ++i;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) above = above || t[i] != '0';
    if (i == f) return std::nullopt;
    if (above) ++secs;
  }
  std::string_view zone = t.substr(i);
  if (!zone.empty() && zone != "Z" && zone != "+00:00") return std::nullopt;
  return secs;
}

std::string format_date(int64_t unix_seconds) {
  std::string s;
  append_date(s, unix_seconds);
  return s;
}

void SimConfig::validate() const {
  auto bad = [](const char* what) { throw std::invalid_argument(what); };
  if (branches < 1 || branches > 1'000'000) bad("--branches must be in 1..1000000");
  if (employees_per_branch < 1) bad("--employees-per-branch must be >= 1");
  if (static_cast<int64_t>(branches) * employees_per_branch > 50'000'000)
    bad("--branches x --employees-per-branch must be <= 50000000");
  if (!(salesperson_share >= 0 && salesperson_share <= 1))
    bad("--salesperson-share must be in 0..1");
  if (sales_per_salesperson < 0 || sales_per_salesperson > 10'000'000)
    bad("--sales-per-salesperson must be in 0..10000000");
  for (double r : {new_sales_per_tick, late_sales_per_tick, corrections_per_tick,
                   transfers_per_tick, departures_per_tick, hires_per_tick, promotions_per_tick})
    if (!(r >= 0 && r <= 1e6)) bad("per-tick rates must be in 0..1000000");
  if (late_sales_per_transfer < 0 || late_sales_per_transfer > 1000)
    bad("--late-sales-per-transfer must be in 0..1000");
}

uint64_t Company::h(std::initializer_list<uint64_t> parts) const {
  return XXH3_64bits_withSeed(parts.begin(), parts.size() * sizeof(uint64_t), cfg_.seed);
}

Company::Company(SimConfig cfg) : cfg_(cfg) {
  cfg_.validate();
  const int64_t E = cfg_.employees_per_branch;
  const int64_t initial = int64_t{cfg_.branches} * E;
  next_employee_id_ = first_employee_id_ + initial;
  salespersons_per_branch_ = std::llround(static_cast<double>(E) * cfg_.salesperson_share);
  branch_rotation_.resize(cfg_.branches);
  for (int b = 0; b < cfg_.branches; ++b)
    branch_rotation_[b] = static_cast<int32_t>(h({kRotation, uint64_t(b)}) % uint64_t(E));
  sale_offset_.resize(initial + 1);
  int64_t total = 0;
  for (int64_t i = 0; i < initial; ++i) {
    sale_offset_[i] = total;
    total += base_sales_count(first_employee_id_ + i);
  }
  sale_offset_[initial] = total;
  next_sale_id_ = total + 1;
  moved_in_.resize(cfg_.branches);
  headcount_.assign(cfg_.branches, E);
}

int64_t Company::now() const {
  return kStart + tick_ * kHour;
}

bool Company::is_initial(int64_t id) const {
  return id >= first_employee_id_ &&
         id < first_employee_id_ + int64_t{cfg_.branches} * cfg_.employees_per_branch;
}

int32_t Company::base_branch(int64_t id) const {
  return static_cast<int32_t>((id - first_employee_id_) / cfg_.employees_per_branch + 1);
}

int8_t Company::base_occupation(int64_t id) const {
  const int64_t E = cfg_.employees_per_branch;
  const int64_t idx = id - first_employee_id_;
  const int64_t b = idx / E;
  // Spread exactly round(E * share) salespersons evenly over each branch's slots.
  const int64_t j = (idx % E + branch_rotation_[b]) % E;
  const int64_t n = salespersons_per_branch_;
  if ((j + 1) * n / E > j * n / E) return 0;
  return static_cast<int8_t>(1 + h({kOccupation, uint64_t(id)}) % 9);
}

int64_t Company::base_sales_count(int64_t id) const {
  if (!is_initial(id) || base_occupation(id) != 0) return 0;
  const int64_t mean = cfg_.sales_per_salesperson;
  const int64_t lo = mean / 2, hi = mean + mean / 2;
  return lo + static_cast<int64_t>(h({kSalesCount, uint64_t(id)}) % uint64_t(hi - lo + 1));
}

int64_t Company::base_sale_first_id(int64_t id) const {
  return 1 + sale_offset_[id - first_employee_id_];
}

Company::EmpState Company::state(int64_t id) const {
  if (auto it = overrides_.find(id); it != overrides_.end()) return it->second;
  EmpState st;
  st.branch = base_branch(id);
  st.occupation = base_occupation(id);
  return st;
}

bool Company::is_current(int64_t id) const {
  if (id < first_employee_id_ || id >= next_employee_id_) return false;
  auto it = overrides_.find(id);
  return it == overrides_.end() || !it->second.departed;
}

bool Company::is_current_salesperson(int64_t id) const {
  if (id < first_employee_id_ || id >= next_employee_id_) return false;
  const EmpState st = state(id);
  return !st.departed && st.occupation == 0;
}

Employee Company::make_employee(int64_t id, const EmpState& st) const {
  Employee e;
  e.id = id;
  e.branch_id = st.branch;
  e.occupation = kOccupations[st.occupation];
  const uint64_t hn = h({kName, uint64_t(id)});
  const std::string_view first = kFirst[hn % kFirst.size()];
  const std::string_view last = kLast[(hn >> 20) % kLast.size()];
  e.name.reserve(first.size() + last.size() + 1);
  e.name.append(first).append(" ").append(last);
  e.email = fmt::format("{}.{}{}@dundermifflin.com", lower(first), lower(last), id);
  e.hire_date = format_date(hire_time(id, st));
  if (auto it = spells_.find(id); it != spells_.end())
    e.branch_since = format_date(int64_t{it->second.back().day} * kDay);
  else
    e.branch_since = e.hire_date;
  e.salary =
      kBaseSalary[st.occupation] + static_cast<int64_t>(h({kSalary, uint64_t(id)}) % 150) * 100;
  return e;
}

int64_t Company::hire_time(int64_t id, const EmpState& st) const {
  if (st.hire_tick >= 0) return kStart + st.hire_tick * kHour;
  // Between 2000-01-01 and 400 days before the start, so a year of sales fits after.
  const int64_t from = 946684800, to = kStart - 400 * kDay;
  return from + static_cast<int64_t>(h({kHireDate, uint64_t(id)}) % uint64_t(to - from));
}

std::vector<BranchSpell> Company::branch_history(int64_t id) const {
  std::vector<BranchSpell> out;
  if (id < first_employee_id_ || id >= next_employee_id_) return out;
  if (auto it = spells_.find(id); it != spells_.end()) {
    out.reserve(it->second.size());
    for (const Spell& s : it->second) out.push_back({s.branch, s.day});
  } else {
    const EmpState st = state(id);
    out.push_back({st.branch, floor_div(hire_time(id, st), kDay)});
  }
  return out;
}

int64_t Company::branch_at(const std::vector<BranchSpell>& history, int64_t t) {
  if (history.empty()) return 0;
  const int64_t day = floor_div(t, kDay);
  auto it = std::upper_bound(history.begin(), history.end(), day,
                             [](int64_t d, const BranchSpell& s) { return d < s.from_day; });
  return it == history.begin() ? history.front().branch_id : std::prev(it)->branch_id;
}

Sale Company::base_sale(int64_t employee_id, int64_t k) const {
  const int64_t count = base_sales_count(employee_id);
  Sale s;
  s.id = base_sale_first_id(employee_id) + k;
  s.employee_id = employee_id;
  const uint64_t hs = h({kSale, uint64_t(s.id)});
  // Sales of the year before the start, in id order, each with some jitter inside its slot.
  const int64_t window = 365 * kDay, from = kStart - window;
  const int64_t slot = std::max<int64_t>(1, window / count);
  s.transaction_time = from + window * k / count + static_cast<int64_t>(hs % uint64_t(slot));
  s.updated_at =
      std::min(kStart, s.transaction_time + static_cast<int64_t>((hs >> 24) % (72 * kHour)));
  price(hs, s);
  if (!fixes_.empty()) {
    if (auto it = fixes_.find(s.id); it != fixes_.end()) {
      s.quantity = it->second.quantity;
      s.amount_cents = it->second.amount_cents;
      s.updated_at = it->second.updated_at;
    }
  }
  return s;
}

int64_t Company::sales_count(int64_t employee_id) const {
  int64_t n = base_sales_count(employee_id);
  if (auto it = extra_sales_.find(employee_id); it != extra_sales_.end())
    n += static_cast<int64_t>(it->second.size());
  return n;
}

std::optional<Branch> Company::branch(int64_t id) const {
  if (id < 1 || id > cfg_.branches) return std::nullopt;
  Branch b;
  b.id = id;
  b.employees = headcount_[id - 1];
  if (id <= static_cast<int64_t>(kNamedBranches.size())) {
    const NamedBranch& n = kNamedBranches[id - 1];
    b.name = n.name;
    b.location = fmt::format("{}, {}", n.name, n.state);
    b.manager = n.manager;
    b.phone = fmt::format("{}-555-{:04}", n.area, 99 + id);
    b.opened = n.opened;
  } else {
    const uint64_t hb = h({kBranch, uint64_t(id)});
    b.name = fmt::format("Branch {}", id);
    b.location = fmt::format("Branch {}, PA", id);
    b.manager = fmt::format("{} {}", kFirst[hb % kFirst.size()], kLast[(hb >> 8) % kLast.size()]);
    b.phone = fmt::format("570-{:03}-{:04}", 100 + id / 10000 % 900, id % 10000);
    b.opened = format_date(946684800 + static_cast<int64_t>((hb >> 16) % (20 * 365)) * kDay);
  }
  return b;
}

std::optional<Branch> Company::branch_by_name(std::string_view name) const {
  for (size_t i = 0; i < kNamedBranches.size() && int64_t(i) < cfg_.branches; ++i)
    if (kNamedBranches[i].name == name) return branch(static_cast<int64_t>(i) + 1);
  constexpr std::string_view prefix = "Branch ";
  if (name.substr(0, prefix.size()) == prefix) {
    int64_t id = 0;
    for (char c : name.substr(prefix.size())) {
      if (c < '0' || c > '9' || id > cfg_.branches) return std::nullopt;
      id = id * 10 + (c - '0');
    }
    if (id > static_cast<int64_t>(kNamedBranches.size()) && id <= cfg_.branches &&
        fmt::format("Branch {}", id) == name)
      return branch(id);
  }
  return std::nullopt;
}

void Company::for_each_employee(int64_t branch_id,
                                const std::function<void(const Employee&)>& fn) const {
  if (branch_id < 1 || branch_id > cfg_.branches) return;
  const int64_t E = cfg_.employees_per_branch;
  const int64_t lo = first_employee_id_ + (branch_id - 1) * E, hi = lo + E;
  const std::set<int64_t>& in = moved_in_[branch_id - 1];
  auto it = in.begin();
  for (; it != in.end() && *it < lo; ++it) fn(make_employee(*it, state(*it)));
  for (int64_t id = lo; id < hi; ++id) {
    const EmpState st = state(id);
    if (!st.departed && st.branch == branch_id) fn(make_employee(id, st));
  }
  for (; it != in.end(); ++it) fn(make_employee(*it, state(*it)));
}

void Company::for_each_sale(int64_t employee_id, const std::function<void(const Sale&)>& fn) const {
  if (!is_current_salesperson(employee_id)) return;
  const int64_t n = base_sales_count(employee_id);
  for (int64_t k = 0; k < n; ++k) fn(base_sale(employee_id, k));
  if (auto it = extra_sales_.find(employee_id); it != extra_sales_.end())
    for (const Sale& s : it->second) fn(s);
}

size_t Company::stored_changes() const {
  size_t n = fixes_.size() + overrides_.size() + pending_.size();
  for (const auto& [id, v] : extra_sales_) n += v.size();
  for (const auto& [id, v] : spells_) n += v.size();
  return n;
}

// ---------------------------------------------------------------- writers

void Company::write_branch(const Branch& b, std::string& out) {
  out += "{\"id\":";
  append_int(out, b.id);
  out += ",\"branch_name\":";
  append_json_string(b.name, out);
  out += ",\"employees\":";
  append_int(out, b.employees);
  out += ",\"location\":";
  append_json_string(b.location, out);
  out += ",\"manager\":";
  append_json_string(b.manager, out);
  out += ",\"phone\":";
  append_json_string(b.phone, out);
  out += ",\"opened\":\"";
  out += b.opened;
  out += "\"}";
}

void Company::write_employee(const Employee& e, bool with_parent, std::string& out) {
  out += "{\"id\":";
  append_int(out, e.id);
  out += ",\"occupation\":";
  append_json_string(e.occupation, out);
  out += ",\"name\":";
  append_json_string(e.name, out);
  out += ",\"email\":";
  append_json_string(e.email, out);
  out += ",\"hire_date\":\"";
  out += e.hire_date;
  out += "\",\"branch_since\":\"";
  out += e.branch_since;
  out += "\",\"salary\":";
  append_int(out, e.salary);
  if (with_parent) {
    out += ",\"branch_id\":";
    append_int(out, e.branch_id);
  }
  out += '}';
}

void Company::write_sale(const Sale& s, bool with_parent, std::string& out) {
  out += "{\"id\":";
  append_int(out, s.id);
  out += ",\"transaction_timestamp\":\"";
  append_timestamp(out, s.transaction_time);
  out += "\",\"product\":";
  append_json_string(kProducts[s.product].name, out);
  out += ",\"quantity\":";
  append_int(out, s.quantity);
  out += ",\"unit_price\":";
  append_cents(out, s.unit_price_cents);
  out += ",\"amount\":";
  append_cents(out, s.amount_cents);
  out += ",\"customer\":";
  append_json_string(kCustomers[s.customer], out);
  out += ",\"updated_at\":\"";
  append_timestamp(out, s.updated_at);
  out += '"';
  if (with_parent) {
    out += ",\"employee_id\":";
    append_int(out, s.employee_id);
  }
  out += '}';
}

void Company::write_branches_response(std::string_view name, std::string& out) const {
  out += "{\"result\":[";
  if (auto b = branch_by_name(name)) write_branch(*b, out);
  out += "]}";
}

void Company::write_employees_response(int64_t branch_id, std::string& out,
                                       bool embed_sales) const {
  out += "{\"result\":{\"branch_id\":";
  append_int(out, branch_id);
  out += ",\"employees\":[";
  bool first = true;
  for_each_employee(branch_id, [&](const Employee& e) {
    if (!first) out += ',';
    first = false;
    write_employee(e, false, out);
    if (!embed_sales) return;
    out.pop_back();  // the employee's closing brace
    out += ",\"sales\":[";
    bool first_sale = true;
    for_each_sale(e.id, [&](const Sale& s) {
      if (!first_sale) out += ',';
      first_sale = false;
      write_sale(s, false, out);
    });
    out += "]}";
  });
  out += "]}}";
}

void Company::write_sales_response(int64_t employee_id, std::string& out,
                                   std::optional<int64_t> updated_since) const {
  out += "{\"result\":{\"employee_id\":";
  append_int(out, employee_id);
  out += ",\"sales\":[";
  if (is_current_salesperson(employee_id)) out.reserve(out.size() + 240 * sales_count(employee_id));
  bool first = true;
  for_each_sale(employee_id, [&](const Sale& s) {
    if (updated_since && s.updated_at < *updated_since) return;
    if (!first) out += ',';
    first = false;
    write_sale(s, false, out);
  });
  out += "]}}";
}

// ---------------------------------------------------------------- time

AdvanceSummary Company::advance(int64_t ticks) {
  if (ticks < 0) throw std::invalid_argument("ticks must be >= 0");
  AdvanceSummary sum;
  sum.ticks = ticks;
  for (int64_t i = 0; i < ticks; ++i) {
    ++tick_;
    run_tick(tick_, sum);
  }
  return sum;
}

int64_t Company::events(int64_t t, uint64_t kind, double rate) const {
  const double whole = std::floor(rate);
  const bool extra = unit(h({kEvents, uint64_t(t), kind})) < rate - whole;
  return static_cast<int64_t>(whole) + (extra ? 1 : 0);
}

int64_t Company::pick_employee(int64_t t, uint64_t kind, int64_t n, bool salesperson) const {
  const uint64_t span = uint64_t(next_employee_id_ - first_employee_id_);
  // Rejection sampling keeps memory independent of company size; a miss just skips the event.
  for (uint64_t attempt = 0; attempt < 64; ++attempt) {
    const int64_t id = first_employee_id_ +
                       static_cast<int64_t>(h({kind, uint64_t(t), uint64_t(n), attempt}) % span);
    if (salesperson ? is_current_salesperson(id) : is_current(id)) return id;
  }
  return 0;
}

void Company::move(int64_t id, EmpState& st, int32_t to) {
  const bool initial = is_initial(id);
  if (st.branch > 0) {
    if (!(initial && base_branch(id) == st.branch)) moved_in_[st.branch - 1].erase(id);
    --headcount_[st.branch - 1];
  }
  if (to > 0) {
    if (!(initial && base_branch(id) == to)) moved_in_[to - 1].insert(id);
    ++headcount_[to - 1];
  }
  st.branch = to;
}

void Company::add_sale(int64_t t, int64_t n, uint64_t kind, int64_t employee_id, bool late) {
  const uint64_t hs = h({kind, uint64_t(t), uint64_t(n), 1});
  const int64_t now = kStart + t * kHour;
  const EmpState st = state(employee_id);
  const int64_t hired = st.hire_tick >= 0 ? kStart + st.hire_tick * kHour : 0;
  Sale s;
  s.id = next_sale_id_++;
  s.employee_id = employee_id;
  // New sales happened within the last hour; late ones 1..30 days ago and surface only now.
  const int64_t age = late ? kDay + static_cast<int64_t>(hs % uint64_t(29 * kDay))
                           : static_cast<int64_t>(hs % uint64_t(kHour));
  s.transaction_time = std::max(now - age, hired);
  s.updated_at = now;
  price(hs, s);
  extra_sales_[employee_id].push_back(s);
}

void Company::record_transfer(int64_t t, int64_t n, int64_t id, const EmpState& before,
                              int32_t to) {
  const int64_t now = kStart + t * kHour;
  const int32_t day = static_cast<int32_t>(floor_div(now, kDay));
  const int64_t hired = hire_time(id, before);
  std::vector<Spell>& spells = spells_[id];
  if (spells.empty())
    spells.push_back({static_cast<int32_t>(floor_div(hired, kDay)), before.branch});
  const int32_t prev_from = spells.back().day;
  if (prev_from == day)
    spells.back().branch = to;
  else
    spells.push_back({day, to});
  // Only a salesperson who was at the old branch for all of yesterday's date sold there then.
  if (before.occupation != 0 || prev_from >= day) return;
  const int64_t mean = cfg_.late_sales_per_transfer;
  const int64_t lo = mean - mean / 2, hi = mean + mean / 2;
  const uint64_t hc = h({kTransferSale, uint64_t(t), uint64_t(n)});
  const int64_t count = lo + static_cast<int64_t>(hc % uint64_t(hi - lo + 1));
  const int64_t yesterday = int64_t{day} * kDay - kDay;
  for (int64_t j = 0; j < count; ++j) {
    const uint64_t hs = h({kTransferSale, uint64_t(t), uint64_t(n), uint64_t(j) + 1});
    const int64_t when = std::max(yesterday + static_cast<int64_t>(hs % uint64_t(kDay)), hired);
    pending_.emplace(t + static_cast<int64_t>((hs >> 48) % 25), PendingSale{id, when, hs});
  }
}

void Company::publish_sale(int64_t t, const PendingSale& p) {
  Sale s;
  s.id = next_sale_id_++;
  s.employee_id = p.employee_id;
  s.transaction_time = p.transaction_time;
  s.updated_at = kStart + t * kHour;
  price(p.draw, s);
  extra_sales_[p.employee_id].push_back(s);
}

void Company::correct_sale(int64_t t, int64_t n, int64_t employee_id) {
  const int64_t count = sales_count(employee_id);
  if (count == 0) return;
  const uint64_t hc = h({kCorrection, uint64_t(t), uint64_t(n), 1});
  const int64_t k = static_cast<int64_t>(hc % uint64_t(count));
  const int64_t now = kStart + t * kHour;
  const int64_t base = base_sales_count(employee_id);
  Sale s = k < base ? base_sale(employee_id, k) : extra_sales_[employee_id][k - base];
  int32_t q = static_cast<int32_t>(1 + (hc >> 32) % 40);
  if (q == s.quantity) q = q % 40 + 1;
  const SaleFix fix{q, s.unit_price_cents * q, now};
  if (k < base) {
    fixes_[s.id] = fix;
  } else {
    Sale& e = extra_sales_[employee_id][k - base];
    e.quantity = fix.quantity;
    e.amount_cents = fix.amount_cents;
    e.updated_at = fix.updated_at;
  }
}

void Company::run_tick(int64_t t, AdvanceSummary& sum) {
  const double share = cfg_.salesperson_share;
  for (int64_t n = 0, c = events(t, kHire, cfg_.hires_per_tick); n < c; ++n) {
    const uint64_t hh = h({kHire, uint64_t(t), uint64_t(n)});
    const int64_t id = next_employee_id_++;
    EmpState st;
    st.hire_tick = t;
    st.occupation = unit(hh) < share ? 0 : static_cast<int8_t>(1 + (hh >> 8) % 9);
    move(id, st, static_cast<int32_t>(1 + (hh >> 24) % uint64_t(cfg_.branches)));
    overrides_[id] = st;
    ++sum.hires;
  }
  for (int64_t n = 0, c = events(t, kDeparture, cfg_.departures_per_tick); n < c; ++n) {
    const int64_t id = pick_employee(t, kDeparture, n, false);
    if (id == 0) continue;
    EmpState st = state(id);
    move(id, st, 0);
    st.departed = true;
    overrides_[id] = st;
    ++sum.departures;
  }
  if (cfg_.branches > 1) {
    for (int64_t n = 0, c = events(t, kTransfer, cfg_.transfers_per_tick); n < c; ++n) {
      const int64_t id = pick_employee(t, kTransfer, n, false);
      if (id == 0) continue;
      EmpState st = state(id);
      // Any branch but the current one.
      const uint64_t r = h({kTransfer, uint64_t(t), uint64_t(n), 99}) % uint64_t(cfg_.branches - 1);
      int32_t to = static_cast<int32_t>(1 + r);
      if (to >= st.branch) ++to;
      record_transfer(t, n, id, st, to);
      move(id, st, to);
      overrides_[id] = st;
      ++sum.transfers;
    }
  }
  // Published after this tick's transfers, so a transfer's late sales never precede it.
  for (auto it = pending_.begin(); it != pending_.end() && it->first <= t;
       it = pending_.erase(it)) {
    publish_sale(t, it->second);
    ++sum.late_sales;
  }
  for (int64_t n = 0, c = events(t, kPromotion, cfg_.promotions_per_tick); n < c; ++n) {
    const int64_t id = pick_employee(t, kPromotion, n, true);
    if (id == 0) continue;
    EmpState st = state(id);
    st.occupation = kPromotedTo;
    overrides_[id] = st;
    ++sum.promotions;
  }
  for (int64_t n = 0, c = events(t, kNewSale, cfg_.new_sales_per_tick); n < c; ++n) {
    const int64_t id = pick_employee(t, kNewSale, n, true);
    if (id == 0) continue;
    add_sale(t, n, kNewSale, id, false);
    ++sum.new_sales;
  }
  for (int64_t n = 0, c = events(t, kLateSale, cfg_.late_sales_per_tick); n < c; ++n) {
    const int64_t id = pick_employee(t, kLateSale, n, true);
    if (id == 0) continue;
    add_sale(t, n, kLateSale, id, true);
    ++sum.late_sales;
  }
  for (int64_t n = 0, c = events(t, kCorrection, cfg_.corrections_per_tick); n < c; ++n) {
    const int64_t id = pick_employee(t, kCorrection, n, true);
    if (id == 0 || sales_count(id) == 0) continue;
    correct_sale(t, n, id);
    ++sum.corrections;
  }
}

}  // namespace cascade::sim
