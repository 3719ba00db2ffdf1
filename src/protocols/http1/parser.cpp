// HTTP/1 message heads. Strict where strictness tells HTTP from other
// protocols (start lines, token characters, CRLF line ends), lenient where
// deployed peers differ (no reason phrase, obsolete folding, repeated
// identical Content-Length values).
#include "parser_internal.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/text.hpp"

namespace odigos::http1 {
namespace detail {
namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::string_view kVersion = "HTTP/1.";
constexpr size_t kMaxMethod = 20;

enum : uint8_t { kTchar = 1, kText = 2, kUpper = 4 };

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
    if (c == '\t' || (c >= 0x20 && c < 0x7f) || c >= 0x80) v |= kText;
    if (c >= 'A' && c <= 'Z') v |= kUpper;
    t[c] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

// Field-name byte to its lower-case form, 0 for bytes not allowed in a token.
constexpr std::array<char, 256> make_name_lower() {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c)
    if (kClass[c] & kTchar) t[c] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return t;
}
constexpr std::array<char, 256> kNameLower = make_name_lower();

inline bool is(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }


constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHigh = 0x8080808080808080ull;

// Nonzero when some byte of w is below `limit` (limit <= 0x80) or is DEL.
inline uint64_t swar_suspect(uint64_t w, uint64_t limit) {
  const uint64_t below = (w - kOnes * limit) & ~w & kHigh;
  const uint64_t x = w ^ (kOnes * 0x7f);
  return below | ((x - kOnes) & ~x & kHigh);
}

// True when no byte of v is below `limit` or DEL, eight bytes at a time:
// values and targets are most of a head.
inline bool swar_clean(std::string_view v, uint64_t limit) {
  const size_t n = v.size();
  if (n < 8) {
    for (char c : v)
      if (static_cast<unsigned char>(c) < limit || c == 0x7f) return false;
    return true;
  }
  uint64_t w;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&w, v.data() + i, 8);
    if (swar_suspect(w, limit)) return false;
  }
  std::memcpy(&w, v.data() + n - 8, 8); // overlapping tail
  return swar_suspect(w, limit) == 0;
}

