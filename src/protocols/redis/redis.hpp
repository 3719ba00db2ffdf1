// Redis decoding (RESP2 and RESP3) for one connection: framing, parsing and
// command/reply pairing, including pipelining, MULTI/EXEC, pub/sub, RESP3
// pushes, MONITOR, CLIENT REPLY OFF/SKIP/ON, inline (telnet-style) commands,
// values larger than the capture and lost bytes. Pure logic over byte
// segments: no BPF, no I/O, no clocks (times come in with the segments).
//
// Values are parsed in place; only a line split across segments is copied,
// and bulk strings are counted, never buffered (only their first
// Limits::max_arg_bytes are kept), so memory per connection is bounded by
// Limits and the exchanges not yet taken.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common.hpp"

namespace odigos::redis {

using Segment = proto::Segment;
using Side = proto::Side;

struct Limits {
  size_t max_args = 16;                   // arguments kept per command (argc counts them all)
  size_t max_arg_bytes = 128;             // bytes kept per argument, reply value, error message
  size_t max_pending = 1024;              // commands awaiting replies per connection
  uint64_t max_bulk_len = 512ull << 20;   // longest bulk string accepted (proto-max-bulk-len)
  uint64_t max_aggregate = 1ull << 32;    // most elements accepted in one array/map/set/push
  size_t max_line = 64 * 1024;            // longest simple string/error or inline command line
};

struct Command {
  // The first Limits::max_args arguments, each cut at max_arg_bytes;
  // args[0] is the command name as sent (any case).
  std::vector<std::string> args;
  uint64_t argc = 0;            // true number of arguments
  bool inline_command = false;  // telnet-style line ("PING\r\n") rather than a RESP array
  bool truncated = false;       // arguments dropped or cut, or bytes not captured
  bool complete = false;        // false: ended early (connection closed, bytes lost)
  uint64_t first_ts_ns = 0;     // segment that carried the first byte
  uint64_t last_ts_ns = 0;      // segment that carried the last byte
  uint64_t bytes = 0;           // on the wire
};

struct Reply {
  // RESP type byte of the value (after any RESP3 attribute):
  // + - : $ * % ~ _ , # ( = ! >
  char type = 0;
  bool error = false;           // simple error '-' or blob error '!'
  bool null = false;            // $-1, *-1 or RESP3 '_'
  std::string error_prefix;     // first word of the error: "ERR", "WRONGTYPE", "MOVED"...
  std::string error_message;    // whole error text, prefix included, cut at max_arg_bytes
  // Scalars: simple string, bulk string prefix, double/big number text,
  // boolean "t"/"f", verbatim string text (format prefix "txt:" removed).
  std::string value;
  int64_t integer = 0;          // ':' value; '#' 1/0; (un)subscribe confirmations: subscription count
  int64_t elements = 0;         // aggregate size as sent (map, attribute: pairs); -1 null
  uint64_t messages = 0;        // RESP values paired with the command: 1, or one per channel
                                // for (P|S)(UN)SUBSCRIBE
  bool truncated = false;       // value or error cut, or bytes not captured
  bool complete = false;        // false: ended early
  uint64_t first_ts_ns = 0;     // first byte of the (first) reply
  uint64_t last_ts_ns = 0;      // last byte of the (last) reply
  uint64_t bytes = 0;           // on the wire, all messages
};

struct Exchange {
  Command command;
  std::optional<Reply> reply;   // absent when no reply was seen
  // Empty, or why the exchange ended without (all of) its reply:
  // "connection_closed", "connection_reset", "incomplete" (whatever on_close
  // was given), "desync" (bytes lost, the reply cannot be told apart).
  std::string error_type;
  bool reply_suppressed = false; // CLIENT REPLY OFF/SKIP: the server sends no reply
};

enum class Verdict { kUndecided, kRedis, kNotRedis };

// Decodes both directions of one connection. Server side: commands are
// ingress, replies egress; client side the reverse; kUnknown: decided from
// the first bytes that look like a command (or an unambiguous reply).
class Session {
 public:
  using Verdict = redis::Verdict;

  explicit Session(Side side, Limits limits = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // `ingress`: bytes the traced process read; otherwise bytes it wrote.
  void on_data(bool ingress, const Segment& seg);
  // The peer closed its side (read returned 0).
  void on_eof(bool ingress, uint64_t ts_ns);
  // The connection is gone: finish what can be finished and turn pending
  // commands into exchanges with `error_type`.
  void on_close(uint64_t ts_ns, std::string_view error_type);

  // Completed exchanges, in command order, since the last call.
  std::vector<Exchange> take_exchanges();
  // The same into `out` (cleared first), whose storage the session keeps for
  // the next batch: a caller reusing one vector allocates nothing per call.
  void take_exchanges(std::vector<Exchange>& out);

  Side side() const;
  Verdict verdict() const;
  // True once the connection is known not to carry Redis: stop feeding it.
  bool done() const;
  // Counters for the summary.
  uint64_t desyncs() const;   // framing lost (bytes lost or unparseable), resynchronised
  uint64_t pushes() const;    // out-of-band messages: pub/sub messages, RESP3 pushes, MONITOR lines
  uint64_t unpaired() const;  // replies that answered no known command (lost, or before tracing)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Protocol detection from a connection's first client bytes: a RESP array
// of bulk strings ("*N\r\n$M\r\n" and a name-like first argument) or an
// inline line starting with a known command name ("PING\r\n"). Never true for
// HTTP request lines, TLS, PostgreSQL or MySQL client bytes. Cheap: looks at
// the first line or two only.
bool looks_like_redis_command(std::string_view first_bytes);
// A known Redis command name (case-insensitive), e.g. "get", "CLIENT".
bool is_command_name(std::string_view name);

} // namespace odigos::redis
