// The status page as `cascade run` serves it: `/` and its assets come out of the binary byte for
// byte as in src/observe/page/, with the right content types, and the page reaches for nothing
// but `/assets/` and `/status` of the same address (it must work offline and leak nothing to a
// third party). tests/browser/ renders it in a real browser.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "support/cascade.h"
#include "support/http.h"
#include "support/sim.h"
#include "support/subprocess.h"

using namespace cascade;
using namespace cascade::testing;

namespace {

std::string read_source(const std::string& relative) {
  std::ifstream in(std::string(CASCADE_SOURCE_DIR) + "/" + relative, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every match of re's first group in text.
std::vector<std::string> all(const std::string& text, const std::regex& re) {
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it)
    out.push_back((*it)[1].str());
  return out;
}

}  // namespace

TEST(StatusPage, ServedFromTheBinaryAndReferencesOnlyItsOwnAddress) {
  std::string dir = temp_dir();
  std::string pipeline = dir + "/items.yaml";
  CannedServer vendor([](const sim::HttpRequest&, sim::HttpResponse& res) {
    res.body = R"({"result":[{"id":1,"v":"a"}]})";
  });
  std::ofstream(pipeline) << "name: items\n"
                             "source:\n"
                             "  base_url: "
                          << vendor.url()
                          << "\n"
                             "storage: sqlite:"
                          << dir
                          << "/items.db\n"
                             "stages:\n"
                             "  items:\n"
                             "    schedule: rate(1 hour)\n"
                             "    inputs: { x: [1] }\n"
                             "    request: GET /items?x={x}\n"
                             "    records: result\n"
                             "    key: { item_id: id }\n";
  Subprocess p = Subprocess::start({CASCADE_BIN, "run", pipeline, "--listen", "127.0.0.1:0"});
  std::string base;
  for (int i = 0; i < 5 && base.empty(); ++i) {
    std::string line = p.read_line(std::chrono::seconds(30));
    if (line.rfind("listening on ", 0) == 0) base = line.substr(13);
  }
  ASSERT_FALSE(base.empty()) << "no listening line";

  long status = 0;
  std::string type;
  std::string page = http_get(base, &status, &type);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(type, "text/html; charset=utf-8");
  EXPECT_EQ(page, read_source("src/observe/page/index.html"));

  std::string app = http_get(base + "assets/app.js", &status, &type);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(type, "text/javascript; charset=utf-8");
  EXPECT_EQ(app, read_source("src/observe/page/app.js"));

  std::string css = http_get(base + "assets/style.css", &status, &type);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(type, "text/css; charset=utf-8");
  EXPECT_EQ(css, read_source("src/observe/page/style.css"));

  std::string icon = http_get(base + "assets/favicon.svg", &status, &type);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(type, "image/svg+xml");
  EXPECT_EQ(icon, read_source("src/observe/page/favicon.svg"));

  http_get(base + "assets/missing.js", &status);
  EXPECT_EQ(status, 404);

  // What the page loads: its two assets, nothing else.
  std::vector<std::string> refs = all(page, std::regex(R"re((?:src|href)\s*=\s*"([^"]*)")re"));
  EXPECT_EQ(refs, (std::vector<std::string>{"/assets/favicon.svg", "/assets/style.css",
                                            "/assets/app.js"}));
  // What the script fetches: /status alone.
  EXPECT_EQ(all(app, std::regex(R"(fetch\(\s*'([^']*)')")), std::vector<std::string>{"/status"});
  EXPECT_EQ(all(app, std::regex(R"((XMLHttpRequest|WebSocket|EventSource|import\())")).size(), 0u);
  // No absolute URL anywhere. The SVG namespace is an identifier the browser never fetches.
  std::regex svg_ns("http://www\\.w3\\.org/2000/svg");
  std::string app_no_ns = std::regex_replace(app, svg_ns, "");
  std::string icon_no_ns = std::regex_replace(icon, svg_ns, "");
  for (const std::string* text : {&page, &app_no_ns, &css, &icon_no_ns}) {
    EXPECT_EQ(text->find("http://"), std::string::npos);
    EXPECT_EQ(text->find("https://"), std::string::npos);
    EXPECT_EQ(all(*text, std::regex(R"((url\(|@import))")).size(), 0u);
  }
  // Data reaches the page as text, never parsed as markup.
  EXPECT_EQ(app.find("innerHTML"), std::string::npos);
  EXPECT_EQ(app.find("outerHTML"), std::string::npos);
  EXPECT_EQ(app.find("insertAdjacentHTML"), std::string::npos);
  EXPECT_EQ(app.find("document.write"), std::string::npos);

  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(), 0);
}
