#include "core/timezone.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>
#include <vector>

namespace cascade {
namespace {

constexpr const char* kZoneDir = "/usr/share/zoneinfo";
// No real TZif file comes near this; a bigger one is not a zone and should not be read whole.
constexpr size_t kMaxFileSize = 1 << 20;
// RFC 8536 bounds UT offsets to -89999..93599 s, so every instant whose clock can show a given
// wall-clock time lies within this distance of it.
constexpr int64_t kMaxOffset = 93600;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t seconds_of(TimePoint t) {
  return floor_div(to_millis(t), 1000);
}

TimePoint from_seconds(int64_t s) {
  return from_millis(s * 1000);
}

int64_t days_from_civil(int y, unsigned m, unsigned d) {
  using namespace std::chrono;
  return sys_days(year(y) / month(m) / day(d)).time_since_epoch().count();
}

int civil_year(int64_t days) {
  using namespace std::chrono;
  return static_cast<int>(year_month_day(sys_days(std::chrono::days(days))).year());
}

bool is_leap(int y) {
  return std::chrono::year(y).is_leap();
}

// One rule of a POSIX TZ string: the day and local time of a transition within a year.
struct PosixRule {
  enum class Kind {
    JulianNoLeap,  // Jn: day n (1-365), February 29 never counted
    Julian,        // n: day n (0-365), counting February 29
    MonthWeekDay,  // Mm.w.d: weekday d (0 = Sunday) of week w (5 = last) of month m
  } kind = Kind::MonthWeekDay;
  int day = 0, week = 0, month = 0;
  int32_t time = 7200;  // seconds after local midnight, in the offset in effect before it

