// HTTP/1 message heads. Strict where strictness tells HTTP from other
// protocols (start lines, token characters, CRLF line ends), lenient where
// deployed peers differ (no reason phrase, obsolete folding, repeated
// identical Content-Length values).
#include "parser_internal.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace odigos::http1 {
namespace detail {
namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::string_view kVersion = "HTTP/1.";
constexpr size_t kMaxMethod = 20;

enum : uint8_t { kTchar = 1, kTarget = 2, kText = 4, kUpper = 8 };

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kTchar;
    for (char s : std::string_view("!#$%&'*+-.^_`|~"))
      if (c == static_cast<unsigned char>(s)) v |= kTchar;
    // Raw non-ASCII bytes do appear in targets and values sent by real
    // clients; rejecting them would lose traffic without helping detection.
    if ((c > 0x20 && c < 0x7f) || c >= 0x80) v |= kTarget;
    if (c == '\t' || (c >= 0x20 && c < 0x7f) || c >= 0x80) v |= kText;
    if (c >= 'A' && c <= 'Z') v |= kUpper;
    t[c] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

inline bool is(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool all_text(std::string_view v) {
  for (char c : v)
    if (!is(c, kText)) return false;
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != b[i]) return false;
  return true;
}

// Matches `lit` against buf from position i; kMore when buf ends first.
Scan expect(std::string_view buf, size_t& i, std::string_view lit) {
  for (char c : lit) {
    if (i == buf.size()) return Scan::kMore;
    if (buf[i] != c) return Scan::kNo;
    ++i;
  }
  return Scan::kYes;
}

// HTTP/1.0 and HTTP/1.1 only: "HTTP/1.7" is more likely noise than a peer.
Scan expect_minor(std::string_view buf, size_t& i) {
  if (i == buf.size()) return Scan::kMore;
  if (buf[i] != '0' && buf[i] != '1') return Scan::kNo;
  ++i;
  return Scan::kYes;
}

// Comma-separated list of identical decimal values ("5" or "5, 5").
bool parse_length(std::string_view v, uint64_t& out) {
  bool seen = false;
  uint64_t first = 0;
  while (true) {
    const size_t comma = v.find(',');
    const std::string_view item = trim(v.substr(0, comma));
    if (item.empty() || item.size() > 18) return false;
    uint64_t n = 0;
    for (char c : item) {
      if (!is_digit(c)) return false;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (seen && n != first) return false;
    first = n;
    seen = true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  out = first;
  return true;
}

// Only the final coding decides the framing (RFC 9112 6.3).
bool last_coding_is_chunked(std::string_view v) {
  std::string_view last;
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    item = trim(item.substr(0, item.find(';')));
    if (!item.empty()) last = item;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return iequals(last, "chunked");
}

} // namespace

Scan scan_request_line(std::string_view buf, size_t* line_len) {
  size_t i = 0;
  while (i < buf.size() && i <= kMaxMethod && is(buf[i], kUpper)) ++i;
  if (i > kMaxMethod) return Scan::kNo;
  if (i == buf.size()) return Scan::kMore;
  if (i == 0 || buf[i] != ' ') return Scan::kNo;
  const size_t target = ++i;
  while (i < buf.size() && is(buf[i], kTarget)) ++i;
  if (i == buf.size()) return Scan::kMore;
  if (i == target || buf[i] != ' ') return Scan::kNo;
  ++i;
  if (Scan s = expect(buf, i, kVersion); s != Scan::kYes) return s;
  if (Scan s = expect_minor(buf, i); s != Scan::kYes) return s;
  if (Scan s = expect(buf, i, "\r\n"); s != Scan::kYes) return s;
  if (line_len) *line_len = i;
  return Scan::kYes;
}

Scan scan_status_line(std::string_view buf, size_t* line_len) {
  size_t i = 0;
  if (Scan s = expect(buf, i, kVersion); s != Scan::kYes) return s;
  if (Scan s = expect_minor(buf, i); s != Scan::kYes) return s;
  if (Scan s = expect(buf, i, " "); s != Scan::kYes) return s;
  for (int k = 0; k < 3; ++k, ++i) {
    if (i == buf.size()) return Scan::kMore;
    if (!is_digit(buf[i]) || (k == 0 && (buf[i] < '1' || buf[i] > '5'))) return Scan::kNo;
  }
  if (i == buf.size()) return Scan::kMore;
  if (buf[i] == ' ') {
    ++i;
    while (i < buf.size() && buf[i] != '\r') {
      if (!is(buf[i], kText)) return Scan::kNo;
      ++i;
    }
  }
  if (Scan s = expect(buf, i, "\r\n"); s != Scan::kYes) return s;
  if (line_len) *line_len = i;
  return Scan::kYes;
}

Scan scan_h2_preface(std::string_view buf) {
  const size_t n = std::min(buf.size(), kH2Preface.size());
  if (buf.substr(0, n) != kH2Preface.substr(0, n)) return Scan::kNo;
  return n == kH2Preface.size() ? Scan::kYes : Scan::kMore;
}

bool looks_like_h2_settings(std::string_view buf) {
  if (buf.size() < 9) return false;
  const auto b = [&](size_t k) { return static_cast<unsigned char>(buf[k]); };
  const uint32_t len = (uint32_t{b(0)} << 16) | (uint32_t{b(1)} << 8) | b(2);
  return len % 6 == 0 && len <= 16384 && b(3) == 0x04 && b(4) == 0 && b(5) == 0 && b(6) == 0 &&
         b(7) == 0 && b(8) == 0;
}

bool parse_field_line(std::string_view line, std::vector<Header>& out) {
  if (line.empty()) return false;
  if (line.front() == ' ' || line.front() == '\t') {
    if (out.empty()) return false;
    const std::string_view more = trim(line);
    if (!all_text(more)) return false;
    std::string& value = out.back().value;
    if (!more.empty()) {
      if (!value.empty()) value += ' ';
      value.append(more);
    }
    return true;
  }
  const size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  const std::string_view name = line.substr(0, colon);
  for (char c : name)
    if (!is(c, kTchar)) return false;
  const std::string_view value = trim(line.substr(colon + 1));
  if (!all_text(value)) return false;
  Header& h = out.emplace_back();
  h.name.resize(name.size());
  for (size_t k = 0; k < name.size(); ++k) h.name[k] = lower(name[k]);
  h.value.assign(value);
  return true;
}

bool parse_chunk_line(std::string_view line, uint64_t& size) {
  if (line.size() < 3 || line[line.size() - 2] != '\r' || line.back() != '\n') return false;
  line.remove_suffix(2);
  size_t i = 0;
  uint64_t v = 0;
  for (; i < line.size(); ++i) {
    const char c = lower(line[i]);
    int d;
    if (is_digit(c)) d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else break;
    if (i == 15) return false; // 2^60 bytes is not a chunk, it is garbage
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  if (i == 0) return false;
  std::string_view ext = trim(line.substr(i));
  if (!ext.empty() && (ext.front() != ';' || !all_text(ext))) return false;
  size = v;
  return true;
}

long parse_head_ex(std::string_view buf, bool is_request, Message& out, HeadInfo& info,
                   size_t* resume) {
  const size_t from = resume ? std::min(*resume, buf.size()) : 0;
  const void* hit = memmem(buf.data() + from, buf.size() - from, "\r\n\r\n", 4);
  if (!hit) {
    // Reject early so that garbage is not buffered up to max_head_bytes.
    const Scan s = is_request ? scan_request_line(buf) : scan_status_line(buf);
    if (s == Scan::kNo) return -1;
    if (resume) *resume = buf.size() > 3 ? buf.size() - 3 : 0;
    return 0;
  }
  const size_t blank = static_cast<size_t>(static_cast<const char*>(hit) - buf.data()) + 2;
  const std::string_view head = buf.substr(0, blank + 2);
  size_t line_len = 0;
  const Scan s = is_request ? scan_request_line(head, &line_len) : scan_status_line(head, &line_len);
  if (s != Scan::kYes) return -1;

  if (is_request) {
    const size_t sp1 = head.find(' ');
    const size_t sp2 = head.find(' ', sp1 + 1);
    out.method.assign(head.substr(0, sp1));
    out.target.assign(head.substr(sp1 + 1, sp2 - sp1 - 1));
    out.minor_version = head[sp2 + 8] - '0';
  } else {
    out.minor_version = head[7] - '0';
    out.status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    if (head[12] == ' ') out.reason.assign(head.substr(13, line_len - 15));
    else out.reason.clear();
  }

  out.headers.clear();
  out.headers.reserve(16);
  size_t pos = line_len;
  while (pos < blank) {
    // Field values may not contain CR, so the first CR ends the line.
    const char* cr = static_cast<const char*>(memchr(head.data() + pos, '\r', blank - pos));
    const size_t eol = static_cast<size_t>(cr - head.data());
    if (head[eol + 1] != '\n') return -1;
    if (!parse_field_line(head.substr(pos, eol - pos), out.headers)) return -1;
    pos = eol + 2;
  }

  info = HeadInfo{};
  for (const Header& h : out.headers) {
    if (h.name == "content-length") {
      uint64_t n = 0;
      if (!parse_length(h.value, n) || (info.has_length && n != info.content_length)) return -1;
      info.has_length = true;
      info.content_length = n;
    } else if (h.name == "transfer-encoding") {
      info.has_te = true;
      info.te_chunked = last_coding_is_chunked(h.value);
    } else if (h.name == "upgrade") {
      info.upgrade = true;
    }
  }
  out.chunked = info.has_te && info.te_chunked;
  out.head_size = head.size();
  return static_cast<long>(head.size());
}

} // namespace detail

const std::string* Message::header(std::string_view lower_name) const {
  for (const Header& h : headers)
    if (h.name == lower_name) return &h.value;
  return nullptr;
}

long parse_head(std::string_view buf, bool is_request, Message& out) {
  detail::HeadInfo info;
  return detail::parse_head_ex(buf, is_request, out, info, nullptr);
}

// A prefix counts once it has gone past the method and its SP: "G" alone is
// too little to call a request, but may still become one.
bool looks_like_request(std::string_view buf) {
  const detail::Scan s = detail::scan_request_line(buf);
  return s == detail::Scan::kYes || (s == detail::Scan::kMore && buf.find(' ') != std::string_view::npos);
}

// Likewise a response prefix needs at least "HTTP/1.x ".
bool looks_like_response(std::string_view buf) {
  const detail::Scan s = detail::scan_status_line(buf);
  return s == detail::Scan::kYes || (s == detail::Scan::kMore && buf.size() >= 9);
}

bool looks_like_h2_preface(std::string_view buf) {
  return !buf.empty() && detail::scan_h2_preface(buf) != detail::Scan::kNo;
}

} // namespace odigos::http1
