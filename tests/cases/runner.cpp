// case_runner: runs one data-driven test case, tests/cases/NAME/ (format: tests/cases/README.md).
// A playback HTTP server answers with the responses case.yaml scripts, the real cascade binary
// runs against it in a fresh working directory, and the steps' expectations are checked.
//
// Usage: case_runner CASE_DIR. Exit status: 0 when every step passed, 1 when one failed (the
// report says which step, expected against actual, the last cascade output and the requests no
// response matched), 2 when case.yaml is malformed (file:line:column). The working directory of a
// failing case is kept; CASE_KEEP=1 keeps it always, CASE_KEEP=0 never.
//
// Single-threaded apart from the server's workers, which only touch Playback under its mutex.
#include <sqlite3.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/json.h"
#include "sim/http_server.h"
#include "support/subprocess.h"

namespace fs = std::filesystem;
using cascade::Value;

namespace {

// A case.yaml that does not follow the format; carries the position of the offending node.
struct Malformed {
  YAML::Mark mark;
  std::string what;
};

// A step whose expectation did not hold; the text says expected against actual.
struct StepFailed {
  std::string what;
};

using Params = std::vector<std::pair<std::string, std::string>>;

// What a request line names: "GET /path?a=1&b=2" (the method defaults to GET).
struct RequestPattern {
  std::string method;
  std::string path;  // decoded
  Params params;     // decoded, sorted: a request matches whatever the order of its parameters
  std::string text;  // as written, for reports
};

struct Canned {
  RequestPattern request;
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<int> times;
  std::chrono::milliseconds delay{0};
  bool hang = false;
  int64_t reset_after = -1;
  int64_t truncate_body = -1;
};

struct Seen {
  std::string method;
  std::string path;
  Params params;
  int status;
  bool matched;
};

struct RunStep {
  std::vector<std::string> args;
  bool append_pipeline = true;
  int exit = 0;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::map<std::string, std::string> env;
  std::vector<std::string> stdout_has, stderr_has, stdout_lacks, stderr_lacks;
  std::vector<std::pair<std::string, YAML::Node>> json;
};

struct SqlStep {
  std::string sql;
  std::optional<std::vector<std::vector<std::optional<std::string>>>> rows;
  std::optional<size_t> count;
  std::optional<std::vector<std::string>> columns;
  std::optional<std::string> error;
  std::string database;  // relative to the working directory; empty: the case's database
};

struct DlqStep {
  std::string stage;  // "*": every stage
  std::vector<std::string> reasons;
};

struct RequestCount {
  std::optional<RequestPattern> request;  // unset: the unmatched requests
  size_t count;
};

struct Step {
  std::string kind;
  YAML::Mark mark;
  std::vector<Canned> serve;
  RunStep run;
  SqlStep sql;
  DlqStep dlq;
  std::vector<RequestCount> requests;
};

struct Case {
  std::string name;
  fs::path dir;
  std::string description;
  std::string pipeline = "pipeline.yaml";
  std::string database = "cascade.db";
  std::vector<Step> steps;
};

// ---------------------------------------------------------------------------------------------
// Reading case.yaml. Every mapping is checked against the keys it may have, so a misspelt
// expectation is an error instead of a check that silently never runs.

// yaml-cpp 0.7 takes a '?' inside a plain scalar in flow context for the mapping-key indicator
// ("unknown token" on `{ request: GET /a?b=1 }`), yet the format writes requests exactly so. A '?'
// that follows a character other than whitespace or a flow indicator is never YAML syntax, so it
// is swapped for a byte no case can contain (same length: error columns stay right) before
// parsing and swapped back in every scalar read through text().
constexpr char kQuestion = '\x1a';

std::string hide_questions(std::string s) {
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] == '?' && !std::strchr(" \t\r\n[]{},", s[i - 1])) s[i] = kQuestion;
  return s;
}

std::string text(const YAML::Node& n) {
  std::string s = n.Scalar();
  std::replace(s.begin(), s.end(), kQuestion, '?');
  return s;
}

void only_keys(const YAML::Node& map, std::initializer_list<const char*> allowed) {
  if (!map.IsMap()) throw Malformed{map.Mark(), "expected a mapping"};
  for (const auto& kv : map) {
    const std::string key = text(kv.first);
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw Malformed{kv.first.Mark(), "unknown key '" + key + "' (expected one of: " + list + ")"};
    }
  }
}

std::string scalar(const YAML::Node& n, const char* what) {
  if (!n.IsScalar()) throw Malformed{n.Mark(), std::string(what) + ": expected a scalar"};
  return text(n);
}

int64_t integer(const YAML::Node& n, const char* what) {
  const std::string s = scalar(n, what);
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') throw Malformed{n.Mark(), std::string(what) + ": not an integer"};
  return v;
}

bool boolean(const YAML::Node& n, const char* what) {
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    throw Malformed{n.Mark(), std::string(what) + ": expected true or false"};
  }
}

std::chrono::milliseconds duration(const YAML::Node& n, const char* what) {
  const std::string s = scalar(n, what);
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::chrono::seconds(std::stoll(s));
  auto d = cascade::parse_duration(s);
  if (!d) throw Malformed{n.Mark(), std::string(what) + ": not a duration (e.g. 60s, 500ms)"};
  return *d;
}

