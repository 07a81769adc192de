#include "sim/truth.h"

#include <fmt/format.h>

#include <cstdio>
#include <iterator>

namespace cascade::sim {
namespace {

// Reopens a record that a writer just closed, to add fields only the truth carries.
void reopen(std::string& out) {
  out.pop_back();
}

void append_history(const std::vector<BranchSpell>& history, std::string& out) {
  out += ",\"branch_history\":[";
  for (size_t i = 0; i < history.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "{}{{\"branch_id\":{},\"from\":\"{}\"}}", i ? "," : "",
                   history[i].branch_id, format_date(history[i].from_day * 24 * 3600));
  }
  out += ']';
}

}  // namespace

bool TruthWriter::next(std::string& out, size_t chunk_bytes) {
  const size_t start = out.size();
  auto full = [&] { return out.size() - start >= chunk_bytes; };
  if (phase_ == Phase::Head) {
    fmt::format_to(std::back_inserter(out), "{{\"tick\":{},\"seed\":{},\"branches\":[", c_.tick(),
                   c_.config().seed);
    for (int64_t id = 1; id <= c_.branch_count(); ++id) {
      if (id > 1) out += ',';
      Company::write_branch(*c_.branch(id), out);
    }
    out += "],\"employees\":[";
    phase_ = Phase::Employees;
    cursor_ = 1;
    first_ = true;
  }
  if (phase_ == Phase::Employees) {
    for (; cursor_ <= c_.branch_count() && !full(); ++cursor_) {
      c_.for_each_employee(cursor_, [&](const Employee& e) {
        if (!first_) out += ',';
        first_ = false;
        Company::write_employee(e, true, out);
        reopen(out);
        append_history(c_.branch_history(e.id), out);
        out += '}';
      });
    }
    if (cursor_ > c_.branch_count()) {
      out += "],\"sales\":[";
      phase_ = Phase::Sales;
      cursor_ = 0;
      first_ = true;
    }
  }
  if (phase_ == Phase::Sales) {
    for (; cursor_ < c_.employee_id_end() && !full(); ++cursor_) {
      std::vector<BranchSpell> history;  // read once per salesperson, on the first sale
      c_.for_each_sale(cursor_, [&](const Sale& s) {
        if (!first_) out += ',';
        first_ = false;
        Company::write_sale(s, true, out);
        if (history.empty()) history = c_.branch_history(s.employee_id);
        reopen(out);
        fmt::format_to(std::back_inserter(out), ",\"branch_at_sale\":{}}}",
                       Company::branch_at(history, s.transaction_time));
      });
    }
    if (cursor_ >= c_.employee_id_end()) {
      out += "]}\n";
      phase_ = Phase::Done;
    }
  }
  return phase_ != Phase::Done;
}

bool write_truth(const Company& company, std::FILE* out) {
  TruthWriter w(company);
  std::string buf;
  bool more = true;
  while (more) {
    buf.clear();
    more = w.next(buf);
    if (std::fwrite(buf.data(), 1, buf.size(), out) != buf.size()) return false;
  }
  return std::fflush(out) == 0;
}

}  // namespace cascade::sim
