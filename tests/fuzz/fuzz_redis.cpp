// libFuzzer target: the Redis session on arbitrary byte streams. The input is
// split into segments by a small control header so the fuzzer explores
// directions, split points, uncaptured tails, gaps, EOF and close.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

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
  size_t i = 1;
  uint64_t ts = 1, last_cmd_ts = 0, exchanges = 0, budget = 0;
  // Each segment: [ctl][len] then len bytes. ctl bit0 ingress, bit1 gap,
  // bit2 eof after, bits 3-4: uncaptured tail 0/7/100/5000 bytes.
  while (i + 2 <= size) {
    const uint8_t ctl = data[i], len = data[i + 1];
    i += 2;
    const size_t n = std::min<size_t>(len, size - i);
    static constexpr uint64_t kTail[4] = {0, 7, 100, 5000};
    Segment seg;
    seg.ts_ns = ts++;
    seg.data = std::string_view(reinterpret_cast<const char*>(data + i), n);
    seg.len = n + kTail[(ctl >> 3) & 3];
    seg.gap_before = ctl & 2;
    const bool ingress = ctl & 1;
    s.on_data(ingress, seg);
    if (ctl & 4) s.on_eof(ingress, ts++);
    i += n;
    // Every exchange stands for command bytes or a loss: output is bounded
    // by input (no exchange out of nothing).
    budget += n + 1;
    for (const auto& ex : s.take_exchanges()) {
      check(ex, lim, last_cmd_ts);
      if (++exchanges > budget) __builtin_trap();
    }
    if (s.done()) break;
  }
  s.on_close(ts, "incomplete");
  for (const auto& ex : s.take_exchanges()) check(ex, lim, last_cmd_ts);
  return 0;
}
