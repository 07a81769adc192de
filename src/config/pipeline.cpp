#include "config/pipeline.h"

namespace cascade {

const StageSpec* PipelineSpec::stage(std::string_view name) const {
  for (const auto& s : stages)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<const StageSpec*> PipelineSpec::roots() const {
  std::vector<const StageSpec*> out;
  for (const auto& s : stages) {
    bool child = false;
    for (const auto& p : stages)
      for (const auto& e : p.emit) child = child || e.stage == s.name;
    if (!child) out.push_back(&s);
  }
  return out;
}

}  // namespace cascade
