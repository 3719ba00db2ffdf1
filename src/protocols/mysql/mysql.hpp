// MySQL / MariaDB client/server protocol decoding for one connection:
// packet framing, the connection phase (greeting, handshake response,
// authentication exchanges, SSLRequest) and the command phase (text and
// binary protocol), paired into one Exchange per command. Pure logic over
// byte segments: no BPF, no I/O, no clocks (times come in with the segments).
//
// Packets: 3-byte little-endian payload length + 1-byte sequence id; a
// payload of 0xffffff bytes continues in the next packet (one logical packet
// here). Packets are parsed in place; only the first bytes of a packet that
// spans segments are copied (what the decoder needs: a query's text up to
// Limits::max_text, an OK/ERR packet), the rest is skipped by length.
//
// Capabilities. They come from the greeting and the HandshakeResponse41.
// When the connection was already open when tracing started they are
// unknown, and the decoder infers what it needs from what arrives:
//  - CLIENT_DEPRECATE_EOF: after a result set's column definitions a 5-byte
//    0xFE packet is the EOF that ends the metadata (without the flag); an OK
//    packet with the 0xFE header is at least 7 bytes (with it). That settles
//    the flag for the connection. The one place where the answer cannot be
//    read from the current packet is a COM_STMT_PREPARE response whose last
//    definitions may or may not be followed by an EOF: the exchange is held
//    until the next server packet (an EOF with the next sequence id belongs
//    to it, anything else starts the next response), the next command, or
//    the end of the connection.
//  - CLIENT_PROTOCOL_41 is assumed (every server since 4.1); ERR packets are
//    read with or without the '#' SQL-state marker.
//  - CLIENT_QUERY_ATTRIBUTES: a COM_QUERY whose second byte is not text
//    (a control byte) is parsed as parameter count + set count + attributes.
//  - CLIENT_OPTIONAL_RESULTSET_METADATA / MariaDB metadata caching: a column
//    count packet one byte longer than its length-encoded integer carries the
//    "metadata follows" flag.
//
// Loss. Bytes the kernel did not capture (Segment::len > data.size()) are
// skipped by length inside a packet. When they cover packet headers (a large
// result set read in big chunks) the framing of that direction is lost: the
// open exchange gets truncated = true and rows = -1, and ends when the client
// sends its next command (the server has answered by then; pipelining
// clients aside) or the connection closes. A gap (Segment::gap_before) or a
// packet that breaks the protocol (wrong sequence id, impossible layout)
// loses the framing too, counts in desyncs(), and the open exchanges end with
// error_type "desync". The client direction resynchronises at the next
// segment that starts with a plausible command packet (sequence id 0, known
// command byte, consistent length); the server direction at the next segment
// that starts with the first packet of the next command's response (its
// sequence id follows the command's). A segment too short to judge (a 4-byte
// header read alone, as servers do) is kept (at most 64 bytes) and judged
// with the next one.
//
// Detection. With a known side the first bytes must be a greeting (server)
// or a handshake response / command (client), else the verdict is kNotMysql
// at the first packet header. With Side::kUnknown a greeting or a command
// decides the side; two undecidable segments in each direction (or 64 in
// all), or 8 server segments that do not answer the first command, mean
// kNotMysql.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/common.hpp"

