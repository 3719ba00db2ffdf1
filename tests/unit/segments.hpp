// Building decoder input in unit tests: one socket call's segment.
#pragma once

#include <cstdint>
#include <string_view>

#include "protocols/common.hpp"

namespace odigos::test {

constexpr bool kIn = true;   // bytes the traced process read
constexpr bool kOut = false; // bytes it wrote

// A call at `ts` that moved `len` bytes (default: all of `data`) of which
// `data` was captured; `gap`: bytes were lost before it.
inline proto::Segment seg(std::string_view data, uint64_t ts, uint64_t len = 0, bool gap = false) {
  proto::Segment s;
  s.ts_ns = ts;
  s.data = data;
  s.len = len ? len : data.size();
  s.gap_before = gap;
  return s;
}

} // namespace odigos::test
