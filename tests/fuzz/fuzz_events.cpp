// libFuzzer target: the ring-buffer event decoder and connection tracker on
// arbitrary records (a compromised or buggy kernel side must not crash us).
// The input is a sequence of [u16 length][record bytes].
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "conn/conn_tracker.hpp"

using namespace odigos;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static WallClock clock;
  TrackerOptions opt;
  opt.max_connections = 8;
  opt.record.show_headers = true;
  opt.record.show_body = 32;
  size_t records = 0;
  ConnTracker t(opt, clock, [&](const Record&) { records++; }, [](uint64_t) {}, nullptr);
  std::vector<uint8_t> rec;
  size_t i = 0;
  while (i + 2 <= size) {
    size_t n = size_t(data[i]) | (size_t(data[i + 1]) << 8);
    i += 2;
    n = std::min(n, size - i);
    // Records arrive 8-byte aligned from libbpf; keep that property.
    rec.assign(data + i, data + i + n);
    t.handle(rec.data(), rec.size());
    t.tick(uint64_t(i) * 1000);
    i += n;
  }
  t.finish(~0ull >> 1, "incomplete");
  return 0;
}