std::vector<std::string> strings(const YAML::Node& n, const char* what) {
  std::vector<std::string> out;
  if (n.IsScalar()) return {text(n)};
  if (!n.IsSequence()) throw Malformed{n.Mark(), std::string(what) + ": expected a list"};
  for (const auto& e : n) out.push_back(scalar(e, what));
  return out;
}

// A cell as sqlite3 prints it; nullopt is NULL (YAML ~ or null, unquoted).
std::optional<std::string> cell(const YAML::Node& n) {
  if (n.IsNull()) return std::nullopt;
  return scalar(n, "row cell");
}

RequestPattern parse_request(const YAML::Node& n) {
  RequestPattern p;
  p.text = scalar(n, "request");
  std::string target = p.text;
  const size_t sp = target.find(' ');
  if (sp != std::string::npos) {
    p.method = target.substr(0, sp);
    target = target.substr(target.find_first_not_of(' ', sp));
  } else {
    p.method = "GET";
  }
  if (target.empty() || target[0] != '/')
    throw Malformed{n.Mark(), "request: expected 'METHOD /path?query', got '" + p.text + "'"};
  const size_t q = target.find('?');
  p.path = cascade::sim::url_decode(target.substr(0, q));
  if (q != std::string::npos) {
    std::string_view query(target);
    query.remove_prefix(q + 1);
    while (!query.empty()) {
      const size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      if (kv.empty()) continue;
      const size_t eq = kv.find('=');
      p.params.emplace_back(
          cascade::sim::url_decode(kv.substr(0, eq)),
          eq == std::string_view::npos ? "" : cascade::sim::url_decode(kv.substr(eq + 1)));
    }
  }
  std::sort(p.params.begin(), p.params.end());
  return p;
}

bool matches(const RequestPattern& p, const std::string& method, const std::string& path,
             const Params& sorted_params) {
  return p.method == method && p.path == path && p.params == sorted_params;
}

bool is_json_number(const std::string& s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > from;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0')
    ++i;
  else if (!digits())
    return false;
  if (i < s.size() && s[i] == '.' && (++i, !digits())) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

// YAML to JSON text. Quoted scalars stay strings; plain ones that spell null, a boolean or a
// JSON number are written bare.
void to_json(const YAML::Node& n, std::string& out) {
  if (n.IsNull()) {
    out += "null";
  } else if (n.IsScalar()) {
    const std::string s = text(n);
    if (n.Tag() == "!") {
      cascade::append_json_string(s, out);
    } else if (s == "true" || s == "false" || s == "null" || is_json_number(s)) {
      out += s;
    } else if (s == "True" || s == "TRUE" || s == "False" || s == "FALSE") {
      out += s[0] == 'T' ? "true" : "false";
    } else {
      cascade::append_json_string(s, out);
    }
  } else if (n.IsSequence()) {
    out += '[';
    bool first = true;
    for (const auto& e : n) {
      if (!first) out += ',';
      first = false;
      to_json(e, out);
    }
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& kv : n) {
      if (!first) out += ',';
      first = false;
      cascade::append_json_string(text(kv.first), out);
      out += ':';
      to_json(kv.second, out);
    }
    out += '}';
  }
}

// Splits a command line like a POSIX shell would, without expansions: whitespace separates words,
// '...' keeps everything literally, "..." keeps everything but \" and \\, a backslash outside
// quotes escapes the next character.
std::vector<std::string> split_words(const std::string& s, const YAML::Mark& mark) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '\'') {
      const size_t end = s.find('\'', i + 1);
      if (end == std::string::npos) throw Malformed{mark, "run: unbalanced ' in: " + s};
      word += s.substr(i + 1, end - i - 1);
      i = end;
      in_word = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size() && (s[j + 1] == '"' || s[j + 1] == '\\')) ++j;
        word += s[j];
      }
      if (j >= s.size()) throw Malformed{mark, "run: unbalanced \" in: " + s};
      i = j;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      word += s[++i];
      in_word = true;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(std::move(word));
  return out;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Canned parse_canned(const YAML::Node& n, const fs::path& dir) {
  only_keys(n, {"request", "status", "headers", "body", "body_file", "json", "times",
                "content_type", "delay", "hang", "reset_after", "truncate_body"});
  if (!n["request"]) throw Malformed{n.Mark(), "serve entry without 'request'"};
  Canned c;
  c.request = parse_request(n["request"]);
  if (n["status"]) c.status = static_cast<int>(integer(n["status"], "status"));
  if (n["content_type"]) c.content_type = scalar(n["content_type"], "content_type");
  if (const auto h = n["headers"]) {
    if (!h.IsMap()) throw Malformed{h.Mark(), "headers: expected a mapping"};
    for (const auto& kv : h) {
      std::string name = text(kv.first), value = scalar(kv.second, "header value");
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (lower == "content-type")
        c.content_type = value;
      else
        c.headers.emplace_back(std::move(name), std::move(value));
    }
  }
  const int bodies = !!n["body"] + !!n["body_file"] + !!n["json"];
  if (bodies > 1) throw Malformed{n.Mark(), "give at most one of body, body_file and json"};
  if (n["body"]) c.body = scalar(n["body"], "body");
  if (n["json"]) to_json(n["json"], c.body);
  if (n["body_file"]) {
    const fs::path file = dir / scalar(n["body_file"], "body_file");
    try {
      c.body = read_text(file);
    } catch (const std::exception& e) {
      throw Malformed{n["body_file"].Mark(), e.what()};
    }
  }
  if (n["times"]) {
    c.times = static_cast<int>(integer(n["times"], "times"));
    if (*c.times < 1) throw Malformed{n["times"].Mark(), "times: at least 1"};
  }
  if (n["delay"]) c.delay = duration(n["delay"], "delay");
  if (n["hang"]) c.hang = boolean(n["hang"], "hang");
  if (n["reset_after"]) c.reset_after = integer(n["reset_after"], "reset_after");
  if (n["truncate_body"]) c.truncate_body = integer(n["truncate_body"], "truncate_body");
  return c;
}

