// libFuzzer target: the Redis session on arbitrary byte streams. The input is
// split into segments by a small control header so the fuzzer explores
// directions, split points, uncaptured tails, gaps, EOF and close.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "segments.hpp"
#include "protocols/redis/redis.hpp"

using namespace odigos::redis;

namespace {

void check(const Exchange& ex, const Limits& lim, uint64_t& last_cmd_ts) {
  const Command& c = ex.command;
  // Invariants every consumer relies on.
  if (c.last_ts_ns < c.first_ts_ns) __builtin_trap();
  if (c.first_ts_ns < last_cmd_ts) __builtin_trap(); // exchanges come in command order
  last_cmd_ts = c.first_ts_ns;
  if (c.args.size() > lim.max_args) __builtin_trap();
  if (c.argc > 0 && c.args.size() > c.argc) __builtin_trap();
  for (const auto& a : c.args)
    if (a.size() > lim.max_arg_bytes) __builtin_trap();
  if (ex.reply) {
    const Reply& r = *ex.reply;
    if (r.last_ts_ns < r.first_ts_ns) __builtin_trap();
    if (r.value.size() > lim.max_arg_bytes || r.error_message.size() > lim.max_arg_bytes ||
        r.error_prefix.size() > 32)
      __builtin_trap();
    if (r.messages == 0) __builtin_trap();
    if (r.error != (r.type == '-' || r.type == '!')) __builtin_trap();
  }
  if (ex.reply_suppressed && ex.reply && ex.reply->messages > 1) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Side side = Side(data[0] % 3);
  Limits lim;
  lim.max_args = 4;
  lim.max_arg_bytes = 16;
  lim.max_pending = 8;
  lim.max_line = 256;
  lim.max_bulk_len = 1 << 20;
  lim.max_aggregate = 1 << 20;
  Session s(side, lim);
  uint64_t last_cmd_ts = 0, exchanges = 0, budget = 0;
  const uint64_t ts = odigos::fuzz::for_each_step(data, size, 1, [&](const odigos::fuzz::Step& st) {
    s.on_data(st.ingress, st.seg);
    if (st.eof_after) s.on_eof(st.ingress, st.eof_ts);
    // Every exchange stands for command bytes or a loss: output is bounded
    // by input (no exchange out of nothing).
    budget += st.seg.data.size() + 1;
    for (const auto& ex : s.take_exchanges()) {
      check(ex, lim, last_cmd_ts);
      if (++exchanges > budget) __builtin_trap();
    }
    return !s.done();
  });
  s.on_close(ts, "incomplete");
  for (const auto& ex : s.take_exchanges()) check(ex, lim, last_cmd_ts);
  return 0;
}
