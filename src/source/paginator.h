// Paginator: follows one listing's pages. Given each page's response it names the next page's
// URL(s), or says the listing is complete; it never fetches anything itself. The kinds and their
// parameters are dlt's (see PaginateOptions). Not thread-safe: one Paginator per listing, its
// calls serialised by the caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/value.h"
#include "source/paginate_options.h"

namespace cascade {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class Paginator {
 public:
  // `request_url`: the message's request, absolute (base URL + rendered path and query).
  // `records_path`: where the records are in a body (dotted; empty = the root), so that a page's
  // records can be counted and left out of auto detection.
  Paginator(const PaginateOptions& options, std::string request_url, std::string records_path);

  // The first page's URL: the request with the first offset/limit or page parameter set.
  const std::string& first_url() const { return first_url_; }

  // Reads page `index` (0 for the first; later pages are numbered in the order their URLs were
  // returned) from its successful response, and returns the URLs of the pages it reveals. An
  // empty result means no further page from this one: the listing is complete once every page
  // returned so far has arrived. When the first page tells the total (offset and page_number with
  // a total), every remaining page's URL is returned at once, to be fetched in parallel. `body`
  // may be padded in place (its size is kept). Throws DataError with a reason when the listing
  // cannot be paged safely: malformed JSON, a total that is no number or is missing although
  // total_path was given, a next link that repeats a page already seen (a loop) or leads to
  // another host, a page identical to the one before (an API that ignores the page parameter),
  // more than max_pages pages.
  std::vector<std::string> next(size_t index, const HeaderList& headers, std::string& body);

  // The kind in force: the configured one, or what `auto` recognised on the first page.
  PaginateOptions::Kind kind() const { return options_.kind; }
  // Page URLs produced so far, the first included.
  size_t pages() const { return page_urls_.size(); }
  // The URL of page `index` (< pages()).
  const std::string& url(size_t index) const { return page_urls_.at(index); }
  // When `auto` settled on single_page although the first page has a field that suggests more
  // pages (a total, a page count, has_more): that field, for a warning. Empty otherwise.
  const std::string& auto_doubt() const { return auto_doubt_; }

 private:
  struct Scan;
  void detect(const HeaderList& headers, const Scan& scan);
  std::vector<std::string> follow(size_t index, const std::string& link, const char* what);
  std::vector<std::string> produce(std::vector<std::string> urls);

  PaginateOptions options_;
  std::string request_url_;
  std::string records_path_;
  std::string first_url_;
  // Every URL produced, by hash, with its page number: a repeat is a loop.
  std::unordered_map<uint64_t, size_t> urls_;
  std::vector<std::string> page_urls_;  // by page number, so relative links resolve per page
  int64_t next_value_ = 0;              // offset / page number of the next sequential page
  bool fanned_out_ = false;             // every page's URL was produced from the first page's total
  uint64_t last_body_hash_ = 0;
  std::string auto_doubt_;
};

// ---- helpers, exposed for tests ----

// The URL of the link with relation `rel` (case-insensitive) in RFC 8288 Link header values
// (every "link" header of `headers`, names lower-cased), or nullopt.
std::optional<std::string> find_link(const HeaderList& headers, std::string_view rel);

// `ref` resolved against `base` as RFC 3986 says (absolute, "//host", "/path", "?query",
// relative paths with dot segments); a fragment is dropped.
std::string resolve_url(std::string_view base, std::string_view ref);

// `url` with query parameter `name` set to `value` (percent-encoded), replacing any it had.
std::string with_query_param(std::string_view url, std::string_view name, std::string_view value);

// scheme://host[:port] of an absolute URL, lower-cased; empty if it is not absolute.
std::string url_origin(std::string_view url);

}  // namespace cascade
