// Wire-format checks (see wire.hpp) and the public detection helpers.
#include "wire.hpp"

#include "postgres.hpp"

#include <array>

namespace odigos::pg::wire {
namespace {

constexpr uint32_t kMax = 1u << 30; // the server refuses larger messages

struct Table {
  std::array<Bounds, 256> b{};
  constexpr void set(char t, uint32_t mn, uint32_t mx) { b[static_cast<unsigned char>(t)] = {mn, mx}; }
};

constexpr Table make_client() {
  Table t;
  t.set('Q', 5, kMax);          // Query: text NUL
  t.set('P', 8, kMax);          // Parse: name NUL query NUL int16 n int32*n
  t.set('B', 12, kMax);         // Bind
  t.set('E', 9, 4 + 1024 + 4);  // Execute: portal NUL int32
  t.set('D', 6, 4 + 1 + 1024);  // Describe: 'S'|'P' name NUL
  t.set('C', 6, 4 + 1 + 1024);  // Close
  t.set('S', 4, 4);             // Sync
  t.set('H', 4, 4);             // Flush
  t.set('X', 4, 4);             // Terminate
  t.set('c', 4, 4);             // CopyDone
  t.set('d', 4, kMax);          // CopyData
  t.set('f', 5, 1u << 20);      // CopyFail: message NUL
  t.set('F', 14, kMax);         // FunctionCall
  t.set('p', 4, 1u << 20);      // PasswordMessage / SASL / GSS response
  return t;
}

constexpr Table make_server() {
  Table t;
  t.set('R', 8, 1u << 20);                 // Authentication*
  t.set('K', 12, 8 + kMaxCancelKey);       // BackendKeyData
  t.set('S', 6, 1u << 20);                 // ParameterStatus
  t.set('Z', 5, 5);                        // ReadyForQuery
  t.set('T', 6, 1u << 24);                 // RowDescription
  t.set('D', 6, kMax);                     // DataRow
  t.set('C', 5, 4 + 1024);                 // CommandComplete
  t.set('I', 4, 4);                        // EmptyQueryResponse
  t.set('1', 4, 4);                        // ParseComplete
  t.set('2', 4, 4);                        // BindComplete
  t.set('3', 4, 4);                        // CloseComplete
  t.set('n', 4, 4);                        // NoData
  t.set('s', 4, 4);                        // PortalSuspended
  t.set('c', 4, 4);                        // CopyDone
  t.set('E', 5, 1u << 24);                 // ErrorResponse
  t.set('N', 5, 1u << 24);                 // NoticeResponse
  t.set('A', 10, kMax);                    // NotificationResponse
  t.set('t', 6, 4 + 2 + 4 * 65535);        // ParameterDescription
  t.set('G', 7, 4 + 3 + 2 * 65535);        // CopyInResponse
  t.set('H', 7, 4 + 3 + 2 * 65535);        // CopyOutResponse
  t.set('W', 7, 4 + 3 + 2 * 65535);        // CopyBothResponse
  t.set('d', 4, kMax);                     // CopyData
  t.set('V', 8, kMax);                     // FunctionCallResponse
  t.set('v', 12, 1u << 20);                // NegotiateProtocolVersion
  return t;
}

constexpr Table kClientTable = make_client();
constexpr Table kServerTable = make_server();

// Sequential reader over a body prefix. Running past the visible bytes is
// "bad" when the body is whole and "undecided" when it is a prefix.
struct Rd {
  const char* p;
  size_t n;
  bool full;
  bool out = false; // ran past the visible bytes of a prefix

