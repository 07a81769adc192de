#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/output.h"
#include "core/clock.h"
#include "store/store.h"

extern char** environ;

namespace cascade::cli {

namespace {

namespace fs = std::filesystem;

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  return fs::path(buf).parent_path().string();
}

// cascade-sim next to this binary (build tree or install), else on PATH.
std::string find_sim() {
  for (const fs::path& p :
       {fs::path(self_dir()) / "cascade-sim", fs::path(self_dir()) / "../../sim/cascade-sim"})
    if (fs::exists(p)) return fs::canonical(p).string();
  return "cascade-sim";
}

// The simulator as a child process; stopped when this goes out of scope.
class Sim {
 public:
  explicit Sim(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
      close(fds[0]);
      throw std::runtime_error(fmt::format("cannot start {}: {}", args[0], strerror(rc)));
    }
    out_ = fds[0];
    // The simulator announces "listening on http://127.0.0.1:PORT" once it accepts connections.
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (line.find('\n') == std::string::npos) {
      pollfd p{out_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
        throw std::runtime_error("the simulator did not start within 15 s");
      char buf[256];
      ssize_t n = read(out_, buf, sizeof(buf));
      if (n <= 0) throw std::runtime_error("the simulator exited during startup");
      line.append(buf, static_cast<size_t>(n));
    }
    auto at = line.find("http://");
    if (at == std::string::npos) throw std::runtime_error("unexpected simulator output: " + line);
    url_ = line.substr(at, line.find('\n', at) - at);
  }
  ~Sim() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) close(out_);
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string url_;
};

size_t discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

void post(const std::string& url) {
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK || status != 200)
    throw std::runtime_error("simulator admin call failed: " + url);
}

void show(Store& store, const std::string& title, const std::string& sql) {
  fmt::print("\n-- {}\n{}\n", title, sql);
  fmt::print("{}", format_result(store.warehouse().query(sql), "table"));
}

}  // namespace

int cmd_demo(const DemoOptions& o) {
  std::string dir = o.dir;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "cascade-demo-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory");
    dir = tmpl;
  }
  fs::create_directories(dir);
  std::string db = (fs::path(dir) / "cascade.db").string();
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
  std::string pipeline = (fs::path(dir) / "dunder-mifflin.yaml").string();
  {
    std::ofstream f(pipeline);
    f << kDunderMifflinYaml;
  }
  Sim sim({find_sim(), "--port", "0", "--seed", std::to_string(o.seed), "--employees-per-branch",
           std::to_string(o.employees_per_branch), "--sales-per-salesperson",
           std::to_string(o.sales_per_salesperson)});
  fmt::print("cascade demo: the Dunder Mifflin vendor API simulator is serving {}\n", sim.url());
  fmt::print("pipeline: {}\nwarehouse: sqlite:{}\n\n", pipeline, db);
  std::fflush(stdout);
  std::map<std::string, std::string> env{{"DM_API_URL", sim.url()},
                                         {"CASCADE_STORAGE", "sqlite:" + db}};
  int rc = run_sync(pipeline, env, false, "");
  if (rc != 0) return rc;
  {
    auto store = open_store("sqlite:" + db, SystemClock::instance(), StoreOptions{true});
    show(*store, "rows per table",
         "SELECT 'branches' AS \"table\", count(*) AS rows FROM branches UNION ALL "
         "SELECT 'salespersons', count(*) FROM salespersons UNION ALL SELECT 'sales', count(*) "
         "FROM sales");
    show(*store, "revenue per branch",
         "SELECT b.branch_name, count(*) AS sales, round(sum(s.amount), 2) AS revenue\n"
         "FROM sales s JOIN branches b ON b.branch_id = s.branch_id\n"
         "GROUP BY b.branch_name ORDER BY revenue DESC LIMIT 5");
    show(*store, "top salespersons",
         "SELECT p.name, b.branch_name, count(*) AS sales, round(sum(s.amount), 2) AS revenue\n"
         "FROM sales s JOIN salespersons p ON p.employee_id = s.employee_id AND p.branch_id = "
         "s.branch_id\n"
         "JOIN branches b ON b.branch_id = p.branch_id\n"
         "GROUP BY p.employee_id, p.branch_id ORDER BY revenue DESC LIMIT 5");
  }
  fmt::print(
      "\n-- the vendor's company moves {} simulated hours forward (new, late and corrected sales,\n"
      "-- transfers, departures, hires); a second sync writes only what changed:\n\n",
      o.ticks);
  std::fflush(stdout);
  post(sim.url() + "/admin/advance?ticks=" + std::to_string(o.ticks));
  rc = run_sync(pipeline, env, false, "");
  if (rc != 0) return rc;
  std::string self = (fs::path(self_dir()) / "cascade").string();
  fmt::print(
      "\nTry it yourself:\n  {} sql --storage sqlite:{} \"SELECT * FROM sales LIMIT 5\"\n"
      "  {} queues -p {} --storage sqlite:{}\n",
      self, db, self, pipeline, db);
  return 0;
}

}  // namespace cascade::cli