Step parse_step(const YAML::Node& n, const fs::path& dir) {
  if (!n.IsMap()) throw Malformed{n.Mark(), "a step is a mapping (serve, run, sql, dlq, requests)"};
  Step s;
  s.mark = n.Mark();
  for (const char* kind : {"serve", "run", "sql", "dlq", "requests"})
    if (n[kind]) {
      if (!s.kind.empty())
        throw Malformed{n.Mark(), "a step does one thing; found both " + s.kind + " and " + kind};
      s.kind = kind;
    }
  if (s.kind.empty())
    throw Malformed{n.Mark(), "a step needs one of: serve, run, sql, dlq, requests"};

  if (s.kind == "serve") {
    only_keys(n, {"serve"});
    const auto list = n["serve"];
    if (!list.IsSequence() && !list.IsNull())
      throw Malformed{list.Mark(), "serve: expected a list of responses"};
    if (list.IsSequence())
      for (const auto& e : list) s.serve.push_back(parse_canned(e, dir));
  } else if (s.kind == "run") {
    only_keys(n, {"run", "exit", "timeout", "env", "pipeline", "stdout_has", "stderr_has",
                  "stdout_lacks", "stderr_lacks", "json"});
    const auto r = n["run"];
    if (r.IsSequence())
      for (const auto& e : r) s.run.args.push_back(scalar(e, "run"));
    else
      s.run.args = split_words(scalar(r, "run"), r.Mark());
    if (s.run.args.empty()) throw Malformed{r.Mark(), "run: no arguments"};
    if (n["exit"]) s.run.exit = static_cast<int>(integer(n["exit"], "exit"));
    if (n["timeout"]) s.run.timeout = duration(n["timeout"], "timeout");
    if (n["pipeline"]) s.run.append_pipeline = boolean(n["pipeline"], "pipeline");
    if (const auto e = n["env"]) {
      if (!e.IsMap()) throw Malformed{e.Mark(), "env: expected a mapping"};
      for (const auto& kv : e) s.run.env[text(kv.first)] = scalar(kv.second, "env value");
    }
    if (n["stdout_has"]) s.run.stdout_has = strings(n["stdout_has"], "stdout_has");
    if (n["stderr_has"]) s.run.stderr_has = strings(n["stderr_has"], "stderr_has");
    if (n["stdout_lacks"]) s.run.stdout_lacks = strings(n["stdout_lacks"], "stdout_lacks");
    if (n["stderr_lacks"]) s.run.stderr_lacks = strings(n["stderr_lacks"], "stderr_lacks");
    if (const auto j = n["json"]) {
      if (!j.IsMap()) throw Malformed{j.Mark(), "json: expected a mapping of dotted path: value"};
      for (const auto& kv : j) {
        if (!kv.second.IsScalar() && !kv.second.IsNull())
          throw Malformed{kv.second.Mark(), "json: expected values are scalars"};
        s.run.json.emplace_back(text(kv.first), kv.second);
      }
    }
  } else if (s.kind == "sql") {
    only_keys(n, {"sql", "rows", "count", "columns", "error", "database"});
    s.sql.sql = scalar(n["sql"], "sql");
    if (const auto rows = n["rows"]) {
      if (!rows.IsSequence() && !rows.IsNull())
        throw Malformed{rows.Mark(), "rows: expected a list of rows (each a list)"};
      s.sql.rows.emplace();
      if (rows.IsSequence())
        for (const auto& row : rows) {
          if (!row.IsSequence()) throw Malformed{row.Mark(), "a row is a list of cells"};
          std::vector<std::optional<std::string>> cells;
          for (const auto& c : row) cells.push_back(cell(c));
          s.sql.rows->push_back(std::move(cells));
        }
    }
    if (n["count"]) {
      const int64_t c = integer(n["count"], "count");
      if (c < 0) throw Malformed{n["count"].Mark(), "count: not negative"};
      s.sql.count = static_cast<size_t>(c);
    }
    if (n["columns"]) s.sql.columns = strings(n["columns"], "columns");
    if (n["error"]) s.sql.error = scalar(n["error"], "error");
    if (n["database"]) s.sql.database = scalar(n["database"], "database");
    if (!s.sql.rows && !s.sql.count && !s.sql.columns && !s.sql.error)
      throw Malformed{n.Mark(), "sql: give rows, count, columns or error"};
    if (s.sql.error && (s.sql.rows || s.sql.count || s.sql.columns))
      throw Malformed{n.Mark(), "sql: error excludes rows, count and columns"};
  } else if (s.kind == "dlq") {
    only_keys(n, {"dlq", "reasons"});
    s.dlq.stage = scalar(n["dlq"], "dlq");
    if (!n["reasons"]) throw Malformed{n.Mark(), "dlq: give reasons (an empty list for none)"};
    if (!n["reasons"].IsNull()) s.dlq.reasons = strings(n["reasons"], "reasons");
  } else {
    only_keys(n, {"requests"});
    const auto list = n["requests"];
    if (!list.IsSequence()) throw Malformed{list.Mark(), "requests: expected a list"};
    for (const auto& e : list) {
      only_keys(e, {"request", "count", "unmatched"});
      RequestCount rc{};
      if (e["unmatched"]) {
        if (e["request"] || e["count"])
          throw Malformed{e.Mark(), "unmatched: stands alone (the count of unmatched requests)"};
        rc.count = static_cast<size_t>(integer(e["unmatched"], "unmatched"));
      } else {
        if (!e["request"] || !e["count"])
          throw Malformed{e.Mark(), "expected { request: ..., count: N } or { unmatched: N }"};
        rc.request = parse_request(e["request"]);
        rc.count = static_cast<size_t>(integer(e["count"], "count"));
      }
      s.requests.push_back(std::move(rc));
    }
  }
  return s;
}

