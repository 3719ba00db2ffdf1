// Turns the kernel's event stream into records: one entry per connection
// (keyed by socket cookie) holding its identity, byte positions and protocol
// session. Single-threaded by design: the ring-buffer reader calls it directly.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "conn/decoder.hpp"
#include "conn/http1_records.hpp"
#include "core/clock.hpp"
#include "core/record.hpp"
#include "protocols/http1/http1.hpp"

extern "C" {
#include "odigos/abi.h"
}

namespace odigos {

struct TrackerStats {
  uint64_t events = 0;
  uint64_t bytes_captured = 0;
  uint64_t records = 0;
  uint64_t connections = 0;
  uint64_t gaps = 0;         // connections' byte streams with lost bytes
  uint64_t not_decoded = 0;  // connections ignored as none of our protocols
  uint64_t evicted = 0;      // connections dropped by the table limit
  uint64_t malformed = 0;    // events too short for their type
  uint64_t desyncs = 0;
  uint64_t tls_connections = 0; // connections decoded from TLS library plaintext
  uint64_t tls_not_decoded = 0; // TLS connections whose plaintext was never seen
};

struct TrackerOptions {
  RecordOptions record;
  size_t max_connections = 65536;
  http1::Limits http_limits;
  DetectOptions detect;
  // Ports traced servers listened on at start: a connection whose role the
  // kernel did not see (opened before tracing) is the server side when its
  // local port is one of them, the client side when its remote port is.
  std::vector<uint16_t> server_ports;
  DecoderLimits limits() const { return DecoderLimits{http_limits}; }
};

// What the trace linker learns from the connections besides their records.
class ConnObserver {
 public:
  virtual ~ConnObserver() = default;
  // Addresses of a traced connection, once known.
  virtual void conn_open(uint64_t cookie, uint32_t pid, const ot_addr& local,
                         const ot_addr& remote) = 0;
  // A server connection read request bytes: the thread, its R14 (the
  // goroutine in Go programs), and when the bytes arrived (kernel clock).
  virtual void server_request_bytes(uint64_t cookie, uint32_t pid, uint32_t tid, uint64_t ctx,
                                    uint64_t ts) = 0;
  // No more records will come from this connection.
  virtual void conn_end(uint64_t cookie) = 0;
  // Goroutine `parent` of Go process pid started goroutine `child` (g pointers;
  // parent 0: not known) at ts (kernel clock).
  virtual void go_spawn(uint32_t /*pid*/, uint64_t /*parent*/, uint64_t /*child*/, uint64_t /*ts*/) {}
  // Goroutine g of Go process pid ended at ts.
  virtual void go_exit(uint32_t /*pid*/, uint64_t /*g*/, uint64_t /*ts*/) {}
};

class ConnTracker {
 public:
  // The record is valid during the call only; the receiver may modify it
  // (the trace linker gives it its span ids in place).
  using EmitFn = std::function<void(Record&)>;
  using IgnoreFn = std::function<void(uint64_t cookie)>;
  using ProcFn = std::function<void(const ot_proc_event&)>;

  ConnTracker(TrackerOptions opt, const WallClock& clock, EmitFn emit, IgnoreFn ignore,
              ProcFn on_proc);
  ~ConnTracker();

  // One ring-buffer record. Returns false when it was malformed (counted).
  bool handle(const void* data, size_t size);
  // Finalises connections closed more than the grace period ago (kernel
  // clock). Call once per reader round.
  void tick(uint64_t now_mono_ns);
  // Bytes of a connection can reach us after its close event (a peer's reset
  // handled inside the owner's send; events of other CPUs): a closed
  // connection is finalised this long after the close.
  static constexpr uint64_t kCloseGraceNs = 200'000'000;
  // The note of a TLS connection whose plaintext was never seen.
  static constexpr const char* kTlsNotDecoded =
      "encrypted (TLS), not decoded: no TLS library call seen on it";
  // End of tracing: every pending request becomes an incomplete record.
  void finish(uint64_t now_mono_ns, const char* error_type);
  // Name of a process, cached.
  const std::string& command_of(uint32_t tgid);
  const TrackerStats& stats() const { return stats_; }
  void set_observer(ConnObserver* o) { observer_ = o; }
  size_t open_connections() const { return conns_.size(); }

 private:
  struct Conn;
  Conn& conn_for(uint64_t cookie, uint32_t tgid, uint8_t role, uint64_t ts);
  Conn* find(uint64_t cookie);
  void touch(Conn& c); // most recently active: last to be evicted
  void on_data(const ot_data_event& ev, const uint8_t* payload);
  void on_conn(const ot_conn_event& ev);
  void drain(Conn& c, uint64_t end_hint);
  void check_verdict(uint64_t cookie, Conn& c, uint64_t ts);
  void emit_note(Conn& c, const char* protocol, const char* note, uint64_t ts);
  // TLS ciphertext without plaintext (yet): held without a decoder.
  void hold_ciphertext(uint64_t cookie, Conn& c, const char* protocol, uint64_t ts, uint64_t len);
  void give_up_ciphertext(uint64_t cookie, Conn& c);
  void start_plaintext(Conn& c, const char* library);
  static constexpr uint64_t kCiphertextGiveUp = 256 * 1024;
  // No more decoding on c (done, or `not_ours`: counted in not_decoded).
  void stop_decoding(uint64_t cookie, Conn& c, bool not_ours);
  // Segments without a recognised protocol before a connection is ignored.
  static constexpr int kDetectGiveUp = 4;
  void close_conn(uint64_t cookie, uint64_t ts, const char* error_type);
  void schedule_close(uint64_t cookie, uint64_t ts, const char* error_type);
  void evict_if_full();

  TrackerOptions opt_;
  const WallClock& clock_;
  EmitFn emit_;
  IgnoreFn ignore_;
  ProcFn on_proc_;
  ConnObserver* observer_ = nullptr;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<uint32_t, std::string> comms_;
  std::vector<uint64_t> closing_; // cookies waiting for their grace period
  std::list<uint64_t> lru_;       // cookies, least recently active first
  TrackerStats stats_;
  Record scratch_; // reused for every HTTP record: no allocation per record once warm
};

} // namespace odigos
