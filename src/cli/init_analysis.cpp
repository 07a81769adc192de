#include "cli/init_analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>

namespace cascade::cli {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `next_page_token`, `nextPageToken` and `next-page-token` all become `nextpagetoken`.
std::string folded(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  auto start = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; };
  if (!start(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return start(c) || std::isdigit(static_cast<unsigned char>(c));
  });
}

// A member name usable as one segment of a dotted path in the pipeline file.
bool is_path_segment(std::string_view s) {
  return !s.empty() && std::none_of(s.begin(), s.end(), [](char c) {
    return c == '.' || c == ' ' || c == '\t' || c == '{' || c == '}' ||
           static_cast<unsigned char>(c) < 0x20;
  });
}

std::string join_path(const std::string& a, std::string_view b) {
  return a.empty() ? std::string(b) : a + "." + std::string(b);
}

std::string last_segment(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

// A string value that reads as a link to a page: absolute, or relative to the API.
bool looks_like_url(const Value& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.as_string();
  if (s.empty()) return false;
  return s.starts_with("http://") || s.starts_with("https://") || s[0] == '/' || s[0] == '?' ||
         s.find('?') != std::string::npos || s.find("://") != std::string::npos;
}

// Members outside the records, through objects, a few levels deep: where paging fields live.
void collect_meta(const Value& v, const std::string& path, const std::string& records_path,
                  int depth, std::vector<std::pair<std::string, const Value*>>& out) {
  if (!v.is_object() || depth > 4) return;
  for (const auto& [name, child] : v.as_object()) {
    if (!is_path_segment(name)) continue;
    std::string p = join_path(path, name);
    if (!records_path.empty() && p == records_path) continue;
    out.emplace_back(p, &child);
    collect_meta(child, p, records_path, depth + 1, out);
  }
}

// A key field's value: a non-null string or integer (floats and booleans make poor keys).
std::optional<std::string> key_text(const Value* v) {
  if (!v) return std::nullopt;
  if (v->is_string() && !v->as_string().empty()) return "s" + v->as_string();
  if (v->is_int()) return "i" + v->to_text();
  if (v->is_decimal()) return "i" + v->as_decimal();
  return std::nullopt;
}

bool unique_non_null(const Array& records, const std::vector<std::string>& fields) {
  std::set<std::string> seen;
  for (const auto& r : records) {
    std::string k;
    for (const auto& f : fields) {
      auto t = key_text(r.find(f));
      if (!t) return false;
      k += *t;
      k += '\x1f';
    }
    if (!seen.insert(k).second) return false;
  }
  return true;
}

std::string singular(std::string_view plural) {
  std::string s(plural);
  if (s.size() > 3 && s.ends_with("ies")) return s.substr(0, s.size() - 3) + "y";
  if (s.size() > 1 && s.ends_with('s') && !s.ends_with("ss")) return s.substr(0, s.size() - 1);
  return s;
}

bool is_ip_or_local(const std::string& host) {
  if (host == "localhost" || host.empty() || host[0] == '[') return true;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
  });
}

// Lower-case identifier made of the letters and digits of `s` ('_' between runs).
std::string identifier_from(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  if (!out.empty() && std::isdigit(static_cast<unsigned char>(out[0]))) out = "t_" + out;
  return out;
}

bool reserved_table(const std::string& name) {
  std::string l = lower(name);
  return l.starts_with("cascade_") || l.starts_with("sqlite_");
}

std::string header_env_name(const std::string& prefix, std::string_view header) {
  std::string out = prefix + "_";
  for (char c : header)
    out += std::isalnum(static_cast<unsigned char>(c))
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : '_';
  return out;
}

bool secret_looking_name(std::string_view name) {
  std::string f = folded(name);
  for (const char* w : {"key", "token", "auth", "secret", "session", "cookie", "password",
                        "signature", "credential"})
    if (f.find(w) != std::string::npos) return true;
  return false;
}

// Text from the response or the URL made safe for a comment line.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

// A comment, wrapped at about 96 columns.
void comment_lines(std::string& out, const std::string& indent, const std::string& raw) {
  std::string text = printable(raw);
  std::string line;
  size_t start = 0;
  while (start <= text.size()) {
    size_t sp = text.find(' ', start);
    std::string word = text.substr(start, sp == std::string::npos ? std::string::npos : sp - start);
    if (!line.empty() && indent.size() + 2 + line.size() + 1 + word.size() > 96) {
      out += indent + "# " + line + "\n";
      line.clear();
    }
    line += line.empty() ? word : " " + word;
    if (sp == std::string::npos) break;
    start = sp + 1;
  }
  if (!line.empty()) out += indent + "# " + line + "\n";
}

