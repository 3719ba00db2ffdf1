// libFuzzer target: the HTTP/1 session on arbitrary byte streams. The input is
// split into segments by a small control header so the fuzzer explores
// directions, split points, uncaptured tails, gaps, EOF and close.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocols/http1/http1.hpp"

using namespace odigos::http1;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Side side = Side(data[0] % 3);
  Limits lim;
  lim.max_head_bytes = 2048;
  lim.max_body_keep = 64;
  lim.max_pending = 16;
  Session s(side, lim);
  size_t i = 1;
  uint64_t ts = 1;
  // Each segment: [ctl][len] then len bytes. ctl bit0 ingress, bit1 gap,
  // bit2 eof after, bits 3-4: uncaptured tail 0/7/100/5000 bytes.
  while (i + 2 <= size) {
    uint8_t ctl = data[i], len = data[i + 1];
    i += 2;
    size_t n = std::min<size_t>(len, size - i);
    static constexpr uint64_t kTail[4] = {0, 7, 100, 5000};
    Segment seg;
    seg.ts_ns = ts++;
    seg.data = std::string_view(reinterpret_cast<const char*>(data + i), n);
    seg.len = n + kTail[(ctl >> 3) & 3];
    seg.gap_before = ctl & 2;
    bool ingress = ctl & 1;
    s.on_data(ingress, seg);
    if (ctl & 4) s.on_eof(ingress, ts++);
    i += n;
    for (auto& ex : s.take_exchanges()) {
      // Invariants every consumer relies on.
      if (ex.response && ex.response->last_ts_ns < ex.response->first_ts_ns) __builtin_trap();
      if (ex.request.body.size() > lim.max_body_keep) __builtin_trap();
      if (!ex.request.method.empty() && ex.request.method.size() > 20) __builtin_trap();
    }
    if (s.done()) break;
  }
  s.on_close(ts, "incomplete");
  s.take_exchanges();
  return 0;
}
