// Payload readers for single MySQL packets (layouts: MySQL client/server
// protocol documentation, MariaDB's where it differs).
#include "protocols/mysql/packets.hpp"

#include "protocols/mysql/mysql.hpp"

#include <algorithm>

namespace odigos::mysql::wire {

uint8_t Reader::u8() {
  if (left() < 1) {
    ok_ = false;
    return 0;
  }
  return static_cast<uint8_t>(s_[i_++]);
}

uint16_t Reader::u16() {
  if (left() < 2) {
    ok_ = false;
    i_ = s_.size();
    return 0;
  }
  const auto* b = reinterpret_cast<const uint8_t*>(s_.data() + i_);
  i_ += 2;
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}

uint32_t Reader::u24() {
  if (left() < 3) {
    ok_ = false;
    i_ = s_.size();
    return 0;
  }
  const auto* b = reinterpret_cast<const uint8_t*>(s_.data() + i_);
  i_ += 3;
  return b[0] | (b[1] << 8) | (static_cast<uint32_t>(b[2]) << 16);
}

uint32_t Reader::u32() {
  const uint32_t lo = u16();
  const uint32_t hi = u16();
  return lo | (hi << 16);
}

uint64_t Reader::lenenc() {
  const uint8_t b = u8();
  if (!ok_) return 0;
  if (b < 0xfb) return b;
  if (b == 0xfc) return u16();
  if (b == 0xfd) return u24();
  if (b == 0xfe) {
    const uint64_t lo = u32();
    const uint64_t hi = u32();
    return lo | (hi << 32);
  }
  ok_ = false; // 0xfb (NULL) or 0xff
  return 0;
}

std::string_view Reader::bytes(size_t n) {
  if (left() < n) {
    ok_ = false;
    i_ = s_.size();
    return {};
  }
  const std::string_view r = s_.substr(i_, n);
  i_ += n;
  return r;
}

std::string_view Reader::nul_str() {
  const size_t e = s_.find('\0', i_);
  if (e == std::string_view::npos) {
    ok_ = false;
    const std::string_view r = s_.substr(i_);
    i_ = s_.size();
    return r;
  }
  const std::string_view r = s_.substr(i_, e - i_);
  i_ = e + 1;
  return r;
}

std::string_view Reader::lenenc_str() {
  const uint64_t n = lenenc();
  if (!ok_) return {};
  if (n > left()) {
    ok_ = false;
    i_ = s_.size();
    return {};
  }
  return bytes(static_cast<size_t>(n));
}

std::string_view Reader::rest() {
  const std::string_view r = s_.substr(i_);
  i_ = s_.size();
  return r;
}

size_t lenenc_size(uint8_t b) {
  if (b < 0xfb) return 1;
  if (b == 0xfc) return 3;
  if (b == 0xfd) return 4;
  if (b == 0xfe) return 9;
  return 0;
}

namespace {

bool printable(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// The first bytes of SQL text: no control bytes but whitespace.
bool text_start_ok(std::string_view t) {
  for (unsigned char c : t.substr(0, 16))
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
  return true;
}

// Skips one binary-protocol value of `type` (query attribute values).
bool skip_value(Reader& r, uint8_t type) {
  switch (type) {
    case 6: return true;                  // NULL
    case 1: r.bytes(1); break;            // TINY
    case 2: case 13: r.bytes(2); break;   // SHORT, YEAR
    case 3: case 4: case 9: r.bytes(4); break;  // LONG, FLOAT, INT24
    case 5: case 8: r.bytes(8); break;    // DOUBLE, LONGLONG
    case 7: case 10: case 11: case 12: case 14: case 17: case 18: case 19:
      r.bytes(r.u8());                    // temporal: length byte + value
      break;
    case 0: case 15: case 16: case 242: case 245: case 246: case 247: case 248: case 249: case 250:
    case 251: case 252: case 253: case 254: case 255:
      r.lenenc_str();
      break;
    default: return false;
  }
  return r.ok();
}

bool query_text_attrs(std::string_view p, std::string_view& text, size_t& offset) {
  Reader r(p);
  r.u8(); // command
  const uint64_t count = r.lenenc();
  const uint64_t sets = r.lenenc();
  if (!r.ok() || sets != 1 || count > 0xffff) return false;
  if (count > 0) {
    const std::string_view nulls = r.bytes(static_cast<size_t>((count + 7) / 8));
    if (r.u8() != 1 || !r.ok()) return false; // new_params_bind_flag: always 1
    uint8_t types[64];
    if (count > sizeof(types)) return false;
    for (uint64_t k = 0; k < count; ++k) {
      types[k] = static_cast<uint8_t>(r.u16() & 0xff);
      r.lenenc_str(); // name
    }
    for (uint64_t k = 0; k < count && r.ok(); ++k) {
      if ((static_cast<uint8_t>(nulls[k / 8]) >> (k % 8)) & 1) continue;
      if (!skip_value(r, types[k])) return false;
    }
    if (!r.ok()) return false;
  }
  offset = r.pos();
  text = r.rest();
  return true;
}

} // namespace

bool parse_greeting(std::string_view p, Greeting& g) {
  Reader r(p);
  if (r.u8() != 10) return false;
  g.server_version = r.nul_str();
  if (!r.ok() || g.server_version.empty() || g.server_version.size() > 255 ||
      !printable(g.server_version))
    return false;
  g.connection_id = r.u32();
  r.bytes(8); // auth-plugin-data part 1
  const uint8_t filler = r.u8();
  g.caps = r.u16();
  if (!r.ok() || filler != 0) return false;
  if (r.left() == 0) return true; // pre-4.1 layout ends here
  r.u8(); // character set
  g.status = r.u16();
  g.caps |= static_cast<uint32_t>(r.u16()) << 16;
  const uint8_t auth_len = r.u8();
  r.bytes(10); // reserved (MariaDB: extended capabilities in the last 4)
  if (!r.ok()) return true; // captured prefix ends early: what was read stands
  if (g.caps & kClientSecureConnection) r.bytes(std::max<size_t>(13, auth_len > 8 ? auth_len - 8 : 0));
  if (r.ok() && (g.caps & kClientPluginAuth)) g.auth_plugin = r.nul_str(); // some servers omit the NUL
  return true;
}

bool parse_handshake_response(std::string_view p, uint64_t len, HandshakeResponse& out) {
  Reader r(p);
  const bool truncated = p.size() < len;
  uint32_t caps = r.u32();
  if (!r.ok()) return false;
  if (!(caps & kClientProtocol41)) {
    // HandshakeResponse320: caps(2) max-packet(3) user NUL [auth NUL] [db NUL].
    Reader o(p);
    caps = o.u16();
    o.u24();
    out.caps = caps;
    out.user = o.nul_str();
    if (!o.ok()) return truncated && printable(out.user);
    if (!printable(out.user)) return false;
    if (caps & kClientConnectWithDb) {
      o.nul_str();
      out.database = o.nul_str();
      if (!o.ok() && !truncated) out.database = {};
    }
    return true;
  }
  out.caps = caps;
  r.u32(); // max packet size
  r.u8();  // character set
  const std::string_view filler = r.bytes(23);
  if (!r.ok()) return false;
  // MariaDB keeps its extended capabilities in the filler's last 4 bytes.
  for (size_t k = 0; k < 19; ++k)
    if (filler[k] != 0) return false;
  if (len == 32) {
    out.ssl_request = (caps & kClientSsl) != 0;
    return out.ssl_request;
  }
  out.user = r.nul_str();
  if (!r.ok()) return truncated && printable(out.user);
  if (!printable(out.user)) return false;
  if (caps & kClientPluginAuthLenencData) r.lenenc_str();
  else if (caps & kClientSecureConnection) r.bytes(r.u8());
  else r.nul_str();
  if (!r.ok()) return truncated;
  if (caps & kClientConnectWithDb) {
    out.database = r.nul_str();
    if (!r.ok()) {
      if (!truncated) out.database = {};
      return true;
    }
  }
  if (caps & kClientPluginAuth) {
    out.auth_plugin = r.nul_str();
    if (!r.ok()) out.auth_plugin = {};
  }
  return true;
}

bool parse_ok(std::string_view p, uint32_t caps, bool caps_known, Ok& ok) {
  Reader r(p);
  const uint8_t h = r.u8();
  if (h != 0x00 && h != 0xfe) return false;
  ok.affected_rows = r.lenenc();
  ok.last_insert_id = r.lenenc();
  if (!r.ok()) return false;
  ok.status = r.u16();
  if (!caps_known || (caps & kClientProtocol41)) ok.warnings = r.u16();
  if (!r.ok()) {
    ok.status = ok.warnings = 0; // captured prefix too short
    return true;
  }
  if (caps_known && (caps & kClientSessionTrack) && r.left() > 0) {
    r.lenenc_str(); // human-readable info
    if (r.ok() && (ok.status & kServerSessionStateChanged)) {
      Reader st(r.lenenc_str());
      while (r.ok() && st.ok() && st.left() > 0) {
        const uint8_t type = st.u8();
        Reader item(st.lenenc_str());
        if (type == 1) { // SESSION_TRACK_SCHEMA
          const std::string_view name = item.lenenc_str();
          if (item.ok() && st.ok()) {
            ok.has_schema = true;
            ok.schema = name;
          }
        }
      }
    }
  }
  return true;
}

bool parse_err(std::string_view p, Err& e) {
  Reader r(p);
  if (r.u8() != 0xff) return false;
  e.code = r.u16();
  if (!r.ok()) return false;
  if (r.left() >= 6 && p[r.pos()] == '#') {
    r.u8();
    e.sql_state = r.bytes(5);
  }
  e.message = r.rest();
  return true;
}

uint16_t eof_status(std::string_view p) {
  Reader r(p);
  r.u8();
  r.u16(); // warnings
  const uint16_t status = r.u16();
  return r.ok() ? status : 0;
}

bool parse_prepare_ok(std::string_view p, uint64_t len, PrepareOk& out) {
  if (len < 9 || len > 13) return false;
  Reader r(p);
  if (r.u8() != 0) return false;
  out.statement_id = r.u32();
  out.columns = r.u16();
  out.params = r.u16();
  if (!r.ok()) return false;
  if (len >= 10 && r.left() >= 1 && r.u8() != 0) return false; // reserved filler
  if (len >= 13 && r.left() >= 3) {
    r.u16(); // warnings
    out.metadata_follows = r.u8() != 0;
  }
  return true;
}

bool parse_column_count(std::string_view p, uint64_t len, uint64_t& count, bool& metadata_follows) {
  if (p.empty()) return false;
  const size_t s = lenenc_size(static_cast<uint8_t>(p[0]));
  if (s == 0 || (len != s && len != s + 1)) return false;
  Reader r(p);
  count = r.lenenc();
  if (!r.ok() || count == 0 || count > 0xffff) return false;
  metadata_follows = true;
  if (len == s + 1) {
    const uint8_t f = r.u8();
    if (r.ok()) metadata_follows = f != 0;
  }
  return true;
}

bool query_text(std::string_view p, int attrs, std::string_view& text, size_t& offset) {
  if (p.empty()) return false;
  const std::string_view body = p.substr(1);
  bool try_attrs = attrs == 1;
  if (attrs < 0 && !body.empty()) {
    const unsigned char c = static_cast<unsigned char>(body[0]);
    try_attrs = c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v';
  }
  if (try_attrs && query_text_attrs(p, text, offset)) return true;
  if (attrs == 1) return false;
  offset = 1;
  text = body;
  return true;
}

bool command_plausible(std::string_view head, uint64_t len) {
  if (len == 0 || head.empty()) return false;
  const uint8_t c = static_cast<uint8_t>(head[0]);
  const std::string_view body = head.substr(1);
  switch (c) {
    case kComQuit:
    case kComStatistics:
    case kComPing:
    case 0x0a: // COM_PROCESS_INFO
    case 0x0d: // COM_DEBUG
    case kComResetConnection:
      return len == 1;
    case kComInitDb:
    case 0x05: // COM_CREATE_DB
    case 0x06: // COM_DROP_DB
      return len >= 2 && len <= 257 && printable(body);
    case kComQuery:
    case kComStmtPrepare: {
      if (len < 2) return false;
      if (body.size() >= 2 && static_cast<uint8_t>(body[0]) < 0x20 && body[1] == 0x01 && c == kComQuery)
        return true; // query attributes: count, set count 1
      return text_start_ok(body);
    }
    case kComFieldList: {
      if (len < 2) return false;
      const size_t nul = body.find('\0');
      return printable(body.substr(0, nul)) && nul != 0;
    }
    case 0x0c: // COM_PROCESS_KILL
    case kComStmtClose:
    case kComStmtReset:
      return len == 5;
    case kComStmtExecute:
      if (len < 10) return false;
      // flags (cursor type, MariaDB bulk bits) then iteration count, always 1
      if (body.size() >= 9)
        return static_cast<uint8_t>(body[4]) <= 0x0f && body[5] == 1 && body[6] == 0 && body[7] == 0 &&
               body[8] == 0;
      return true;
    case kComStmtBulkExecute:
    case kComStmtSendLongData:
      return len >= 7;
    case kComStmtFetch:
      return len == 9;
    case kComSetOption:
      return len == 3 && (body.size() < 2 || (static_cast<uint8_t>(body[0]) <= 1 && body[1] == 0));
    case kComChangeUser:
      return len >= 2;
    case 0x07: // COM_REFRESH
      return len == 2;
    case 0x08: // COM_SHUTDOWN
      return len <= 2;
    case kComBinlogDump:
      return len >= 11;
    case kComBinlogDumpGtid:
      return len >= 19;
    case 0x15: // COM_REGISTER_SLAVE
      return len >= 18;
    default:
      return false;
  }
}

} // namespace odigos::mysql::wire

namespace odigos::mysql {

bool looks_like_mysql_handshake(std::string_view b) {
  if (b.size() < 5) return false;
  wire::Reader r(b);
  const uint32_t len = r.u24();
  const uint8_t seq = r.u8();
  if (seq != 0 || len < 20 || len > 0x4000) return false;
  const std::string_view payload = b.substr(4, std::min<size_t>(len, b.size() - 4));
  if (static_cast<uint8_t>(payload[0]) != 10) return false;
  // The version string must be visible; the fields after it are checked as
  // far as they were captured.
  const size_t nul = payload.find('\0', 1);
  if (nul == std::string_view::npos) return false;
  const std::string_view version = payload.substr(1, nul - 1);
  if (version.empty() || version.size() > 255 || !wire::printable(version) || version[0] < '0' || version[0] > '9')
    return false;
  const size_t filler = nul + 1 + 4 + 8;
  if (filler >= len) return false;
  return filler >= payload.size() || payload[filler] == 0;
}

bool looks_like_mysql_command(std::string_view b) {
  if (b.size() < 5) return false;
  wire::Reader r(b);
  const uint32_t len = r.u24();
  const uint8_t seq = r.u8();
  if (seq != 0) return false;
  return wire::command_plausible(b.substr(4, std::min<size_t>(len, b.size() - 4)), len);
}

} // namespace odigos::mysql
