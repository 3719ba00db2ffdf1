#include "sinks/json.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "core/clock.hpp"

namespace odigos {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_len(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  if (n == 2 && c < 0xC2) return 0; // overlong
  return n;
}

void append_number(double v, std::string& out) {
  if (!std::isfinite(v)) v = 0;
  fmt::format_to(std::back_inserter(out), "{:.3f}", v);
}

void append_value(const AttrValue& v, std::string& out) {
  switch (v.index()) {
  case 0: append_json_string(std::get<std::string>(v), out); break;
  case 1: out += fmt::format_int(std::get<int64_t>(v)).str(); break;
  case 2: append_number(std::get<double>(v), out); break;
  case 3: out += std::get<bool>(v) ? "true" : "false"; break;
  }
}

// Splits "a.b.c" into its segments without allocating.
size_t split(std::string_view key, std::array<std::string_view, 8>& parts) {
  size_t n = 0, start = 0;
  while (n < parts.size()) {
    size_t dot = key.find('.', start);
    if (dot == std::string_view::npos || n == parts.size() - 1) {
      parts[n++] = key.substr(start);
      break;
    }
    parts[n++] = key.substr(start, dot - start);
    start = dot + 1;
  }
  return n;
}

} // namespace

void append_json_string(std::string_view s, std::string& out) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    // Runs of plain ASCII (the common case) are copied in one append.
    size_t run = i;
    while (run < s.size()) {
      auto r = static_cast<unsigned char>(s[run]);
      if (r < 0x20 || r >= 0x80 || r == '"' || r == '\\') break;
      run++;
    }
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(char(c));
      i++;
    } else if (c < 0x20) {
      switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
      }
      i++;
    } else if (c < 0x80) {
      out.push_back(char(c));
      i++;
    } else if (size_t n = utf8_len(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      i++;
    }
  }
  out.push_back('"');
}

void append_record_json(const Record& r, std::string& out) {
  out += "{\"kind\":\"";
  out += to_string(r.kind);
  fmt::format_to(std::back_inserter(out), "\",\"schema_version\":{},\"time\":\"", kSchemaVersion);
  append_rfc3339_ns(r.start_ns, out);
  fmt::format_to(std::back_inserter(out), "\",\"time_unix_nano\":{}", r.start_ns);
  if (r.kind != RecordKind::kLoss) {
    out += ",\"duration_ms\":";
    append_number(r.duration_ms, out);
    if (r.ttfb_ms >= 0) {
      out += ",\"ttfb_ms\":";
      append_number(r.ttfb_ms, out);
    }
    if (!r.protocol.empty()) {
      out += ",\"protocol\":";
      append_json_string(r.protocol, out);
    }
    fmt::format_to(std::back_inserter(out),
                   ",\"side\":\"{}\",\"complete\":{},\"process\":{{\"pid\":{},\"command\":",
                   to_string(r.side), r.complete ? "true" : "false", r.pid);
    append_json_string(r.command, out);
    fmt::format_to(std::back_inserter(out), "}},\"thread\":{{\"id\":{}}}", r.tid);
  }

  // Attributes sorted by name, so members of one object are adjacent; then
  // open and close objects as the dotted prefixes change.
  std::array<uint16_t, 128> order;
  size_t n = std::min(r.attrs.size(), order.size());
  for (size_t i = 0; i < n; i++) order[i] = uint16_t(i);
  std::stable_sort(order.begin(), order.begin() + n,
                   [&](uint16_t a, uint16_t b) { return r.attrs[a].first < r.attrs[b].first; });
  std::array<std::string_view, 8> open{}, parts{};
  size_t depth = 0;
  std::string_view prev_leaf_path;
  bool first = false; // the fixed fields precede the attributes
  for (size_t k = 0; k < n; k++) {
    const auto& [key, value] = r.attrs[order[k]];
    if (key == prev_leaf_path) continue; // duplicate name: the first wins
    size_t m = split(key, parts);
    // Common prefix of object path with what is open.
    size_t common = 0;
    while (common < depth && common + 1 < m && open[common] == parts[common]) common++;
    // A leaf whose name is also an object prefix cannot be represented: skip.
    bool conflict = common < depth && common + 1 == m && open[common] == parts[common];
    if (conflict) continue;
    for (; depth > common; depth--) {
      out.push_back('}');
      first = false;
    }
    for (; depth + 1 < m; depth++) {
      if (!first) out.push_back(',');
      append_json_string(parts[depth], out);
      out += ":{";
      open[depth] = parts[depth];
      first = true;
    }
    if (!first) out.push_back(',');
    first = false;
    append_json_string(parts[m - 1], out);
    out.push_back(':');
    append_value(value, out);
    prev_leaf_path = key;
  }
  for (; depth > 0; depth--) out.push_back('}');
  out.push_back('}');
}

} // namespace odigos