namespace odigos::mysql {

using Segment = proto::Segment;
using Side = proto::Side;

// Capability flags (the ones the decoder looks at).
inline constexpr uint32_t kClientConnectWithDb = 0x00000008;
inline constexpr uint32_t kClientCompress = 0x00000020;
inline constexpr uint32_t kClientProtocol41 = 0x00000200;
inline constexpr uint32_t kClientSsl = 0x00000800;
inline constexpr uint32_t kClientSecureConnection = 0x00008000;
inline constexpr uint32_t kClientPluginAuth = 0x00080000;
inline constexpr uint32_t kClientConnectAttrs = 0x00100000;
inline constexpr uint32_t kClientPluginAuthLenencData = 0x00200000;
inline constexpr uint32_t kClientSessionTrack = 0x00800000;
inline constexpr uint32_t kClientDeprecateEof = 0x01000000;
inline constexpr uint32_t kClientOptionalResultsetMetadata = 0x02000000;
inline constexpr uint32_t kClientZstdCompression = 0x04000000;
inline constexpr uint32_t kClientQueryAttributes = 0x08000000;

// Server status flags.
inline constexpr uint16_t kServerMoreResultsExists = 0x0008;
inline constexpr uint16_t kServerStatusCursorExists = 0x0040;
inline constexpr uint16_t kServerSessionStateChanged = 0x4000;

// Command bytes.
inline constexpr uint8_t kComQuit = 0x01;
inline constexpr uint8_t kComInitDb = 0x02;
inline constexpr uint8_t kComQuery = 0x03;
inline constexpr uint8_t kComFieldList = 0x04;
inline constexpr uint8_t kComStatistics = 0x09;
inline constexpr uint8_t kComPing = 0x0e;
inline constexpr uint8_t kComChangeUser = 0x11;
inline constexpr uint8_t kComBinlogDump = 0x12;
inline constexpr uint8_t kComStmtPrepare = 0x16;
inline constexpr uint8_t kComStmtExecute = 0x17;
inline constexpr uint8_t kComStmtSendLongData = 0x18;
inline constexpr uint8_t kComStmtClose = 0x19;
inline constexpr uint8_t kComStmtReset = 0x1a;
inline constexpr uint8_t kComSetOption = 0x1b;
inline constexpr uint8_t kComStmtFetch = 0x1c;
inline constexpr uint8_t kComBinlogDumpGtid = 0x1e;
inline constexpr uint8_t kComResetConnection = 0x1f;
inline constexpr uint8_t kComClone = 0x20;
inline constexpr uint8_t kComStmtBulkExecute = 0xfa; // MariaDB

struct Exchange {
  enum class Kind {
    kHandshake, // connection phase: greeting → handshake response → auth → OK/ERR
    kQuery,     // COM_QUERY
    kPrepare,   // COM_STMT_PREPARE
    kExecute,   // COM_STMT_EXECUTE (and MariaDB COM_STMT_BULK_EXECUTE)
    kClose,     // COM_STMT_CLOSE (no response)
    kPing,      // COM_PING
    kQuit,      // COM_QUIT (no response)
    kInitDb,    // COM_INIT_DB
    kOther,     // any other command (command says which)
  };
  Kind kind = Kind::kOther;
  uint8_t command = 0;          // COM_ byte; 0 for kHandshake
  // Query text as sent (not sanitised: see sql::sanitize), at most
  // Limits::max_text bytes. COM_QUERY / COM_STMT_PREPARE: the statement;
  // COM_STMT_EXECUTE / CLOSE / RESET / FETCH / SEND_LONG_DATA: the prepared
  // statement's text when its PREPARE was seen on this connection; COM_FIELD_LIST:
  // the table. Empty otherwise.
  std::string text;
  bool text_known = false;      // text holds the statement (possibly truncated)
  bool text_truncated = false;  // the statement was longer than what text holds
  uint32_t statement_id = 0;    // prepare (from its response), execute, close, reset, fetch
  int64_t rows = -1;            // rows of the result set(s), else affected rows of the OK; -1 unknown
  int64_t affected_rows = -1;   // sum over the OK packets that answered (not result-set terminators); -1 none
  uint32_t result_sets = 0;     // result sets in the response (several: multi-statement, CALL)
  uint16_t error_code = 0;      // ERR packet (0: none)
  std::string sql_state;        // ERR packet's SQLSTATE ("" when the packet had none)
  std::string error_message;    // ERR packet's message (at most 512 bytes)
  std::string database;         // current database when the command ran; handshake: the one asked for
  std::string user;             // kHandshake (and COM_CHANGE_USER): the user name
  std::string server_version;   // kHandshake: from the greeting
  bool ssl_requested = false;   // kHandshake: the client asked for TLS: nothing more is decodable
  bool truncated = false;       // response bytes were not captured: rows and status unknown
  uint64_t first_ts_ns = 0;     // first byte of the command (kHandshake: of the greeting)
  uint64_t last_ts_ns = 0;      // last byte of the response (of the command when none)
  uint64_t request_bytes = 0;   // client bytes, packet headers included (LOCAL INFILE data too)
  uint64_t response_bytes = 0;  // server bytes, packet headers included
  bool complete = false;        // the response was seen to its end (or none is expected)
  // Set when the exchange did not complete normally: "desync" (bytes lost),
  // "not_decoded" (replication/clone stream: decoding stops), or what
  // on_close was given ("connection_closed", "connection_reset", "incomplete").
  std::string error_type;
};

// What the connection turned out to carry.
enum class Verdict { kUndecided, kMysql, kNotMysql, kEncrypted };

struct Limits {
  size_t max_text = 4096;        // query text kept per exchange
  size_t max_pending = 256;      // commands waiting for a response (pipelining)
  size_t max_statements = 1024;  // prepared statements remembered per connection
};

// Decodes both directions of one connection. kServer: the traced process is
// the server (client packets are ingress); kClient: the reverse; kUnknown:
// decided by the first bytes (a greeting, or a command packet, in one
// direction fixes the side).
class Session {
 public:
  explicit Session(Side side, Limits limits = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // `ingress`: bytes the traced process read; otherwise bytes it wrote.
  void on_data(bool ingress, const Segment& seg);
  // The peer closed its side (read returned 0).
  void on_eof(bool ingress, uint64_t ts_ns);
  // The connection is gone: finish what can be finished and turn open
  // exchanges into exchanges with `error_type`.
  void on_close(uint64_t ts_ns, std::string_view error_type);

  // Finished exchanges, in command order, since the last call.
  std::vector<Exchange> take_exchanges();
  // The same into `out` (cleared first), whose storage the session keeps for
  // the next batch: a caller reusing one vector allocates nothing per call.
  void take_exchanges(std::vector<Exchange>& out);

  Side side() const;
  Verdict verdict() const;
  // True when nothing more will be decoded: not MySQL, TLS after an
  // SSLRequest, compression negotiated, a replication stream, or closed.
  bool done() const;
  // Framing losses from gaps and protocol violations (not from bytes beyond
  // the capture size).
  uint64_t desyncs() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A protocol-10 greeting (initial handshake packet, sequence id 0) at the
// start of `first_server_bytes`.
bool looks_like_mysql_handshake(std::string_view first_server_bytes);
// A plausible command packet (sequence id 0, known COM_ byte, a length that
// fits the command) at the start of `client_bytes`: for connections already
// open when tracing started.
bool looks_like_mysql_command(std::string_view client_bytes);

} // namespace odigos::mysql