// A template text: literal braces doubled, `${` kept from the loader's interpolation.
std::string template_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '{')
      out += "{{";
    else if (c == '}')
      out += "}}";
    else
      out += c;
  }
  return out;
}

// A double-quoted YAML scalar; `${` is written `$${` so the loader's interpolation leaves it.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      out += "$$";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// An input value: a plain integer stays a number, anything else is a string.
std::string input_scalar(const std::string& v) {
  bool integer = !v.empty() && v.size() <= 18 && std::all_of(v.begin(), v.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  }) && (v == "0" || v[0] != '0');
  if (integer) return v;
  return yaml_scalar(v);
}

}  // namespace

std::string yaml_scalar(std::string_view s) {
  static const std::set<std::string> typed = {"true", "false", "null", "yes", "no",
                                              "on",   "off",   "y",    "n",   "~"};
  bool plain = !s.empty() &&
               (std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_' || s[0] == '/') &&
               std::all_of(s.begin(), s.end(),
                           [](char c) {
                             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                                    c == '.' || c == '/' || c == '-' || c == ':';
                           }) &&
               !s.ends_with(':') && !typed.count(lower(s));
  if (plain) return std::string(s);
  return quoted(s);
}

std::optional<SampleUrl> parse_sample_url(std::string_view url, std::string* why) {
  auto fail = [&](std::string w) -> std::optional<SampleUrl> {
    if (why) *why = std::move(w);
    return std::nullopt;
  };
  size_t colon = url.find("://");
  if (colon == std::string_view::npos) return fail("expected an http:// or https:// URL");
  SampleUrl u;
  u.scheme = lower(url.substr(0, colon));
  if (u.scheme != "http" && u.scheme != "https")
    return fail("expected an http:// or https:// URL, found scheme '" + u.scheme + "'");
  std::string_view rest = url.substr(colon + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    u.has_userinfo = true;
    authority = authority.substr(at + 1);
  }
  if (authority.empty()) return fail("the URL has no host");
  std::string hostport = lower(authority);
  if (std::any_of(hostport.begin(), hostport.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) || c == '{' || c == '}';
      }))
    return fail("the URL's host is malformed");
  u.origin = u.scheme + "://" + hostport;
  if (!hostport.empty() && hostport[0] == '[') {
    u.host = hostport.substr(0, hostport.find(']') + 1);
  } else {
    u.host = hostport.substr(0, hostport.find(':'));
  }
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t q = rest.find('?');
  u.path = std::string(rest.substr(0, q));
  if (u.path.empty()) u.path = "/";
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view part = query.substr(0, amp);
      if (!part.empty()) {
        size_t eq = part.find('=');
        u.query.emplace_back(
            percent_decode(part.substr(0, eq)),
            eq == std::string_view::npos ? "" : percent_decode(part.substr(eq + 1)));
      }
      if (amp == std::string_view::npos) break;
      query = query.substr(amp + 1);
    }
  }
  return u;
}

RecordsGuess find_records(const Value& body) {
  RecordsGuess g;
  if (body.is_array()) {
    g.found = true;
    g.count = body.as_array().size();
    g.evidence = "the response is an array of records, so no records: line is needed";
    return g;
  }
  struct Candidate {
    std::string path;
    size_t count = 0;
    int depth = 0;
  };
  std::optional<Candidate> best, empty;
  auto walk = [&](auto&& self, const Value& v, const std::string& path, int depth) -> void {
    if (!v.is_object() || depth > 5) return;
    for (const auto& [name, child] : v.as_object()) {
      if (!is_path_segment(name)) continue;
      std::string p = join_path(path, name);
      if (child.is_array()) {
        const Array& a = child.as_array();
        if (a.empty()) {
          if (!empty) empty = Candidate{p, 0, depth};
        } else if (std::all_of(a.begin(), a.end(), [](const Value& e) { return e.is_object(); })) {
          if (!best || a.size() > best->count || (a.size() == best->count && depth < best->depth))
            best = Candidate{p, a.size(), depth};
        }
      } else if (child.is_object()) {
        self(self, child, p, depth + 1);
      }
    }
  };
  walk(walk, body, "", 0);
  if (best) {
    g.found = true;
    g.path = best->path;
    g.count = best->count;
    g.evidence = "the largest list of objects in the response";
  } else if (empty) {
    g.found = true;
    g.path = empty->path;
    g.evidence = "the only list in the response, empty in the sample";
  } else {
    g.count = body.is_object() ? 1 : 0;
    g.evidence = "the response holds no list: the object itself is the one record";
  }
  return g;
}

