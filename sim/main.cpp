// cascade-sim: serves the Dunder Mifflin vendor API, or dumps its ground truth.
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <thread>

#include "sim/api.h"
#include "sim/company.h"
#include "sim/faults.h"
#include "sim/http_server.h"
#include "sim/paging.h"
#include "sim/truth.h"

namespace {

void add_model_flags(CLI::App& app, cascade::sim::SimConfig& c) {
  app.add_option("--seed", c.seed, "Seed of the company: same seed and flags, same data")
      ->capture_default_str();
  app.add_option("--branches", c.branches,
                 "Number of branches (the first 13 are named: Scranton, Akron, ...)")
      ->capture_default_str();
  app.add_option("--employees-per-branch", c.employees_per_branch,
                 "Employees of each branch at tick 0")
      ->capture_default_str();
  app.add_option("--salesperson-share", c.salesperson_share,
                 "Share of employees who are salespersons (0..1)")
      ->capture_default_str();
  app.add_option("--sales-per-salesperson", c.sales_per_salesperson,
                 "Mean sales per salesperson at tick 0 (each gets 50%..150% of it)")
      ->capture_default_str();
  app.add_option("--new-sales-per-tick", c.new_sales_per_tick,
                 "New sales per tick (one simulated hour)")
      ->capture_default_str();
  app.add_option("--late-sales-per-tick", c.late_sales_per_tick,
                 "Sales published per tick with a transaction_timestamp 1..30 days old")
      ->capture_default_str();
  app.add_option("--corrections-per-tick", c.corrections_per_tick,
                 "Sales corrected per tick (quantity and amount change, updated_at bumped)")
      ->capture_default_str();
  app.add_option("--transfers-per-tick", c.transfers_per_tick,
                 "Employees moved to another branch per tick (same id; branch_since becomes the "
                 "transfer date)")
      ->capture_default_str();
  app.add_option("--late-sales-per-transfer", c.late_sales_per_transfer,
                 "Mean sales a transferring salesperson made the day before the transfer (at the "
                 "old branch), published 0..24 ticks after it; each transfer gets 50%..150% of it")
      ->capture_default_str();
  app.add_option("--departures-per-tick", c.departures_per_tick,
                 "Employees leaving per tick (gone from /employees, their sales no longer served)")
      ->capture_default_str();
  app.add_option("--hires-per-tick", c.hires_per_tick, "New employees per tick")
      ->capture_default_str();
  app.add_option("--promotions-per-tick", c.promotions_per_tick,
                 "Salespersons promoted out of sales per tick (their sales no longer served)")
      ->capture_default_str();
}

// Fault flags as given on the command line; merged over --faults by build().
struct FaultFlags {
  std::string json;
  std::string quota;
  std::string quota_window = "fixed";
  std::string path;
  std::string slow_ms;
  std::string shape;
  double huge_mb = 0;
  double p[cascade::sim::kFaultKinds] = {};

