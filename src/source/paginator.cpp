#include "source/paginator.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "core/error.h"
#include "core/hash.h"
#include "core/json_simd.h"

namespace cascade {

namespace od = simdjson::ondemand;

namespace {

using Kind = PaginateOptions::Kind;

// Objects deeper than this are not searched for pagination fields: they are record content.
constexpr int kMaxScanDepth = 8;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// dlt writes JSONPath ("$.links.next"); the plain dotted form is the same path.
std::string_view plain_path(std::string_view p) {
  if (p.starts_with("$.")) p.remove_prefix(2);
  return p;
}

// A key compared without case, '_' or '-': next_url, nextUrl and next-url are one word.
std::string normalized(std::string_view key) {
  std::string out;
  for (char c : key)
    if (c != '_' && c != '-')
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return out;
}

std::string printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(static_cast<char>(c));
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

// RFC 3986 5.2.4, on a path that starts with '/'.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> segs;
  bool trailing = false;
  size_t i = 1;
  while (i <= path.size()) {
    size_t slash = path.find('/', i);
    std::string_view seg =
        path.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i);
    bool last = slash == std::string_view::npos;
    trailing = false;
    if (seg == ".") {
      trailing = last;
    } else if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      trailing = last;
    } else {
      segs.push_back(seg);
    }
    if (last) break;
    i = slash + 1;
  }
  std::string out;
  for (auto s : segs) {
    out.push_back('/');
    out.append(s);
  }
  if (trailing || out.empty()) out.push_back('/');
  return out;
}

bool has_scheme(std::string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == ':') return true;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return false;
  }
  return false;
}

// An integer from a total field: a JSON integer, an integral double or a numeric string.
std::optional<int64_t> as_count(const Value& v) {
  if (v.is_int()) return v.as_int();
  if (v.is_double()) {
    double d = v.as_double();
    if (d >= 0 && d < 9e15 && static_cast<double>(static_cast<int64_t>(d)) == d)
      return static_cast<int64_t>(d);
    return std::nullopt;
  }
  if (v.is_string()) {
    std::string_view s = trim(v.as_string());
    int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return n;
  }
  return std::nullopt;
}

}  // namespace

// What a page's body says besides its records: its scalar fields outside arrays, by dotted path,
// and how many records it holds.
struct Paginator::Scan {
  std::vector<std::pair<std::string, Value>> scalars;
  size_t records = 0;

  const Value* find(std::string_view path) const {
    path = plain_path(path);
    for (const auto& [p, v] : scalars)
      if (p == path) return &v;
    return nullptr;
  }
};

namespace {

size_t count_records(od::value v) {
  switch (v.type()) {
    case od::json_type::array:
      return v.count_elements();
    case od::json_type::object:
      return 1;
    default:
      return 0;
  }
}

template <class S>
void scan_object(od::object obj, std::string& path, int depth, std::string_view records_path,
                 S& scan) {
  for (auto field : obj) {
    std::string_view key = field.unescaped_key();
    size_t mark = path.size();
    if (!path.empty()) path.push_back('.');
    path.append(key);
    od::value v = field.value();
    if (path == records_path) {
      scan.records = count_records(v);
    } else {
      od::json_type t = v.type();
      if (t == od::json_type::object) {
        if (depth < kMaxScanDepth) scan_object(v.get_object(), path, depth + 1, records_path, scan);
      } else if (t != od::json_type::array) {
        scan.scalars.emplace_back(path, from_ondemand(v));
      }
    }
    path.resize(mark);
  }
}

}  // namespace

Paginator::Paginator(const PaginateOptions& options, std::string request_url,
                     std::string records_path)
    : options_(options),
      request_url_(std::move(request_url)),
      records_path_(std::move(records_path)) {
  first_url_ = request_url_;
  if (options_.kind == Kind::Offset) {
    first_url_ =
        with_query_param(first_url_, options_.offset_param, std::to_string(options_.offset));
    first_url_ = with_query_param(first_url_, options_.limit_param, std::to_string(options_.limit));
    next_value_ = options_.offset + options_.limit;
  } else if (options_.kind == Kind::PageNumber) {
    int64_t start = options_.page.value_or(options_.base_page);
    first_url_ = with_query_param(first_url_, options_.page_param, std::to_string(start));
    next_value_ = start + 1;
  }
  urls_.emplace(hash_bytes(first_url_), 0);
  page_urls_.push_back(first_url_);
}

