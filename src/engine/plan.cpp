#include "engine/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace cascade {

static CompiledField compile_field(const FieldSpec& f) {
  CompiledField out;
  out.name = f.name;
  out.is_template = f.is_template;
  if (f.is_template) {
    try {
      out.tmpl = Template::parse(f.tmpl.text);
    } catch (const TemplateError& e) {
      throw ConfigError(f.pos, e.what());
    }
    // A single {record.x} reference renames x just as a bare path does.
    if (out.tmpl->is_single_ref() && out.tmpl->refs()[0].scope == Template::Ref::Scope::Record &&
        out.tmpl->refs()[0].path.find('.') == std::string::npos)
      out.consumes = out.tmpl->refs()[0].path;
  } else {
    out.path = f.path;
    if (f.path.find('.') == std::string::npos) out.consumes = f.path;
  }
  if (out.consumes == out.name) out.consumes.clear();
  return out;
}

Plan::Plan(const PipelineSpec& spec) : spec_(spec) {
  stages_.reserve(spec_.stages.size());
  for (size_t i = 0; i < spec_.stages.size(); ++i) {
    const StageSpec& s = spec_.stages[i];
    CompiledStage c;
    c.spec = &s;
    c.index = i;
    c.name = s.name;
    c.queue = spec_.env.empty() ? s.name : fmt::format("{}-{}", s.name, spec_.env);
    c.table = s.table.empty() ? s.name : s.table;
    c.method = s.method;
    try {
      c.request = Template::parse(s.request.text);
    } catch (const TemplateError& e) {
      throw ConfigError(s.request.pos, e.what());
    }
    for (const auto& [name, t] : s.params) {
      try {
        c.params.emplace_back(name, Template::parse(t.text));
      } catch (const TemplateError& e) {
        throw ConfigError(t.pos, e.what());
      }
    }
    if (s.body) {
      try {
        c.body = JsonTemplate::parse(*s.body);
      } catch (const TemplateError& e) {
        throw ConfigError(s.body_pos, e.what());
      }
    }
    auto same_name = [](std::string_view a, std::string_view b) {
      return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
             });
    };
    auto overridden = [&](const std::string& name) {
      return std::any_of(s.headers.begin(), s.headers.end(),
                         [&](const auto& h) { return same_name(h.first, name); });
    };
    for (const auto& h : spec_.source.headers)
      if (!overridden(h.first)) c.headers.push_back(h);
    for (const auto& h : s.headers) c.headers.push_back(h);
    if (c.body && std::none_of(c.headers.begin(), c.headers.end(),
                               [&](const auto& h) { return same_name(h.first, "content-type"); }))
      c.headers.emplace_back("Content-Type", "application/json");
    if (s.where) {
      try {
        c.where = Expr::parse(*s.where);
      } catch (const ExprError& e) {
        throw ConfigError(s.where_pos, e.what());
      }
    }
    for (const auto& f : s.key) c.key.push_back(compile_field(f));
    for (const auto& f : s.attach) c.attach.push_back(compile_field(f));
    for (const auto* list : {&c.key, &c.attach})
      for (const auto& f : *list)
        if (!f.consumes.empty()) c.consumed.push_back(f.consumes);
    c.root = true;
    stages_.push_back(std::move(c));
  }
  for (auto& c : stages_) {
    for (const auto& e : c.spec->emit) {
      const CompiledStage* child = find(e.stage);
      if (!child) throw ConfigError(e.pos, fmt::format("emit to undefined stage '{}'", e.stage));
      CompiledEmit ce;
      ce.child = child->index;
      for (const auto& f : e.fields) {
        ce.fields.push_back(compile_field(f));
        // The list a records_from child reads becomes the child's table: the parent's row does
        // not keep a copy of it.
        CompiledField& cf = ce.fields.back();
        if (child->spec->records_from && f.name == *child->spec->records_from) {
          cf.or_null = true;
          std::string field = cf.is_template
                                  ? (cf.tmpl->is_single_ref() && cf.tmpl->refs()[0].scope ==
                                                                     Template::Ref::Scope::Record
                                         ? cf.tmpl->refs()[0].path
                                         : std::string())
                                  : cf.path;
          if (!field.empty() && field.find('.') == std::string::npos &&
              std::find(c.consumed.begin(), c.consumed.end(), field) == c.consumed.end())
            c.consumed.push_back(field);
        }
      }
      c.emit.push_back(std::move(ce));
      stages_[child->index].root = false;
    }
  }
  quota_reserve();  // refuses a reserve for an undefined stage now, not at run time
}

std::vector<double> Plan::quota_reserve() const {
  std::vector<double> out(stages_.size(), 0.0);
  const QuotaSpec& q = spec_.source.quota;
  for (size_t i = 0; i < q.reserve.size(); ++i) {
    const CompiledStage* st = find(q.reserve[i].first);
    if (!st)
      throw ConfigError(
          i < q.reserve_pos.size() ? q.reserve_pos[i] : SourcePos{spec_.file, 0, 0},
          fmt::format("quota.reserve names undefined stage '{}'", q.reserve[i].first));
    out[st->index] = q.reserve[i].second;
  }
  return out;
}

const CompiledStage* Plan::find(std::string_view name) const {
  for (const auto& s : stages_)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<Value> Plan::root_messages(const CompiledStage& stage, const Value* event) const {
  // Each parameter has a list of values; the messages are their cartesian product.
  std::vector<std::pair<std::string, std::vector<Value>>> params = stage.spec->inputs;
  auto set_param = [&](const std::string& name, const Value& v) {
    std::vector<Value> values;
    if (v.is_array()) {
      values = v.as_array();
      if (values.empty()) return;  // an empty list means "the defaults", as in the AWS design
    } else {
      values.push_back(v);
    }
    for (const auto& val : values)
      if (!val.is_scalar() || val.is_null())
        throw DataError(
            fmt::format("event value for '{}' must be a scalar or a list of scalars", name));
    for (auto& p : params)
      if (p.first == name) {
        p.second = std::move(values);
        return;
      }
    params.emplace_back(name, std::move(values));
  };
  if (event && !event->is_null()) {
    if (!event->is_object()) throw DataError("an event must be a JSON object");
    for (const auto& [field, value] : event->as_object()) {
      auto alias = stage.spec->event_fields.find(field);
      if (alias != stage.spec->event_fields.end()) {
        set_param(alias->second, value);
      } else {
        set_param(field, value);
      }
    }
  }
  std::vector<Value> out;
  if (params.empty()) {
    out.emplace_back(Object{});
    return out;
  }
  for (const auto& p : params)
    if (p.second.empty()) return out;
  std::vector<size_t> idx(params.size(), 0);
  while (true) {
    Value msg{Object{}};
    for (size_t i = 0; i < params.size(); ++i) msg.set(params[i].first, params[i].second[idx[i]]);
    out.push_back(std::move(msg));
    size_t i = params.size();
    while (i > 0) {
      --i;
      if (++idx[i] < params[i].second.size()) break;
      idx[i] = 0;
      if (i == 0) return out;
    }
  }
}

}  // namespace cascade