  void add(CLI::App& app) {
    using cascade::sim::FaultKind;
    app.add_option("--faults", json,
                   "Fault plan as JSON, the body POST /admin/faults takes, e.g. "
                   "'{\"5xx\":0.1,\"slow\":{\"p\":0.2,\"min_ms\":50,\"max_ms\":500},"
                   "\"malformed\":{\"p\":0.05,\"path\":\"/sales\"}}'. The flags below are added "
                   "over it")
        ->group("Faults");
    app.add_option("--quota", quota,
                   "N requests per window (1s..1d), e.g. 100/1s or 10000/1d; past it 429 with "
                   "Retry-After. While set every response carries RateLimit-Limit/-Remaining/"
                   "-Reset (seconds) and X-RateLimit-Limit/-Remaining/-Reset (Unix time)")
        ->group("Faults");
    app.add_option("--quota-window", quota_window,
                   "How --quota counts: fixed (a window opens with the first request and admits N) "
                   "or sliding (any span of the window admits N)")
        ->check(CLI::IsMember({"fixed", "sliding"}))
        ->group("Faults");
    struct Kind {
      FaultKind k;
      const char* flag;
      const char* what;
    };
    static const Kind kinds[] = {
        {FaultKind::http5xx, "--fault-5xx", "a 500, 502 or 503 (503 may carry Retry-After)"},
        {FaultKind::slow, "--fault-slow", "a delay drawn from --slow-ms"},
        {FaultKind::hang, "--fault-hang", "no response ever (the connection stays open)"},
        {FaultKind::reset, "--fault-reset", "a TCP reset before or in the middle of the response"},
        {FaultKind::truncate, "--fault-truncate",
         "a body cut short of its Content-Length, then close"},
        {FaultKind::malformed, "--fault-malformed",
         "broken JSON (a missing brace or a stray byte)"},
        {FaultKind::wrong_shape, "--fault-wrong-shape",
         "valid JSON of the wrong shape (string id, no result, null list, number record)"},
        {FaultKind::html, "--fault-html", "a 502/503 HTML page from a 'proxy'"},
        {FaultKind::huge, "--fault-huge", "the real body padded to --huge-mb, still valid JSON"},
    };
    for (const Kind& k : kinds)
      app.add_option(k.flag, p[static_cast<int>(k.k)], std::string("Probability of ") + k.what)
          ->check(CLI::Range(0.0, 1.0))
          ->group("Faults");
    app.add_option("--fault-path", path,
                   "Limit the faults set by these flags (and --quota) to one path")
        ->check(CLI::IsMember({"/branches", "/employees", "/sales"}))
        ->group("Faults");
    app.add_option("--slow-ms", slow_ms, "Delay range of --fault-slow, MIN..MAX (default 50..500)")
        ->group("Faults");
    app.add_option("--wrong-shape", shape,
                   "Variant of --fault-wrong-shape: id_string, result_missing, null_list, "
                   "number_record (default: drawn per response)")
        ->group("Faults");
    app.add_option("--huge-mb", huge_mb, "Size of --fault-huge bodies in MiB (default 8)")
        ->group("Faults");
  }

