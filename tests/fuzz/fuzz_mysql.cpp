// libFuzzer target: the MySQL session on arbitrary byte streams. The input is
// split into segments by a small control header so the fuzzer explores
// directions, split points, uncaptured tails, gaps, EOF and close.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "protocols/mysql/mysql.hpp"

using namespace odigos::mysql;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Side side = Side(data[0] % 3);
  Limits lim;
  lim.max_text = 1 + data[1] % 128;
  lim.max_pending = 8;
  lim.max_statements = 4;
  Session s(side, lim);
  size_t i = 2;
  uint64_t ts = 1;
  uint64_t fed = 0;       // bytes on the wire, captured or not
  uint64_t accounted = 0; // bytes the exchanges claim
  size_t exchanges = 0;
  auto check = [&](std::vector<Exchange> xs) {
    for (const Exchange& x : xs) {
      // Invariants every consumer relies on.
      if (x.last_ts_ns < x.first_ts_ns) __builtin_trap();
      if (x.text.size() > lim.max_text) __builtin_trap();
      if (x.error_message.size() > 512 || x.sql_state.size() > 5) __builtin_trap();
      if (x.rows < -1 || x.affected_rows < -1) __builtin_trap();
      if (!x.complete && x.error_type.empty()) __builtin_trap();
      if (x.kind == Exchange::Kind::kHandshake && x.command != 0) __builtin_trap();
      if (x.text_truncated && !x.text_known) __builtin_trap();
      accounted += x.request_bytes + x.response_bytes;
      ++exchanges;
    }
    // Every byte is claimed at most once; an exchange needs at least one packet.
    if (accounted > fed) __builtin_trap();
    if (exchanges > fed / 4 + 1) __builtin_trap();
  };
  // Each segment: [ctl][len] then len bytes. ctl bit0 ingress, bit1 gap,
  // bit2 eof after, bits 3-4: uncaptured tail 0/7/100/70000 bytes.
  while (i + 2 <= size) {
    const uint8_t ctl = data[i], len = data[i + 1];
    i += 2;
    const size_t n = std::min<size_t>(len, size - i);
    static constexpr uint64_t kTail[4] = {0, 7, 100, 70000};
    Segment seg;
    seg.ts_ns = ts++;
    seg.data = std::string_view(reinterpret_cast<const char*>(data + i), n);
    seg.len = n + kTail[(ctl >> 3) & 3];
    seg.gap_before = ctl & 2;
    fed += seg.len;
    const bool ingress = ctl & 1;
    s.on_data(ingress, seg);
    if (ctl & 4) s.on_eof(ingress, ts++);
    i += n;
    check(s.take_exchanges());
    if (s.done()) break;
  }
  s.on_close(ts, "incomplete");
  check(s.take_exchanges());
  if (!s.done()) __builtin_trap();
  return 0;
}
