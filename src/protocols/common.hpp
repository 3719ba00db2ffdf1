// Types shared by every protocol decoder. Decoders are pure logic over byte
// segments: no BPF, no I/O, no clocks (times come in with the segments).
#pragma once

#include <cstdint>
#include <string_view>

namespace odigos::proto {

// One socket read or write as the kernel reported it.
struct Segment {
  uint64_t ts_ns = 0;      // when the bytes were on the wire / the call completed (monotonic)
  uint64_t len = 0;        // true number of bytes moved by the call
  std::string_view data;   // captured prefix: data.size() <= len; bytes [data.size(), len) are unknown
  bool gap_before = false; // bytes were lost before this segment (ring buffer overflow)
};

// Which end of the connection the traced process is. kServer: it reads
// requests (ingress) and writes responses; kClient: the reverse; kUnknown:
// the decoder decides from the first bytes.
enum class Side { kUnknown, kServer, kClient };

} // namespace odigos::proto
