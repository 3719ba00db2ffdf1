// PostgreSQL frontend/backend protocol 3.x decoding for one connection:
// framing of both directions, pairing of backend responses with frontend
// messages, prepared-statement bookkeeping. Pure logic over byte segments: no
// BPF, no I/O, no clocks (times come in with the segments).
//
// What becomes an Exchange:
//   kStartup       StartupMessage .. first ReadyForQuery (or ErrorResponse: bad password...)
//   kSslRequest    SSLRequest answered 'S' (ssl_accepted; nothing more is decodable).
//                  Answered 'N': no exchange, decoding continues with the StartupMessage.
//                  Also direct SSL (PostgreSQL 17+, sslnegotiation=direct): a connection
//                  that starts with a TLS ClientHello offering ALPN "postgresql".
//   kGssEncRequest GSSENCRequest answered 'G' (ssl_accepted = encryption accepted); 'N': none.
//   kCancel        CancelRequest (sent on a connection of its own; no response exists)
//   kQuery         one simple Query 'Q' .. its ReadyForQuery; several statements in one
//                  Query are one exchange (rows summed, tag of the last, operation of the first)
//   kExecute       one extended-protocol Execute, from the first message of its group
//                  (Parse/Bind/Describe before it) to its CommandComplete, EmptyQueryResponse,
//                  PortalSuspended or ErrorResponse
//   kPrepare       a Parse that no Execute follows before the next Parse, a Bind of another
//                  statement, or Sync (psql \parse, a driver's prepare, pgbench -M prepared's
//                  first batch); ends when its messages are answered
//   kCopy          a Query or Execute that the server answered with CopyIn/Out/BothResponse;
//                  ends at its CommandComplete (rows from "COPY n"). CopyBoth (replication)
//                  ends at the CopyBothResponse: the stream that follows can last for hours.
//   kFunctionCall  FunctionCall 'F' .. its ReadyForQuery
// Terminate 'X' ends the connection and produces no exchange. Bind/Describe/Close groups
// without a Parse or an Execute (e.g. closing a statement) produce none either.
//
// Pairing: frontend messages that the backend answers are queued in order and each
// backend message answers the oldest (pipelining included); NoticeResponse,
// ParameterStatus and NotificationResponse never answer anything. A backend message
// whose first byte came before the oldest waiting frontend message was sent is not its
// answer (it answers one that was lost or sent before tracing started) and is ignored.
//
// Loss: bytes a segment moved but did not capture are skipped by length when they fall
// inside a message. When they hide a message boundary, or when bytes were lost
// (gap_before), the direction looks for a strong boundary again (two valid messages,
// or one ending a fully captured segment). A gap ends every open exchange ("desync");
// uncaptured bytes do not (the exchange goes on, `truncated`, counted in resyncs()).
//
// Side::kUnknown: a segment with a startup packet, or messages only one side sends,
// decides the side; segments too short or fitting both directions are skipped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common.hpp"

namespace odigos::pg {

using Segment = proto::Segment;
using Side = proto::Side;

struct Exchange {
  enum class Kind : uint8_t {
    kStartup, kSslRequest, kGssEncRequest, kCancel, kQuery, kExecute, kPrepare, kCopy,
    kFunctionCall,
  };
  enum class Copy : uint8_t { kNone, kIn, kOut, kBoth };

