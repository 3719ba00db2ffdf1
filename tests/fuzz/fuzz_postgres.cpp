// libFuzzer target: the PostgreSQL session on arbitrary byte streams. The
// input is split into segments by a small control header so the fuzzer
// explores directions, split points, uncaptured tails, gaps, EOF and close.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "segments.hpp"
#include "protocols/postgres/postgres.hpp"

using namespace odigos::pg;

namespace {

void check(const Exchange& x, const Limits& lim) {
  // Invariants every consumer relies on.
  if (x.last_ts_ns < x.first_ts_ns) __builtin_trap();
  if (x.first_response_ts_ns &&
      (x.first_response_ts_ns < x.first_ts_ns || x.first_response_ts_ns > x.last_ts_ns))
    __builtin_trap();
  if (x.text.size() > lim.max_text_keep) __builtin_trap();
  if (!x.text_known && !x.text.empty()) __builtin_trap();
  if (x.error_message.size() > lim.max_error_keep) __builtin_trap();
  if (x.operation.size() > 32) __builtin_trap();
  if (x.command_tag.size() > 1100) __builtin_trap();
  if (x.rows < -1) __builtin_trap();
  if (x.complete && !(x.error_type.empty() || x.error_type == "skipped")) __builtin_trap();
  if (!x.complete && x.error_type.empty()) __builtin_trap();
  if (x.ssl_accepted && x.kind != Exchange::Kind::kSslRequest && x.kind != Exchange::Kind::kGssEncRequest)
    __builtin_trap();
  if (x.copy != Exchange::Copy::kNone && x.kind != Exchange::Kind::kCopy) __builtin_trap();
  if (x.request_bytes == 0) __builtin_trap(); // every exchange starts with a frontend message
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Side side = Side(data[0] % 3);
  Limits lim;
  lim.max_text_keep = 64;
  lim.max_error_keep = 32;
  lim.max_pending = 16;
  lim.max_statements = 4;
  Session s(side, lim);
  uint64_t desyncs = 0;
  bool was_done = false;
  Verdict final_verdict = Verdict::kUndecided;
  const uint64_t ts = odigos::fuzz::for_each_step(data, size, 1, [&](const odigos::fuzz::Step& st) {
    s.on_data(st.ingress, st.seg);
    if (st.eof_after) s.on_eof(st.ingress, st.eof_ts);
    const auto xs = s.take_exchanges();
    if (was_done && !xs.empty()) __builtin_trap(); // done() means nothing more comes
    for (const Exchange& x : xs) check(x, lim);
    if (s.desyncs() < desyncs) __builtin_trap();
    desyncs = s.desyncs();
    if (s.buffered_bytes() > 16 * 1024) __builtin_trap();
    // A verdict that stops decoding is final.
    if (final_verdict != Verdict::kUndecided && s.verdict() != final_verdict) __builtin_trap();
    if (s.verdict() == Verdict::kNotPostgres || s.verdict() == Verdict::kEncrypted) final_verdict = s.verdict();
    was_done = s.done();
    return true;
  });
  s.on_close(ts, "incomplete");
  for (const Exchange& x : s.take_exchanges()) check(x, lim);
  return 0;
}
