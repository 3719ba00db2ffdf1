// W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent
// and tracestate HTTP headers, parsed and validated. Pure functions, no
// allocation beyond the returned tracestate copy.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace odigos::w3c {

struct TraceParent {
  uint8_t version = 0;
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> parent_id{};
  uint8_t flags = 0;
  bool sampled() const { return flags & 1; }
};

// One traceparent value. Valid per the spec: version is two lowercase hex
// digits and not "ff"; version 00 is exactly 55 characters; a later version
// is at least 55, and a longer value continues with '-' after the flags
// (its extra fields are ignored); trace-id and parent-id are lowercase hex
// and not all zero. Optional whitespace around the value (HTTP OWS) is
// ignored. Anything else: nullopt.
std::optional<TraceParent> parse_traceparent(std::string_view value);

// The traceparent of a message from every traceparent field it carried: a
// message with two or more is invalid (nullopt), as is one whose only field
// is invalid.
std::optional<TraceParent> traceparent_of(const std::vector<std::string_view>& fields);

// The tracestate to propagate, from every tracestate field of the message
// (combined in order, as HTTP allows a list header to be split). Valid list
// members are key=value with keys `lcalpha 0*255(lcalpha / DIGIT / "_" / "-"
// / "*" / "/")` or `tenant@system` (tenant starts with lcalpha or DIGIT, at
// most 241 chars; system starts with lcalpha, at most 14), values of 1..256
// printable characters except ',' and '=' not ending in a space. Empty
// members are allowed and dropped. Any invalid member, a duplicated key or
// more than 32 members: the whole tracestate is discarded (nullopt).
std::optional<std::string> tracestate_of(const std::vector<std::string_view>& fields);

// Lowercase hex of n bytes at out (2n chars); returns the end. to_hex as a string.
char* put_hex(char* out, const uint8_t* p, size_t n);
std::string to_hex(const uint8_t* p, size_t n);

} // namespace odigos::w3c
