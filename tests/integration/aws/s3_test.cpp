// S3 on moto: objects (put, get, list), multipart uploads, gzip read back by the gzip tool, and
// the change log of a real SQLite store shipped as gzip JSON Lines partitioned by table and date,
// exactly once across a crash between the objects and the checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "aws/client.h"
#include "aws/s3_gzip.h"
#include "aws/s3_objects.h"
#include "aws/s3_shipper.h"
#include "core/json.h"
#include "store/sqlite/sqlite_store.h"
#include "support/moto.h"
#include "support/subprocess.h"

using namespace cascade;
using cascade::aws::Client;
using cascade::aws::S3;

namespace {

std::string unique_bucket() {
  static int n = 0;
  return "cascade-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

// Decompressed by the gzip tool, not by anything of cascade's.
std::string gunzip(const std::string& data) {
  char tmpl[] = "/tmp/cascade-gz-XXXXXX";
  int fd = ::mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(tmpl, std::ios::binary) << data;
  auto r = cascade::testing::run({"gzip", "-dc", tmpl});
  std::filesystem::remove(tmpl);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

// How large the gzip tool makes `data` at its default level.
size_t gzip_tool_size(const std::string& data) {
  char tmpl[] = "/tmp/cascade-gz-XXXXXX";
  int fd = ::mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(tmpl, std::ios::binary) << data;
  auto r = cascade::testing::run({"gzip", "-6", "-c", tmpl});
  std::filesystem::remove(tmpl);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out.size();
}

std::vector<Value> lines_of(const std::string& text) {
  std::vector<Value> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    if (nl > pos) out.push_back(parse_json(std::string_view(text).substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

TEST(S3, GzipIsReadByTheGzipTool) {
  std::string text;
  for (int i = 0; i < 20000; ++i)
    text += R"({"sale_id":")" + std::to_string(i * 7919 % 100003) + R"(","amount":)" +
            std::to_string(i % 977) + ".25}\n";
  std::string z = cascade::aws::gzip(text);
  EXPECT_LT(z.size(), text.size() / 3);
  // As small as the gzip tool's own (what Athena scans and S3 stores).
  EXPECT_LE(z.size(), gzip_tool_size(text) * 102 / 100);
  EXPECT_EQ(gunzip(z), text);
  // Incompressible bytes, every byte value, and nothing at all.
  std::string bytes;
  for (int i = 0; i < 300000; ++i) bytes += static_cast<char>((i * 2654435761u) >> 13);
  EXPECT_EQ(gunzip(cascade::aws::gzip(bytes)), bytes);
  EXPECT_EQ(gunzip(cascade::aws::gzip("")), "");
  // Members concatenated are one gzip file.
  EXPECT_EQ(gunzip(cascade::aws::gzip("ab") + cascade::aws::gzip("cd")), "abcd");
}

TEST(S3, ObjectsPutGetAndList) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  S3 s3(c);
  std::string bucket = unique_bucket();
  s3.create_bucket(bucket);
  s3.create_bucket(bucket);  // again: fine
  s3.put(bucket, "p/table=sales/date=2026-01-01/a b&c.json", "one");
  s3.put(bucket, "p/table=sales/date=2026-01-02/x.json", "two");
  s3.put(bucket, "q/other.json", "three");
  EXPECT_EQ(s3.get(bucket, "p/table=sales/date=2026-01-01/a b&c.json").value_or(""), "one");
  EXPECT_FALSE(s3.get(bucket, "p/missing").has_value());
  std::vector<std::string> keys = s3.list(bucket, "p/");
  EXPECT_EQ(keys, (std::vector<std::string>{"p/table=sales/date=2026-01-01/a b&c.json",
                                            "p/table=sales/date=2026-01-02/x.json"}));
  try {
    s3.get("cascade-no-such-bucket-" + std::to_string(::getpid()), "k");
    FAIL() << "a missing bucket answered";
  } catch (const cascade::aws::AwsError& e) {
    EXPECT_EQ(e.code, "NoSuchBucket");
  }
  EXPECT_THROW(cascade::aws::parse_s3_url("https://x/y"), std::invalid_argument);
  EXPECT_THROW(cascade::aws::parse_s3_url("s3://A_B/k"), std::invalid_argument);
  auto u = cascade::aws::parse_s3_url("s3://my-bucket/some/key.csv");
  EXPECT_EQ(u.bucket, "my-bucket");
  EXPECT_EQ(u.key, "some/key.csv");
}

TEST(S3, UploadGoesInPartsAndNothingShowsUntilFinished) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  S3 s3(c);
  std::string bucket = unique_bucket();
  s3.create_bucket(bucket);
  std::string data;
  for (size_t i = 0; data.size() < 2 * aws::S3Upload::kPartSize + 12345; ++i)
    data += "line " + std::to_string(i) + "\n";
  {
    aws::S3Upload up(s3, bucket, "big.txt", "text/plain");
    for (size_t i = 0; i < data.size(); i += 100000)
      up.append(std::string_view(data).substr(i, 100000));
    EXPECT_LT(up.buffered(), aws::S3Upload::kPartSize);
    EXPECT_FALSE(s3.get(bucket, "big.txt").has_value());
    up.finish();
    EXPECT_EQ(up.size(), data.size());
  }
  EXPECT_EQ(s3.get(bucket, "big.txt").value_or(""), data);
  {
    // Abandoned: aborted, nothing at the key.
    aws::S3Upload up(s3, bucket, "abandoned.txt");
    up.append(data);
  }
  EXPECT_FALSE(s3.get(bucket, "abandoned.txt").has_value());
  {
    aws::S3Upload small(s3, bucket, "small.txt");
    small.append("tiny");
    small.finish();
  }
  EXPECT_EQ(s3.get(bucket, "small.txt").value_or(""), "tiny");
}

class ShipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cascade_ship_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = open_sqlite_store(dir_ + "/store.db", clock_);
    std::vector<Column> key{{"id", ColumnType::Integer}};
    wh().create_table("sales", key);
    wh().create_table("branches", key);
    wh().add_columns("sales", std::vector<Column>{{"amount", ColumnType::Real}});
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Warehouse& wh() { return store_->warehouse(); }
  void write(const std::string& table, const std::string& row, const std::string& at) {
    Value v = parse_json(row);
    wh().upsert(table, std::vector<const Value*>{&v}, WriteStamp{1, at});
  }
  // Every line of every change-log object under the prefix, by object key.
  std::map<std::string, std::vector<Value>> shipped(S3& s3, const std::string& bucket) {
    std::map<std::string, std::vector<Value>> out;
    for (const auto& key : s3.list(bucket, "changes/table=")) {
      out[key] = lines_of(gunzip(s3.get(bucket, key).value()));
    }
    return out;
  }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(ShipTest, ChangeLogGoesToS3PartitionedByTableAndDateExactlyOnce) {
  CASCADE_REQUIRE_MOTO(moto);
  Client c(moto->config());
  S3 s3(c);
  std::string bucket = unique_bucket();
  s3.create_bucket(bucket);
  write("sales", R"({"id":1,"amount":2.5})", "2026-01-01T10:00:00.000Z");
  write("sales", R"({"id":2,"amount":12345678901234567890})", "2026-01-01T11:00:00.000Z");
  write("branches", R"({"id":7})", "2026-01-01T12:00:00.000Z");
  write("sales", R"({"id":1,"amount":3})", "2026-01-02T09:00:00.000Z");
  Value gone = parse_json(R"({"id":7})");
  wh().mark_deleted("branches", std::vector<const Value*>{&gone},
                    WriteStamp{2, "2026-01-02T10:00:00.000Z"});

  aws::ChangeLogShipper shipper(store_->change_log(), s3, {bucket, "/changes/", 2});
  aws::ShipResult r = shipper.ship();
  EXPECT_EQ(r.changes, 5);
  EXPECT_EQ(r.last_seq, store_->change_log().last_seq());
  EXPECT_EQ(shipper.checkpoint(), r.last_seq);
  auto objects = shipped(s3, bucket);
  std::set<std::string> partitions;
  std::vector<int64_t> seqs;
  for (const auto& [key, lines] : objects) {
    EXPECT_TRUE(key.ends_with(".json.gz")) << key;
    partitions.insert(key.substr(0, key.rfind('/')));
    for (const auto& l : lines) {
      seqs.push_back(l.find("seq")->as_int());
      std::string table = l.find("table")->as_string();
      std::string date = l.find("at")->as_string().substr(0, 10);
      EXPECT_NE(key.find("table=" + table + "/date=" + date + "/"), std::string::npos) << key;
    }
  }
  EXPECT_EQ(partitions,
            (std::set<std::string>{
                "changes/table=branches/date=2026-01-01", "changes/table=branches/date=2026-01-02",
                "changes/table=sales/date=2026-01-01", "changes/table=sales/date=2026-01-02"}));
  std::sort(seqs.begin(), seqs.end());
  ASSERT_EQ(seqs.size(), 5u);
  EXPECT_EQ(std::set<int64_t>(seqs.begin(), seqs.end()).size(), 5u);
  // Each line is its change as the log holds it, numbers as written.
  std::map<int64_t, Change> by_seq;
  for (auto& ch : store_->change_log().read(0, 100)) by_seq[ch.seq] = ch;
  bool saw_delete = false;
  for (const auto& [key, lines] : objects) {
    for (const auto& l : lines) {
      const Change& ch = by_seq.at(l.find("seq")->as_int());
      EXPECT_EQ(canonical_json(*l.find("image")), canonical_json(parse_json(ch.image)));
      EXPECT_EQ(canonical_json(*l.find("key")), ch.key);
      EXPECT_EQ(l.find("operation")->as_string(), ch.kind == ChangeKind::New       ? "insert"
                                                  : ch.kind == ChangeKind::Changed ? "update"
                                                                                   : "delete");
      EXPECT_EQ(l.find("at")->as_string(), ch.at);
      saw_delete |= ch.kind == ChangeKind::Gone;
    }
  }
  EXPECT_TRUE(saw_delete);

  // Nothing new: nothing shipped.
  EXPECT_EQ(shipper.ship().changes, 0);

  // A crash after the objects of a round and before its checkpoint: the round runs again, with a
  // change committed since, and every change is still in exactly one object.
  int64_t before = r.last_seq;
  write("sales", R"({"id":3,"amount":1})", "2026-01-03T00:00:00.000Z");
  aws::ChangeLogShipper big(store_->change_log(), s3, {bucket, "changes", 100});
  EXPECT_EQ(big.ship().changes, 1);
  s3.put(bucket, "changes/_cascade/checkpoint.json", "{\"seq\":" + std::to_string(before) + "}");
  write("sales", R"({"id":4,"amount":1})", "2026-01-03T01:00:00.000Z");
  aws::ShipResult again = big.ship();
  EXPECT_EQ(again.changes, 2);
  std::vector<int64_t> all;
  for (const auto& [key, lines] : shipped(s3, bucket))
    for (const auto& l : lines) all.push_back(l.find("seq")->as_int());
  EXPECT_EQ(all.size(), 7u);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 7u);
  EXPECT_EQ(big.checkpoint(), store_->change_log().last_seq());
}

}  // namespace
