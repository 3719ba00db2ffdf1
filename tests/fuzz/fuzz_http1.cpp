// libFuzzer target: the HTTP/1 session on arbitrary byte streams. The input is
// split into segments by a small control header so the fuzzer explores
// directions, split points, uncaptured tails, gaps, EOF and close.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "segments.hpp"
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
  const uint64_t ts = odigos::fuzz::for_each_step(data, size, 1, [&](const odigos::fuzz::Step& st) {
    s.on_data(st.ingress, st.seg);
    if (st.eof_after) s.on_eof(st.ingress, st.eof_ts);
    for (auto& ex : s.take_exchanges()) {
      // Invariants every consumer relies on.
      if (ex.response && ex.response->last_ts_ns < ex.response->first_ts_ns) __builtin_trap();
      if (ex.request.body.size() > lim.max_body_keep) __builtin_trap();
      if (!ex.request.method.empty() && ex.request.method.size() > 20) __builtin_trap();
    }
    return !s.done();
  });
  s.on_close(ts, "incomplete");
  s.take_exchanges();
  return 0;
}