  Kind kind = Kind::kQuery;
  // Query text (kQuery), or the text of the statement an Execute ran (from its Parse, even
  // one seen in an earlier batch) or a Parse prepared. Empty when unknown (text_known false:
  // the Parse happened before tracing started; statement_name then names it).
  std::string text;
  bool text_known = false;
  bool text_truncated = false;   // longer than Limits::max_text_keep, or not captured
  std::string statement_name;    // named prepared statement ("" = unnamed statement)
  std::string command_tag;       // "SELECT 3", "INSERT 0 1" (the last one of a multi-statement Query)
  std::string operation;         // first word of the first tag, else of the query text: SELECT...
                                 // (at most 32 characters)
  int64_t rows = -1;             // from the tags (summed); else DataRows seen; -1 unknown
  uint32_t commands = 0;         // CommandCompletes seen
  bool portal_suspended = false; // Execute stopped at its row limit (PortalSuspended)
  Copy copy = Copy::kNone;
  uint32_t function_oid = 0;     // kFunctionCall
  // ErrorResponse: SQLSTATE (field C), message (M), severity (V, else S).
  std::string sqlstate, error_message, severity;
  // From the StartupMessage (application_name also from ParameterStatus); the session
  // remembers them for every later exchange.
  std::string database, user, application_name;
  uint32_t backend_pid = 0;      // from BackendKeyData; kCancel: the backend to cancel
  bool ssl_accepted = false;     // SSLRequest answered 'S' / GSSENCRequest answered 'G'
  bool truncated = false;        // some bytes of it were not captured or lost
  uint64_t first_ts_ns = 0;          // first byte of its first frontend message
  uint64_t first_response_ts_ns = 0; // first backend byte attributed to it (0: none)
  uint64_t last_ts_ns = 0;           // last byte of its last response (or request)
  uint64_t request_bytes = 0;    // frontend message bytes (with type and length), CopyData in
  uint64_t response_bytes = 0;   // backend message bytes attributed to it, CopyData out
  bool complete = false;         // every response arrived (an ErrorResponse counts)
  // Set when it did not end normally: "connection_closed", "incomplete" (tracing ended),
  // "desync" (bytes lost: it may be incomplete or misattributed), "skipped" (the server
  // skipped it after an earlier error in the same Sync batch), or on_close's argument.
  std::string error_type;
};

enum class Verdict { kUndecided, kPostgres, kNotPostgres, kEncrypted };

struct Limits {
  size_t max_text_keep = 4096;    // query text bytes kept per exchange
  size_t max_error_keep = 1024;   // error message bytes kept
  size_t max_pending = 1024;      // frontend messages awaiting a response
  size_t max_statements = 1024;   // named prepared statements remembered (name -> text)
};

class Session {
 public:
  explicit Session(Side side, Limits limits = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // `ingress`: bytes the traced process read; otherwise bytes it wrote. On the server
  // side the frontend's messages are ingress, on the client side egress.
  void on_data(bool ingress, const Segment& seg);
  // The peer closed its side (read returned 0). EOF of the backend's direction ends the
  // exchanges still waiting for a response ("connection_closed").
  void on_eof(bool ingress, uint64_t ts_ns);
  // The connection is gone: exchanges still open are emitted with `error_type`.
  void on_close(uint64_t ts_ns, std::string_view error_type);

  // Finished exchanges, in frontend order, since the last call.
  std::vector<Exchange> take_exchanges();
  // The same into `out` (cleared first), whose storage the session keeps for
  // the next batch: a caller reusing one vector allocates nothing per call.
  void take_exchanges(std::vector<Exchange>& out);

  Side side() const;
  Verdict verdict() const;
  // Nothing more can be decoded (encrypted, not PostgreSQL, terminated or cancel request
  // with nothing pending, closed): the caller may stop feeding bytes.
  bool done() const;
  std::string database() const;
  std::string user() const;
  std::string application_name() const;
  uint32_t backend_pid() const;
  // Bytes were lost (gap) or could not be framed and open exchanges were dropped or
  // misaligned: one count per event.
  uint64_t desyncs() const;
  // Framing lost because bytes were not captured (a write larger than the capture size
  // that spans message boundaries) and found again, without losing exchanges.
  uint64_t resyncs() const;
  // Bytes held for messages that span segments (bounded by the Limits, whatever the
  // message lengths).
  size_t buffered_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A StartupMessage (protocol 3.x), SSLRequest (80877103), GSSENCRequest (80877104) or
// CancelRequest (80877102) at the start of `first_client_bytes` (at least 8 bytes).
bool looks_like_pg_startup(std::string_view first_client_bytes);
// Regular messages of one direction (a connection open before tracing started): a type
// byte of that direction, a length that fits the type, the content when visible, and the
// next message valid too when present.
bool looks_like_pg_midstream(std::string_view bytes, bool from_client);

} // namespace odigos::pg