Case load_case(const fs::path& dir) {
  std::string source;
  try {
    source = read_text(dir / "case.yaml");
  } catch (const std::exception& e) {
    throw Malformed{YAML::Mark(), e.what()};
  }
  const YAML::Node root = YAML::Load(hide_questions(source));
  only_keys(root, {"description", "steps", "pipeline", "database"});
  Case c;
  c.dir = dir;
  c.name = dir.filename().string();
  if (!root["description"]) throw Malformed{root.Mark(), "missing 'description'"};
  c.description = scalar(root["description"], "description");
  if (root["pipeline"]) c.pipeline = scalar(root["pipeline"], "pipeline");
  if (root["database"]) c.database = scalar(root["database"], "database");
  const auto steps = root["steps"];
  if (!steps || !steps.IsSequence() || steps.size() == 0)
    throw Malformed{steps ? steps.Mark() : root.Mark(), "'steps' must be a non-empty list"};
  for (const auto& s : steps) c.steps.push_back(parse_step(s, dir));
  return c;
}

// ---------------------------------------------------------------------------------------------
// The playback server's state.

class Playback {
 public:
  void serve(std::vector<Canned> table) {
    std::lock_guard lock(mu_);
    table_ = std::move(table);
    used_.assign(table_.size(), 0);
    seen_.clear();
  }

  void answer(const cascade::sim::HttpRequest& req, cascade::sim::HttpResponse& res) {
    Params params = req.params;
    std::sort(params.begin(), params.end());
    const std::string path = cascade::sim::url_decode(req.path);
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < table_.size(); ++i) {
      const Canned& c = table_[i];
      if (!matches(c.request, req.method, path, params)) continue;
      if (c.times && used_[i] >= *c.times) continue;
      ++used_[i];
      res.status = c.status;
      res.content_type = c.content_type;
      res.headers = c.headers;
      res.body = c.body;
      res.delay = c.delay;
      res.hang = c.hang;
      res.reset_after = c.reset_after;
      res.truncate_body = c.truncate_body;
      seen_.push_back({req.method, path, std::move(params), c.status, true});
      return;
    }
    res.status = 404;
    res.body = R"({"error":"no such response"})";
    seen_.push_back({req.method, path, params, 404, false});
    unmatched_.push_back(describe(req.method, path, params));
  }

  size_t count(const std::optional<RequestPattern>& p) {
    std::lock_guard lock(mu_);
    return static_cast<size_t>(std::count_if(seen_.begin(), seen_.end(), [&](const Seen& s) {
      return p ? matches(*p, s.method, s.path, s.params) : !s.matched;
    }));
  }

  std::vector<std::string> seen_since_serve() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& s : seen_)
      out.push_back(describe(s.method, s.path, s.params) + " -> " + std::to_string(s.status) +
                    (s.matched ? "" : " (unmatched)"));
    return out;
  }

  std::vector<std::string> unmatched() {
    std::lock_guard lock(mu_);
    return unmatched_;
  }

  static std::string describe(const std::string& method, const std::string& path,
                              const Params& params) {
    std::string s = method + " " + path;
    for (size_t i = 0; i < params.size(); ++i)
      s += (i ? "&" : "?") + params[i].first + "=" + params[i].second;
    return s;
  }

 private:
  std::mutex mu_;
  std::vector<Canned> table_;
  std::vector<int> used_;
  std::vector<Seen> seen_;
  std::vector<std::string> unmatched_;  // over the whole case, for the failure report
};