  bool need(size_t k) {
    if (n >= k) return true;
    out = true;
    return false;
  }
  bool skip(size_t k) {
    if (!need(k)) return false;
    p += k;
    n -= k;
    return true;
  }
  bool u16(uint32_t& v) {
    if (!need(2)) return false;
    v = be16(p);
    p += 2;
    n -= 2;
    return true;
  }
  bool u32(uint32_t& v) {
    if (!need(4)) return false;
    v = be32(p);
    p += 4;
    n -= 4;
    return true;
  }
  bool byte(unsigned char& c) {
    if (!need(1)) return false;
    c = static_cast<unsigned char>(*p);
    ++p;
    --n;
    return true;
  }
  // A NUL-terminated string; `s` excludes the NUL.
  bool cstr(std::string_view& s) {
    const void* z = n ? std::memchr(p, 0, n) : nullptr;
    if (!z) {
      out = true;
      return false;
    }
    size_t k = static_cast<const char*>(z) - p;
    s = std::string_view(p, k);
    p += k + 1;
    n -= k + 1;
    return true;
  }
  // Int32 length (-1 = NULL) then that many bytes.
  bool value() {
    uint32_t len;
    if (!u32(len)) return false;
    if (len == 0xFFFFFFFFu) return true;
    if (len > kMax) return false; // bad, not out
    return skip(len);
  }
  bool at_end() const { return n == 0; }
};

// Result once the reader stopped: out of visible bytes → partial (prefix) or
// bad (whole); otherwise `ok` decides.
Check verdict_of(const Rd& r, bool ok) {
  if (r.out) return r.full ? Check::kBad : Check::kPartial;
  if (!ok) return Check::kBad;
  return r.full ? Check::kGood : Check::kPartial;
}

bool printable(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  return true;
}

// Format codes and parameter values of Bind and FunctionCall.
bool params(Rd& r, bool with_result_formats) {
  uint32_t nf, np, nr;
  if (!r.u16(nf)) return false;
  for (uint32_t i = 0; i < nf; ++i) {
    uint32_t f;
    if (!r.u16(f)) return false;
    if (f > 1) return false;
  }
  if (!r.u16(np)) return false;
  for (uint32_t i = 0; i < np; ++i)
    if (!r.value()) return false;
  if (!with_result_formats) return true;
  if (!r.u16(nr)) return false;
  for (uint32_t i = 0; i < nr; ++i) {
    uint32_t f;
    if (!r.u16(f)) return false;
    if (f > 1) return false;
  }
  return true;
}

Check client_content(char t, Rd& r) {
  std::string_view a, b;
  switch (t) {
    case 'Q': {
      const void* z = r.n ? std::memchr(r.p, 0, r.n) : nullptr;
      if (!r.full) return z ? Check::kBad : Check::kPartial;
      return z == r.p + r.n - 1 ? Check::kGood : Check::kBad;
    }
    case 'P': {
      uint32_t n;
      bool ok = r.cstr(a) && r.cstr(b) && r.u16(n);
      if (!ok) return verdict_of(r, false);
      if (r.full) return r.n == size_t(n) * 4 ? Check::kGood : Check::kBad;
      return r.n <= size_t(n) * 4 ? Check::kPartial : Check::kBad;
    }
    case 'B': {
      bool ok = r.cstr(a) && r.cstr(b) && params(r, true);
      return verdict_of(r, ok && (!r.full || r.at_end()));
    }
    case 'E': {
      uint32_t rows;
      bool ok = r.cstr(a) && r.u32(rows);
      return verdict_of(r, ok && r.at_end());
    }
    case 'D':
    case 'C': {
      unsigned char k;
      bool ok = r.byte(k) && (k == 'S' || k == 'P') && r.cstr(a);
      return verdict_of(r, ok && r.at_end());
    }
    case 'f': {
      bool ok = r.cstr(a);
      return verdict_of(r, ok && r.at_end());
    }
    case 'F': {
      uint32_t oid, rf;
      bool ok = r.u32(oid) && params(r, false) && r.u16(rf) && rf <= 1;
      return verdict_of(r, ok && (!r.full || r.at_end()));
    }
    default: // Sync, Flush, Terminate, CopyDone (length checked), CopyData, password: opaque
      return r.full ? Check::kGood : Check::kPartial;
  }
}

Check server_content(char t, Rd& r, int ncols) {
  std::string_view a, b;
  switch (t) {
    case 'Z': {
      unsigned char s;
      bool ok = r.byte(s) && (s == 'I' || s == 'T' || s == 'E');
      return verdict_of(r, ok);
    }
    case 'C': {
      bool ok = r.cstr(a) && r.at_end() && !a.empty() && a[0] >= 'A' && a[0] <= 'Z' && printable(a);
      if (r.out && !r.full) { // prefix of a tag: check what is visible
        std::string_view v(r.p, r.n);
        return !v.empty() && (v[0] < 'A' || v[0] > 'Z') ? Check::kBad
               : printable(v)                            ? Check::kPartial
                                                         : Check::kBad;
      }
      return verdict_of(r, ok);
    }
    case 'D': {
      uint32_t n;
      if (!r.u16(n)) return verdict_of(r, false);
      if (ncols >= 0 && n != uint32_t(ncols)) return Check::kBad;
      bool ok = true;
      for (uint32_t i = 0; i < n && ok; ++i) ok = r.value();
      return verdict_of(r, ok && r.at_end());
    }
    case 'T': {
      uint32_t n;
      if (!r.u16(n)) return verdict_of(r, false);
      bool ok = true;
      for (uint32_t i = 0; i < n && ok; ++i) ok = r.cstr(a) && r.skip(18);
      return verdict_of(r, ok && r.at_end());
    }
    case 't': {
      uint32_t n;
      if (!r.u16(n)) return verdict_of(r, false);
      bool ok = r.skip(size_t(n) * 4);
      return verdict_of(r, ok && r.at_end());
    }
    case 'E':
    case 'N': {
      for (;;) {
        unsigned char code;
        if (!r.byte(code)) return verdict_of(r, false);
        if (code == 0) return verdict_of(r, r.at_end());
        if (!((code >= 'A' && code <= 'Z') || (code >= 'a' && code <= 'z'))) return Check::kBad;
        if (!r.cstr(a)) return verdict_of(r, false);
      }
    }
    case 'S': {
      bool ok = r.cstr(a) && r.cstr(b) && r.at_end() && !a.empty() && printable(a);
      return verdict_of(r, ok);
    }
    case 'R': {
      uint32_t code;
      if (!r.u32(code)) return verdict_of(r, false);
      switch (code) {
        case 0: case 2: case 3: case 6: case 7: case 9:
          return verdict_of(r, r.at_end());
        case 5:
          return verdict_of(r, r.skip(4) && r.at_end());
        case 8: case 11: case 12:
          return r.full ? Check::kGood : Check::kPartial;
        case 10: // SASL mechanism names, then an empty one
          for (;;) {
            if (!r.cstr(a)) return verdict_of(r, false);
            if (a.empty()) return verdict_of(r, r.at_end());
            if (!printable(a)) return Check::kBad;
          }
        default:
          return Check::kBad;
      }
    }
    case 'A': {
      uint32_t pid;
      bool ok = r.u32(pid) && r.cstr(a) && r.cstr(b);
      return verdict_of(r, ok && r.at_end());
    }
    case 'G':
    case 'H':
    case 'W': {
      unsigned char fmt;
      uint32_t n;
      bool ok = r.byte(fmt) && fmt <= 1 && r.u16(n);
      for (uint32_t i = 0; ok && i < n; ++i) {
        uint32_t f;
        ok = r.u16(f) && f <= 1;
      }
      return verdict_of(r, ok && r.at_end());
    }
    case 'V':
      return verdict_of(r, r.value() && r.at_end());
    case 'v': {
      uint32_t minor, n;
      bool ok = r.u32(minor) && r.u32(n);
      for (uint32_t i = 0; ok && i < n; ++i) ok = r.cstr(a);
      return verdict_of(r, ok && r.at_end());
    }
    default: // fixed-length types (length checked), CopyData, BackendKeyData
      return r.full ? Check::kGood : Check::kPartial;
  }
}

} // namespace

const Bounds& bounds(bool client, unsigned char type) {
  return client ? kClientTable.b[type] : kServerTable.b[type];
}

Check check_content(char type, bool client, std::string_view body, bool full, int ncols) {
  Rd r{body.data(), body.size(), full};
  return client ? client_content(type, r) : server_content(type, r, ncols);
}

Check check_typed(std::string_view p, bool client, int ncols, uint64_t* total) {
  if (p.empty()) return Check::kShort;
  const Bounds& b = bounds(client, static_cast<unsigned char>(p[0]));
  if (b.max == 0) return Check::kBad;
  if (p.size() < 5) return Check::kShort;
  const uint32_t len = be32(p.data() + 1);
  if (len < b.min || len > b.max) return Check::kBad;
  if (total) *total = uint64_t(len) + 1;
  const size_t body_len = len - 4;
  const size_t vis = std::min(body_len, p.size() - 5);
  return check_content(p[0], client, p.substr(5, vis), vis == body_len, ncols);
}

Check check_startup(std::string_view p, uint64_t* total) {
  if (p.size() < 4) return Check::kShort;
  const uint32_t len = be32(p.data());
  if (len < 8 || len > kMaxStartup) return Check::kBad;
  if (total) *total = len;
  if (p.size() < 8) return Check::kShort;
  const uint32_t code = be32(p.data() + 4);
  const bool full = p.size() >= len;
  if (code == kSslCode || code == kGssCode) return len == 8 ? Check::kGood : Check::kBad;
  if (code == kCancelCode) {
    if (len < 16 || len > 12 + kMaxCancelKey) return Check::kBad;
    return full ? Check::kGood : Check::kPartial;
  }
  if ((code >> 16) != 3 || (code & 0xFFFF) > 0xFF || len < 9) return Check::kBad;
  // name NUL value NUL ... NUL
  Rd r{p.data() + 8, std::min<size_t>(p.size(), len) - 8, full};
  for (;;) {
    std::string_view name, value;
    if (!r.cstr(name)) return verdict_of(r, false);
    if (name.empty()) return verdict_of(r, r.at_end());
    if (!printable(name)) return Check::kBad;
    if (!r.cstr(value)) return verdict_of(r, false);
  }
}

bool direct_tls(std::string_view p) {
  // Handshake record, TLS 1.x, ClientHello; ALPN protocol names are length-prefixed.
  if (p.size() < 6 || p[0] != 0x16 || p[1] != 0x03 || p[5] != 0x01) return false;
  return p.find(std::string_view("\x0apostgresql", 11)) != std::string_view::npos;
}

Chain check_chain(std::string_view p, bool client, int ncols, unsigned max_msgs) {
  Chain c;
  size_t off = 0;
  for (unsigned k = 0; k < max_msgs; ++k) {
    if (off == p.size()) {
      c.exact = c.good > 0;
      break;
    }
    uint64_t total = 0;
    const std::string_view rest = p.substr(off);
    const Check ck = check_typed(rest, client, ncols, &total);
    if (ck == Check::kBad) {
      c.bad = true;
      break;
    }
    if (ck == Check::kShort) break;
    if (ck == Check::kPartial) {
      c.partial = true;
      break;
    }
    ++c.good;
    if (!client && rest[0] == 'T') ncols = be16(rest.data() + 5);
    else if (!client && rest[0] == 'C') ncols = -1;
    off += total;
  }
  if (off == p.size() && c.good > 0) c.exact = true;
  return c;
}

bool strong_boundary(std::string_view p, bool client, int ncols, bool fully_captured) {
  const Chain c = check_chain(p, client, ncols, 2);
  if (c.bad || c.good == 0) return false;
  return c.good >= 2 || c.partial || (c.exact && fully_captured);
}

size_t find_boundary(std::string_view p, bool client, int ncols, bool fully_captured) {
  for (size_t i = 0; i + 5 <= p.size(); ++i) {
    const unsigned char t = static_cast<unsigned char>(p[i]);
    const Bounds& b = bounds(client, t);
    if (b.max == 0) continue;
    const uint32_t len = be32(p.data() + i + 1);
    if (len < b.min || len > b.max) continue;
    if (strong_boundary(p.substr(i), client, ncols, fully_captured)) return i;
  }
  return std::string_view::npos;
}

} // namespace odigos::pg::wire

namespace odigos::pg {

bool looks_like_pg_startup(std::string_view b) {
  if (b.size() < 8) return false;
  const wire::Check c = wire::check_startup(b, nullptr);
  return c == wire::Check::kGood || c == wire::Check::kPartial;
}

bool looks_like_pg_midstream(std::string_view bytes, bool from_client) {
  if (bytes.size() < 5) return false;
  const wire::Chain c = wire::check_chain(bytes, from_client, -1, 4);
  return !c.bad && (c.good > 0 || c.partial);
}

} // namespace odigos::pg
