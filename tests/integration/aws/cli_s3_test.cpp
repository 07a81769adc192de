// The cascade binary and S3 (moto): `cascade export TABLE --to s3://...` writes the same bytes as
// an export to a file (gzip when the key says .gz), and `cascade ship` ships the change log of a
// real sync once, as gzip JSON Lines by table and date.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "aws/client.h"
#include "aws/s3_objects.h"
#include "core/json.h"
#include "support/cascade.h"
#include "support/moto.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

const char* kSales =
    R"({"result":[)"
    R"({"id":1,"amount":12345678901234567890123.45,"note":"a, \"quoted\"\nline","day":"2026-01-01"},)"
    R"({"id":2,"amount":7,"note":"","day":"2026-01-02"},)"
    R"({"id":3,"amount":0.5,"note":"h\u00e9llo \u20ac","day":"2026-01-03"}]})";

struct Fixture {
  std::string dir = make_dir();
  std::string db = dir + "/out.db";
  std::string pipeline = dir + "/out.yaml";
  CannedServer server{[](const sim::HttpRequest&, sim::HttpResponse& res) {
    res.status = 200;
    res.content_type = "application/json";
    res.body = kSales;
  }};

  static std::string make_dir() {
    char tmpl[] = "/tmp/cascade_clis3_XXXXXX";
    return ::mkdtemp(tmpl);
  }
  Fixture() {
    std::ofstream(pipeline) << "name: out\nsource:\n  base_url: " << server.url()
                            << "\n  retry: { attempts: 1, backoff: 1ms..2ms }\nstorage: sqlite:"
                            << db
                            << "\nstages:\n  sales:\n    inputs: { page: [1] }\n"
                               "    request: GET /sales?page={page}\n    records: result\n"
                               "    key: { sale_id: id }\n";
    RunResult r = cli({"sync", pipeline, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  RunResult cli(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const {
    std::vector<std::string> argv{CASCADE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env);
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string gunzip(const std::string& data, const std::string& dir) {
  std::string path = dir + "/object.gz";
  std::ofstream(path, std::ios::binary) << data;
  RunResult r = run({"gzip", "-dc", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

std::string unique_bucket() {
  static int n = 0;
  return "cascade-cli-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

TEST(AwsCli, ExportToS3WritesWhatAFileExportWrites) {
  CASCADE_REQUIRE_MOTO(moto);
  Fixture f;
  aws::Client client(moto->config());
  aws::S3 s3(client);
  std::string bucket = unique_bucket();
  s3.create_bucket(bucket);

  RunResult local = f.cli({"export", "sales", "-p", f.pipeline, "-o", f.dir + "/sales.csv"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  RunResult r =
      f.cli({"export", "sales", "-p", f.pipeline, "--to", "s3://" + bucket + "/exports/sales.csv"},
            moto->env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("3 rows written to s3://" + bucket + "/exports/sales.csv"),
            std::string::npos)
      << r.err;
  std::string csv = slurp(f.dir + "/sales.csv");
  EXPECT_NE(csv.find("12345678901234567890123.45"), std::string::npos) << csv;
  EXPECT_EQ(s3.get(bucket, "exports/sales.csv").value_or("(missing)"), csv);

  // JSON Lines by the key's extension, gzip by its .gz.
  local = f.cli({"export", "sales", "-p", f.pipeline, "-o", f.dir + "/sales.jsonl"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  r = f.cli(
      {"export", "sales", "-p", f.pipeline, "--to", "s3://" + bucket + "/exports/sales.jsonl.gz"},
      moto->env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::optional<std::string> gz = s3.get(bucket, "exports/sales.jsonl.gz");
  ASSERT_TRUE(gz.has_value());
  EXPECT_EQ(gunzip(*gz, f.dir), slurp(f.dir + "/sales.jsonl"));
}

TEST(AwsCli, ExportToS3RefusesBadTargetsAndKeepsSecrets) {
  CASCADE_REQUIRE_MOTO(moto);
  Fixture f;
  RunResult r = f.cli({"export", "sales", "-p", f.pipeline, "--to", "https://x/y"}, moto->env());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expected an S3 URL s3://BUCKET/KEY"), std::string::npos) << r.err;
  r = f.cli({"export", "sales", "-p", f.pipeline, "--to", "s3://some-bucket/k", "-o", "x.csv"},
            moto->env());
  EXPECT_EQ(r.exit_code, 2);
  // No such bucket: a failure, reported with S3's code; nothing secret on the way.
  std::string bucket = "cascade-missing-" + std::to_string(::getpid());
  r = f.cli({"export", "sales", "-p", f.pipeline, "--to", "s3://" + bucket + "/k.csv"},
            moto->env());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NoSuchBucket"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(MotoServer::kSecretAccessKey), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find(MotoServer::kSecretAccessKey), std::string::npos) << r.out;
  // No credentials at all: said so, exit 2.
  auto env = moto->env();
  env["AWS_ACCESS_KEY_ID"] = "";
  env["AWS_SECRET_ACCESS_KEY"] = "";
  env["AWS_SHARED_CREDENTIALS_FILE"] = f.dir + "/none";
  env["AWS_CONFIG_FILE"] = f.dir + "/none";
  r = f.cli({"export", "sales", "-p", f.pipeline, "--to", "s3://" + bucket + "/k.csv"}, env);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("AWS credentials not found"), std::string::npos) << r.err;
}

TEST(AwsCli, ShipSendsTheChangeLogOnce) {
  CASCADE_REQUIRE_MOTO(moto);
  Fixture f;
  aws::Client client(moto->config());
  aws::S3 s3(client);
  std::string bucket = unique_bucket();
  s3.create_bucket(bucket);
  int64_t changes =
      query_db(f.db, "SELECT count(*) FROM cascade_change_log").rows.at(0).at(0).as_int();
  ASSERT_GT(changes, 0);

  RunResult r =
      f.cli({"ship", f.pipeline, "--to", "s3://" + bucket + "/cdc", "--json"}, moto->env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Value summary = parse_json(r.out);
  EXPECT_EQ(summary.find("changes")->as_int(), changes);
  std::set<int64_t> seqs;
  size_t lines = 0;
  for (const auto& key : s3.list(bucket, "cdc/table=")) {
    EXPECT_EQ(key.rfind("cdc/table=sales/date=", 0), 0u) << key;
    std::string text = gunzip(s3.get(bucket, key).value(), f.dir);
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      Value v = parse_json(line);
      EXPECT_EQ(v.find("table")->as_string(), "sales");
      EXPECT_EQ(v.find("operation")->as_string(), "insert");
      seqs.insert(v.find("seq")->as_int());
      ++lines;
    }
  }
  EXPECT_EQ(lines, static_cast<size_t>(changes));
  EXPECT_EQ(seqs.size(), lines);

  // Again: nothing new, nothing shipped.
  r = f.cli({"ship", f.pipeline, "--to", "s3://" + bucket + "/cdc", "--json"}, moto->env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_json(r.out).find("changes")->as_int(), 0);
}

}  // namespace