// ---------------------------------------------------------------------------------------------
// Running the steps.

std::string tail_lines(const std::string& text, size_t n) {
  size_t pos = text.size();
  if (pos && text[pos - 1] == '\n') --pos;
  size_t lines = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++lines == n) break;
    --pos;
  }
  std::string out = text.substr(pos);
  if (out.size() > 4000) out = "..." + out.substr(out.size() - 4000);
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string table(const std::vector<std::string>& columns,
                  const std::vector<std::vector<std::optional<std::string>>>& rows,
                  size_t max_rows = 40) {
  std::vector<std::vector<std::string>> text;
  for (size_t i = 0; i < rows.size() && i < max_rows; ++i) {
    std::vector<std::string> line;
    for (const auto& c : rows[i]) line.push_back(c ? *c : "NULL");
    text.push_back(std::move(line));
  }
  size_t ncols = columns.size();
  for (const auto& r : text) ncols = std::max(ncols, r.size());
  std::vector<size_t> width(ncols, 0);
  for (size_t i = 0; i < columns.size(); ++i) width[i] = columns[i].size();
  for (const auto& r : text)
    for (size_t i = 0; i < r.size(); ++i)
      width[i] = std::max(width[i], std::min<size_t>(r[i].size(), 60));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "    |";
    for (size_t i = 0; i < ncols; ++i) {
      std::string c = i < cells.size() ? cells[i] : "";
      if (c.size() > 60) c = c.substr(0, 57) + "...";
      s += " " + c + std::string(width[i] - c.size(), ' ') + " |";
    }
    return s + "\n";
  };
  std::string out;
  if (!columns.empty()) out += line(columns);
  for (const auto& r : text) out += line(r);
  if (rows.empty()) out += "    (no rows)\n";
  if (rows.size() > max_rows)
    out += "    ... " + std::to_string(rows.size() - max_rows) + " more\n";
  return out;
}

struct Sql {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
};

// Runs SQL on the warehouse file read-only and renders each value as the sqlite3 shell's list
// mode does: sqlite3_column_text (integers as digits, reals as "%!.15g", text as is); BLOBs are
// written as the SQL literal X'..' since raw bytes would not survive a YAML file.
Sql query(const fs::path& db, const std::string& sql) {
  if (!fs::exists(db)) throw std::runtime_error("no database file " + db.string());
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close_v2(raw);
    throw std::runtime_error("cannot open " + db.string() + ": " + msg);
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> conn(raw, sqlite3_close_v2);
  sqlite3_busy_timeout(raw, 5000);
  Sql out;
  const char* p = sql.c_str();
  while (*p) {
    sqlite3_stmt* st = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(raw, p, -1, &st, &tail) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(raw));
    p = tail;
    if (!st) continue;
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
    const int n = sqlite3_column_count(st);
    // The result is the last statement that returns columns.
    if (n > 0) {
      out = Sql{};
      for (int i = 0; i < n; ++i) out.columns.emplace_back(sqlite3_column_name(st, i));
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::optional<std::string>> row;
      for (int i = 0; i < n; ++i) {
        switch (sqlite3_column_type(st, i)) {
          case SQLITE_NULL:
            row.emplace_back();
            break;
          case SQLITE_BLOB: {
            const auto* b = static_cast<const unsigned char*>(sqlite3_column_blob(st, i));
            const int len = sqlite3_column_bytes(st, i);
            std::string hex = "X'";
            static const char digits[] = "0123456789ABCDEF";
            for (int k = 0; k < len; ++k) {
              hex += digits[b[k] >> 4];
              hex += digits[b[k] & 15];
            }
            row.emplace_back(hex + "'");
            break;
          }
          default: {
            const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
            row.emplace_back(std::string(t, static_cast<size_t>(sqlite3_column_bytes(st, i))));
          }
        }
      }
      out.rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(raw));
  }
  return out;
}

// Follows a dotted path through objects and, with numeric segments, arrays.
const Value* walk(const Value& v, const std::string& path) {
  const Value* cur = &v;
  size_t from = 0;
  while (cur && from <= path.size()) {
    const size_t dot = path.find('.', from);
    const std::string seg = path.substr(from, dot == std::string::npos ? dot : dot - from);
    if (cur->is_object()) {
      cur = cur->find(seg);
    } else if (cur->is_array() && !seg.empty() &&
               std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      const size_t i = std::stoul(seg);
      cur = i < cur->as_array().size() ? &cur->as_array()[i] : nullptr;
    } else {
      return nullptr;
    }
    if (dot == std::string::npos) break;
    from = dot + 1;
  }
  return cur;
}

std::string show(const Value& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) {
    std::string s;
    cascade::append_json_string(v.as_string(), s);
    return s;
  }
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  return v.to_text();
}

