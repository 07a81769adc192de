// cascade-sim: serves the Dunder Mifflin vendor API, or dumps its ground truth.
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <thread>

#include "sim/api.h"
#include "sim/company.h"
#include "sim/http_server.h"
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
                 "Employees moved to another branch per tick (same id)")
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

    cascade::sim::ApiService api(cfg);
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
