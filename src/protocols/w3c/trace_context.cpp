#include "protocols/w3c/trace_context.hpp"

#include "core/text.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace odigos::w3c {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; // upper case is not valid in trace context
}

// n bytes from 2n lowercase hex digits; false on any other character.
template <size_t N>
bool hex_bytes(std::string_view s, std::array<uint8_t, N>& out) {
  if (s.size() != 2 * N) return false;
  for (size_t i = 0; i < N; i++) {
    int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = uint8_t(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool all_zero(const std::array<uint8_t, N>& a) {
  return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
}

bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool key_char(char c) {
  return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

bool valid_key(std::string_view k) {
  if (k.empty()) return false;
  auto at = k.find('@');
  if (at == std::string_view::npos) {
    if (k.size() > 256 || !lcalpha(k[0])) return false;
    return std::all_of(k.begin(), k.end(), key_char);
  }
  std::string_view tenant = k.substr(0, at), system = k.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241 || !(lcalpha(tenant[0]) || digit(tenant[0])))
    return false;
  if (system.empty() || system.size() > 14 || !lcalpha(system[0])) return false;
  return std::all_of(tenant.begin(), tenant.end(), key_char) &&
         std::all_of(system.begin(), system.end(), key_char);
}

bool valid_value(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; });
}

} // namespace

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  v = trim_ows(v);
  if (v.size() < 55) return std::nullopt;
  TraceParent tp;
  std::array<uint8_t, 1> version{}, flags{};
  if (!hex_bytes(v.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
  if (version[0] == 0 && v.size() != 55) return std::nullopt;
  if (v.size() > 55 && v[55] != '-') return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  if (!hex_bytes(v.substr(3, 32), tp.trace_id) || all_zero(tp.trace_id)) return std::nullopt;
  if (!hex_bytes(v.substr(36, 16), tp.parent_id) || all_zero(tp.parent_id)) return std::nullopt;
  if (!hex_bytes(v.substr(53, 2), flags)) return std::nullopt;
  tp.version = version[0];
  tp.flags = flags[0];
  return tp;
}

std::optional<TraceParent> traceparent_of(const std::vector<std::string_view>& fields) {
  if (fields.size() != 1) return std::nullopt;
  return parse_traceparent(fields[0]);
}

std::optional<std::string> tracestate_of(const std::vector<std::string_view>& fields) {
  if (fields.empty()) return std::nullopt;
  std::vector<std::string_view> keys;
  std::string out;
  for (std::string_view f : fields) {
    size_t start = 0;
    while (start <= f.size()) {
      size_t comma = f.find(',', start);
      std::string_view member =
          trim_ows(f.substr(start, comma == std::string_view::npos ? f.npos : comma - start));
      if (!member.empty()) {
        auto eq = member.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        std::string_view key = member.substr(0, eq), value = member.substr(eq + 1);
        if (!valid_key(key) || !valid_value(value)) return std::nullopt;
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) return std::nullopt;
        keys.push_back(key);
        if (keys.size() > 32) return std::nullopt;
        if (!out.empty()) out.push_back(',');
        out.append(member);
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  if (keys.empty()) return std::nullopt;
  return out;
}

namespace {
// Each byte's two lower-case hex digits: one load and one two-byte store per
// byte (every record writes 24 bytes of ids).
constexpr std::array<std::array<char, 2>, 256> make_hex_pairs() {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<std::array<char, 2>, 256> t{};
  for (size_t b = 0; b < 256; b++) t[b] = {kHex[b >> 4], kHex[b & 15]};
  return t;
}
constexpr auto kHexPairs = make_hex_pairs();
} // namespace

char* put_hex(char* out, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++, out += 2) std::memcpy(out, kHexPairs[p[i]].data(), 2);
  return out;
}

std::string to_hex(const uint8_t* p, size_t n) {
  std::string s(2 * n, '0');
  put_hex(s.data(), p, n);
  return s;
}

} // namespace odigos::w3c