KeyGuess choose_key(const Array& records, std::string_view stage_name) {
  KeyGuess k;
  std::vector<std::string> fields;
  for (const auto& r : records)
    if (r.is_object())
      for (const auto& [name, v] : r.as_object())
        if (is_identifier(name) && std::find(fields.begin(), fields.end(), name) == fields.end())
          fields.push_back(name);
  Array objects;
  for (const auto& r : records)
    if (r.is_object()) objects.push_back(r);
  if (objects.empty()) {
    k.evidence = "the sample has no records to choose a key from";
    return k;
  }
  const std::string n = std::to_string(objects.size());
  const std::string in_sample =
      objects.size() == 1 ? "in the one record of the sample" : "in all " + n + " sample records";
  auto unique = [&](const std::string& f) { return unique_non_null(objects, {f}); };
  auto pick = [&](const std::string& f, bool certain, const std::string& why) {
    k.fields = {f};
    k.certain = certain;
    k.evidence = fmt::format("`{}`: {}, unique and never null {}", f, why, in_sample);
    return k;
  };
  for (const auto& f : fields)
    if (f == "id" && unique(f)) return pick(f, true, "named id");
  for (const auto& f : fields)
    if (lower(f) == "id" && unique(f)) return pick(f, true, "named id");
  const std::string own = singular(lower(stage_name)) + "_id";
  for (const auto& f : fields)
    if (lower(f) == own && unique(f)) return pick(f, true, "named after the stage");
  for (const auto& f : fields) {
    bool camel = f.size() > 2 && f.ends_with("Id") &&
                 std::islower(static_cast<unsigned char>(f[f.size() - 3]));
    if ((lower(f).ends_with("_id") || camel) && unique(f)) return pick(f, true, "an id field");
  }
  for (const auto& f : fields)
    if (unique(f)) return pick(f, objects.size() > 1, "the first such field");
  for (size_t i = 0; i < fields.size(); ++i)
    for (size_t j = i + 1; j < fields.size(); ++j)
      if (unique_non_null(objects, {fields[i], fields[j]})) {
        k.fields = {fields[i], fields[j]};
        k.evidence = fmt::format("no single field is unique {}; `{}` and `{}` together are",
                                 in_sample, fields[i], fields[j]);
        return k;
      }
  k.evidence = fmt::format("no field or pair of fields is unique and never null {}", in_sample);
  return k;
}