// Whether a JSON value equals a YAML scalar: numbers by value, booleans and null by meaning,
// strings by text.
bool json_equals(const Value& v, const YAML::Node& want) {
  if (want.IsNull()) return v.is_null();
  const std::string w = text(want);
  if (v.is_number()) {
    if (!is_json_number(w)) return false;
    if (v.is_int() && w.find_first_of(".eE") == std::string::npos)
      return std::to_string(v.as_int()) == (w == "-0" ? "0" : w);
    return v.as_number() == std::strtod(w.c_str(), nullptr);
  }
  if (v.is_bool()) return w == (v.as_bool() ? "true" : "false");
  if (v.is_string()) return v.as_string() == w;
  return false;
}

// Pairs each expected reason with a distinct dead letter whose reason contains it (augmenting
// paths, so an early greedy choice cannot hide a valid pairing). True when all pair.
bool pair_reasons(const std::vector<std::string>& want, const std::vector<std::string>& have) {
  std::vector<int> owner(have.size(), -1);
  std::function<bool(size_t, std::vector<bool>&)> place = [&](size_t w, std::vector<bool>& seen) {
    for (size_t h = 0; h < have.size(); ++h) {
      if (seen[h] || have[h].find(want[w]) == std::string::npos) continue;
      seen[h] = true;
      if (owner[h] < 0 || place(static_cast<size_t>(owner[h]), seen)) {
        owner[h] = static_cast<int>(w);
        return true;
      }
    }
    return false;
  };
  for (size_t w = 0; w < want.size(); ++w) {
    std::vector<bool> seen(have.size(), false);
    if (!place(w, seen)) return false;
  }
  return true;
}

class Runner {
 public:
  Runner(Case c, fs::path work) : case_(std::move(c)), work_(std::move(work)) {
    port_ = server_.listen("127.0.0.1", 0);
    server_.start();
  }
  ~Runner() {
    server_.stop();
    server_.wait();
  }

  // Runs every step; returns the process exit status.
  int run() {
    std::printf("case %s: %s\n", case_.name.c_str(), case_.description.c_str());
    for (size_t i = 0; i < case_.steps.size(); ++i) {
      const Step& s = case_.steps[i];
      std::string note;
      try {
        note = execute(s);
      } catch (const StepFailed& f) {
        report(i, s, f.what);
        return 1;
      } catch (const std::exception& e) {
        report(i, s, std::string("error: ") + e.what());
        return 1;
      }
      std::printf("  ok  step %zu %s (case.yaml:%d)%s\n", i + 1, s.kind.c_str(), s.mark.line + 1,
                  note.empty() ? "" : (": " + note).c_str());
    }
    std::printf("PASSED case %s (%zu steps)\n", case_.name.c_str(), case_.steps.size());
    return 0;
  }

 private:
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string pipeline() const { return (case_.dir / case_.pipeline).string(); }

  std::map<std::string, std::string> env(const std::map<std::string, std::string>& extra) const {
    std::map<std::string, std::string> e{{"CASE_URL", url()}, {"CASE_DIR", case_.dir.string()}};
    for (const auto& [k, v] : extra) e[k] = expand(v);
    return e;
  }

  std::string expand(std::string s) const {
    s = replace_all(std::move(s), "{pipeline}", pipeline());
    s = replace_all(std::move(s), "{case_dir}", case_.dir.string());
    return replace_all(std::move(s), "{work_dir}", work_.string());
  }

  cascade::testing::RunResult run_cascade(std::vector<std::string> args, bool append_pipeline,
                                          std::chrono::milliseconds timeout,
                                          const std::map<std::string, std::string>& extra_env) {
    bool named = false;
    for (auto& a : args) {
      if (a.find("{pipeline}") != std::string::npos || a == "-p" || a == "--pipeline" ||
          a.rfind("--pipeline=", 0) == 0)
        named = true;
      a = expand(a);
    }
    static const std::set<std::string> takes_pipeline{"validate", "sync",   "invoke",
                                                      "sql",      "queues", "dlq"};
    const bool sub = std::any_of(args.begin(), args.end(),
                                 [](const std::string& a) { return takes_pipeline.count(a); });
    if (append_pipeline && !named && sub) {
      args.push_back("-p");
      args.push_back(pipeline());
    }
    args.insert(args.begin(), CASCADE_BIN);
    cascade::testing::RunOptions opts;
    opts.env = env(extra_env);
    opts.cwd = work_.string();
    opts.timeout = timeout;
    opts.term_grace = std::chrono::seconds(3);
    opts.fail_test_on_timeout = false;
    last_cmd_.clear();
    for (const auto& a : args) last_cmd_ += (last_cmd_.empty() ? "" : " ") + a;
    last_ = cascade::testing::run(args, opts);
    ran_ = true;
    return last_;
  }

  std::string execute(const Step& s) {
    if (s.kind == "serve") {
      playback_.serve(s.serve);
      return std::to_string(s.serve.size()) + " response" + (s.serve.size() == 1 ? "" : "s");
    }
    if (s.kind == "run") return run_step(s.run);
    if (s.kind == "sql") return sql_step(s.sql);
    if (s.kind == "dlq") return dlq_step(s.dlq);
    return requests_step(s.requests);
  }

