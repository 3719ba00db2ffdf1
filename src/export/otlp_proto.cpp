#include "export/otlp_proto.hpp"

#include <cstring>

#include "core/utf8.hpp"
#include "export/otlp_json.hpp"

namespace odigos::otlp {

namespace pb {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

void put_tag(std::string& out, uint32_t field, WireType wt) { put_varint(out, (uint64_t(field) << 3) | wt); }

void put_fixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(char(uint8_t(v >> (8 * i))));
}

void put_double(std::string& out, double v) {
  uint64_t bits;
  static_assert(sizeof bits == sizeof v);
  memcpy(&bits, &v, sizeof bits);
  put_fixed64(out, bits);
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, kLen);
  put_varint(out, bytes.size());
  out.append(bytes);
}

void put_uint(std::string& out, uint32_t field, uint64_t v) {
  put_tag(out, field, kVarint);
  put_varint(out, v);
}


bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (uint8_t(s[i]) < 0x80) {
      i++;
      continue;
    }
    size_t n = utf8_seq(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_seq(s, i);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i++;
    }
  }
  return out;
}

void put_string(std::string& out, uint32_t field, std::string_view utf8) {
  if (valid_utf8(utf8)) put_bytes(out, field, utf8);
  else put_bytes(out, field, sanitize_utf8(utf8));
}

} // namespace pb

using namespace pb;

void append_any_value_proto(std::string& out, const AttrValue& v) {
  if (auto* s = std::get_if<std::string>(&v)) {
    put_string(out, field::kAnyString, *s);
  } else if (auto* i = std::get_if<int64_t>(&v)) {
    put_uint(out, field::kAnyInt, uint64_t(*i)); // int64: two's complement varint
  } else if (auto* d = std::get_if<double>(&v)) {
    put_tag(out, field::kAnyDouble, kFixed64);
    put_double(out, *d);
  } else {
    put_uint(out, field::kAnyBool, std::get<bool>(v) ? 1 : 0);
  }
}

void append_key_value_proto(std::string& out, uint32_t f, std::string_view key, const AttrValue& v) {
  put_message(out, f, [&](std::string& o) {
    put_string(o, field::kKvKey, key);
    put_message(o, field::kKvValue, [&](std::string& o2) { append_any_value_proto(o2, v); });
  });
}

void append_resource_proto(std::string& out, const KeyValues& attrs) {
  for (auto& kv : attrs) append_key_value_proto(out, field::kResourceAttributes, kv.key, kv.value);
}

void append_scope_proto(std::string& out) {
  put_string(out, field::kScopeName, kScopeName);
  put_string(out, field::kScopeVersion, ODIGOS_VERSION);
}

bool append_span_field_proto(std::string& out, const Record& r) {
  if (!is_span(r)) return false;
  put_message(out, field::kSsSpans, [&](std::string& o) {
    auto view = [](const auto& a) { return std::string_view(reinterpret_cast<const char*>(a.data()), a.size()); };
    put_bytes(o, field::kSpanTraceId, view(r.span.trace_id));
    put_bytes(o, field::kSpanSpanId, view(r.span.span_id));
    if (!r.trace_state.empty()) put_string(o, field::kSpanTraceState, r.trace_state);
    if (r.span.has_parent()) put_bytes(o, field::kSpanParentSpanId, view(r.span.parent_span_id));
    put_string(o, field::kSpanName, span_name(r));
    put_uint(o, field::kSpanKind, uint64_t(span_kind(r)));
    put_tag(o, field::kSpanStart, kFixed64);
    put_fixed64(o, r.start_ns);
    put_tag(o, field::kSpanEnd, kFixed64);
    put_fixed64(o, std::max(r.end_ns(), r.start_ns));
    for (auto& a : r.attrs) append_key_value_proto(o, field::kSpanAttributes, a.key, a.value);
    if (r.tid) append_key_value_proto(o, field::kSpanAttributes, "thread.id", int64_t(r.tid));
    if (r.status != SpanStatus::kUnset) {
      put_message(o, field::kSpanStatus, [&](std::string& s) {
        std::string_view msg = status_message(r);
        if (!msg.empty()) put_string(s, field::kStatusMessage, msg);
        put_uint(s, field::kStatusCode, uint64_t(r.status));
      });
    }
  });
  return true;
}

void append_export_request_proto(std::string& out, const std::vector<ProtoGroup>& groups) {
  std::string scope;
  append_scope_proto(scope);
  for (auto& g : groups) {
    if (g.span_fields.empty()) continue;
    // ScopeSpans = scope field + the span fields; ResourceSpans = resource
    // field + the ScopeSpans field. Sizes are known: no re-encoding.
    const std::string& res = g.resource->proto;
    size_t scope_field = 1 + varint_size(scope.size()) + scope.size();
    size_t ss_len = scope_field + g.span_fields.size();
    size_t rs_len = 1 + varint_size(res.size()) + res.size() + 1 + varint_size(ss_len) + ss_len;
    put_tag(out, field::kResourceSpans, kLen);
    put_varint(out, rs_len);
    put_bytes(out, field::kRsResource, res);
    put_tag(out, field::kRsScopeSpans, kLen);
    put_varint(out, ss_len);
    put_bytes(out, field::kSsScope, scope);
    out.append(g.span_fields);
  }
}

} // namespace odigos::otlp