  // Throws std::invalid_argument on a bad plan.
  cascade::sim::FaultConfig build() const {
    using cascade::sim::FaultKind;
    cascade::sim::FaultConfig c =
        json.empty() ? cascade::sim::FaultConfig{} : cascade::sim::parse_fault_config(json);
    if (!quota.empty()) {
      c.quota = cascade::sim::parse_quota(quota);
      c.quota.path = path;
      c.quota.sliding = quota_window == "sliding";
    }
    for (int k = 1; k < cascade::sim::kFaultKinds; ++k)
      if (p[k] > 0) c.rules[static_cast<size_t>(k)] = {p[k], path};
    if (!slow_ms.empty()) {
      const size_t dots = slow_ms.find("..");
      try {
        if (dots == std::string::npos) throw std::invalid_argument("no ..");
        c.slow_min_ms = std::stoll(slow_ms.substr(0, dots));
        c.slow_max_ms = std::stoll(slow_ms.substr(dots + 2));
      } catch (const std::exception&) {
        throw std::invalid_argument("--slow-ms must be MIN..MAX in milliseconds, e.g. 50..500");
      }
      if (c.slow_min_ms < 0 || c.slow_min_ms > c.slow_max_ms)
        throw std::invalid_argument("--slow-ms: need 0 <= MIN <= MAX");
    }
    if (!shape.empty()) {
      // Reuse the JSON parser's validation of variant names.
      c.shape = cascade::sim::parse_fault_config("{\"wrong_shape\":{\"p\":0,\"variant\":\"" +
                                                 shape + "\"}}")
                    .shape;
    }
    if (huge_mb > 0) c.huge_mb = huge_mb;
    return c;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cascade-sim: the Dunder Mifflin vendor API simulator (deterministic, with time)"};
  cascade::sim::SimConfig cfg;
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 4;
  add_model_flags(app, cfg);
  app.add_option("--host", host, "Address to listen on")->capture_default_str();
  app.add_option("--port", port, "Port to listen on (0 picks a free one)")->capture_default_str();
  app.add_option("--threads", threads, "Server threads (each runs an event loop)")
      ->capture_default_str();
  FaultFlags fault_flags;
  fault_flags.add(app);
  cascade::sim::PagingConfig paging;
  std::string page_mode = "none";
  app.add_option("--paginate", page_mode,
                 "How listings (branches, employees, sales) are paged: none (each listing whole, "
                 "the default), json_link ({records, next: URL}), header_link (a bare array with "
                 "a Link header), offset ({records, total}; ?offset=&limit=), page_number ({data, "
                 "page, total_pages}; ?page= from 1), cursor ({data, cursors: {next}}; ?cursor=)")
      ->check(
          CLI::IsMember({"none", "json_link", "header_link", "offset", "page_number", "cursor"}))
      ->group("Pagination");
  app.add_option("--page-size", paging.page_size, "Records per page (offset: the default limit)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str()
      ->group("Pagination");
  app.add_option("--fail-page", paging.fail_page,
                 "This page (1-based) of every listing that has as many pages answers HTTP 500")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->group("Pagination");
  app.add_flag("--page-loop", paging.loop,
               "A broken vendor: the last page links back to the first (json_link, header_link, "
               "cursor), or the page parameter is ignored and no total given (offset, "
               "page_number)")
      ->group("Pagination");
  std::string auth_spec;
  double token_ttl = 3600, token_reported_ttl = -1;
  app.add_option("--auth", auth_spec,
                 "Credential every vendor request needs (401 otherwise): bearer:TOKEN, "
                 "basic:USER:PASS, api_key_header:NAME:KEY, api_key_query:NAME:KEY, or "
                 "oauth2:CLIENT_ID:SECRET (tokens from POST /oauth/token, client credentials "
                 "grant, credentials as HTTP Basic or form fields)")
      ->group("Auth");
  app.add_option("--token-ttl", token_ttl,
                 "Seconds an issued OAuth2 token is honoured (a short one expires mid-run)")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str()
      ->group("Auth");
  app.add_option("--token-reported-ttl", token_reported_ttl,
                 "Seconds the token answer's expires_in claims, if not the truth (0: no "
                 "expires_in at all), so clients meet expired tokens as 401s")
      ->check(CLI::Range(0.0, 86400.0))
      ->group("Auth");
  app.footer(
      "Faults are deterministic under --seed: the n-th request to a path meets the same faults. "
      "Admin endpoints (never faulted, nor is /healthz): GET /admin/faults shows the plan, POST "
      "replaces it (JSON as --faults), DELETE clears it; /admin/stats counts injected faults by "
      "kind and path. The ground truth (/admin/truth, dump) ignores faults. Every employee carries "
      "branch_since (hire or last transfer date); the truth adds each employee's branch_history "
      "and "
      "each sale's branch_at_sale (the branch on its transaction date). POST /sales/search with "
      "{\"employee_id\": N} answers as GET /sales?employee_id=N. GET /sales takes "
      "updated_since=TIME (as does /sales/search, in its query or body): only sales whose "
      "updated_at is "
      "at or after that UTC time (2024-01-01T00:00:00Z or 2024-01-01 00:00:00), as an "
      "incremental vendor does. GET /employees takes embed=sales: each employee carries its "
      "sales (as GET /sales serves them) in a sales list. With --auth every vendor path "
      "answers 401 without the credential, and /admin/stats counts tokens issued and requests "
      "rejected under \"auth\".");

  int64_t dump_ticks = 0;
  CLI::App* dump = app.add_subcommand("dump", "Print the ground truth as JSON and exit");
  add_model_flags(*dump, cfg);
  dump->add_option("--ticks", dump_ticks, "Advance this many ticks first")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (*dump) {
      cascade::sim::Company company(cfg);
      company.advance(dump_ticks);
      return cascade::sim::write_truth(company, stdout) ? 0 : 1;
    }

    // Signals are taken synchronously by one thread so shutdown runs outside a signal handler.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    auto faults = std::make_shared<cascade::sim::Faults>(fault_flags.build(), cfg.seed,
                                                         cascade::SystemClock::instance());
    paging.mode = cascade::sim::parse_page_mode(page_mode);
    cascade::sim::ApiService api(cfg, faults, paging);
    if (!auth_spec.empty()) {
      cascade::sim::SimAuthConfig ac = cascade::sim::parse_sim_auth(auth_spec);
      ac.token_ttl = cascade::Duration(static_cast<int64_t>(token_ttl * 1000));
      if (token_reported_ttl >= 0)
        ac.reported_ttl = cascade::Duration(static_cast<int64_t>(token_reported_ttl * 1000));
      api.set_auth(std::make_shared<cascade::sim::SimAuth>(ac, cascade::SystemClock::instance()));
    }
    cascade::sim::HttpServer server(
        [&api](const cascade::sim::HttpRequest& req, cascade::sim::HttpResponse& res) {
          api.handle(req, res);
        },
        threads);
    const int bound = server.listen(host, port);
    server.start();
    std::printf("listening on http://%s:%d\n", host.c_str(), bound);
    std::fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    server.stop();
    server.wait();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cascade-sim: %s\n", e.what());
    return 2;
  }
}
