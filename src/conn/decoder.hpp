// One protocol decoder on one connection, as the connection tracker sees it:
// bytes in, records out. Each protocol implements it in src/conn/<p>_decoder.cpp
// over its pure decoder in src/protocols/<p>/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "conn/http1_records.hpp"
#include "conn/protocol.hpp"
#include "core/clock.hpp"
#include "core/record.hpp"
#include "protocols/common.hpp"
#include "protocols/http1/http1.hpp"

namespace odigos {

// What a decoder needs to turn its exchanges into records.
struct RecordOut {
  const ConnIdentity& id;
  const WallClock& clock;
  const RecordOptions& opt;
  Record& scratch;                                // reused: cleared per record
  const std::function<void(Record&)>& emit; // valid during the call only
  uint64_t& records;                              // counter
};

struct DecoderLimits {
  http1::Limits http;
};

// The protocol of a connection from its first captured bytes in one
// direction (`ingress`: read by the traced process), the traced side (from
// the kernel) and its ports. kUnknown: none of ours.
Protocol detect_protocol(std::string_view first, bool ingress, proto::Side side,
                         uint16_t local_port, uint16_t remote_port, const DetectOptions& opt);

class Decoder;
std::unique_ptr<Decoder> make_decoder(Protocol p, proto::Side side, const DecoderLimits& lim);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual Protocol protocol() const = 0;
  virtual void on_data(bool ingress, const proto::Segment& seg) = 0;
  virtual void on_eof(bool ingress, uint64_t ts_ns) = 0;
  virtual void on_close(uint64_t ts_ns, std::string_view error_type) = 0;
  // Emits the exchanges finished since the last call. `end_hint_ns`: the
  // time to end incomplete ones at.
  virtual void drain(RecordOut& out, uint64_t end_hint_ns) = 0;
  // Nothing more can be decoded: the caller stops feeding the connection and
  // has the kernel ignore it.
  virtual bool done() const = 0;
  // Why it is done, when that deserves a connection-level record (e.g.
  // "http2, not decoded yet"); else nullptr. (An encrypted() connection's
  // record is the tracker's: its plaintext may still come.)
  virtual const char* done_note() const { return nullptr; }
  // The protocol named in that record ("http2", "postgresql"...).
  virtual const char* done_protocol() const { return to_string(protocol()); }
  // Done because TLS follows (e.g. PostgreSQL's SSLRequest answered 'S'):
  // its plaintext may still come from a TLS library call.
  virtual bool encrypted() const { return false; }
  // The connection turned out not to be this protocol (counted as ignored).
  virtual bool rejected() const = 0;
  virtual proto::Side side() const = 0;
  virtual uint64_t desyncs() const = 0;
};

std::unique_ptr<Decoder> make_http1_decoder(proto::Side side, const DecoderLimits& lim);
std::unique_ptr<Decoder> make_redis_decoder(proto::Side side);
std::unique_ptr<Decoder> make_postgres_decoder(proto::Side side);
std::unique_ptr<Decoder> make_mysql_decoder(proto::Side side);

} // namespace odigos
