// `cascade aws package --out DIR`: the function package runs in an empty root that holds only
// its files (as /var/task), as on Amazon Linux 2023 whose glibc is older than the build host's:
// the packaged bootstrap starts cascade through the packaged loader and answers events of a
// local Runtime API server.
#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "support/cascade.h"
#include "support/runtime_api.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;
namespace fs = std::filesystem;

namespace {

// Whether an ELF file asks for a program interpreter (is dynamically linked).
bool has_interpreter(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr eh{};
  in.read(reinterpret_cast<char*>(&eh), sizeof eh);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(eh.e_ident), 4),
            "\x7f"
            "ELF")
      << path;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    in.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
    in.read(reinterpret_cast<char*>(&ph), sizeof ph);
    if (ph.p_type == PT_INTERP) return true;
  }
  return false;
}

}  // namespace

TEST(LambdaPackage, HoldsBinaryLibrariesLoaderPipelineAndAStaticBootstrap) {
  std::string dir = temp_dir();
  std::string pipeline = example_pipeline(dir);
  std::string pkg = dir + "/pkg";
  RunResult r = run({CASCADE_BIN, "aws", "package", "--out", pkg, "--pipeline", pipeline});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f :
       {"bootstrap", "cascade", "pipeline.yaml", "ca-certificates.crt", "lib/ld-linux-x86-64.so.2",
        "lib/libc.so.6", "lib/libcurl.so.4", "lib/libsqlite3.so.0"})
    EXPECT_TRUE(fs::is_regular_file(pkg + "/" + f)) << f << " missing";
  EXPECT_FALSE(has_interpreter(pkg + "/bootstrap")) << "bootstrap must be linked statically";
  EXPECT_TRUE(has_interpreter(pkg + "/cascade"));
  EXPECT_TRUE((fs::status(pkg + "/bootstrap").permissions() & fs::perms::others_exec) !=
              fs::perms::none);
  // The pipeline as written: its ${VARS} are the function's environment, not the packager's.
  std::ifstream in(pkg + "/pipeline.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("${DM_API_TOKEN:-}"), std::string::npos);

  // A broken pipeline is refused before anything is written.
  std::string bad = example_pipeline(dir, {{"concurrency: 5", "concurrency: -5"}});
  RunResult b = run({CASCADE_BIN, "aws", "package", "--out", dir + "/pkg2", "--pipeline", bad});
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_NE(b.err.find(bad + ":"), std::string::npos) << b.err;
  EXPECT_FALSE(fs::exists(dir + "/pkg2"));
}

TEST(LambdaPackage, BootstrapAnswersEventsInAnEmptyRootHoldingOnlyThePackage) {
  if (geteuid() != 0) GTEST_SKIP() << "chroot needs root; this test runs as uid " << geteuid();
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "a sanitizer build's cascade reads /proc/self/maps at start, and the empty root "
                  "has no /proc; the regular build runs this test";
#endif
  std::string dir = temp_dir();
  std::string pipeline = example_pipeline(dir);
  std::string pkg = dir + "/pkg";
  RunResult r = run({CASCADE_BIN, "aws", "package", "--out", pkg, "--pipeline", pipeline});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The empty root: /var/task (the package) and /tmp (Lambda's writable directory), no more.
  std::string root = dir + "/root";
  fs::create_directories(root + "/var/task");
  fs::create_directories(root + "/tmp");
  fs::copy(pkg, root + "/var/task", fs::copy_options::recursive);

  // Without AWS_LAMBDA_RUNTIME_API cascade itself answers (exit 2): the loader and libraries
  // of the package run it.
  RunResult pre = run({"chroot", root, "/var/task/bootstrap"},
                      std::map<std::string, std::string>{{"LAMBDA_TASK_ROOT", "/var/task"},
                                                         {"AWS_LAMBDA_RUNTIME_API", ""}});
  if (pre.err.find("Operation not permitted") != std::string::npos)
    GTEST_SKIP() << "chroot is not permitted here: " << pre.err;
  ASSERT_EQ(pre.exit_code, 2) << pre.out << pre.err;
  EXPECT_NE(pre.err.find("AWS_LAMBDA_RUNTIME_API"), std::string::npos) << pre.err;

  SimServer sim;
  RuntimeApiServer api;
  std::string sched =
      api.push(R"({"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events",)"
               R"("time":"2026-11-29T18:00:00Z","region":"us-east-1","resources":[],"detail":{}})");
  std::string batch = api.push(
      R"({"Records":[{"messageId":"m-1","receiptHandle":"rh","body":"{\"branch\":\"Scranton\"}",)"
      R"("eventSource":"aws:sqs","attributes":{"ApproximateReceiveCount":"1"}}]})");
  Subprocess fn = Subprocess::start({"chroot", root, "/var/task/bootstrap"},
                                    {{"LAMBDA_TASK_ROOT", "/var/task"},
                                     {"AWS_LAMBDA_RUNTIME_API", api.endpoint()},
                                     {"CASCADE_PIPELINE", "/var/task/pipeline.yaml"},
                                     {"CASCADE_STORAGE", "sqlite:/tmp/cascade.db"},
                                     {"CASCADE_STAGE", "branches"},
                                     {"DM_API_URL", sim.url()},
                                     {"LOGGING_LEVEL", "INFO"},
                                     // As on Lambda: no bundle named by the environment.
                                     {"CURL_CA_BUNDLE", ""},
                                     {"SSL_CERT_FILE", ""}});
  auto a = api.wait_answer(sched, std::chrono::seconds(60));
  ASSERT_TRUE(a) << "the packaged function did not answer";
  EXPECT_EQ(a->kind, "response") << a->body;
  EXPECT_EQ(parse_json(a->body).find("seeded")->as_int(), 13) << a->body;
  auto b = api.wait_answer(batch, std::chrono::seconds(60));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->body, R"({"batchItemFailures":[]})");
  // Waiting for its next event, the function trusts the packaged CA bundle (Amazon Linux keeps
  // none where Debian's libcurl looks).
  std::ifstream environ_file("/proc/" + std::to_string(fn.pid()) + "/environ");
  std::string environ_text((std::istreambuf_iterator<char>(environ_file)), {});
  std::replace(environ_text.begin(), environ_text.end(), '\0', '\n');
  EXPECT_NE(environ_text.find("\nCURL_CA_BUNDLE=/var/task/ca-certificates.crt\n"),
            std::string::npos)
      << environ_text;
  fn.signal(SIGTERM);
  EXPECT_EQ(fn.wait(), 0);
  auto rows = query_db(root + "/tmp/cascade.db",
                       "SELECT branch_name FROM branches WHERE _deleted_at IS NULL");
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(rows.rows[0][0].as_string(), "Scranton");
}
