// Small text helpers shared by the decoders, the trace context parser and the exporters.
#pragma once

#include <string_view>

namespace odigos {

// Without leading and trailing spaces and tabs (HTTP's and W3C's OWS, the members of
// OTEL_RESOURCE_ATTRIBUTES).
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of a hex digit (either case), -1 for anything else.
inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The last component of a path ("libssl.so.3" of "/usr/lib/x86_64-linux-gnu/libssl.so.3").
inline std::string_view basename_of(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

} // namespace odigos
