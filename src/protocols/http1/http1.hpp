// HTTP/1.x decoding for one connection: framing, parsing and request/response
// pairing. Pure logic over byte segments: no BPF, no I/O, no clocks (times come
// in with the segments), so every behaviour is unit-tested on byte fixtures.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocols/common.hpp"

namespace odigos::http1 {

using Segment = proto::Segment;
using Side = proto::Side;

struct Header {
  std::string name;  // lower-cased
  std::string value; // as sent, surrounding whitespace trimmed
  Header() = default;
  Header(std::string_view n, std::string_view v) : name(n), value(v) {}
};

struct Message {
  // Request fields.
  std::string method;
  std::string target; // request-target as sent (origin-form, absolute-form, authority-form, "*")
  // Response fields.
  int status = 0;
  std::string reason;
  // Both.
  int minor_version = 1;          // HTTP/1.<minor_version>
  std::vector<Header> headers;
  uint64_t head_size = 0;         // start line + headers + blank line, in bytes
  uint64_t body_size = 0;         // body bytes on the wire as framed (chunked: decoded payload size)
  std::string body;               // captured body prefix (at most Limits::max_body_keep bytes)
  bool body_truncated = false;    // some body bytes were not captured (capture limit or loss)
  bool chunked = false;
  uint64_t first_ts_ns = 0;       // segment that carried the first byte
  uint64_t last_ts_ns = 0;        // segment that carried the last byte
  bool complete = false;          // false: ended early (connection closed, reset, exit)

  const std::string* header(std::string_view lower_name) const;
  // Back to a new message (as Message{}) without building and destroying one:
  // the state a message is left in after it was moved into its exchange. A
  // large body buffer (a message cut off by a desync) is released.
  void clear();
};

struct Exchange {
  Message request;
  std::optional<Message> response;   // absent when no response was seen
  std::vector<Message> informational; // 1xx responses before the final one (100, 103)
  // Set when the exchange did not complete normally: "connection_reset",
  // "connection_closed", "incomplete" (tracing ended), "timeout", "desync".
  std::string error_type;
  bool tunnel = false; // 101 Switching Protocols or a successful CONNECT: later bytes not decoded
};

// What the connection turned out to carry.
enum class Verdict { kUndecided, kHttp1, kHttp2, kNotHttp };

struct Limits {
  size_t max_head_bytes = 64 * 1024; // a start line + headers longer than this is not HTTP
  size_t max_body_keep = 4096;       // body prefix kept per message (for --show body)
  size_t max_pending = 1024;         // unanswered requests kept per connection
  // false: Message::headers holds only the fields the records use (host,
  // user-agent, traceparent, tracestate and the framing fields); true: all
  // of them (--show headers).
  bool keep_all_headers = true;
};

// Decodes both directions of one connection. `side` says which direction
// carries requests: server reads requests (ingress) and writes responses;
// client writes requests (egress) and reads responses. kUnknown: decided from
// the first bytes (a request line in one direction fixes the side).
class Session {
 public:
  explicit Session(Side side, Limits limits = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // `ingress`: bytes the traced process read; otherwise bytes it wrote.
  void on_data(bool ingress, const Segment& seg);
  // The peer closed its side (read returned 0) / the connection ended.
  void on_eof(bool ingress, uint64_t ts_ns);
  // The connection is gone (closed, reset): finish what can be finished and
  // turn pending requests into exchanges with `error_type`.
  void on_close(uint64_t ts_ns, std::string_view error_type);

  // Completed exchanges, in request order, since the last call.
  std::vector<Exchange> take_exchanges();
  // The same into `out` (cleared first), whose storage the session keeps for
  // the next batch: a caller reusing one vector allocates nothing per call.
  void take_exchanges(std::vector<Exchange>& out);

  Side side() const;
  Verdict verdict() const;
  // True once the connection is a tunnel (after 101 / CONNECT 2xx) or not
  // HTTP/1: the caller may stop feeding it bytes (and ignore it in the kernel).
  bool done() const;
  // Counters for the summary.
  uint64_t desyncs() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Helpers exposed for tests and for other modules.
// Parses one message head (start line + headers + CRLFCRLF) at the start of
// `buf`. Returns the number of bytes consumed, 0 when more data is needed, or
// -1 when `buf` cannot be the start of an HTTP/1 message.
long parse_head(std::string_view buf, bool is_request, Message& out);
// True when `buf` starts like an HTTP/1 request line (method SP ...) or status line.
bool looks_like_request(std::string_view buf);
bool looks_like_response(std::string_view buf);
// The HTTP/2 client connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") or a prefix of it.
bool looks_like_h2_preface(std::string_view buf);

} // namespace odigos::http1
