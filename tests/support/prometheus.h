// A strict parser of the Prometheus text exposition format 0.0.4, for tests: it accepts what a
// careful exporter writes and throws on anything a lenient scraper would merely tolerate.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cascade::testing {

struct PromSample {
  std::string name;                           // as written: x, x_bucket, x_sum, x_count
  std::map<std::string, std::string> labels;  // values unescaped
  double value = 0;
};

struct PromFamily {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::string help;  // unescaped
  std::vector<PromSample> samples;
};

// Parses text; throws std::runtime_error naming the line and the rule broken. Rules: only
// `# HELP` and `# TYPE` comments; each family is HELP (optional) then TYPE then its samples,
// contiguous, and appears once; every sample follows the TYPE of its family; metric and label
// names are valid; label values use only the escapes \\ \" \n; no series appears twice; the text
// ends with a newline; counters are named *_total and are >= 0; every histogram series has
// buckets with strictly increasing "le" ending at "+Inf", non-decreasing cumulative counts, and
// _sum and _count with the "+Inf" bucket equal to _count.
std::map<std::string, PromFamily> parse_prometheus(const std::string& text);

// The value of the sample with exactly these labels; throws std::out_of_range if absent.
double prom_value(const std::map<std::string, PromFamily>& families, const std::string& sample,
                  const std::map<std::string, std::string>& labels = {});

}  // namespace cascade::testing
