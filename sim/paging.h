// Paging: how cascade-sim splits its listings into pages (`--paginate`), in the styles real
// vendors use: a next URL in the body, a GitHub-style Link header over a bare array, offset and
// limit with a total, page numbers with a page count, an opaque cursor. Pure functions over one
// listing's records; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sim/http_server.h"

namespace cascade::sim {

enum class PageMode { none, json_link, header_link, offset, page_number, cursor };

struct PagingConfig {
  PageMode mode = PageMode::none;  // none: every listing in one response, as always
  int64_t page_size = 100;         // records per page (offset: the default limit)
  // Page number (1-based) that answers HTTP 500 in every listing that has that many pages; 0: none.
  int64_t fail_page = 0;
  // A broken vendor: the last page links back to the first (json_link, header_link, cursor), or
  // the page parameter is ignored and no total is given (offset, page_number).
  bool loop = false;
};

// "json_link" -> PageMode::json_link, ...; throws std::invalid_argument naming the choices.
PageMode parse_page_mode(std::string_view name);

// Answers one paged listing request. `records` are the listing's records as JSON texts, in
// order; `req` carries the path, the listing's own parameters and the paging parameters (a bad
// one is a 400). Body shapes, by mode:
//   json_link    {"records":[...],"next":"/path?...&page=2"}   next is null on the last page
//   header_link  [...] with Link: <http://host/path?...&page=2>; rel="next", <...>; rel="last"
//   offset       {"records":[...],"total":N}                   ?offset=0&limit=page_size
//   page_number  {"data":[...],"page":P,"total_pages":T}       ?page=1 (the first page is 1)
//   cursor       {"data":[...],"cursors":{"next":"TOKEN"}}     ?cursor=TOKEN; null on the last
void write_page(const PagingConfig& cfg, const HttpRequest& req,
                const std::vector<std::string>& records, HttpResponse& res);

}  // namespace cascade::sim