PaginationGuess detect_pagination(const Value& body, const RecordsGuess& records,
                                  const std::vector<std::pair<std::string, std::string>>& headers,
                                  const SampleUrl& url) {
  PaginationGuess g;
  // 1. RFC 8288 Link header.
  for (const auto& [name, value] : headers) {
    if (name != "link") continue;
    bool next = false;
    std::string l = lower(value);
    for (size_t at = l.find("rel="); at != std::string::npos; at = l.find("rel=", at + 4)) {
      size_t from = at + 4;
      if (from < l.size() && l[from] == '"') ++from;
      size_t to = l.find_first_of("\";,", from);
      std::string rels = l.substr(from, to == std::string::npos ? std::string::npos : to - from);
      size_t pos = 0;
      while (pos <= rels.size()) {
        size_t sp = rels.find(' ', pos);
        if (rels.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos) == "next")
          next = true;
        if (sp == std::string::npos) break;
        pos = sp + 1;
      }
    }
    g.type = "header_link";
    g.evidence = next ? "the Link header has rel=\"next\""
                      : "the response has a Link header (without rel=\"next\": the last page?)";
    return g;
  }
  if (!body.is_object()) return g;
  std::vector<std::pair<std::string, const Value*>> meta;
  collect_meta(body, "", records.path, 0, meta);
  auto query_has = [&](std::initializer_list<const char*> names) -> std::optional<std::string> {
    for (const auto& [qn, qv] : url.query)
      for (const char* n : names)
        if (folded(qn) == n) return qn;
    return std::nullopt;
  };
  auto meta_named = [&](std::initializer_list<const char*> names,
                        bool ints_only) -> std::optional<std::pair<std::string, const Value*>> {
    for (const auto& m : meta) {
      std::string f = folded(last_segment(m.first));
      for (const char* n : names)
        if (f == n && (!ints_only || m.second->is_int())) return m;
    }
    return std::nullopt;
  };
  // 2. The next page's URL in the body.
  const std::set<std::string> next_names = {"next",     "nexturl",  "nextpage",    "nextpageurl",
                                            "nextlink", "nexthref", "nextpagelink"};
  std::optional<std::pair<std::string, const Value*>> cursor_field;
  for (const auto& [path, v] : meta) {
    std::string seg = folded(last_segment(path));
    bool next_href = false;
    if (seg == "href") {
      size_t dot = path.rfind('.');
      next_href =
          dot != std::string::npos && next_names.count(folded(last_segment(path.substr(0, dot))));
    }
    if (!next_names.count(seg) && !next_href) continue;
    if (looks_like_url(*v) || v->is_null()) {
      g.type = "json_link";
      g.params = {{"next_url_path", yaml_scalar(path)}};
      g.evidence =
          v->is_null()
              ? fmt::format("field `{}` is null: the next page's URL (none: the last page?)", path)
              : fmt::format("field `{}` holds the next page's URL", path);
      return g;
    }
    if (v->is_string() && !cursor_field) cursor_field = std::make_pair(path, v);
  }
  // 3. A cursor.
  if (!cursor_field)
    for (const auto& [path, v] : meta) {
      if (!v->is_string() && !v->is_null()) continue;
      std::string seg = folded(last_segment(path));
      static const std::set<std::string> cursor_names = {
          "cursor",       "nextcursor",        "nextpagetoken", "pagetoken", "nexttoken",
          "continuation", "continuationtoken", "endcursor",     "scrollid",  "after"};
      bool under_cursors = path.find('.') != std::string::npos &&
                           folded(last_segment(path.substr(0, path.rfind('.')))) == "cursors" &&
                           (seg == "next" || seg == "after");
      if (cursor_names.count(seg) || under_cursors) {
        cursor_field = std::make_pair(path, v);
        break;
      }
    }
  if (cursor_field) {
    const std::string& path = cursor_field->first;
    std::string seg = folded(last_segment(path));
    g.type = "cursor";
    std::string param;
    if (auto q = query_has({"cursor", "pagetoken", "after", "continuation", "continuationtoken",
                            "scrollid", "nexttoken", "startingafter", "nextcursor"})) {
      param = *q;
      g.paginator_query.push_back(*q);
    } else {
      std::string raw = last_segment(path);
      bool camel = std::any_of(raw.begin(), raw.end(),
                               [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
      if (seg == "nextpagetoken" || seg == "pagetoken")
        param = camel ? "pageToken" : "page_token";
      else if (seg.starts_with("continuation"))
        param = "continuation";
      else if (seg == "after")
        param = "after";
      else if (seg == "nexttoken")
        param = camel ? "nextToken" : "next_token";
      else if (seg == "scrollid")
        param = camel ? "scrollId" : "scroll_id";
      else
        param = "cursor";
      g.question = fmt::format(
          "check that the API reads the cursor from the query parameter `{}` (the sample URL "
          "did not show it)",
          param);
    }
    g.params = {{"cursor_path", yaml_scalar(path)}, {"cursor_param", yaml_scalar(param)}};
    g.evidence = fmt::format("field `{}` holds the next page's cursor", path);
    return g;
  }
  // 4. Page numbers.
  auto page_field = meta_named({"page", "currentpage", "pagenumber", "pageno"}, true);
  auto page_query = query_has({"page", "pagenumber", "pageno"});
  auto total_field = meta_named(
      {"total", "totalcount", "totalresults", "totalitems", "totalrecords", "count"}, true);
  if (page_field || page_query) {
    g.type = "page_number";
    std::string param = page_query ? *page_query : "page";
    if (page_query) g.paginator_query.push_back(*page_query);
    if (param != "page") g.params.emplace_back("page_param", yaml_scalar(param));
    int64_t first = -1;
    if (page_field) first = page_field->second->as_int();
    if (page_query)
      for (const auto& [qn, qv] : url.query)
        if (qn == *page_query) first = qv == "0" ? 0 : qv == "1" ? 1 : -1;
    if (first == 0 || first == 1) {
      g.params.emplace_back("base_page", std::to_string(first));
    } else {
      g.params.emplace_back("base_page", "1");
      g.question = "check the number of the API's first page (base_page: 0 or 1)";
    }
    if (auto pages = meta_named({"totalpages", "pages", "pagecount", "numpages", "lastpage",
                                 "pagestotal", "totalpagecount"},
                                true)) {
      g.params.emplace_back("total_path", yaml_scalar(pages->first));
    } else {
      // Without a count of pages, a `total` of records must not be read as one.
      g.params.emplace_back("total_path", "null");
    }
    g.evidence = page_field ? fmt::format("field `{}` numbers the page", page_field->first)
                            : fmt::format("the URL asks for a page with `{}`", param);
    return g;
  }
  // 5. Offset and limit.
  auto offset_field = meta_named({"offset", "skip", "start"}, true);
  auto offset_query = query_has({"offset", "skip", "start"});
  auto limit_field = meta_named({"limit", "take", "pagesize", "perpage"}, true);
  auto limit_query = query_has({"limit", "take", "pagesize", "perpage"});
  if (offset_field || offset_query || (total_field && (limit_field || limit_query))) {
    g.type = "offset";
    std::string oparam = offset_query   ? *offset_query
                         : offset_field ? last_segment(offset_field->first)
                                        : "offset";
    std::string lparam = limit_query   ? *limit_query
                         : limit_field ? last_segment(limit_field->first)
                                       : "limit";
    int64_t limit = 0;
    if (limit_field) limit = limit_field->second->as_int();
    if (limit <= 0 && limit_query)
      for (const auto& [qn, qv] : url.query)
        if (qn == *limit_query) limit = std::atoll(qv.c_str());
    if (limit <= 0) {
      limit = records.count > 0 ? static_cast<int64_t>(records.count) : 100;
      g.question = "check the page size (limit): the response did not say it";
    }
    g.params.emplace_back("limit", std::to_string(limit));
    if (oparam != "offset") g.params.emplace_back("offset_param", yaml_scalar(oparam));
    if (lparam != "limit") g.params.emplace_back("limit_param", yaml_scalar(lparam));
    if (total_field && total_field->first != "total")
      g.params.emplace_back("total_path", yaml_scalar(total_field->first));
    g.paginator_query.push_back(oparam);
    g.paginator_query.push_back(lparam);
    g.evidence = total_field ? fmt::format("field `{}` counts the records, paged by {} and {}",
                                           total_field->first, oparam, lparam)
                             : fmt::format("the response pages with {} and {}", oparam, lparam);
    return g;
  }
  g.evidence = "nothing in the response says there are more pages";
  if (auto more = meta_named({"hasmore", "more", "hasnextpage", "morerecords"}, false))
    if (more->second->is_bool())
      g.question = fmt::format(
          "the response has `{}`, but how to ask for the next page is not in it: add paginate: "
          "(docs/pipeline.md, paginate)",
          more->first);
  if (!g.question.empty()) return g;
  if (total_field && total_field->second->as_int() > static_cast<int64_t>(records.count))
    g.question = fmt::format(
        "field `{}` says {} records but the response holds {}: add paginate: "
        "(docs/pipeline.md, paginate)",
        total_field->first, total_field->second->as_int(), records.count);
  return g;
}

CredentialPlan plan_credentials(const std::vector<std::pair<std::string, std::string>>& headers,
                                const SampleUrl& url, const std::string& env_prefix) {
  CredentialPlan c;
  auto env_ref = [](const std::string& var) { return "\"${" + var + "}\""; };
  if (url.has_userinfo) {
    c.auth_yaml = fmt::format("{{ type: http_basic, username: {}, password: {} }}",
                              env_ref(env_prefix + "_USERNAME"), env_ref(env_prefix + "_PASSWORD"));
    c.env.emplace_back(env_prefix + "_USERNAME", "the user name of the URL");
    c.env.emplace_back(env_prefix + "_PASSWORD", "the password of the URL");
  }
  for (const auto& [name, value] : headers) {
    std::string l = lower(name);
    if (c.auth_yaml.empty() && l == "authorization") {
      std::string v = lower(value);
      if (v.starts_with("bearer ")) {
        std::string var = env_prefix + "_TOKEN";
        c.auth_yaml = fmt::format("{{ type: bearer, token: {} }}", env_ref(var));
        c.env.emplace_back(var, "the token given to init after 'Authorization: Bearer'");
      } else if (v.starts_with("basic ")) {
        c.auth_yaml =
            fmt::format("{{ type: http_basic, username: {}, password: {} }}",
                        env_ref(env_prefix + "_USERNAME"), env_ref(env_prefix + "_PASSWORD"));
        c.env.emplace_back(env_prefix + "_USERNAME", "the user name of the Basic credential");
        c.env.emplace_back(env_prefix + "_PASSWORD", "the password of the Basic credential");
      } else {
        std::string var = env_prefix + "_AUTHORIZATION";
        c.auth_yaml =
            fmt::format("{{ type: api_key, name: Authorization, api_key: {} }}", env_ref(var));
        c.env.emplace_back(var, "the whole Authorization header value given to init");
      }
      continue;
    }
    if (c.auth_yaml.empty() && l != "cookie" && secret_looking_name(name)) {
      std::string var = env_prefix + "_API_KEY";
      c.auth_yaml = fmt::format("{{ type: api_key, name: {}, location: header, api_key: {} }}",
                                yaml_scalar(name), env_ref(var));
      c.env.emplace_back(var, "the value of the " + name + " header given to init");
      continue;
    }
    static const std::set<std::string> harmless = {"accept", "accept-language", "content-type",
                                                   "user-agent"};
    if (harmless.count(l)) {
      c.headers.emplace_back(yaml_scalar(name), yaml_scalar(value));
    } else {
      std::string var = header_env_name(env_prefix, name);
      c.headers.emplace_back(yaml_scalar(name), env_ref(var));
      c.env.emplace_back(var, "the value of the " + name + " header given to init");
    }
  }
  for (const auto& [qn, qv] : url.query) {
    std::string f = folded(qn);
    bool secret = f == "apikey" || f == "key" || f == "token" || f == "accesstoken" ||
                  f == "authtoken" || f == "apitoken" || f == "clientsecret" || f == "signature";
    if (!secret) continue;
    c.secret_query.push_back(qn);
    if (c.auth_yaml.empty()) {
      std::string var = env_prefix + "_API_KEY";
      c.auth_yaml = fmt::format("{{ type: api_key, name: {}, location: query, api_key: {} }}",
                                yaml_scalar(qn), env_ref(var));
      c.env.emplace_back(var, "the value of the " + qn + " query parameter of the URL");
    }
  }
  return c;
}

std::string pipeline_name_for(const SampleUrl& url) {
  if (is_ip_or_local(url.host)) return stage_name_for(url);
  std::vector<std::string> labels;
  size_t start = 0;
  while (start <= url.host.size()) {
    size_t dot = url.host.find('.', start);
    labels.push_back(
        url.host.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (labels.size() > 1) labels.pop_back();  // the top-level domain
  while (labels.size() > 1 && (labels.front() == "www" || labels.front() == "api"))
    labels.erase(labels.begin());
  std::string name;
  for (const auto& l : labels) {
    std::string id = identifier_from(l);
    if (id.empty()) continue;
    if (!name.empty()) name += '-';
    name += id;
  }
  return name.empty() ? stage_name_for(url) : name;
}

std::string stage_name_for(const SampleUrl& url) {
  std::vector<std::string> segs;
  size_t start = 0;
  while (start <= url.path.size()) {
    size_t slash = url.path.find('/', start);
    segs.push_back(percent_decode(
        url.path.substr(start, slash == std::string::npos ? std::string::npos : slash - start)));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
    std::string s = *it;
    if (size_t dot = s.rfind('.'); dot != std::string::npos && dot > 0) s = s.substr(0, dot);
    bool digits = std::any_of(s.begin(), s.end(),
                              [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    bool version = s.size() >= 2 && (s[0] == 'v' || s[0] == 'V') &&
                   std::all_of(s.begin() + 1, s.end(), [](char c) {
                     return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
                   });
    bool id_like =
        digits &&
        (std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
         s.size() >= 16);
    if (s.empty() || version || id_like || lower(s) == "api" || lower(s) == "rest") continue;
    std::string id = identifier_from(s);
    if (id.empty() || reserved_table(id)) continue;
    return id;
  }
  return "records";
}

std::string env_prefix_for(const std::string& pipeline_name) {
  std::string out;
  for (char c : pipeline_name)
    out += std::isalnum(static_cast<unsigned char>(c))
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "API_" + out;
  return out;
}

InitPlan analyse_sample(const std::string& url, const SampleUrl& parsed, int status,
                        const std::vector<std::pair<std::string, std::string>>& response_headers,
                        const Value& body,
                        const std::vector<std::pair<std::string, std::string>>& request_headers) {
  InitPlan p;
  p.url = parsed.origin + parsed.path;
  if (size_t q = url.find('?'); q != std::string::npos && !parsed.query.empty()) {
    // The query as given, minus credentials (written as references instead).
    std::string kept;
    for (const auto& [qn, qv] : parsed.query) {
      std::string f = folded(qn);
      bool secret = f == "apikey" || f == "key" || f == "token" || f == "accesstoken" ||
                    f == "authtoken" || f == "apitoken" || f == "clientsecret" || f == "signature";
      kept += (kept.empty() ? "?" : "&") + qn + "=" + (secret ? "***" : qv);
    }
    p.url += kept;
  }
  p.parsed = parsed;
  p.status = status;
  p.stage = stage_name_for(parsed);
  p.name = pipeline_name_for(parsed);
  p.records = find_records(body);
  const Value* list = p.records.path.empty() ? &body : body.find_path(p.records.path);
  Array sample;
  if (list && list->is_array())
    sample = list->as_array();
  else if (list && list->is_object())
    sample.push_back(*list);
  if (!sample.empty() && sample.front().is_object())
    for (const auto& [name, v] : sample.front().as_object()) p.record_fields.push_back(name);
  p.key = choose_key(sample, p.stage);
  p.paginate = detect_pagination(body, p.records, response_headers, parsed);
  p.credentials = plan_credentials(request_headers, parsed, env_prefix_for(p.name));
  return p;
}

std::string render_pipeline(const InitPlan& p) {
  std::string out;
  out += "# A cascade pipeline written by `cascade init` from one response of\n";
  out += fmt::format("#   GET {}  ->  HTTP {}, {} record{}{}\n", printable(p.url), p.status,
                     p.records.count, p.records.count == 1 ? "" : "s",
                     p.records.path.empty() ? "" : " at " + p.records.path);
  out += "# Check it with `cascade validate FILE`, run it with `cascade sync FILE`.\n";
  out += "# docs/pipeline.md describes every key.\n";
  const size_t todo_note = out.size();
  out += fmt::format("name: {}\n", p.name);
  out += "\n# The API: its address, credentials and pace, shared by every stage.\n";
  out += "source:\n";
  out += fmt::format("  base_url: {}\n", yaml_scalar(p.parsed.origin));
  const CredentialPlan& c = p.credentials;
  if (!c.auth_yaml.empty()) out += fmt::format("  auth: {}\n", c.auth_yaml);
  if (!c.headers.empty()) {
    out += "  headers:\n";
    for (const auto& [n, v] : c.headers) out += fmt::format("    {}: {}\n", n, v);
  }
  if (!c.env.empty()) {
    std::vector<std::string> vars;
    for (const auto& [var, what] : c.env) vars.push_back(var + " (" + what + ")");
    comment_lines(out, "  ",
                  fmt::format("TODO: export {} before validate or sync. Secrets are read from "
                              "the environment, never written in this file.",
                              fmt::join(vars, ", ")));
  }
  out += "  rate_limit: { per_second: 10 }   # requests per second, all stages together\n";
  out += "  retry: { attempts: 4, backoff: 200ms..30s }\n";
  out += "\n# Where queues, staging, the change log and the warehouse live.\n";
  out += fmt::format("storage: ${{CASCADE_STORAGE:-sqlite:{}.db}}\n", p.name);
  out += "\nstages:\n";
  out += fmt::format("  {}:\n", p.stage);
  // Query parameters: fan-out inputs, literals, or the paginator's own.
  std::vector<std::pair<std::string, std::string>> inputs, params;
  std::map<std::string, int> seen;
  for (const auto& [qn, qv] : p.parsed.query) ++seen[qn];
  for (const auto& [qn, qv] : p.parsed.query) {
    auto skip = [&](const std::vector<std::string>& names) {
      return std::find(names.begin(), names.end(), qn) != names.end();
    };
    if (skip(p.paginate.paginator_query) || skip(c.secret_query)) continue;
    if (is_identifier(qn) && seen[qn] == 1 && qn != "record" && qn != "message") {
      inputs.emplace_back(qn, qv);
      params.emplace_back(qn, "\"{" + qn + "}\"");
    } else if (seen[qn] == 1) {
      params.emplace_back(yaml_scalar(qn), yaml_scalar(template_literal(qv)));
    }
  }
  if (inputs.empty()) {
    out += "    # A root stage sends one request per input value; this one runs once.\n";
    out += "    inputs: { run: [1] }\n";
  } else {
    out += "    # One request per combination of input values: add values to fetch more.\n";
    std::vector<std::string> in;
    for (const auto& [n, v] : inputs) in.push_back(n + ": [" + input_scalar(v) + "]");
    out += fmt::format("    inputs: {{ {} }}\n", fmt::join(in, ", "));
  }
  out += fmt::format("    request: GET {}\n", yaml_scalar(template_literal(p.parsed.path)));
  // Repeated query names cannot be a map: they stay in the URL as given.
  std::vector<std::string> repeated;
  for (const auto& [qn, qv] : p.parsed.query)
    if (seen[qn] > 1) repeated.push_back(qn);
  if (!repeated.empty())
    comment_lines(out, "    ",
                  fmt::format("TODO: the URL repeats query parameters ({}); add them to the "
                              "request path as the API expects them",
                              fmt::join(repeated, ", ")));
  if (!params.empty()) {
    std::vector<std::string> ps;
    for (const auto& [n, v] : params) ps.push_back(n + ": " + v);
    out += fmt::format("    params: {{ {} }}\n", fmt::join(ps, ", "));
  }
  if (!p.record_fields.empty()) {
    std::vector<std::string> shown(
        p.record_fields.begin(),
        p.record_fields.begin() +
            static_cast<std::ptrdiff_t>(std::min<size_t>(p.record_fields.size(), 12)));
    std::string more = p.record_fields.size() > shown.size()
                           ? fmt::format(" and {} more", p.record_fields.size() - shown.size())
                           : "";
    comment_lines(out, "    ",
                  fmt::format("Fields of a record: {}{}.", fmt::join(shown, ", "), more));
  }
  if (p.records.path.empty())
    comment_lines(out, "    ", "Records: " + p.records.evidence + ".");
  else
    out += fmt::format("    records: {}   # {}\n", yaml_scalar(p.records.path),
                       printable(p.records.evidence));
  // The key.
  if (p.key.fields.empty()) {
    comment_lines(out, "    ",
                  "TODO: name the field(s) that identify a record: " + p.key.evidence +
                      ". `id` below is a guess.");
    out += "    key: { id: id }\n";
  } else {
    std::vector<std::string> ks;
    for (const auto& f : p.key.fields) {
      std::string column = f;
      if (f.starts_with("_cascade") || f == "_version" || f == "_hash" || f == "_deleted_at")
        column = "record" + f;
      ks.push_back(column + ": " + f);
    }
    if (!p.key.certain)
      comment_lines(out, "    ", "TODO: confirm the key: " + p.key.evidence + ".");
    out += fmt::format("    key: {{ {} }}", fmt::join(ks, ", "));
    out += p.key.certain ? "   # " + printable(p.key.evidence) + "\n" : "\n";
  }
  // Paging.
  const PaginationGuess& g = p.paginate;
  if (!g.question.empty()) comment_lines(out, "    ", "TODO: " + g.question + ".");
  if (g.type == "single_page") {
    comment_lines(out, "    ", "One response holds the whole listing: " + g.evidence + ".");
  } else {
    std::string line = "paginate: { type: " + g.type;
    for (const auto& [k, v] : g.params) line += ", " + k + ": " + v;
    line += " }";
    if (p.paginate_refused.empty()) {
      out += fmt::format("    {}   # {}\n", line, printable(g.evidence));
    } else {
      comment_lines(out, "    ",
                    fmt::format("Paged: {}. This cascade refused the paginate: line below ({}), "
                                "so only the first page is read until it is enabled.",
                                g.evidence, p.paginate_refused));
      out += fmt::format("    # {}\n", line);
    }
  }
  if (out.find("# TODO:") != std::string::npos)
    out.insert(todo_note, "# Each `# TODO:` below needs your answer before the first sync.\n");
  return out;
}

}  // namespace cascade::cli
