// Private to the postgres module: message-level checks of the wire format, used
// to recognise PostgreSQL traffic, to validate the first messages of a
// direction and to find a message boundary again after lost bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace odigos::pg::wire {

inline uint32_t be32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline uint16_t be16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return __builtin_bswap16(v);
}

inline constexpr uint32_t kSslCode = 80877103;
inline constexpr uint32_t kGssCode = 80877104;
inline constexpr uint32_t kCancelCode = 80877102;
inline constexpr uint32_t kMaxStartup = 10000;    // the server's own limit for startup packets
inline constexpr uint32_t kMaxCancelKey = 256;    // protocol 3.2: secret keys of 4..256 bytes

// Length-field bounds of one message type in one direction (the length counts
// itself, not the type byte). max == 0: not a type of this direction.
struct Bounds {
  uint32_t min = 0;
  uint32_t max = 0;
};
const Bounds& bounds(bool client, unsigned char type);

enum class Check : uint8_t {
  kBad,     // cannot be this message
  kShort,   // too few bytes to tell (header incomplete)
  kPartial, // header valid, visible content consistent, message continues past the data
  kGood,    // whole message visible and valid
};

// Content of a typed message: `body` is what follows the length field (all of
// it when `full`, otherwise a prefix). `ncols`: columns of the current
// RowDescription (server DataRow check), -1 unknown.
Check check_content(char type, bool client, std::string_view body, bool full, int ncols);
// A typed message at the start of `p`; `total` gets 1 + length when known.
Check check_typed(std::string_view p, bool client, int ncols, uint64_t* total);
// An untyped startup-phase packet (StartupMessage 3.x, SSL/GSSENC/Cancel request).
Check check_startup(std::string_view p, uint64_t* total);

struct Chain {
  unsigned good = 0;    // whole valid messages in a row from the start
  bool partial = false; // then one valid message continuing past the data
  bool exact = false;   // the good messages end exactly at the end of the data
  bool bad = false;     // something invalid was found
};
// A TLS ClientHello offering ALPN "postgresql": PostgreSQL 17+ direct SSL
// (sslnegotiation=direct), which starts TLS without an SSLRequest.
bool direct_tls(std::string_view p);

// Up to `max_msgs` typed messages from the start of `p`.
Chain check_chain(std::string_view p, bool client, int ncols, unsigned max_msgs);
// Strong evidence of a message boundary at the start of p (used after lost
// bytes): two valid messages, or a valid one followed by the valid start of
// another, or a valid one ending exactly where a fully captured segment ends.
bool strong_boundary(std::string_view p, bool client, int ncols, bool fully_captured);
// First offset in `p` with strong_boundary, or npos.
size_t find_boundary(std::string_view p, bool client, int ncols, bool fully_captured);

} // namespace odigos::pg::wire
