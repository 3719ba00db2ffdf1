#include "core/clock.hpp"

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

std::string format_rfc3339_ns(uint64_t wall_ns) {
  time_t secs = time_t(wall_ns / 1000000000ull);
  tm t{};
  gmtime_r(&secs, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", t.tm_year + 1900, t.tm_mon + 1,
                     t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, wall_ns % 1000000000ull);
}

std::string format_time_of_day(uint64_t wall_ns) {
  time_t secs = time_t(wall_ns / 1000000000ull);
  tm t{};
  localtime_r(&secs, &t);
  return fmt::format("{:02}:{:02}:{:02}.{:06}", t.tm_hour, t.tm_min, t.tm_sec,
                     (wall_ns % 1000000000ull) / 1000);
}

} // namespace odigos