std::vector<std::string> Paginator::next(size_t index, const HeaderList& headers,
                                         std::string& body) {
  Kind kind = options_.kind;
  if (kind == Kind::SinglePage || kind == Kind::None) return {};
  if (kind == Kind::HeaderLink) {
    auto link = find_link(headers, options_.links_next_key);
    if (!link || link->empty()) return {};
    return follow(index, *link, "its Link header");
  }
  Scan scan;
  {
    thread_local od::parser parser;
    size_t len = body.size();
    if (body.capacity() < len + simdjson::SIMDJSON_PADDING)
      body.reserve(len + simdjson::SIMDJSON_PADDING);
    try {
      od::document doc = parser.iterate(body.data(), len, body.capacity());
      std::string path;
      od::json_type t = doc.type();
      if (t == od::json_type::array) {
        if (records_path_.empty()) scan.records = doc.count_elements();
      } else if (t == od::json_type::object) {
        if (records_path_.empty()) scan.records = 1;
        scan_object(doc.get_object(), path, 1, records_path_, scan);
      }
    } catch (const simdjson::simdjson_error& e) {
      throw DataError(fmt::format("malformed JSON ({}) in a {}-byte body: {}",
                                  simdjson::error_message(e.error()), len,
                                  printable(std::string_view(body).substr(0, len))));
    }
  }
  if (kind == Kind::Auto) {
    detect(headers, scan);
    kind = options_.kind;
    if (kind == Kind::HeaderLink) {
      auto link = find_link(headers, options_.links_next_key);
      if (!link || link->empty()) return {};
      return follow(index, *link, "its Link header");
    }
  }
  switch (kind) {
    case Kind::JsonLink: {
      const Value* v = scan.find(options_.next_url_path);
      if (!v || v->is_null() || (v->is_string() && v->as_string().empty())) return {};
      if (!v->is_string())
        throw DataError(fmt::format("the next link '{}' is {}, expected a URL",
                                    plain_path(options_.next_url_path), v->to_text()));
      return follow(index, v->as_string(), "its body");
    }
    case Kind::Cursor: {
      const Value* v = scan.find(options_.cursor_path);
      if (!v || v->is_null() || (v->is_string() && v->as_string().empty())) return {};
      if (!v->is_string() && !v->is_int())
        throw DataError(fmt::format("the cursor '{}' is {}, expected a string",
                                    plain_path(options_.cursor_path), v->to_text()));
      std::string token = v->is_string() ? v->as_string() : v->to_text();
      return produce({with_query_param(request_url_, options_.cursor_param, token)});
    }
    case Kind::Offset:
    case Kind::PageNumber:
      break;
    default:
      return {};
  }
  // offset and page_number
  bool by_offset = kind == Kind::Offset;
  if (fanned_out_) return {};
  if (options_.stop_after_empty_page && scan.records == 0) return {};
  std::optional<int64_t> total;
  if (options_.total_path) {
    const Value* v = scan.find(*options_.total_path);
    if (!v || v->is_null()) {
      if (options_.total_path_explicit)
        throw DataError(
            fmt::format("no total at '{}' (write total_path: null if the API gives none)",
                        plain_path(*options_.total_path)));
    } else {
      total = as_count(*v);
      if (!total || *total < 0)
        throw DataError(fmt::format("the total '{}' is {}, expected a count",
                                    plain_path(*options_.total_path), v->to_text()));
    }
  }
  // An API that ignores the parameter serves the same page forever, each under a new URL.
  uint64_t h = hash_bytes(std::string_view(body).substr(0, body.size()));
  if (index > 0 && h == last_body_hash_)
    throw DataError(
        fmt::format("the page is identical to page {}: the API seems to ignore the '{}' parameter",
                    index, by_offset ? options_.offset_param : options_.page_param));
  last_body_hash_ = h;
  int64_t step = by_offset ? options_.limit : 1;
  std::optional<int64_t> maximum = by_offset ? options_.maximum_offset : options_.maximum_page;
  int64_t end_at = by_offset ? 0 : options_.base_page;
  auto beyond = [&](int64_t value) {
    return (total && value >= *total + end_at) || (maximum && value >= *maximum);
  };
  auto url_for = [&](int64_t value) {
    if (by_offset) {
      std::string u = with_query_param(request_url_, options_.offset_param, std::to_string(value));
      return with_query_param(u, options_.limit_param, std::to_string(options_.limit));
    }
    return with_query_param(request_url_, options_.page_param, std::to_string(value));
  };
  if (total && index == 0) {
    // Every remaining page is known now: they may all be fetched at once.
    fanned_out_ = true;
    std::vector<std::string> urls;
    for (int64_t v = next_value_; !beyond(v); v += step) {
      if (static_cast<int64_t>(page_urls_.size() + urls.size()) >= options_.max_pages)
        throw DataError(
            fmt::format("the listing has more than {} pages (max_pages): its total is {}",
                        options_.max_pages, *total));
      urls.push_back(url_for(v));
    }
    return produce(std::move(urls));
  }
  if (beyond(next_value_)) return {};
  std::string url = url_for(next_value_);
  next_value_ += step;
  return produce({std::move(url)});
}