  std::string run_step(const RunStep& r) {
    const auto res = run_cascade(r.args, r.append_pipeline, r.timeout, r.env);
    std::string fail;
    if (res.timed_out)
      fail += "timed out after " + cascade::format_duration(r.timeout) + " (killed)\n";
    else if (res.exit_code != r.exit)
      fail += "exit code: expected " + std::to_string(r.exit) + ", got " +
              std::to_string(res.exit_code) + "\n";
    auto has = [&](const std::vector<std::string>& want, const std::string& text, const char* name,
                   bool present) {
      for (const auto& w : want)
        if ((text.find(w) != std::string::npos) != present)
          fail += std::string(name) + (present ? " lacks" : " has") + " \"" + w + "\"\n";
    };
    has(r.stdout_has, res.out, "stdout", true);
    has(r.stderr_has, res.err, "stderr", true);
    has(r.stdout_lacks, res.out, "stdout", false);
    has(r.stderr_lacks, res.err, "stderr", false);
    if (!r.json.empty()) {
      try {
        const Value doc = cascade::parse_json(res.out);
        for (const auto& [path, want] : r.json) {
          const Value* v = walk(doc, path);
          const std::string expected = want.IsNull() ? "null" : text(want);
          if (!v)
            fail += "json " + path + ": expected " + expected + ", absent\n";
          else if (!json_equals(*v, want))
            fail += "json " + path + ": expected " + expected + ", got " + show(*v) + "\n";
        }
      } catch (const std::exception& e) {
        fail += std::string("stdout is not JSON: ") + e.what() + "\n";
      }
    }
    if (!fail.empty()) throw StepFailed{fail};
    return last_cmd_.substr(last_cmd_.find(' ') + 1) + " -> exit " + std::to_string(res.exit_code);
  }

  std::string sql_step(const SqlStep& q) {
    const fs::path db = work_ / (q.database.empty() ? case_.database : q.database);
    Sql got;
    try {
      got = query(db, q.sql);
    } catch (const std::runtime_error& e) {
      if (q.error && std::string(e.what()).find(*q.error) != std::string::npos)
        return "failed as expected: " + std::string(e.what());
      throw StepFailed{std::string("query failed: ") + e.what() + "\n  query: " + q.sql + "\n" +
                       (q.error ? "  expected an error containing \"" + *q.error + "\"\n" : "")};
    }
    if (q.error)
      throw StepFailed{"expected the query to fail with \"" + *q.error + "\", it returned " +
                       std::to_string(got.rows.size()) + " rows\n  query: " + q.sql + "\n"};
    std::string fail;
    if (q.columns && *q.columns != got.columns) {
      std::string w, g;
      for (const auto& c : *q.columns) w += (w.empty() ? "" : ", ") + c;
      for (const auto& c : got.columns) g += (g.empty() ? "" : ", ") + c;
      fail += "columns: expected [" + w + "], got [" + g + "]\n";
    }
    if (q.count && *q.count != got.rows.size())
      fail += "row count: expected " + std::to_string(*q.count) + ", got " +
              std::to_string(got.rows.size()) + "\n";
    if (q.rows && *q.rows != got.rows) {
      size_t first = 0;
      while (first < q.rows->size() && first < got.rows.size() &&
             (*q.rows)[first] == got.rows[first])
        ++first;
      fail += "rows differ (first difference at row " + std::to_string(first + 1) + "; " +
              std::to_string(q.rows->size()) + " expected, " + std::to_string(got.rows.size()) +
              " actual)\n  expected:\n" + table({}, *q.rows) + "  actual:\n" +
              table(got.columns, got.rows);
    }
    if (!fail.empty()) throw StepFailed{fail + "  query: " + q.sql + "\n"};
    return std::to_string(got.rows.size()) + " row" + (got.rows.size() == 1 ? "" : "s");
  }

  std::string dlq_step(const DlqStep& d) {
    std::vector<std::string> args{"dlq", "list", "--json"};
    if (d.stage != "*") args.insert(args.end(), {"--stage", d.stage});
    // The query goes through the CLI a user would run; its output is not the case's last run.
    const auto saved = last_;
    const auto saved_cmd = last_cmd_;
    const auto res = run_cascade(args, true, std::chrono::seconds(60), {});
    if (res.timed_out || res.exit_code != 0)
      throw StepFailed{"`" + last_cmd_ + "` failed (exit " + std::to_string(res.exit_code) +
                       "): " + tail_lines(res.err, 10)};
    last_ = saved;
    last_cmd_ = saved_cmd;
    std::vector<std::string> reasons;
    std::string listing;
    const Value letters = cascade::parse_json(res.out);
    for (const auto& l : letters.as_array()) {
      const Value* r = l.find("reason");
      const Value* st = l.find("stage");
      const Value* body = l.find("body");
      reasons.push_back(r && r->is_string() ? r->as_string() : "");
      listing += "    " + (st ? st->to_text() : "?") + ": " + reasons.back() + "   message " +
                 (body ? body->to_text().substr(0, 120) : "") + "\n";
    }
    if (reasons.size() != d.reasons.size() || !pair_reasons(d.reasons, reasons)) {
      std::string want;
      for (const auto& w : d.reasons) want += "    \"" + w + "\"\n";
      throw StepFailed{
          "dead letters of " + (d.stage == "*" ? "all stages" : d.stage) + ": expected " +
          std::to_string(d.reasons.size()) + " whose reasons contain, one each:\n" +
          (want.empty() ? "    (none)\n" : want) + "  got " + std::to_string(reasons.size()) +
          ":\n" + (listing.empty() ? "    (none)\n" : listing)};
    }
    return std::to_string(reasons.size()) + " dead letter" + (reasons.size() == 1 ? "" : "s");
  }

