// `cascade init URL`: one GET of a sample listing, analysed (cli/init_analysis.h) into a
// commented pipeline file that `cascade validate` accepts.
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>

#include "cli/commands.h"
#include "cli/init_analysis.h"
#include "config/loader.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/plan.h"
#include "engine/select.h"
#include "source/http_client.h"

namespace cascade::cli {

namespace {

// A response excerpt for an error, with every credential init was given masked.
std::string safe_excerpt(const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string text = excerpt(body, 300);
  for (const auto& [name, value] : headers) {
    std::vector<std::string> secrets = {value};
    if (size_t sp = value.find(' '); sp != std::string::npos)
      secrets.push_back(value.substr(sp + 1));
    for (const auto& s : secrets) {
      if (s.size() < 4) continue;
      for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 3))
        text.replace(at, s.size(), "***");
    }
  }
  return text;
}

// The pipeline text checked the way `cascade validate` checks a file; the error, or "".
std::string validation_error(const std::string& yaml, const std::string& file,
                             const CredentialPlan& credentials) {
  EnvLookup base = process_env();
  // The secrets are not in this process's environment yet: stand-ins let the rest be checked.
  EnvLookup env = [&](std::string_view name) -> std::optional<std::string> {
    for (const auto& [var, what] : credentials.env)
      if (var == name) return std::string("stand-in");
    return base(name);
  };
  try {
    PipelineSpec spec = load_pipeline_text(yaml, file, env);
    Plan plan(spec);
    return "";
  } catch (const ConfigError& e) {
    return e.detail();
  }
}

bool valid_header_name(std::string_view n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

}  // namespace

int cmd_init(const InitOptions& o) {
  std::string why;
  std::optional<SampleUrl> url = parse_sample_url(o.url, &why);
  if (!url) {
    fmt::print(stderr, "error: init: '{}' is not a URL init can call: {}\n", o.url, why);
    return 2;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& h : o.headers) {
    size_t colon = h.find(':');
    std::string name = colon == std::string::npos ? "" : h.substr(0, colon);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    std::string value = colon == std::string::npos ? "" : h.substr(colon + 1);
    size_t first = value.find_first_not_of(" \t");
    value = first == std::string::npos ? "" : value.substr(first);
    if (!valid_header_name(name) || value.empty()) {
      // The value may be a secret: only the name is repeated.
      fmt::print(stderr,
                 "error: --header expects 'Name: value' (e.g. 'Authorization: Bearer "
                 "...'), found a header named '{}'{}\n",
                 name, value.empty() ? " with no value" : "");
      return 2;
    }
    headers.emplace_back(name, value);
  }
  const bool to_stdout = o.out == "-";
  if (!to_stdout && !o.force && std::filesystem::exists(o.out)) {
    fmt::print(stderr,
               "error: {} already exists; init does not overwrite it (give --force to "
               "replace it, or --out another file)\n",
               o.out);
    return 2;
  }

  // One request, as cascade sends them, with the credentials as given.
  HttpClientOptions ho;
  ho.max_connections = 1;
  ho.timeout = std::chrono::seconds(30);
  ho.retry = RetryPolicy{2, std::chrono::milliseconds(500), std::chrono::seconds(5)};
  HttpClient http(ho);
  HttpRequest req;
  req.url = o.url;
  req.headers = headers;
  if (std::none_of(headers.begin(), headers.end(),
                   [](const auto& h) { return h.first == "Accept" || h.first == "accept"; }))
    req.headers.emplace_back("Accept", "application/json");
  std::promise<HttpResponse> done;
  std::future<HttpResponse> got = done.get_future();
  http.submit(std::move(req), [&done](HttpResponse&& r) { done.set_value(std::move(r)); });
  HttpResponse res = got.get();
  // Errors name the URL without its query (which may carry a key) and never a header value.
  std::string shown = url->origin + url->path;
  if (!res.error.empty()) {
    fmt::print(stderr, "error: init: GET {} failed: {}\n", shown, res.error);
    return 1;
  }
  if (res.status == 401 || res.status == 403) {
    fmt::print(stderr,
               "error: init: GET {} answered HTTP {}: the API wants credentials{}. Give them "
               "with --header 'Authorization: Bearer TOKEN' (or the API's own header); the "
               "file then reads them from an environment variable, never holds them.\n",
               shown, res.status, headers.empty() ? "" : " other than those given");
    return 1;
  }
  if (res.status < 200 || res.status > 299) {
    fmt::print(stderr, "error: init: GET {} answered HTTP {}: {}\n", shown, res.status,
               safe_excerpt(res.body, headers));
    return 1;
  }
  Value body;
  try {
    body = parse_json(res.body);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: init: GET {} answered HTTP {} but not with JSON ({}): {}\n", shown,
               res.status, e.what(), safe_excerpt(res.body, headers));
    return 1;
  }
  if (!body.is_object() && !body.is_array()) {
    fmt::print(stderr,
               "error: init: GET {} answered a JSON {}, not an object or an array of records\n",
               shown, type_name(body.type()));
    return 1;
  }

  InitPlan plan = analyse_sample(o.url, *url, res.status, res.headers, body, headers);
  const std::string file = to_stdout ? std::string("cascade.yaml") : o.out;
  std::string yaml = render_pipeline(plan);
  std::string err = validation_error(yaml, file, plan.credentials);
  if (!err.empty() && plan.paginate.type != "single_page") {
    // A paging guess this cascade cannot take must not cost the user the rest of the file.
    plan.paginate_refused = err.substr(0, err.find(" (expected"));
    yaml = render_pipeline(plan);
    err = validation_error(yaml, file, plan.credentials);
  }
  if (!err.empty()) {
    fmt::print(stderr,
               "error: init: the pipeline written from this response does not validate ({}); "
               "nothing was written. It was:\n{}",
               err, yaml);
    return 1;
  }

  if (to_stdout) {
    fmt::print("{}", yaml);
    std::fflush(stdout);
  } else {
    std::string tmp = o.out + ".partial";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << yaml;
      f.close();
      if (!f) {
        fmt::print(stderr, "error: init: cannot write {}\n", tmp);
        std::filesystem::remove(tmp);
        return 1;
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, o.out, ec);
    if (ec) {
      fmt::print(stderr, "error: init: cannot write {}: {}\n", o.out, ec.message());
      std::filesystem::remove(tmp);
      return 1;
    }
  }
  FILE* info = to_stdout ? stderr : stdout;
  std::string key =
      plan.key.fields.empty() ? "none (TODO)" : fmt::format("{}", fmt::join(plan.key.fields, ", "));
  fmt::print(info, "{}: stage '{}': {} record{} at {}, key {}, paging {}{}\n",
             to_stdout ? "init" : "wrote " + o.out, plan.stage, plan.records.count,
             plan.records.count == 1 ? "" : "s",
             plan.records.path.empty() ? "the root" : plan.records.path, key, plan.paginate.type,
             plan.paginate_refused.empty() || plan.paginate.type == "single_page"
                 ? ""
                 : " (written commented out: " + plan.paginate_refused + ")");
  size_t todos = 0;
  for (size_t at = yaml.find("# TODO:"); at != std::string::npos; at = yaml.find("# TODO:", at + 1))
    ++todos;
  if (todos > 0)
    fmt::print(info, "{} point{} marked TODO in the file need{} your answer\n", todos,
               todos == 1 ? "" : "s", todos == 1 ? "s" : "");
  if (!to_stdout) fmt::print(info, "next: cascade validate {0} && cascade sync {0}\n", o.out);
  return 0;
}

}  // namespace cascade::cli
