// libFuzzer target: the MySQL session on arbitrary byte streams. The input is
// split into segments by a small control header so the fuzzer explores
// directions, split points, uncaptured tails, gaps, EOF and close.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "protocols/mysql/mysql.hpp"
#include "segments.hpp"

using namespace odigos::mysql;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Side side = Side(data[0] % 3);
  Limits lim;
  lim.max_text = 1 + data[1] % 128;
  lim.max_pending = 8;
  lim.max_statements = 4;
  Session s(side, lim);
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
  const uint64_t ts = odigos::fuzz::for_each_step(
      data, size, 2,
      [&](const odigos::fuzz::Step& st) {
        fed += st.seg.len;
        s.on_data(st.ingress, st.seg);
        if (st.eof_after) s.on_eof(st.ingress, st.eof_ts);
        check(s.take_exchanges());
        return !s.done();
      },
      {0, 7, 100, 70000});
  s.on_close(ts, "incomplete");
  check(s.take_exchanges());
  if (!s.done()) __builtin_trap();
  return 0;
}
