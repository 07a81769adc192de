// `cascade export`: a table or view streamed row by row into CSV or JSON Lines, to a file, stdout
// or an S3 object.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include "aws/client.h"
#include "aws/s3_gzip.h"
#include "aws/s3_objects.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "core/error.h"
#include "core/json.h"
#include "store/names.h"
#include "store/store.h"

namespace cascade::cli {

namespace {

bool ends_with_nocase(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) != suffix[i])
      return false;
  return true;
}

bool to_stdout(const std::string& output) {
  return output.empty() || output == "-";
}

// A write failed: the message says where and why.
struct WriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where the rows go: a file (Destination) or an S3 object (S3Destination).
class Output {
 public:
  virtual ~Output() = default;
  virtual void write(std::string_view data) = 0;
  virtual void finish() = 0;
  virtual const std::string& name() const = 0;
};

// A regular file is written under a temporary name and renamed into place
// once complete, so a reader never sees half an export and a failed one leaves the old file.
// Devices, pipes and stdout are written directly.
class Destination final : public Output {
 public:
  explicit Destination(const std::string& path) : path_(path) {
    if (to_stdout(path)) {
      fd_ = STDOUT_FILENO;
      name_ = "stdout";
      return;
    }
    name_ = "'" + path + "'";
    struct stat st {};
    bool special = ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
    if (!special) partial_ = path + ".partial";
    const std::string& open_path = special ? path : partial_;
    fd_ = ::open(open_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) throw WriteError(fmt::format("cannot create {}: {}", name_, std::strerror(errno)));
    owned_ = true;
  }
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;
  ~Destination() override {
    if (owned_) ::close(fd_);
    if (!partial_.empty() && !done_) ::unlink(partial_.c_str());
  }

  void write(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("cannot write to");
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  void finish() override {
    if (owned_) {
      if (!partial_.empty() && ::fsync(fd_) != 0) fail("cannot write to");
      owned_ = false;
      if (::close(fd_) != 0) fail("cannot write to");
    }
    if (!partial_.empty() && ::rename(partial_.c_str(), path_.c_str()) != 0)
      fail("cannot move the finished export to");
    done_ = true;
  }

  const std::string& name() const override { return name_; }

 private:
  [[noreturn]] void fail(const char* what) {
    throw WriteError(fmt::format("{} {}: {}", what, name_, std::strerror(errno)));
  }

  std::string path_, partial_, name_;
  int fd_ = -1;
  bool owned_ = false;
  bool done_ = false;
};

// An S3 object, uploaded in parts as the rows come (nothing shows at the key until the export is
// complete; a failed one leaves the previous object). A key ending in .gz is gzip: each block of
// kGzipBlock bytes is one gzip member, and members concatenated are one gzip file.
class S3Destination final : public Output {
 public:
  S3Destination(aws::Client& client, const aws::S3Url& url)
      : s3_(client),
        upload_(s3_, url.bucket, url.key, content_type(url.key)),
        gzip_(ends_with_nocase(url.key, ".gz")),
        name_("s3://" + url.bucket + "/" + url.key) {}

  void write(std::string_view data) override {
    guard([&] {
      if (!gzip_) return upload_.append(data);
      raw_.append(data);
      if (raw_.size() >= kGzipBlock) {
        upload_.append(aws::gzip(raw_));
        raw_.clear();
      }
    });
  }
  void finish() override {
    guard([&] {
      if (gzip_ && (!raw_.empty() || upload_.size() == 0)) upload_.append(aws::gzip(raw_));
      raw_.clear();
      upload_.finish();
    });
  }
  const std::string& name() const override { return name_; }

 private:
  static constexpr size_t kGzipBlock = 32 << 20;
  static std::string content_type(const std::string& key) {
    if (ends_with_nocase(key, ".gz")) return "application/gzip";
    if (ends_with_nocase(key, ".jsonl") || ends_with_nocase(key, ".ndjson"))
      return "application/x-ndjson";
    return "text/csv";
  }
  template <class F>
  void guard(F f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw WriteError(fmt::format("cannot write to {}: {}", name_, e.what()));
    }
  }

  aws::S3 s3_;
  aws::S3Upload upload_;
  bool gzip_;
  std::string name_, raw_;
};

// Encodes rows as they come and writes them in blocks, so memory stays flat whatever the size.
class ExportSink final : public RowSink {
 public:
  ExportSink(Output& out, bool jsonl, bool header) : out_(out), jsonl_(jsonl), header_(header) {}

  void columns(std::span<const std::string> names) override {
    if (seen_columns_)
      throw std::runtime_error("--where must be one condition, not several statements");
    seen_columns_ = true;
    if (jsonl_) {
      for (const auto& n : names) {
        std::string key;
        append_json_string(n, key);
        keys_.push_back(key + ":");
      }
      return;
    }
    if (!header_) return;
    for (size_t i = 0; i < names.size(); ++i) {
      if (i) buf_ += ',';
      append_csv_text(names[i], buf_);
    }
    buf_ += '\n';
  }

