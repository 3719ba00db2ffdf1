// Private to the mysql module (and its tests): readers for the payloads of
// individual packets. Every parser works on a payload prefix `p` (what was
// captured and kept) and, where the layout depends on it, the payload's true
// length; none of them allocates, results point into `p`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace odigos::mysql::wire {

// Little-endian cursor; any read past the end clears ok() and returns 0/"".
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool ok() const { return ok_; }
  size_t pos() const { return i_; }
  size_t left() const { return s_.size() - i_; }
  uint8_t u8();
  uint16_t u16();
  uint32_t u24();
  uint32_t u32();
  // Length-encoded integer; 0xfb (NULL) and 0xff are not integers.
  uint64_t lenenc();
  std::string_view bytes(size_t n);
  std::string_view nul_str();    // up to a NUL, which is consumed
  std::string_view lenenc_str();
  std::string_view rest();

 private:
  std::string_view s_;
  size_t i_ = 0;
  bool ok_ = true;
};

// Bytes taken by the length-encoded integer whose first byte is `b` (0: not one).
size_t lenenc_size(uint8_t b);

struct Greeting {
  std::string_view server_version;
  uint32_t connection_id = 0;
  uint32_t caps = 0;
  uint16_t status = 0;
  std::string_view auth_plugin;
};
// Protocol-10 initial handshake payload.
bool parse_greeting(std::string_view p, Greeting& g);

struct HandshakeResponse {
  uint32_t caps = 0;
  bool ssl_request = false;  // the 32-byte SSLRequest: TLS follows
  std::string_view user;
  std::string_view database;
  std::string_view auth_plugin;
};
// HandshakeResponse41 (or SSLRequest) payload; `len` is the payload's length.
bool parse_handshake_response(std::string_view p, uint64_t len, HandshakeResponse& r);

struct Ok {
  uint64_t affected_rows = 0;
  uint64_t last_insert_id = 0;
  uint16_t status = 0;
  uint16_t warnings = 0;
  bool has_schema = false;       // session state tracking reported the current schema
  std::string_view schema;
};
// OK packet (header 0x00, or 0xfe ending a result set). `caps`: negotiated
// capabilities when `caps_known` (session tracking is only read then).
bool parse_ok(std::string_view p, uint32_t caps, bool caps_known, Ok& ok);

struct Err {
  uint16_t code = 0;
  std::string_view sql_state;
  std::string_view message;
};
bool parse_err(std::string_view p, Err& e);
// MariaDB progress reports are ERR packets with code 0xffff: not an answer.
inline bool is_progress(const Err& e) { return e.code == 0xffff; }

// EOF packet (0xfe, warnings, status): status flags, 0 when absent.
uint16_t eof_status(std::string_view p);

struct PrepareOk {
  uint32_t statement_id = 0;
  uint16_t columns = 0;
  uint16_t params = 0;
  bool metadata_follows = true;
};
bool parse_prepare_ok(std::string_view p, uint64_t len, PrepareOk& r);

// Column-count packet of a result set; the optional trailing byte is the
// "metadata follows" flag (MySQL optional metadata, MariaDB metadata cache).
bool parse_column_count(std::string_view p, uint64_t len, uint64_t& count, bool& metadata_follows);

// The SQL text of a COM_QUERY payload `p` (command byte included). `attrs`:
// 1 CLIENT_QUERY_ATTRIBUTES negotiated, 0 not, -1 unknown (a control byte
// after the command byte means attributes). Returns false when the text
// cannot be located in `p`; `offset` is where it starts in the payload.
bool query_text(std::string_view p, int attrs, std::string_view& text, size_t& offset);

// A plausible command payload: `head` is its captured prefix (command byte
// first), `len` its length.
bool command_plausible(std::string_view head, uint64_t len);

} // namespace odigos::mysql::wire
