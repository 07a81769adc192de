#include "support/prometheus.h"

#include <cmath>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string_view>

namespace cascade::testing {
namespace {

bool metric_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

bool label_char(char c, bool first) {
  return c != ':' && metric_char(c, first);
}

class LineParser {
 public:
  LineParser(std::string_view s, int line) : s_(s), line_(line) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("line " + std::to_string(line_) + ": " + why + ": '" +
                             std::string(s_) + "'");
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string name(bool label) {
    const size_t start = pos_;
    while (!at_end() &&
           (label ? label_char(s_[pos_], pos_ == start) : metric_char(s_[pos_], pos_ == start)))
      ++pos_;
    if (pos_ == start) fail(label ? "expected a label name" : "expected a metric name");
    return std::string(s_.substr(start, pos_ - start));
  }
  std::string quoted() {
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated label value");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (c == '\n') fail("raw newline in label value");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) fail("dangling backslash");
      const char e = s_[pos_++];
      if (e == '\\')
        out += '\\';
      else if (e == '"')
        out += '"';
      else if (e == 'n')
        out += '\n';
      else
        fail(std::string("invalid escape \\") + e);
    }
  }
  std::string rest() {
    std::string out(s_.substr(pos_));
    pos_ = s_.size();
    return out;
  }
  std::string word() {
    const size_t start = pos_;
    while (!at_end() && s_[pos_] != ' ') ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

 private:
  std::string_view s_;
  int line_;
  size_t pos_ = 0;
};

double parse_value(const std::string& w, LineParser& p) {
  if (w == "+Inf") return INFINITY;
  if (w == "-Inf") return -INFINITY;
  if (w == "NaN") return NAN;
  if (w.empty()) p.fail("missing value");
  char* end = nullptr;
  const double v = std::strtod(w.c_str(), &end);
  if (end != w.c_str() + w.size() || std::isnan(v) || std::isinf(v))
    p.fail("invalid value '" + w + "'");
  return v;
}

std::string unescape_help(const std::string& s, LineParser& p) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) p.fail("dangling backslash in HELP");
    if (s[i] == '\\')
      out += '\\';
    else if (s[i] == 'n')
      out += '\n';
    else
      p.fail("invalid escape in HELP");
  }
  return out;
}

// The family a sample name belongs to, given the family being read.
bool belongs(const std::string& sample, const PromFamily& f) {
  if (f.type == "histogram")
    return sample == f.name + "_bucket" || sample == f.name + "_sum" || sample == f.name + "_count";
  return sample == f.name;
}

void check_histogram(const PromFamily& f) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // le, cumulative
    bool has_sum = false, has_count = false;
    double count = 0;
  };
  std::map<std::map<std::string, std::string>, Series> series;
  for (const PromSample& s : f.samples) {
    auto labels = s.labels;
    if (s.name == f.name + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) throw std::runtime_error(f.name + ": bucket without le");
      double bound = le->second == "+Inf" ? INFINITY : std::strtod(le->second.c_str(), nullptr);
      labels.erase(le);
      series[labels].buckets.emplace_back(bound, s.value);
    } else {
      if (labels.count("le")) throw std::runtime_error(f.name + ": le outside a bucket");
      Series& se = series[labels];
      if (s.name == f.name + "_sum") se.has_sum = true;
      if (s.name == f.name + "_count") {
        se.has_count = true;
        se.count = s.value;
      }
    }
  }
  for (const auto& [labels, se] : series) {
    if (se.buckets.empty() || !se.has_sum || !se.has_count)
      throw std::runtime_error(f.name + ": a series lacks buckets, _sum or _count");
    for (size_t i = 1; i < se.buckets.size(); ++i) {
      if (!(se.buckets[i - 1].first < se.buckets[i].first))
        throw std::runtime_error(f.name + ": le not strictly increasing");
      if (se.buckets[i - 1].second > se.buckets[i].second)
        throw std::runtime_error(f.name + ": bucket counts not cumulative");
    }
    if (!std::isinf(se.buckets.back().first))
      throw std::runtime_error(f.name + ": last bucket is not +Inf");
    if (se.buckets.back().second != se.count)
      throw std::runtime_error(f.name + ": +Inf bucket " +
                               std::to_string(se.buckets.back().second) + " != _count " +
                               std::to_string(se.count));
  }
}

}  // namespace

std::map<std::string, PromFamily> parse_prometheus(const std::string& text) {
  if (!text.empty() && text.back() != '\n')
    throw std::runtime_error("the text does not end with a newline");
  std::map<std::string, PromFamily> families;
  PromFamily* current = nullptr;
  std::string pending_help_name, pending_help;
  std::set<std::string> seen_series;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    LineParser p(line, ++line_no);
    if (line.empty()) p.fail("empty line");
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const bool help = line[2] == 'H';
      LineParser q(line.substr(7), line_no);
      const std::string name = q.name(false);
      q.expect(' ');
      const std::string rest = q.rest();
      if (families.count(name)) p.fail("family " + name + " declared again");
      if (help) {
        if (!pending_help_name.empty()) p.fail("HELP without a TYPE before it");
        pending_help_name = name;
        pending_help = unescape_help(rest, p);
      } else {
        static const std::set<std::string> types{"counter", "gauge", "histogram", "summary",
                                                 "untyped"};
        if (!types.count(rest)) p.fail("unknown type");
        if (!pending_help_name.empty() && pending_help_name != name)
          p.fail("TYPE for another family than the HELP before it");
        if (rest == "counter" && !name.ends_with("_total")) p.fail("counter not named *_total");
        PromFamily f{name, rest, pending_help_name.empty() ? "" : pending_help, {}};
        pending_help_name.clear();
        current = &families.emplace(name, std::move(f)).first->second;
      }
      continue;
    }
    if (line[0] == '#') p.fail("comment other than HELP or TYPE");
    if (!pending_help_name.empty()) p.fail("sample between HELP and TYPE");
    PromSample s;
    s.name = p.name(false);
    if (!current || !belongs(s.name, *current)) p.fail("sample without the TYPE of its family");
    if (p.peek() == '{') {
      p.expect('{');
      while (p.peek() != '}') {
        const std::string label = p.name(true);
        p.expect('=');
        if (s.labels.count(label)) p.fail("label " + label + " repeated");
        s.labels[label] = p.quoted();
        if (p.peek() == ',') p.expect(',');
      }
      p.expect('}');
    }
    p.expect(' ');
    const std::string value = p.word();
    s.value = parse_value(value, p);
    if (!p.at_end()) {
      p.expect(' ');
      const std::string ts = p.word();
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos)
        p.fail("invalid timestamp");
      if (!p.at_end()) p.fail("trailing text");
    }
    if (current->type == "counter" && !(s.value >= 0)) p.fail("negative counter");
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += "\x1f" + k + "=" + v;
    if (!seen_series.insert(key).second) p.fail("series repeated");
    current->samples.push_back(std::move(s));
  }
  if (!pending_help_name.empty()) throw std::runtime_error("HELP at the end without a TYPE");
  for (const auto& [name, f] : families)
    if (f.type == "histogram") check_histogram(f);
  return families;
}

double prom_value(const std::map<std::string, PromFamily>& families, const std::string& sample,
                  const std::map<std::string, std::string>& labels) {
  for (const auto& [name, f] : families)
    for (const PromSample& s : f.samples)
      if (s.name == sample && s.labels == labels) return s.value;
  throw std::out_of_range("no sample " + sample);
}

}  // namespace cascade::testing