  // Wall-clock seconds (in the offset before the transition) of the transition in year y.
  int64_t local_seconds(int y) const {
    int64_t days = days_from_civil(y, 1, 1);
    switch (kind) {
      case Kind::JulianNoLeap:
        days += day - 1 + ((is_leap(y) && day >= 60) ? 1 : 0);
        break;
      case Kind::Julian:
        days += day;
        break;
      case Kind::MonthWeekDay: {
        int64_t first = days_from_civil(y, static_cast<unsigned>(month), 1);
        int first_wd = static_cast<int>(((first % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
        int64_t d = first + (day - first_wd + 7) % 7 + 7 * (week - 1);
        int64_t next_month = month == 12 ? days_from_civil(y + 1, 1, 1)
                                         : days_from_civil(y, static_cast<unsigned>(month + 1), 1);
        while (d >= next_month) d -= 7;
        days = d;
        break;
      }
    }
    return days * 86400 + time;
  }
};

// The footer of a TZif v2+ file: the zone's rule for instants after its last transition.
struct PosixTz {
  int32_t std_offset = 0;  // east of UTC
  bool has_dst = false;
  int32_t dst_offset = 0;
  PosixRule start, end;  // into and out of daylight saving time
};

struct Transition {
  int64_t at;      // seconds since the epoch
  int32_t offset;  // in effect from `at` on
};

class TzStringParser {
 public:
  TzStringParser(std::string_view s, const std::string& zone) : s_(s), zone_(zone) {}

  PosixTz parse() {
    PosixTz tz;
    name();
    tz.std_offset = -offset("standard offset");
    if (at_end()) return tz;
    tz.has_dst = true;
    name();
    tz.dst_offset = tz.std_offset + 3600;
    if (!at_end() && s_[i_] != ',') tz.dst_offset = -offset("daylight offset");
    if (at_end()) {
      // POSIX leaves the default rule to the implementation; this is the current US rule,
      // which is what glibc's posixrules file says too.
      tz.start = PosixRule{PosixRule::Kind::MonthWeekDay, 0, 2, 3, 7200};
      tz.end = PosixRule{PosixRule::Kind::MonthWeekDay, 0, 1, 11, 7200};
      return tz;
    }
    expect(',');
    tz.start = rule();
    expect(',');
    tz.end = rule();
    if (!at_end()) bad("unexpected '" + std::string(s_.substr(i_)) + "'");
    return tz;
  }

 private:
  bool at_end() const { return i_ >= s_.size(); }

  [[noreturn]] void bad(const std::string& why) const {
    throw TimeZoneError("time zone '" + zone_ + "' has an unsupported TZ rule '" + std::string(s_) +
                        "': " + why);
  }

  void expect(char c) {
    if (at_end() || s_[i_] != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }

  void name() {
    if (!at_end() && s_[i_] == '<') {
      size_t close = s_.find('>', i_);
      if (close == std::string_view::npos) bad("unterminated '<'");
      i_ = close + 1;
      return;
    }
    size_t from = i_;
    while (!at_end() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ - from < 3) bad("a zone abbreviation needs at least 3 letters");
  }

  int number(int max) {
    if (at_end() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) bad("expected a number");
    int v = 0;
    while (!at_end() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      v = v * 10 + (s_[i_++] - '0');
      if (v > max) bad("number out of range");
    }
    return v;
  }

  // [+-]hh[:mm[:ss]] in seconds; hours up to `max_hours`.
  int32_t hms(int max_hours) {
    int sign = 1;
    if (!at_end() && (s_[i_] == '+' || s_[i_] == '-')) sign = s_[i_++] == '-' ? -1 : 1;
    int32_t v = number(max_hours) * 3600;
    if (!at_end() && s_[i_] == ':') {
      ++i_;
      v += number(59) * 60;
      if (!at_end() && s_[i_] == ':') {
        ++i_;
        v += number(59);
      }
    }
    return sign * v;
  }

  int32_t offset(const char* what) {
    if (at_end()) bad(std::string("missing ") + what);
    return hms(24);
  }

  PosixRule rule() {
    PosixRule r;
    if (!at_end() && s_[i_] == 'J') {
      ++i_;
      r.kind = PosixRule::Kind::JulianNoLeap;
      r.day = number(365);
      if (r.day < 1) bad("Jn takes n from 1 to 365");
    } else if (!at_end() && s_[i_] == 'M') {
      ++i_;
      r.kind = PosixRule::Kind::MonthWeekDay;
      r.month = number(12);
      expect('.');
      r.week = number(5);
      expect('.');
      r.day = number(6);
      if (r.month < 1 || r.week < 1) bad("Mm.w.d takes m 1-12, w 1-5, d 0-6");
    } else {
      r.kind = PosixRule::Kind::Julian;
      r.day = number(365);
    }
    if (!at_end() && s_[i_] == '/') {
      ++i_;
      r.time = hms(167);  // RFC 8536 allows -167 to 167 hours
    }
    return r;
  }

  std::string_view s_;
  const std::string& zone_;
  size_t i_ = 0;
};

}  // namespace

struct TimeZone::Data {
  std::string name;
  std::vector<int64_t> times;     // transition instants, ascending
  std::vector<uint8_t> type_of;   // per transition, an index into offsets
  std::vector<int32_t> offsets;   // per local time type; at least one
  std::optional<PosixTz> footer;  // for instants from the last transition on
  bool fixed = false;             // offsets[0] everywhere (UTC)

  // The footer's transitions in years y0..y1, in order. At equal instants, leaving daylight
  // saving time sorts first, so a rule that ends and restarts it at one instant ("all year
  // DST", e.g. J365/25 to 0/0) keeps it.
  std::vector<Transition> footer_transitions(int y0, int y1) const {
    std::vector<Transition> out;
    for (int y = y0; y <= y1; ++y) {
      out.push_back({footer->start.local_seconds(y) - footer->std_offset, footer->dst_offset});
      out.push_back({footer->end.local_seconds(y) - footer->dst_offset, footer->std_offset});
    }
    std::stable_sort(out.begin(), out.end(), [&](const Transition& a, const Transition& b) {
      if (a.at != b.at) return a.at < b.at;
      return a.offset == footer->std_offset && b.offset != footer->std_offset;
    });
    return out;
  }

  int year_of(int64_t secs) const {
    return civil_year(floor_div(secs + footer->std_offset, 86400));
  }

  bool footer_applies(int64_t secs) const {
    return footer && (times.empty() || secs >= times.back());
  }

  int32_t footer_offset(int64_t secs) const {
    if (!footer->has_dst) return footer->std_offset;
    int y = year_of(secs);
    int32_t off = footer->std_offset;
    for (const Transition& t : footer_transitions(y - 1, y + 1))
      if (t.at <= secs) off = t.offset;
    return off;
  }

  int32_t offset(int64_t secs) const {
    if (fixed) return offsets[0];
    if (footer_applies(secs)) return footer_offset(secs);
    auto it = std::upper_bound(times.begin(), times.end(), secs);
    if (it == times.begin()) return offsets[0];  // RFC 8536: type 0 before the first transition
    return offsets[type_of[static_cast<size_t>(it - times.begin()) - 1]];
  }

  // Transitions at instants in (from, to], in order.
  std::vector<Transition> transitions(int64_t from, int64_t to) const {
    std::vector<Transition> out;
    if (fixed) return out;
    auto it = std::upper_bound(times.begin(), times.end(), from);
    for (; it != times.end() && *it <= to; ++it)
      out.push_back({*it, offsets[type_of[static_cast<size_t>(it - times.begin())]]});
    if (footer && footer->has_dst) {
      int64_t after = times.empty() ? from : std::max(from, times.back());
      if (after < to)
        for (const Transition& t : footer_transitions(year_of(after) - 1, year_of(to) + 1))
          if (t.at > after && t.at <= to) out.push_back(t);
    }
    return out;
  }
};

namespace {

class TzifReader {
 public:
  TzifReader(std::string_view data, const std::string& zone) : d_(data), zone_(zone) {}

  TimeZone::Data read() {
    Header h = header(0);
    size_t at = 44;
    if (h.version == 0) return block(h, at, 4);
    // Version 2+: skip the 32-bit block; the 64-bit one and the footer follow it.
    at += h.timecnt * 5 + h.typecnt * 6 + h.charcnt + h.leapcnt * 8 + h.isstdcnt + h.isutcnt;
    Header h2 = header(at);
    at += 44;
    TimeZone::Data z = block(h2, at, 8);
    at += h2.timecnt * 9 + h2.typecnt * 6 + h2.charcnt + h2.leapcnt * 12 + h2.isstdcnt + h2.isutcnt;
    if (at >= d_.size() || d_[at] != '\n') bad("missing footer");
    size_t close = d_.find('\n', at + 1);
    if (close == std::string_view::npos) bad("unterminated footer");
    std::string_view tz = d_.substr(at + 1, close - at - 1);
    if (!tz.empty()) z.footer = TzStringParser(tz, zone_).parse();
    return z;
  }

 private:
  struct Header {
    int version;  // 0 for version 1, else 2, 3, 4...
    size_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
  };

  [[noreturn]] void bad(const std::string& why) const {
    throw TimeZoneError("time zone '" + zone_ + "' is not a valid TZif file: " + why);
  }

  void need(size_t at, size_t n) const {
    if (at > d_.size() || d_.size() - at < n) bad("truncated");
  }

  int64_t be(size_t at, int bytes) const {
    need(at, static_cast<size_t>(bytes));
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(d_[at + i]);
    if (bytes == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
    return static_cast<int64_t>(v);
  }

  Header header(size_t at) const {
    need(at, 44);
    if (d_.substr(at, 4) != "TZif") bad("no TZif magic");
    char v = d_[at + 4];
    Header h{};
    h.version = v == '\0' ? 0 : v - '0';
    if (h.version != 0 && h.version < 2) bad("unknown version");
    size_t* counts[] = {&h.isutcnt, &h.isstdcnt, &h.leapcnt, &h.timecnt, &h.typecnt, &h.charcnt};
    for (int i = 0; i < 6; ++i) {
      int64_t c = be(at + 20 + 4 * static_cast<size_t>(i), 4);
      if (c < 0 || c > static_cast<int64_t>(kMaxFileSize)) bad("bad counts");
      *counts[i] = static_cast<size_t>(c);
    }
    if (h.typecnt == 0 || h.typecnt > 256) bad("bad number of local time types");
    if (h.leapcnt != 0)
      throw TimeZoneError("time zone '" + zone_ +
                          "' counts leap seconds (a right/ zone), which cascade does not support");
    return h;
  }

  TimeZone::Data block(const Header& h, size_t at, int time_size) const {
    TimeZone::Data z;
    z.name = zone_;
    for (size_t i = 0; i < h.timecnt; ++i) {
      int64_t t = be(at + i * static_cast<size_t>(time_size), time_size);
      if (!z.times.empty() && t <= z.times.back()) bad("transitions out of order");
      z.times.push_back(t);
    }
    at += h.timecnt * static_cast<size_t>(time_size);
    need(at, h.timecnt);
    for (size_t i = 0; i < h.timecnt; ++i) {
      auto type = static_cast<uint8_t>(d_[at + i]);
      if (type >= h.typecnt) bad("transition to an undefined local time type");
      z.type_of.push_back(type);
    }
    at += h.timecnt;
    for (size_t i = 0; i < h.typecnt; ++i) {
      int64_t off = be(at + 6 * i, 4);
      if (off < -89999 || off > 93599) bad("UT offset out of range");  // RFC 8536 3.2
      z.offsets.push_back(static_cast<int32_t>(off));
    }
    return z;
  }

  std::string_view d_;
  const std::string& zone_;
};

// Refuses what could name a file outside the zone directory, or no zone at all.
void check_name(std::string_view name) {
  auto refuse = [&](const std::string& why) {
    throw TimeZoneError("invalid time zone name '" + std::string(name) + "': " + why);
  };
  if (name.empty()) refuse("empty");
  if (name.size() > 255) refuse("too long");
  if (name.front() == '/') refuse("must be an IANA name such as Europe/Berlin, not a path");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '+' &&
        c != '-' && c != '.')
      refuse("only letters, digits and _ + - . / are allowed");
  size_t from = 0;
  for (;;) {
    size_t slash = name.find('/', from);
    std::string_view part = name.substr(from, slash - from);
    if (part.empty()) refuse("empty path component");
    if (part == "." || part == "..") refuse("'.' and '..' are not allowed");
    if (slash == std::string_view::npos) break;
    from = slash + 1;
  }
}

}  // namespace

TimeZone TimeZone::utc() {
  static const std::shared_ptr<const Data> kUtc = [] {
    auto d = std::make_shared<Data>();
    d->name = "UTC";
    d->offsets = {0};
    d->fixed = true;
    return d;
  }();
  return TimeZone(kUtc);
}

TimeZone TimeZone::load(std::string_view name) {
  check_name(name);
  std::string path = std::string(kZoneDir) + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  std::string bytes;
  if (in) {
    bytes.resize(kMaxFileSize + 1);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<size_t>(in.gcount()));
  }
  // A directory (e.g. "Europe") opens but reads nothing; a table such as zone.tab reads but is
  // not TZif: neither is a zone.
  if (bytes.size() < 4 || bytes.compare(0, 4, "TZif") != 0 || bytes.size() > kMaxFileSize)
    throw TimeZoneError("unknown time zone '" + std::string(name) + "' (no such zone in " +
                        kZoneDir + "; expected an IANA name such as Europe/Berlin)");
  return from_tzif(name, bytes);
}

TimeZone TimeZone::from_tzif(std::string_view name, std::string_view tzif) {
  std::string zone(name);
  return TimeZone(std::make_shared<const Data>(TzifReader(tzif, zone).read()));
}

const std::string& TimeZone::name() const {
  return d_->name;
}

int32_t TimeZone::offset_at(TimePoint t) const {
  return d_->offset(seconds_of(t));
}

LocalSeconds TimeZone::to_local(TimePoint t) const {
  int64_t s = seconds_of(t);
  return LocalSeconds(std::chrono::seconds(s + d_->offset(s)));
}

LocalTimeInfo TimeZone::from_local(LocalSeconds local) const {
  int64_t l = local.time_since_epoch().count();
  if (d_->fixed) {
    TimePoint t = from_seconds(l - d_->offsets[0]);
    return {LocalTimeInfo::Kind::Unique, t, t};
  }
  // Every instant showing `l` lies in this window; each offset in effect somewhere in it is a
  // candidate, and a candidate fits when the instant it gives really has that offset.
  int64_t from = l - kMaxOffset, to = l + kMaxOffset;
  std::vector<Transition> ts = d_->transitions(from, to);
  std::vector<int32_t> candidates = {d_->offset(from)};
  for (const Transition& t : ts) candidates.push_back(t.offset);
  std::vector<int64_t> hits;
  for (int32_t o : candidates)
    if (d_->offset(l - o) == o) hits.push_back(l - o);
  std::sort(hits.begin(), hits.end());
  hits.erase(std::unique(hits.begin(), hits.end()), hits.end());
  if (hits.size() == 1)
    return {LocalTimeInfo::Kind::Unique, from_seconds(hits[0]), from_seconds(hits[0])};
  if (hits.size() > 1)
    return {LocalTimeInfo::Kind::Fold, from_seconds(hits.front()), from_seconds(hits.back())};
  // A gap: find the transition whose clock jump passes over `l`.
  int32_t before = candidates[0];
  for (const Transition& t : ts) {
    if (l - before >= t.at && l - t.offset < t.at)
      return {LocalTimeInfo::Kind::Gap, from_seconds(t.at), from_seconds(t.at)};
    before = t.offset;
  }
  // Only inconsistent data gets here (no candidate fits, yet no jump passes over `l`): report
  // a gap at the instant the offset before the window would give.
  TimePoint t = from_seconds(l - candidates[0]);
  return {LocalTimeInfo::Kind::Gap, t, t};
}

}  // namespace cascade
