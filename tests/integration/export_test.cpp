// Getting data out: `cascade export` streams a table as CSV or JSON Lines with every value as
// stored (checked against `cascade sql -f json`), and `cascade sql -f table` is readable and
// safe: aligned, cut cells marked, rows counted, control characters escaped.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "core/clock.h"
#include "core/json.h"
#include "sim/http_server.h"
#include "store/store.h"
#include "support/cascade.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

// Three sales: an exact decimal beyond a double, text with a comma, quotes and a newline, a
// NULL, an empty string, non-ASCII text and an escape sequence that would recolour a terminal.
const char* kSales =
    R"({"result":[)"
    R"({"id":1,"amount":12345678901234567890123.45,"note":"a, \"quoted\"\nline","gone":null,)"
    R"("price":0.1,"qty":3},)"
    R"({"id":2,"amount":7,"note":"","gone":"x","price":2.5,"qty":-40},)"
    R"({"id":3,"amount":0.5,"note":"h\u00e9llo \u20ac \u001b[31mred","gone":"y","price":1e-7,)"
    R"("qty":123456789012}]})";

struct Fixture {
  std::string dir = temp_dir();
  std::string db = dir + "/out.db";
  std::string pipeline = dir + "/out.yaml";
  CannedServer server{[](const sim::HttpRequest&, sim::HttpResponse& res) {
    res.status = 200;
    res.content_type = "application/json";
    res.body = kSales;
  }};

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

  RunResult cli(std::vector<std::string> args) const {
    std::vector<std::string> argv{CASCADE_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// RFC 4180 records; a field is nullopt when it was empty and unquoted (how NULL is written).
std::vector<std::vector<std::optional<std::string>>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::optional<std::string>>> rows(1);
  std::optional<std::string> field;
  size_t i = 0;
  auto end_field = [&] {
    rows.back().push_back(field);
    field.reset();
  };
  while (i < s.size()) {
    char c = s[i];
    if (c == '"' && !field) {
      std::string v;
      for (++i;; ++i) {
        EXPECT_LT(i, s.size()) << "unterminated quoted field";
        if (i >= s.size()) return rows;
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            v += '"';
            ++i;
          } else {
            ++i;
            break;
          }
        } else {
          v += s[i];
        }
      }
      field = v;
      continue;
    }
    if (c == ',') {
      end_field();
    } else if (c == '\n') {
      end_field();
      rows.emplace_back();
    } else {
      if (!field) field = std::string();
      *field += c;
    }
    ++i;
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

// The text a CSV field holds for a value of `cascade sql -f json`.
std::optional<std::string> csv_text(const Value& v) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.as_string();
  return to_json(v);
}

}  // namespace

TEST(Export, CsvAndJsonLinesHoldEveryValueAsStored) {
  Fixture fx;
  RunResult ref = fx.cli({"sql", "-p", fx.pipeline, "-f", "json", "SELECT * FROM sales"});
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  Value expected = parse_json(ref.out);
  ASSERT_EQ(expected.as_array().size(), 3u);

  // The exact decimal is text holding every digit, and stays a string in JSON Lines.
  QueryResult kinds = query_db(fx.db, "SELECT typeof(amount) FROM sales WHERE sale_id = 1");
  ASSERT_EQ(kinds.rows.size(), 1u);
  EXPECT_EQ(kinds.rows[0][0].as_string(), "text");

  // JSON Lines to stdout: one object per row, equal to `cascade sql -f json`.
  RunResult jl = fx.cli({"export", "-p", fx.pipeline, "sales", "--format", "jsonl"});
  ASSERT_EQ(jl.exit_code, 0) << jl.err;
  std::vector<std::string> lines;
  std::stringstream in(jl.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << jl.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    Value got = parse_json(lines[i]);
    EXPECT_EQ(canonical_json(got), canonical_json(expected.as_array()[i])) << lines[i];
  }
  Value first = parse_json(lines[0]);
  EXPECT_EQ(first.find("amount")->as_string(), "12345678901234567890123.45");
  EXPECT_TRUE(first.find("gone")->is_null());
  EXPECT_NE(lines[0].find(R"("price":0.1)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[2].find(R"("qty":123456789012)"), std::string::npos) << lines[2];

  // CSV into a file, its format from the extension: a header, then the same values.
  std::string csv_path = fx.dir + "/sales.csv";
  RunResult cs = fx.cli({"export", "-p", fx.pipeline, "sales", "-o", csv_path});
  ASSERT_EQ(cs.exit_code, 0) << cs.err;
  EXPECT_NE(cs.err.find("3 rows"), std::string::npos) << cs.err;
  EXPECT_FALSE(std::ifstream(csv_path + ".partial").good());
  std::string csv = slurp(csv_path);
  auto rows = parse_csv(csv);
  ASSERT_EQ(rows.size(), 4u) << csv;
  QueryResult cols = query_db(fx.db, "SELECT * FROM sales LIMIT 0");
  ASSERT_EQ(rows[0].size(), cols.columns.size());
  for (size_t c = 0; c < cols.columns.size(); ++c) EXPECT_EQ(*rows[0][c], cols.columns[c]);
  for (size_t r = 0; r < 3; ++r) {
    ASSERT_EQ(rows[r + 1].size(), cols.columns.size()) << csv;
    for (size_t c = 0; c < cols.columns.size(); ++c)
      EXPECT_EQ(rows[r + 1][c], csv_text(*expected.as_array()[r].find(cols.columns[c])))
          << "row " << r << " column " << cols.columns[c];
  }
  // Quoting as RFC 4180 spells it; NULL is an empty field, the empty text a quoted one. The
  // metadata columns after the key (when and in which run a row was written) are left out here.
  std::string fields = std::regex_replace(
      csv, std::regex(R"((^|\n)(\d+),[^,\n]*Z,[^,\n]*Z,1,1,,,,\d+,-?\d+,-?\d+,)"), "$1$2,");
  EXPECT_NE(fields.find("\n1,12345678901234567890123.45,\"a, \"\"quoted\"\"\nline\",0.1,3,\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(fields.find("\n2,7,\"\",2.5,-40,x\n"), std::string::npos) << csv;

  // JSON Lines into a file by its extension, only the rows --where selects.
  std::string jl_path = fx.dir + "/some.jsonl";
  RunResult some =
      fx.cli({"export", "-p", fx.pipeline, "sales", "-o", jl_path, "--where", "qty > 0 -- c"});
  ASSERT_EQ(some.exit_code, 0) << some.err;
  std::string some_text = slurp(jl_path);
  EXPECT_EQ(std::count(some_text.begin(), some_text.end(), '\n'), 2) << some_text;
  EXPECT_EQ(some_text.find("\"qty\":-40"), std::string::npos) << some_text;
}

TEST(Export, UnknownTablesViewsOddNamesAndWriteErrors) {
  Fixture fx;
  {
    ManualClock clock;
    auto store = open_store("sqlite:" + fx.db, clock);
    store->warehouse().query(R"(CREATE VIEW "big ""spenders"", sorted" AS )"
                             "SELECT sale_id, qty FROM sales WHERE qty > 3 ORDER BY qty DESC");
  }
  RunResult bad = fx.cli({"export", "-p", fx.pipeline, "nope"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.out, "");
  EXPECT_NE(bad.err.find("no table or view 'nope'"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("tables: sales"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("views: big \"spenders\", sorted"), std::string::npos) << bad.err;

  // A name is an identifier, never SQL.
  RunResult inject = fx.cli({"export", "-p", fx.pipeline, "sales; DROP TABLE sales"});
  EXPECT_EQ(inject.exit_code, 2) << inject.err;
  EXPECT_EQ(query_db(fx.db, "SELECT count(*) FROM sales").rows[0][0].as_int(), 3);

  RunResult view = fx.cli({"export", "-p", fx.pipeline, "big \"spenders\", sorted"});
  ASSERT_EQ(view.exit_code, 0) << view.err;
  EXPECT_EQ(view.out, "sale_id,qty\n3,123456789012\n") << view.out;
  // Names match as SQL matches them, ignoring ASCII case.
  RunResult upper = fx.cli({"export", "-p", fx.pipeline, "SALES", "--limit", "1", "--no-header"});
  ASSERT_EQ(upper.exit_code, 0) << upper.err;
  EXPECT_EQ(std::count(upper.out.begin(), upper.out.end(), '\n'), 2) << upper.out;

  // A full disk is an error with the reason, not a truncated success.
  RunResult full = fx.cli({"export", "-p", fx.pipeline, "sales", "-o", "/dev/full"});
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_NE(full.err.find("No space left on device"), std::string::npos) << full.err;
  // A failed export to a file leaves no partial file behind and the old file as it was.
  std::string kept = fx.dir + "/kept.csv";
  std::ofstream(kept) << "old\n";
  RunResult wrong = fx.cli({"export", "-p", fx.pipeline, "sales", "-o", kept, "--where", "nope"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("nope"), std::string::npos) << wrong.err;
  EXPECT_EQ(slurp(kept), "old\n");
  EXPECT_FALSE(std::ifstream(kept + ".partial").good());
}

TEST(Export, SqlTableFormatIsAlignedCountedCutAndEscaped) {
  Fixture fx;
  RunResult t = fx.cli({"sql", "-p", fx.pipeline, "-f", "table", "--max-width", "12",
                        "SELECT sale_id, note, qty, gone FROM sales ORDER BY sale_id"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  // Newlines and the escape character are shown escaped, never written to the terminal.
  EXPECT_EQ(t.out.find('\x1b'), std::string::npos);
  const std::string expected =
      "sale_id  note                   qty  gone\n"
      "-------  ------------  ------------  ----\n"
      "      1  a, \"quoted\"…             3  NULL\n"
      "      2                         -40  x\n"
      "      3  h\u00e9llo \u20ac \\x1…  123456789012  y\n"
      "(3 rows)\n";
  EXPECT_EQ(t.out, expected) << t.out;

  // The table format shows at most --limit rows and says how many there were.
  RunResult lim = fx.cli({"sql", "-p", fx.pipeline, "-f", "table", "--limit", "2",
                          "SELECT sale_id FROM sales ORDER BY sale_id"});
  ASSERT_EQ(lim.exit_code, 0) << lim.err;
  EXPECT_EQ(lim.out, "sale_id\n-------\n      1\n      2\n(showing first 2 of 3 rows)\n");

  // Without a terminal the default is CSV, whole and uncut.
  RunResult piped = fx.cli({"sql", "-p", fx.pipeline, "--limit", "1",
                            "SELECT sale_id, amount FROM sales ORDER BY sale_id"});
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, "sale_id,amount\n1,12345678901234567890123.45\n2,7\n3,0.5\n");
}

TEST(Export, AMillionRowsStreamInLittleMemory) {
  std::string dir = temp_dir();
  std::string db = dir + "/big.db";
  {
    ManualClock clock;
    auto store = open_store("sqlite:" + db, clock);
    // About 150 MB of row data: far more than the bound below if it were held in memory.
    store->warehouse().query(
        "CREATE TABLE big AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 1000000) SELECT i AS id, printf('%.120c', 'x') || i AS text, i * 0.25 AS r "
        "FROM n");
  }
  std::string out = dir + "/big.jsonl";
  RunResult r = run({CASCADE_BIN, "export", "--storage", "sqlite:" + db, "big", "-o", out}, {},
                    std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("1000000 rows"), std::string::npos) << r.err;
  struct rusage ru {};
  getrusage(RUSAGE_CHILDREN, &ru);
  // The page cache (16 MiB) and the binary; ru_maxrss is in KiB. Under AddressSanitizer its
  // quarantine and shadow memory dwarf that, so the bound says nothing there.
#ifndef __SANITIZE_ADDRESS__
  EXPECT_LT(ru.ru_maxrss, 80 * 1024) << "peak RSS of cascade export: " << ru.ru_maxrss << " KiB";
#endif
  std::ifstream in(out);
  std::string line, last;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    last.swap(line);
  }
  EXPECT_EQ(n, 1000000u);
  EXPECT_EQ(parse_json(last).find("id")->as_int(), 1000000);
}
