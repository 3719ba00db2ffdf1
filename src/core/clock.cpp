#include "core/clock.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace odigos {

static uint64_t read_clock(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

uint64_t WallClock::monotonic_now_ns() { return read_clock(CLOCK_MONOTONIC); }

WallClock::WallClock() {
  // Bracket the realtime read with two monotonic reads to halve the error.
  uint64_t m1 = read_clock(CLOCK_MONOTONIC);
  uint64_t r = read_clock(CLOCK_REALTIME);
  uint64_t m2 = read_clock(CLOCK_MONOTONIC);
  offset_ns_ = r - (m1 + (m2 - m1) / 2);
}

char* put_rfc3339_ns(char* p, uint64_t wall_ns) {
  // The date-and-time part changes once a second: keep the last one.
  thread_local time_t cached_secs = -1;
  thread_local char cached[64];
  thread_local size_t cached_len = 0;
  time_t secs = time_t(wall_ns / 1000000000ull);
  if (secs != cached_secs) {
    tm t{};
    gmtime_r(&secs, &t);
    int n = snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d.", t.tm_year + 1900,
                     t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
    cached_len = n > 0 ? std::min<size_t>(size_t(n), 30) : 0;
    cached_secs = secs;
  }
  std::memcpy(p, cached, cached_len);
  p += cached_len;
  uint64_t ns = wall_ns % 1000000000ull;
  for (int d = 8; d >= 0; d--) {
    p[d] = char('0' + ns % 10);
    ns /= 10;
  }
  p[9] = 'Z';
  return p + 10;
}

void append_rfc3339_ns(uint64_t wall_ns, std::string& out) {
  char buf[48];
  char* end = put_rfc3339_ns(buf, wall_ns);
  out.append(buf, size_t(end - buf));
}

std::string format_rfc3339_ns(uint64_t wall_ns) {
  std::string out;
  append_rfc3339_ns(wall_ns, out);
  return out;
}

std::string format_time_of_day(uint64_t wall_ns) {
  time_t secs = time_t(wall_ns / 1000000000ull);
  tm t{};
  localtime_r(&secs, &t);
  return fmt::format("{:02}:{:02}:{:02}.{:06}", t.tm_hour, t.tm_min, t.tm_sec,
                     (wall_ns % 1000000000ull) / 1000);
}

} // namespace odigos