  bool row(std::span<const Cell> cells) override {
    ++rows_;
    if (jsonl_) {
      buf_ += '{';
      for (size_t i = 0; i < cells.size(); ++i) {
        if (i) buf_ += ',';
        buf_ += keys_[i];
        append_json_cell(cells[i], buf_);
      }
      buf_ += "}\n";
    } else {
      for (size_t i = 0; i < cells.size(); ++i) {
        if (i) buf_ += ',';
        append_csv_cell(cells[i], buf_);
      }
      buf_ += '\n';
    }
    if (buf_.size() >= kBlock) flush();
    return true;
  }

  void flush() {
    out_.write(buf_);
    buf_.clear();
  }

  uint64_t rows() const { return rows_; }

 private:
  static constexpr size_t kBlock = 1 << 16;
  Output& out_;
  bool jsonl_, header_;
  bool seen_columns_ = false;
  std::vector<std::string> keys_;
  std::string buf_;
  uint64_t rows_ = 0;
};

// The relation `name` names: exactly, else the one that matches ignoring ASCII case (as SQL
// compares identifiers).
const Relation* find_relation(const std::vector<Relation>& all, const std::string& name) {
  for (const auto& r : all)
    if (r.name == name) return &r;
  const Relation* found = nullptr;
  for (const auto& r : all) {
    if (r.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(r.name[i])) ==
             std::tolower(static_cast<unsigned char>(name[i]));
    if (same) {
      if (found) return nullptr;
      found = &r;
    }
  }
  return found;
}

}  // namespace

int cmd_export(const Common& c, const ExportOptions& o) {
  std::optional<aws::S3Url> s3_url;
  std::optional<aws::Client> s3_client;
  if (!o.to.empty()) {
    if (!o.output.empty()) {
      fmt::print(stderr, "error: --to and --output both say where to write: give one\n");
      return 2;
    }
    try {
      s3_url = aws::parse_s3_url(o.to);
      if (s3_url->key.empty() || s3_url->key.back() == '/')
        throw std::invalid_argument("--to " + o.to + ": expected s3://BUCKET/KEY with a key");
      s3_client.emplace(aws::AwsConfig::from_environment());
    } catch (const std::exception& e) {
      fmt::print(stderr, "error: {}\n", e.what());
      return 2;
    }
  }
  // The name the format is guessed from: the file, or the S3 key without .gz.
  std::string target = o.output;
  if (s3_url) {
    target = s3_url->key;
    if (ends_with_nocase(target, ".gz")) target.resize(target.size() - 3);
  }
  std::string format = o.format;
  if (format.empty()) {
    bool lines = !to_stdout(target) &&
                 (ends_with_nocase(target, ".jsonl") || ends_with_nocase(target, ".ndjson"));
    format = lines ? "jsonl" : "csv";
  }
  if (format != "csv" && format != "jsonl") {
    fmt::print(stderr, "error: --format must be csv or jsonl, found '{}'\n", format);
    return 2;
  }
  auto store = open_for_reading(c);
  if (!store) return 2;
  Warehouse& wh = store->warehouse();
  std::vector<Relation> all = wh.relations();
  const Relation* rel = find_relation(all, o.table);
  if (!rel) {
    std::vector<std::string> tables, views;
    for (const auto& r : all)
      if (!is_reserved_table_name(r.name)) (r.view ? views : tables).push_back(r.name);
    std::string known =
        tables.empty() && views.empty()
            ? "it has no tables yet: run `cascade sync` first"
            : fmt::format("tables: {}{}{}",
                          tables.empty() ? "none" : fmt::to_string(fmt::join(tables, ", ")),
                          views.empty() ? "" : "; views: ", fmt::join(views, ", "));
    fmt::print(stderr, "error: no table or view '{}' in {} ({})\n", o.table, store->describe(),
               known);
    return 2;
  }
  std::string sql = "SELECT * FROM " + wh.quote(rel->name);
  // The condition goes in parentheses on lines of its own, so a trailing `--` comment cannot
  // swallow the rest of the statement.
  if (!o.where.empty()) sql += " WHERE (\n" + o.where + "\n)";
  if (o.limit) sql += fmt::format(" LIMIT {}", *o.limit);
  try {
    std::unique_ptr<Output> out_ptr;
    if (s3_url) {
      out_ptr = std::make_unique<S3Destination>(*s3_client, *s3_url);
    } else {
      out_ptr = std::make_unique<Destination>(o.output);
    }
    Output& out = *out_ptr;
    ExportSink sink(out, format == "jsonl", o.header);
    try {
      wh.query_rows(sql, sink);
    } catch (const WriteError&) {
      throw;
    } catch (const std::exception& e) {
      fmt::print(stderr, "error: cannot export '{}': {}\n", rel->name, e.what());
      return 1;
    }
    sink.flush();
    out.finish();
    if (s3_url || !to_stdout(o.output))
      fmt::print(stderr, "{}: {} row{} written to {} ({})\n", rel->name, sink.rows(),
                 sink.rows() == 1 ? "" : "s", out.name(), format);
  } catch (const WriteError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace cascade::cli
