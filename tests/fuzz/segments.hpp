// The input format shared by the protocol-session fuzz targets: after a
// target's own header bytes, segments of [ctl][len] then len bytes. ctl bit 0:
// ingress; bit 1: bytes lost before it; bit 2: EOF in that direction after it;
// bits 3-4: an uncaptured tail of tails[k] bytes (seg.len > data.size()). So
// the fuzzer explores directions, split points, uncaptured tails, gaps, EOF.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocols/common.hpp"

namespace odigos::fuzz {

struct Step {
  proto::Segment seg;
  bool ingress = false;
  bool eof_after = false;
  uint64_t eof_ts = 0; // when eof_after: the time to give on_eof
};

constexpr std::array<uint64_t, 4> kTails = {0, 7, 100, 5000};

// Calls f(const Step&) for each segment of data[start..size) until f returns
// false. Returns the next unused timestamp (for a final on_close).
template <class F>
uint64_t for_each_step(const uint8_t* data, size_t size, size_t start, F&& f,
                       const std::array<uint64_t, 4>& tails = kTails) {
  size_t i = start;
  uint64_t ts = 1;
  while (i + 2 <= size) {
    const uint8_t ctl = data[i], len = data[i + 1];
    i += 2;
    const size_t n = std::min<size_t>(len, size - i);
    Step st;
    st.seg.ts_ns = ts++;
    st.seg.data = std::string_view(reinterpret_cast<const char*>(data + i), n);
    st.seg.len = n + tails[(ctl >> 3) & 3];
    st.seg.gap_before = ctl & 2;
    st.ingress = ctl & 1;
    st.eof_after = ctl & 4;
    if (st.eof_after) st.eof_ts = ts++;
    i += n;
    if (!f(st)) break;
  }
  return ts;
}

} // namespace odigos::fuzz