// Field values and reason phrases: no control bytes other than HTAB.
bool all_text(std::string_view v) {
  if (swar_clean(v, 0x20)) return true;
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
    const std::string_view item = trim_ows(v.substr(0, comma));
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
    item = trim_ows(item.substr(0, item.find(';')));
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
  const void* sp = std::memchr(buf.data() + i, ' ', buf.size() - i);
  i = sp ? static_cast<size_t>(static_cast<const char*>(sp) - buf.data()) : buf.size();
  if (!swar_clean(buf.substr(target, i - target), 0x21)) return Scan::kNo;
  if (!sp) return Scan::kMore;
  if (i == target) return Scan::kNo;
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
    const void* cr = std::memchr(buf.data() + i, '\r', buf.size() - i);
    const size_t end =
        cr ? static_cast<size_t>(static_cast<const char*>(cr) - buf.data()) : buf.size();
    if (!all_text(buf.substr(i, end - i))) return Scan::kNo;
    i = end;
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

namespace {
// `raw` equals the lower-case `lit` ignoring ASCII case. Exact for names
// without control bytes: only 'A'-'Z' map onto 'a'-'z' under | 0x20, and
// '-' onto itself.
bool icase_is(std::string_view raw, std::string_view lit) {
  for (size_t k = 0; k < lit.size(); ++k)
    if (char(raw[k] | 0x20) != lit[k]) return false;
  return true;
}
// The kept field `n` names, as its lower-case literal (which, for a name
// without control bytes, is `n` lower-cased); empty when not kept.
std::string_view kept_field_icase(std::string_view n) {
  const auto is = [&](std::string_view lit) { return icase_is(n, lit) ? lit : std::string_view(); };
  switch (n.size()) {
  case 4: return is("host");
  case 7: return is("upgrade");
  case 10: {
    const std::string_view ua = is("user-agent");
    return ua.empty() ? is("tracestate") : ua;
  }
  case 11: return is("traceparent");
  case 14: return is("content-length");
  case 17: return is("transfer-encoding");
  default: return {};
  }
}
} // namespace

bool parse_field_line(std::string_view line, std::vector<Header>& out, FieldKeep* keep) {
  if (line.empty()) return false;
  if (line.front() == ' ' || line.front() == '\t') {
    if (keep ? !keep->seen : out.empty()) return false;
    const std::string_view more = trim_ows(line);
    if (!all_text(more)) return false;
    if (keep && keep->prev_dropped) return true;
    std::string& value = out.back().value;
    if (!more.empty()) {
      if (!value.empty()) value += ' ';
      value.append(more);
    }
    return true;
  }
  const void* c = std::memchr(line.data(), ':', line.size());
  if (!c || c == line.data()) return false;
  const size_t colon = static_cast<size_t>(static_cast<const char*>(c) - line.data());
  std::string_view kept;
  if (keep && !keep->all) {
    // Most fields are dropped: their names are only checked for spaces and
    // control bytes (eight at a time), and only names as long as a kept one
    // are compared (case-insensitively, without copying).
    const std::string_view raw = line.substr(0, colon);
    if (!swar_clean(raw, 0x21)) return false;
    kept = kept_field_icase(raw);
    keep->seen = true;
    keep->prev_dropped = kept.empty();
    if (kept.empty()) return true;
  }
  const std::string_view value = trim_ows(line.substr(colon + 1));
  if (!all_text(value)) return false;
  if (!kept.empty()) { // its literal is its name: no lower-casing or token check left
    out.emplace_back(kept, value);
    return true;
  }
  // Validate and lower-case in one branch-free pass (locals: no aliasing).
  char small[32];
  std::string name_buf;
  char* dst = small;
  if (colon > sizeof(small)) {
    name_buf.resize(colon);
    dst = name_buf.data();
  }
  const char* src = line.data();
  char bad = 0;
  for (size_t k = 0; k < colon; ++k) {
    const char l = kNameLower[static_cast<unsigned char>(src[k])];
    dst[k] = l;
    bad |= static_cast<char>(l == 0);
  }
  if (bad) return false;
  const std::string_view name(dst, colon);
  if (keep) { // every field is stored (keep->all)
    keep->seen = true;
    keep->prev_dropped = false;
  }
  out.emplace_back(name, value);
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
  std::string_view ext = trim_ows(line.substr(i));
  if (!ext.empty() && (ext.front() != ';' || !all_text(ext))) return false;
  size = v;
  return true;
}

long parse_head_ex(std::string_view buf, bool is_request, Message& out, HeadInfo& info,
                   HeadScan* scan, bool keep_all) {
  // One memchr per line both finds the blank line and splits the fields.
  const char* const p = buf.data();
  const size_t n = buf.size();
  size_t pos = scan ? std::min(scan->line_start, n) : 0;
  size_t from = scan ? std::clamp(scan->scanned, pos, n) : 0;
  const bool from_start = pos == 0;
  constexpr size_t kMaxLines = 64;
  uint32_t cr_at[kMaxLines]; // CR of each line, start line first
  size_t lines = 0;
  size_t head_len = 0;
  while (true) {
    const char* cr = static_cast<const char*>(std::memchr(p + from, '\r', n - from));
    if (!cr || cr + 1 == p + n) {
      from = cr ? static_cast<size_t>(cr - p) : n; // a final CR is looked at again
      break;
    }
    if (cr[1] != '\n') return -1;
    const size_t at = static_cast<size_t>(cr - p);
    if (at == pos) {
      if (at == 0) return -1;
      head_len = at + 2;
      break;
    }
    if (lines < kMaxLines) cr_at[lines] = static_cast<uint32_t>(at);
    ++lines;
    pos = from = at + 2;
  }
  if (head_len == 0) {
    // Reject garbage early rather than buffer it up to max_head_bytes; on a
    // growing buffer only each time it doubles, to stay linear.
    if (!scan || n >= 2 * scan->checked) {
      if (scan_start_line(buf, is_request) == Scan::kNo) return -1;
      if (scan) scan->checked = n;
    }
    if (scan) {
      scan->line_start = pos;
      scan->scanned = from;
    }
    return 0;
  }
  if (!from_start) return parse_head_ex(buf, is_request, out, info, nullptr, keep_all);

  const std::string_view head = buf.substr(0, head_len);
  size_t line_len = 0;
  if (scan_start_line(head, is_request, &line_len) != Scan::kYes) return -1;

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
  out.headers.reserve(keep_all ? lines - 1 : std::min<size_t>(lines - 1, 4));
  FieldKeep keep;
  keep.all = keep_all;
  size_t start = line_len;
  for (size_t k = 1; k < lines; ++k) {
    const size_t end = k < kMaxLines
                           ? cr_at[k]
                           : static_cast<size_t>(static_cast<const char*>(std::memchr(
                                                     p + start, '\r', head_len - start)) - p);
    if (!parse_field_line(head.substr(start, end - start), out.headers, &keep)) return -1;
    start = end + 2;
  }

  info = HeadInfo{};
  for (const Header& h : out.headers) {
    const std::string_view name = h.name;
    if (name == "content-length") {
      uint64_t len = 0;
      if (!parse_length(h.value, len) || (info.has_length && len != info.content_length)) return -1;
      info.has_length = true;
      info.content_length = len;
    } else if (name == "transfer-encoding") {
      info.has_te = true;
      info.te_chunked = last_coding_is_chunked(h.value);
    } else if (name == "upgrade") {
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

// A field added to Message needs its line in clear() (and in the test of clear).
static_assert(sizeof(Message) == 4 * sizeof(std::string) + sizeof(std::vector<Header>) + 64,
              "Message changed: update Message::clear()");
void Message::clear() {
  method.clear();
  target.clear();
  status = 0;
  reason.clear();
  minor_version = 1;
  headers.clear();
  head_size = 0;
  body_size = 0;
  if (body.capacity() > 256) std::string().swap(body);
  else body.clear();
  body_truncated = false;
  chunked = false;
  first_ts_ns = 0;
  last_ts_ns = 0;
  complete = false;
}

long parse_head(std::string_view buf, bool is_request, Message& out) {
  detail::HeadInfo info;
  return detail::parse_head_ex(buf, is_request, out, info, nullptr);
}

// A prefix counts once it has gone past the method and its SP: "G" alone is
// too little to call a request, but may still become one.
bool looks_like_request(std::string_view buf) {
  const detail::Scan s = detail::scan_request_line(buf);
  return s == detail::Scan::kYes ||
         (s == detail::Scan::kMore && buf.find(' ') != std::string_view::npos);
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
