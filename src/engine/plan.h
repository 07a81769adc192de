// Plan: a PipelineSpec compiled for execution — templates and filters parsed once, stages
// indexed, children resolved. Immutable after construction, so thread-safe to share.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/pipeline.h"
#include "core/expr.h"
#include "core/template.h"

namespace cascade {

struct CompiledField {
  std::string name;
  bool is_template = false;
  std::string path;              // record path when !is_template
  std::optional<Template> tmpl;  // when is_template
  // Top-level record field that this field renames (key `branch_id: id` consumes `id`).
  std::string consumes;
  // A missing or null value is null rather than an error: the list an emit hands to a
  // records_from child, where no list is an empty listing.
  bool or_null = false;
};

struct CompiledEmit {
  size_t child = 0;  // index into Plan::stages
  std::vector<CompiledField> fields;
};

struct CompiledStage {
  const StageSpec* spec = nullptr;
  size_t index = 0;
  std::string name;
  std::string queue;  // queue name, e.g. "sales-dev"
  std::string table;
  std::string method;
  Template request;
  std::vector<std::pair<std::string, Template>> params;  // query parameters, rendered per message
  std::optional<JsonTemplate> body;
  // source.headers with the stage's own over them, plus Content-Type for a JSON body.
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<Expr> where;
  std::vector<CompiledField> key;
  std::vector<CompiledField> attach;
  std::vector<CompiledEmit> emit;
  std::vector<std::string> consumed;  // record fields renamed into key/attach columns
  bool root = false;
};

class Plan {
 public:
  // Compiles a validated spec. Throws ConfigError if a template or filter does not compile.
  explicit Plan(const PipelineSpec& spec);
  const PipelineSpec& spec() const { return spec_; }
  const std::vector<CompiledStage>& stages() const { return stages_; }
  const CompiledStage* find(std::string_view name) const;

  // Messages for a root stage from its inputs, overridden by an event (AWS style
  // {"branches": [...]}, or parameter names directly). Throws DataError on a malformed event.
  // Reserved quota share per stage index (0 where none). Throws ConfigError for an unknown stage.
  std::vector<double> quota_reserve() const;

  std::vector<Value> root_messages(const CompiledStage& stage, const Value* event) const;

 private:
  PipelineSpec spec_;
  std::vector<CompiledStage> stages_;
};

}  // namespace cascade