  std::string requests_step(const std::vector<RequestCount>& want) {
    std::string fail;
    for (const auto& w : want) {
      const size_t got = playback_.count(w.request);
      if (got != w.count)
        fail += (w.request ? w.request->text : std::string("unmatched requests")) + ": expected " +
                std::to_string(w.count) + ", seen " + std::to_string(got) + "\n";
    }
    if (!fail.empty()) {
      fail += "  requests since the last serve:\n";
      const auto seen = playback_.seen_since_serve();
      for (size_t i = 0; i < seen.size() && i < 50; ++i) fail += "    " + seen[i] + "\n";
      if (seen.size() > 50) fail += "    ... " + std::to_string(seen.size() - 50) + " more\n";
      throw StepFailed{fail};
    }
    return std::to_string(want.size()) + " count" + (want.size() == 1 ? "" : "s");
  }

  void report(size_t i, const Step& s, const std::string& what) {
    std::ostringstream o;
    o << "  FAIL step " << i + 1 << " " << s.kind << " (" << (case_.dir / "case.yaml").string()
      << ":" << s.mark.line + 1 << ":" << s.mark.column + 1 << ")\n";
    std::istringstream lines(what);
    for (std::string l; std::getline(lines, l);) o << "  " << l << "\n";
    if (ran_) {
      o << "  last cascade run: " << last_cmd_ << "  (exit " << last_.exit_code
        << (last_.timed_out ? ", timed out" : "") << ")\n";
      o << "  --- stdout (tail) ---\n" << tail_lines(last_.out, 20);
      if (!last_.out.empty() && last_.out.back() != '\n') o << "\n";
      o << "  --- stderr (tail) ---\n" << tail_lines(last_.err, 20);
      if (!last_.err.empty() && last_.err.back() != '\n') o << "\n";
    }
    const auto unmatched = playback_.unmatched();
    o << "  unmatched requests (answered 404): " << unmatched.size() << "\n";
    for (size_t k = 0; k < unmatched.size() && k < 30; ++k) o << "    " << unmatched[k] << "\n";
    if (unmatched.size() > 30) o << "    ... " << unmatched.size() - 30 << " more\n";
    const char* keep = std::getenv("CASE_KEEP");
    if (!keep || std::string(keep) != "0")
      o << "  working directory kept: " << work_.string() << "\n";
    o << "FAILED case " << case_.name << " at step " << i + 1 << " (" << s.kind << ")\n";
    std::fputs(o.str().c_str(), stdout);
  }

  Case case_;
  fs::path work_;
  Playback playback_;
  cascade::sim::HttpServer server_{
      [this](const cascade::sim::HttpRequest& q, cascade::sim::HttpResponse& r) {
        playback_.answer(q, r);
      },
      2};
  int port_ = 0;
  cascade::testing::RunResult last_{};
  std::string last_cmd_;
  bool ran_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CASE_DIR\n", argv[0]);
    return 2;
  }
  std::error_code ec;
  const fs::path dir = fs::canonical(argv[1], ec);
  if (ec || !fs::exists(dir / "case.yaml")) {
    std::fprintf(stderr, "%s: no case.yaml there\n", argv[1]);
    return 2;
  }
  Case c;
  try {
    c = load_case(dir);
    if (!fs::exists(dir / c.pipeline))
      throw Malformed{YAML::Mark(), "no pipeline file " + (dir / c.pipeline).string()};
  } catch (const Malformed& m) {
    std::fprintf(stderr, "%s:%d:%d: %s\nMALFORMED case %s\n", (dir / "case.yaml").c_str(),
                 m.mark.line + 1, m.mark.column + 1, m.what.c_str(), dir.filename().c_str());
    return 2;
  } catch (const YAML::Exception& e) {
    // yaml-cpp's what() already starts with "yaml-cpp: error at line L, column C"; the Mark gives
    // the same position in the file:line:column form editors jump to.
    std::fprintf(stderr, "%s:%d:%d: %s\nMALFORMED case %s\n", (dir / "case.yaml").c_str(),
                 e.mark.line + 1, e.mark.column + 1, e.msg.c_str(), dir.filename().c_str());
    return 2;
  }

  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/cascade-case-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path work(tmpl);
  int rc;
  {
    Runner runner(std::move(c), work);
    rc = runner.run();
  }
  // Unset: keep the work directory of a failure only; 1: always; 0: never (the self-tests fail on
  // purpose and would otherwise leave one behind on every run).
  const char* keep_env = std::getenv("CASE_KEEP");
  const std::string keep = keep_env ? keep_env : "";
  if (keep == "0" || (keep.empty() && rc == 0)) fs::remove_all(work, ec);
  return rc;
}
