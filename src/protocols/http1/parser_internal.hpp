// Private to the http1 module: scanners shared by parser.cpp and session.cpp.
#pragma once

#include "http1.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace odigos::http1::detail {

// Three answers because detection must not give up on a prefix that could
// still turn into a valid line once more bytes arrive.
enum class Scan : uint8_t { kYes, kMore, kNo };

// "METHOD SP target SP HTTP/1.x CRLF" at the start of buf. On kYes,
// *line_len (when given) is the length of the line including CRLF.
Scan scan_request_line(std::string_view buf, size_t* line_len = nullptr);
// "HTTP/1.x SP 3DIGIT [SP reason] CRLF" at the start of buf.
Scan scan_status_line(std::string_view buf, size_t* line_len = nullptr);
// The start line a request (or response) direction carries.
inline Scan scan_start_line(std::string_view buf, bool is_request, size_t* line_len = nullptr) {
  return is_request ? scan_request_line(buf, line_len) : scan_status_line(buf, line_len);
}
// The HTTP/2 client preface: kYes when buf begins with all of it.
Scan scan_h2_preface(std::string_view buf);
// A server's first HTTP/2 frame (SETTINGS on stream 0): h2 servers may send
// it before they have read the client preface.
bool looks_like_h2_settings(std::string_view buf);

// Framing-relevant facts gathered while parsing a head.
struct HeadInfo {
  bool has_length = false;
  uint64_t content_length = 0;
  bool has_te = false;
  bool te_chunked = false; // the final transfer coding is "chunked"
  bool upgrade = false;    // an Upgrade header field is present
};

// Progress over a head that arrives in pieces, so that a caller appending to
// a buffer does not rescan it from the start on every piece (that would be
// quadratic for a long head sent a few bytes at a time).
struct HeadScan {
  size_t line_start = 0; // start of the first incomplete line
  size_t scanned = 0;    // bytes searched for CR
  size_t checked = 0;    // buffer size at the last start-line check
};

// parse_head plus framing facts; `scan` (optional, value-initialised for a
// new head) carries progress between calls on a growing buffer.
// `keep_all` false: only the fields later stages read are stored (host,
// user-agent, traceparent, tracestate, and the framing fields content-length,
// transfer-encoding, upgrade: kept_field_icase in parser.cpp); the rest are
// validated and dropped, which saves most of the per-message allocation when
// headers are not shown.
long parse_head_ex(std::string_view buf, bool is_request, Message& out, HeadInfo& info,
                   HeadScan* scan, bool keep_all = true);

// Which fields parse_field_line stores, and whether the previous one was
// dropped (a folded continuation line then belongs to a dropped field).
struct FieldKeep {
  bool all = true;
  bool seen = false;         // a field line was parsed before
  bool prev_dropped = false; // ... and it was not stored
};
// One field line without its CRLF (also used for chunked trailers). A line
// starting with SP/HTAB continues the previous field (obsolete folding).
bool parse_field_line(std::string_view line, std::vector<Header>& out, FieldKeep* keep = nullptr);

// A chunk-size line including its CRLF: hex size, optional extensions.
bool parse_chunk_line(std::string_view line, uint64_t& size);

} // namespace odigos::http1::detail
