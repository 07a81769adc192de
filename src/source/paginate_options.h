// PaginateOptions: how a stage's listing is split into pages (`paginate:` in a pipeline file),
// with the kinds, parameter names and defaults of dlt's REST source. Plain data, no behaviour:
// the config loader fills it, source/paginator.h follows it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cascade {

struct PaginateOptions {
  enum class Kind {
    None,        // no `paginate:`: one request per message, as always
    Auto,        // the kind is recognised from each listing's first response
    SinglePage,  // one request, said explicitly
    JsonLink,    // the next page's URL is in the body
    HeaderLink,  // the next page's URL is in an RFC 8288 Link header
    Offset,      // offset and limit query parameters
    PageNumber,  // a page number query parameter
    Cursor,      // a token from the body, sent back as a query parameter
  };
  Kind kind = Kind::None;

  // json_link: dotted path of the next URL in the body (a leading "$." is accepted).
  std::string next_url_path = "next";
  // header_link: the rel value of the next page's link.
  std::string links_next_key = "next";

  // offset
  int64_t limit = 0;   // required, > 0
  int64_t offset = 0;  // the first page's offset
  std::string offset_param = "offset";
  std::string limit_param = "limit";
  std::optional<int64_t> maximum_offset;

  // page_number
  int64_t base_page = 0;        // the number of the first page the API has
  std::optional<int64_t> page;  // the page to start at; base_page when absent
  std::string page_param = "page";
  std::optional<int64_t> maximum_page;

  // offset and page_number: where the total is (items for offset, pages for page_number).
  // nullopt: `total_path: null`, no total. A default path that a response lacks means no total;
  // an explicit one that it lacks fails the listing.
  std::optional<std::string> total_path = std::string("total");
  bool total_path_explicit = false;
  bool stop_after_empty_page = true;

  // cursor
  std::string cursor_path = "cursors.next";
  std::string cursor_param = "cursor";

  // The runaway guard: a listing with more pages fails instead of running on.
  int64_t max_pages = 100'000;
};

// The name a pipeline file uses for a kind ("json_link", ...).
inline const char* paginate_kind_name(PaginateOptions::Kind k) {
  switch (k) {
    case PaginateOptions::Kind::None:
      return "none";
    case PaginateOptions::Kind::Auto:
      return "auto";
    case PaginateOptions::Kind::SinglePage:
      return "single_page";
    case PaginateOptions::Kind::JsonLink:
      return "json_link";
    case PaginateOptions::Kind::HeaderLink:
      return "header_link";
    case PaginateOptions::Kind::Offset:
      return "offset";
    case PaginateOptions::Kind::PageNumber:
      return "page_number";
    case PaginateOptions::Kind::Cursor:
      return "cursor";
  }
  return "?";
}

}  // namespace cascade