void Paginator::detect(const HeaderList& headers, const Scan& scan) {
  // In dlt's order: a Link header, a next URL in the body, a cursor, else one page.
  if (find_link(headers, "next")) {
    options_.kind = Kind::HeaderLink;
    options_.links_next_key = "next";
    return;
  }
  static const std::vector<std::string> kNext = {"next",     "nexturl",  "nextpage",
                                                 "nextlink", "nexthref", "nextpageurl"};
  static const std::vector<std::string> kCursor = {
      "cursor",       "nextcursor",        "nextpagetoken", "pagetoken",      "nexttoken",
      "continuation", "continuationtoken", "endcursor",     "nextpagecursor", "cursornext"};
  auto in = [](const std::vector<std::string>& set, const std::string& w) {
    return std::find(set.begin(), set.end(), w) != set.end();
  };
  auto url_like = [](const Value& v) {
    if (!v.is_string()) return false;
    const std::string& s = v.as_string();
    return s.starts_with("http://") || s.starts_with("https://") || s.starts_with("/") ||
           s.starts_with("?");
  };
  const std::string* cursor = nullptr;
  for (const auto& [path, v] : scan.scalars) {
    size_t dot = path.rfind('.');
    std::string last = normalized(dot == std::string::npos ? path : path.substr(dot + 1));
    std::string parent;
    if (dot != std::string::npos) {
      size_t pdot = path.rfind('.', dot - 1);
      parent = normalized(path.substr(pdot == std::string::npos ? 0 : pdot + 1,
                                      dot - (pdot == std::string::npos ? 0 : pdot + 1)));
    }
    bool next_url = in(kNext, last) || ((last == "href" || last == "url") && in(kNext, parent));
    if (next_url && url_like(v)) {
      options_.kind = Kind::JsonLink;
      options_.next_url_path = path;
      return;
    }
    bool cursor_like =
        in(kCursor, last) || (last == "next" && (parent == "cursors" || parent == "cursor"));
    if (!cursor && cursor_like && ((v.is_string() && !v.as_string().empty()) || v.is_int()))
      cursor = &path;
  }
  if (cursor) {
    options_.kind = Kind::Cursor;
    options_.cursor_path = *cursor;
    return;
  }
  options_.kind = Kind::SinglePage;
  // Offset and page-number APIs name no next page: say so rather than read only their first page
  // in silence.
  static const std::vector<std::string> kMore = {"total",      "totalcount", "totalpages",
                                                 "totalitems", "pages",      "hasmore",
                                                 "more",       "lastpage",   "totalresults"};
  for (const auto& [path, v] : scan.scalars) {
    size_t dot = path.rfind('.');
    std::string last = normalized(dot == std::string::npos ? path : path.substr(dot + 1));
    if (in(kMore, last) && !v.is_null() && !(v.is_bool() && !v.as_bool())) {
      auto_doubt_ = path + " = " + v.to_text();
      return;
    }
  }
}

std::vector<std::string> Paginator::follow(size_t index, const std::string& link,
                                           const char* what) {
  std::string url = resolve_url(page_urls_.at(index), link);
  std::string origin = url_origin(url);
  if (origin != url_origin(request_url_))
    throw DataError(
        fmt::format("the next link in {} leads to another host ({}); cascade follows links to the "
                    "source's own host only",
                    what, origin.empty() ? printable(url, 80) : origin));
  return produce({std::move(url)});
}

std::vector<std::string> Paginator::produce(std::vector<std::string> urls) {
  for (const auto& u : urls) {
    auto [it, inserted] = urls_.emplace(hash_bytes(u), page_urls_.size());
    if (!inserted)
      throw DataError(fmt::format("the next page {} repeats page {}: the API's pagination loops",
                                  printable(u), it->second + 1));
    if (static_cast<int64_t>(page_urls_.size()) >= options_.max_pages)
      throw DataError(
          fmt::format("the listing has more than {} pages (max_pages)", options_.max_pages));
    page_urls_.push_back(u);
  }
  return urls;
}

