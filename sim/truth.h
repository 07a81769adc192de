// TruthWriter: streams the simulator's ground truth (every branch, employee and sale the API
// serves at the current tick) as one JSON document, in bounded chunks. Not thread-safe; the
// Company must not change while a writer is in use.
//
// The document: {"tick":N,"seed":N,"branches":[...],"employees":[...],"sales":[...]}.
//   branches:  each record exactly as /branches serves it.
//   employees: each current employee as /employees serves it (branch_since included), then
//              "branch_id" (its current branch) and the truth-only "branch_history": its spells
//              oldest first, [{"branch_id":N,"from":"YYYY-MM-DD"},...], the hire's first and the
//              last one's "from" equal to branch_since. A spell runs from the start of its date
//              until the next spell's date.
//   sales:     each sale /sales serves for a current salesperson, in (employee, id) order, as
//              served, then "employee_id" and the truth-only "branch_at_sale": the branch of the
//              spell holding the date of transaction_timestamp (the salesperson's branch when the
//              sale was made, which differs from branch_id after a transfer).
// A consumer comparing the truth with what the API serves drops the truth-only fields
// (branch_history, branch_at_sale) and the parent ids.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "sim/company.h"

namespace cascade::sim {

class TruthWriter {
 public:
  explicit TruthWriter(const Company& company) : c_(company) {}

  // Appends the next part of the document to out, stopping soon after out holds chunk_bytes
  // (one branch's employees or one employee's sales is never split). Returns false once the
  // document is complete (the final bytes are appended by that same call).
  bool next(std::string& out, size_t chunk_bytes = 256 * 1024);

 private:
  enum class Phase { Head, Employees, Sales, Done };
  const Company& c_;
  Phase phase_ = Phase::Head;
  int64_t cursor_ = 0;  // branch id during Employees, employee id during Sales
  bool first_ = true;
};

// Writes the whole ground truth to a C stream; returns false on a write error.
bool write_truth(const Company& company, std::FILE* out);

}  // namespace cascade::sim
