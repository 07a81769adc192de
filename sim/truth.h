// TruthWriter: streams the simulator's ground truth (every branch, employee and sale the API
// serves at the current tick) as one JSON document, in bounded chunks. Not thread-safe; the
// Company must not change while a writer is in use.
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
