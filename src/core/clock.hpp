// One clock: the kernel stamps events with CLOCK_MONOTONIC (bpf_ktime_get_ns);
// userspace converts to wall time once, with an offset taken at start-up.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace odigos {

class WallClock {
 public:
  WallClock();
  uint64_t to_wall_ns(uint64_t mono_ns) const { return mono_ns + offset_ns_; }
  static uint64_t monotonic_now_ns();

 private:
  uint64_t offset_ns_;
};

// RFC 3339, UTC, nanoseconds: 2026-11-30T15:04:05.123456789Z
std::string format_rfc3339_ns(uint64_t wall_ns);
// The same, appended to `out` (no allocation once `out` has grown).
void append_rfc3339_ns(uint64_t wall_ns, std::string& out);
// The same written at p (room for 40 bytes needed); returns the end.
char* put_rfc3339_ns(char* p, uint64_t wall_ns);
// HH:MM:SS.uuuuuu in local time, for the terminal.
std::string format_time_of_day(uint64_t wall_ns);

} // namespace odigos
