// IANA time zones from the system tz database (TZif files under /usr/share/zoneinfo, RFC 8536),
// so a schedule written for Europe/Berlin fires at Berlin's wall-clock time in every season.
// cascade reads the files itself rather than through the C library, whose time-zone state is
// process-wide (TZ, tzset) and so unusable for several zones at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace cascade {

// A zone that cannot be used: an unknown or refused name, or a file that is not valid TZif.
// what() names the zone and the reason, e.g. "unknown time zone 'Europe/Berln' (no such zone in
// /usr/share/zoneinfo)".
class TimeZoneError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Wall-clock time in some zone, as seconds counted as if the zone were UTC (2026-03-29 02:30
// local is the same count as 2026-03-29T02:30:00Z).
using LocalSeconds = std::chrono::local_seconds;

// What a wall-clock time corresponds to in a zone.
struct LocalTimeInfo {
  enum class Kind {
    Unique,  // the clock shows it exactly once
    Gap,     // the clock jumps over it (spring forward): it never exists
    Fold,    // the clock shows it twice (fall back)
  } kind = Kind::Unique;
  // Unique: the instant. Fold: the first of the two instants. Gap: the transition, i.e. the
  // instant the clock jumps past this wall-clock time.
  TimePoint first;
  // Fold: the second instant. Otherwise equal to `first`.
  TimePoint second;
};

// An immutable zone: the transitions of its TZif file and, for instants after the last of them,
// the rule of the file's POSIX TZ footer (e.g. "CET-1CEST,M3.5.0,M10.5.0/3"), so times decades
// ahead still get daylight saving time right. Copies share the data; every member is const, so
// one TimeZone may be used from any number of threads at once.
class TimeZone {
 public:
  // UTC: offset 0 at every instant, no file read.
  static TimeZone utc();

  // The zone `name` (e.g. "Europe/Berlin", "UTC") from /usr/share/zoneinfo. Refuses, with
  // TimeZoneError, names that could reach outside that directory or are no IANA name (empty,
  // leading '/', a `.` or `..` component, empty components, characters other than letters,
  // digits and `_+-.`), names of no zone, and files that are not valid TZif. Zones with leap
  // seconds (right/...) are refused: their transition times are not UTC.
  static TimeZone load(std::string_view name);

  // The zone in `tzif`, the bytes of a TZif file (versions 1 to 4), named `name`. Throws
  // TimeZoneError on malformed data.
  static TimeZone from_tzif(std::string_view name, std::string_view tzif);

  // The name it was loaded as ("UTC" for utc()).
  const std::string& name() const;

  // Seconds east of UTC in effect at `t` (3600 for Berlin in winter, -14400 for New York in
  // summer).
  int32_t offset_at(TimePoint t) const;

  // The wall-clock time at `t`, to the second (milliseconds are dropped).
  LocalSeconds to_local(TimePoint t) const;

  // The instant(s) at which the clock of this zone shows `local`.
  LocalTimeInfo from_local(LocalSeconds local) const;

  struct Data;  // the parsed file; defined in timezone.cpp

 private:
  explicit TimeZone(std::shared_ptr<const Data> d) : d_(std::move(d)) {}
  std::shared_ptr<const Data> d_;
};

}  // namespace cascade
