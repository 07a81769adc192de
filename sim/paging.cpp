#include "sim/paging.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "core/json.h"

namespace cascade::sim {

namespace {

void error(HttpResponse& res, int status, std::string_view msg) {
  res.status = status;
  res.body.clear();
  res.body += "{\"error\":";
  append_json_string(msg, res.body);
  res.body += '}';
}

// A non-negative integer parameter; `def` when absent, nullopt when malformed.
std::optional<int64_t> int_param(const HttpRequest& req, std::string_view name, int64_t def) {
  const std::string* v = req.param(name);
  if (!v) return def;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (v->empty() || ec != std::errc() || p != v->data() + v->size() || n < 0) return std::nullopt;
  return n;
}

std::string encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The request's path and listing parameters with the paging parameter `name` set to `value`.
std::string page_target(const HttpRequest& req, std::string_view name, std::string_view value) {
  std::string out = req.path;
  char sep = '?';
  for (const auto& [k, v] : req.params) {
    if (k == name) continue;
    out += sep;
    out += encode(k);
    out += '=';
    out += encode(v);
    sep = '&';
  }
  out += sep;
  out += encode(name);
  out += '=';
  out += encode(value);
  return out;
}

// Opaque to clients, as vendors' cursors are: the offset, disguised.
std::string cursor_for(int64_t offset) {
  return fmt::format("k{:x}", static_cast<uint64_t>(offset) ^ 0x5bd1e995u);
}

std::optional<int64_t> offset_of(const std::string& cursor) {
  if (cursor.size() < 2 || cursor[0] != 'k') return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(cursor.data() + 1, cursor.data() + cursor.size(), v, 16);
  if (ec != std::errc() || p != cursor.data() + cursor.size()) return std::nullopt;
  v ^= 0x5bd1e995u;
  if (v > (uint64_t{1} << 40)) return std::nullopt;
  return static_cast<int64_t>(v);
}

void append_records(const std::vector<std::string>& records, int64_t from, int64_t to,
                    std::string& out) {
  out += '[';
  for (int64_t i = from; i < to; ++i) {
    if (i > from) out += ',';
    out += records[static_cast<size_t>(i)];
  }
  out += ']';
}

}  // namespace

PageMode parse_page_mode(std::string_view name) {
  if (name == "none") return PageMode::none;
  if (name == "json_link") return PageMode::json_link;
  if (name == "header_link") return PageMode::header_link;
  if (name == "offset") return PageMode::offset;
  if (name == "page_number") return PageMode::page_number;
  if (name == "cursor") return PageMode::cursor;
  throw std::invalid_argument(
      fmt::format("unknown paging mode '{}' (expected none, json_link, header_link, offset, "
                  "page_number or cursor)",
                  name));
}

void write_page(const PagingConfig& cfg, const HttpRequest& req,
                const std::vector<std::string>& records, HttpResponse& res) {
  const int64_t n = static_cast<int64_t>(records.size());
  int64_t size = std::max<int64_t>(1, cfg.page_size);
  int64_t from = 0;
  switch (cfg.mode) {
    case PageMode::offset: {
      auto off = int_param(req, "offset", 0);
      auto lim = int_param(req, "limit", size);
      if (!off || !lim || *lim < 1 || *lim > 10000) {
        error(res, 400, "offset must be >= 0 and limit in 1..10000");
        return;
      }
      from = cfg.loop ? 0 : *off;
      size = *lim;
      break;
    }
    case PageMode::cursor: {
      if (const std::string* c = req.param("cursor")) {
        auto off = offset_of(*c);
        if (!off) {
          error(res, 400, "invalid cursor");
          return;
        }
        from = *off;
      }
      break;
    }
    default: {
      auto page = int_param(req, "page", 1);
      if (!page || *page < 1 || *page > (int64_t{1} << 30)) {
        error(res, 400, "page must be an integer >= 1 (the first page is 1)");
        return;
      }
      from = cfg.loop && cfg.mode == PageMode::page_number ? 0 : (*page - 1) * size;
      break;
    }
  }
  const int64_t pages = std::max<int64_t>(1, (n + size - 1) / size);
  const int64_t page = from / size + 1;
  if (cfg.fail_page > 0 && page == cfg.fail_page && pages >= cfg.fail_page) {
    error(res, 500, fmt::format("page {} is failing", page));
    return;
  }
  from = std::min(from, n);
  const int64_t to = std::min(n, from + size);
  const bool last = to >= n;
  std::string& out = res.body;
  out.clear();
  switch (cfg.mode) {
    case PageMode::json_link: {
      out += "{\"records\":";
      append_records(records, from, to, out);
      out += ",\"next\":";
      if (!last)
        append_json_string(page_target(req, "page", std::to_string(page + 1)), out);
      else if (cfg.loop && pages > 1)
        append_json_string(page_target(req, "page", "1"), out);
      else
        out += "null";
      out += '}';
      break;
    }
    case PageMode::header_link: {
      append_records(records, from, to, out);
      const std::string* host = req.header("host");
      std::string base = "http://" + (host && !host->empty() ? *host : std::string("127.0.0.1"));
      std::string link;
      if (!last || (cfg.loop && pages > 1))
        link = fmt::format("<{}{}>; rel=\"next\", ", base,
                           page_target(req, "page", std::to_string(last ? 1 : page + 1)));
      link += fmt::format("<{}{}>; rel=\"last\"", base,
                          page_target(req, "page", std::to_string(pages)));
      res.headers.emplace_back("Link", std::move(link));
      break;
    }
    case PageMode::offset: {
      out += "{\"records\":";
      append_records(records, from, to, out);
      if (!cfg.loop) fmt::format_to(std::back_inserter(out), ",\"total\":{}", n);
      out += '}';
      break;
    }
    case PageMode::page_number: {
      out += "{\"data\":";
      append_records(records, from, to, out);
      if (!cfg.loop)
        fmt::format_to(std::back_inserter(out), ",\"page\":{},\"total_pages\":{}", page, pages);
      out += '}';
      break;
    }
    case PageMode::cursor: {
      out += "{\"data\":";
      append_records(records, from, to, out);
      out += ",\"cursors\":{\"next\":";
      if (!last)
        append_json_string(cursor_for(to), out);
      else if (cfg.loop && pages > 1)
        append_json_string(cursor_for(0), out);
      else
        out += "null";
      out += "}}";
      break;
    }
    case PageMode::none:
      append_records(records, 0, n, out);
      break;
  }
}

}  // namespace cascade::sim
