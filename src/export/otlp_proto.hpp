// OTLP protobuf: a minimal hand-written protobuf writer and the messages of
// opentelemetry-proto (collector/trace/v1, trace/v1, common/v1, resource/v1)
// that odigos-trace sends, with their official field numbers.
//
// A span is encoded once, on the reader thread, as a complete `spans` field of
// ScopeSpans (tag, length, Span message); a request is then the concatenation of
// those under their resource's ResourceSpans, without re-encoding any span.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/record.hpp"
#include "export/resource.hpp"

namespace odigos::otlp {

namespace pb {
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2 };
void put_varint(std::string& out, uint64_t v);
size_t varint_size(uint64_t v);
void put_tag(std::string& out, uint32_t field, WireType wt);
void put_fixed64(std::string& out, uint64_t v);
void put_double(std::string& out, double v);
void put_bytes(std::string& out, uint32_t field, std::string_view bytes);   // tag, length, bytes
void put_string(std::string& out, uint32_t field, std::string_view utf8);   // invalid UTF-8 -> U+FFFD
void put_uint(std::string& out, uint32_t field, uint64_t v);                // varint field
// Length-delimited field whose body is written by f(out); the length is
// patched in afterwards (the body is moved if the length needs > 1 byte).
template <class F>
void put_message(std::string& out, uint32_t field, F&& f) {
  put_tag(out, field, kLen);
  size_t len_at = out.size();
  out.push_back('\0');
  size_t body_at = out.size();
  f(out);
  size_t len = out.size() - body_at;
  if (len < 128) {
    out[len_at] = char(len);
    return;
  }
  std::string lenbytes;
  put_varint(lenbytes, len);
  out.replace(len_at, 1, lenbytes);
}
// Is s valid UTF-8? (protobuf string fields must be.)
bool valid_utf8(std::string_view s);
// s with each invalid UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);
} // namespace pb

// Field numbers (opentelemetry-proto v1).
namespace field {
// collector.trace.v1.ExportTraceServiceRequest and trace.v1.TracesData
constexpr uint32_t kResourceSpans = 1;
// trace.v1.ResourceSpans
constexpr uint32_t kRsResource = 1, kRsScopeSpans = 2;
// trace.v1.ScopeSpans
constexpr uint32_t kSsScope = 1, kSsSpans = 2;
// common.v1.InstrumentationScope
constexpr uint32_t kScopeName = 1, kScopeVersion = 2;
// resource.v1.Resource
constexpr uint32_t kResourceAttributes = 1;
// trace.v1.Span
constexpr uint32_t kSpanTraceId = 1, kSpanSpanId = 2, kSpanTraceState = 3, kSpanParentSpanId = 4, kSpanName = 5,
                   kSpanKind = 6, kSpanStart = 7, kSpanEnd = 8, kSpanAttributes = 9, kSpanStatus = 15;
// trace.v1.Status
constexpr uint32_t kStatusMessage = 2, kStatusCode = 3;
// common.v1.KeyValue, common.v1.AnyValue
constexpr uint32_t kKvKey = 1, kKvValue = 2;
constexpr uint32_t kAnyString = 1, kAnyBool = 2, kAnyInt = 3, kAnyDouble = 4;
} // namespace field

void append_any_value_proto(std::string& out, const AttrValue& v); // AnyValue message body
void append_key_value_proto(std::string& out, uint32_t field, std::string_view key, const AttrValue& v);
// Resource message body (attributes).
void append_resource_proto(std::string& out, const KeyValues& attrs);
// InstrumentationScope message body.
void append_scope_proto(std::string& out);
// The record as ScopeSpans field 2 (tag + length + Span); false (nothing
// appended) when it is not a span.
bool append_span_field_proto(std::string& out, const Record& r);

// Spans of one resource: concatenated append_span_field_proto() outputs.
struct ProtoGroup {
  const Resource* resource;
  std::string_view span_fields;
};
// ExportTraceServiceRequest (same bytes as TracesData).
void append_export_request_proto(std::string& out, const std::vector<ProtoGroup>& groups);

} // namespace odigos::otlp
