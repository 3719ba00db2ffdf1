// OTLP/JSON (the protobuf JSON mapping with OTLP's exceptions): lowerCamelCase
// field names, trace and span ids as lowercase hex, enums as integers, 64-bit
// integers as decimal strings. Written by hand into reused buffers: a span is
// encoded once, on the reader thread, into the bytes that go out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/record.hpp"
#include "export/resource.hpp"

namespace odigos::otlp {

constexpr const char* kScopeName = "odigos-trace";

// Is the record a span (a request with ids from the trace linker)?
inline bool is_span(const Record& r) { return r.kind == RecordKind::kRequest && r.span.valid(); }
// OTLP SpanKind: SERVER 2, CLIENT 3, else INTERNAL 1.
inline int span_kind(const Record& r) {
  return r.side == RecordSide::kServer ? 2 : r.side == RecordSide::kClient ? 3 : 1;
}
// The span name (never empty: OTLP requires one).
std::string_view span_name(const Record& r);
// Status message: only for an error status; the error's description when the
// record has one beyond a status code.
std::string_view status_message(const Record& r);

void append_hex(std::string& out, const uint8_t* p, size_t n);
void append_any_value_json(std::string& out, const AttrValue& v);
void append_key_value_json(std::string& out, std::string_view key, const AttrValue& v);
// {"attributes":[...]}
void append_resource_json(std::string& out, const KeyValues& attrs);
// {"name":"odigos-trace","version":"..."}
void append_scope_json(std::string& out);
// One Span object; nothing when the record is not a span (returns false).
bool append_span_json(std::string& out, const Record& r);

// Spans of one resource: their Span objects joined by commas.
struct JsonGroup {
  const Resource* resource;
  std::string_view spans;
};
// {"resourceSpans":[...]}: a TracesData, and also the body of an OTLP/HTTP JSON
// ExportTraceServiceRequest (the same single field).
void append_traces_json(std::string& out, const std::vector<JsonGroup>& groups);

} // namespace odigos::otlp