std::optional<std::string> find_link(const HeaderList& headers, std::string_view rel) {
  for (const auto& [name, value] : headers) {
    if (name != "link") continue;
    std::string_view s = value;
    size_t i = 0;
    while (i < s.size()) {
      size_t lt = s.find('<', i);
      if (lt == std::string_view::npos) break;
      size_t gt = s.find('>', lt);
      if (gt == std::string_view::npos) break;
      std::string_view target = trim(s.substr(lt + 1, gt - lt - 1));
      i = gt + 1;
      bool match = false;
      // Parameters up to the next ',' outside a quoted string.
      while (i < s.size() && s[i] != ',') {
        if (s[i] != ';') {
          ++i;
          continue;
        }
        ++i;
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        size_t name_start = i;
        while (i < s.size() && s[i] != '=' && s[i] != ';' && s[i] != ',') ++i;
        std::string_view pname = trim(s.substr(name_start, i - name_start));
        std::string pvalue;
        if (i < s.size() && s[i] == '=') {
          ++i;
          while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
          if (i < s.size() && s[i] == '"') {
            ++i;
            while (i < s.size() && s[i] != '"') {
              if (s[i] == '\\' && i + 1 < s.size()) ++i;
              pvalue.push_back(s[i++]);
            }
            if (i < s.size()) ++i;  // the closing quote
          } else {
            size_t vs = i;
            while (i < s.size() && s[i] != ';' && s[i] != ',') ++i;
            pvalue = std::string(trim(s.substr(vs, i - vs)));
          }
        }
        if (iequals(pname, "rel")) {
          std::string_view rels = pvalue;
          while (!rels.empty()) {
            size_t sp = rels.find_first_of(" \t");
            std::string_view r = rels.substr(0, sp);
            if (!r.empty() && iequals(r, rel)) match = true;
            if (sp == std::string_view::npos) break;
            rels.remove_prefix(sp + 1);
          }
        }
      }
      if (match) return std::string(target);
      if (i < s.size()) ++i;  // the ','
    }
  }
  return std::nullopt;
}

std::string url_origin(std::string_view url) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos || !has_scheme(url.substr(0, sep + 1))) return {};
  size_t end = url.find_first_of("/?#", sep + 3);
  std::string out(url.substr(0, end));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string resolve_url(std::string_view base, std::string_view ref) {
  if (size_t hash = ref.find('#'); hash != std::string_view::npos) ref = ref.substr(0, hash);
  if (size_t hash = base.find('#'); hash != std::string_view::npos) base = base.substr(0, hash);
  ref = trim(ref);
  if (has_scheme(ref)) return std::string(ref);
  std::string origin = url_origin(base);
  if (origin.empty()) return std::string(ref);
  if (ref.starts_with("//"))
    return std::string(base.substr(0, base.find(':') + 1)) + std::string(ref);
  std::string_view rest = base.substr(std::min(base.size(), origin.size()));
  size_t q = rest.find('?');
  std::string_view base_path = rest.substr(0, q);
  if (base_path.empty()) base_path = "/";
  if (ref.empty()) return std::string(base);
  if (ref.starts_with('?')) return origin + std::string(base_path) + std::string(ref);
  size_t rq = ref.find('?');
  std::string_view ref_path = ref.substr(0, rq);
  std::string_view ref_query = rq == std::string_view::npos ? std::string_view() : ref.substr(rq);
  std::string merged;
  if (ref_path.starts_with('/')) {
    merged = std::string(ref_path);
  } else {
    merged = std::string(base_path.substr(0, base_path.rfind('/') + 1));
    merged += ref_path;
  }
  return origin + remove_dot_segments(merged) + std::string(ref_query);
}

std::string with_query_param(std::string_view url, std::string_view name, std::string_view value) {
  std::string_view fragment;
  if (size_t hash = url.find('#'); hash != std::string_view::npos) {
    fragment = url.substr(hash);
    url = url.substr(0, hash);
  }
  size_t q = url.find('?');
  std::string out(url.substr(0, q));
  std::string_view query = q == std::string_view::npos ? std::string_view() : url.substr(q + 1);
  std::string encoded = percent_encode(name);
  char sep = '?';
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    std::string_view key = part.substr(0, part.find('='));
    if (key == encoded || key == name || percent_decode(key) == name) continue;
    out.push_back(sep);
    out.append(part);
    sep = '&';
  }
  out.push_back(sep);
  out += encoded;
  out.push_back('=');
  out += percent_encode(value);
  out.append(fragment);
  return out;
}

}  // namespace cascade
