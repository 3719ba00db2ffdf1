#include "export/otlp_json.hpp"
#include "protocols/w3c/trace_context.hpp"

#include <cmath>

#include <fmt/format.h>

#include "sinks/json.hpp"

namespace odigos::otlp {

std::string_view span_name(const Record& r) {
  if (!r.span_name.empty()) return r.span_name;
  if (!r.protocol.empty()) return r.protocol;
  return "request";
}

std::string_view status_message(const Record& r) {
  if (r.status != SpanStatus::kError) return {};
  for (auto key : {"odigos.db.error.message", "error.type"}) {
    const AttrValue* v = r.get(key);
    if (!v) continue;
    const std::string* s = std::get_if<std::string>(v);
    if (!s || s->empty()) continue;
    // "500" says nothing http.response.status_code does not.
    if (std::string_view(key) == "error.type" && r.get("http.response.status_code") &&
        s->find_first_not_of("0123456789") == std::string::npos)
      return {};
    return *s;
  }
  return {};
}

void append_hex(std::string& out, const uint8_t* p, size_t n) {
  const size_t at = out.size();
  out.resize(at + 2 * n);
  w3c::put_hex(out.data() + at, p, n);
}

namespace {
void append_u64_string(std::string& out, uint64_t v) {
  char buf[24];
  char* e = fmt::format_to(buf, "\"{}\"", v);
  out.append(buf, size_t(e - buf));
}
} // namespace

void append_any_value_json(std::string& out, const AttrValue& v) {
  if (auto* s = std::get_if<std::string>(&v)) {
    out += "{\"stringValue\":";
    append_json_string(*s, out);
  } else if (auto* i = std::get_if<int64_t>(&v)) {
    char buf[32];
    char* e = fmt::format_to(buf, "{{\"intValue\":\"{}\"", *i);
    out.append(buf, size_t(e - buf));
  } else if (auto* d = std::get_if<double>(&v)) {
    out += "{\"doubleValue\":";
    if (std::isnan(*d)) out += "\"NaN\"";
    else if (std::isinf(*d)) out += *d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    else {
      char buf[40];
      char* e = fmt::format_to(buf, "{}", *d);
      out.append(buf, size_t(e - buf));
    }
  } else {
    out += "{\"boolValue\":";
    out += std::get<bool>(v) ? "true" : "false";
  }
  out.push_back('}');
}

void append_key_value_json(std::string& out, std::string_view key, const AttrValue& v) {
  out += "{\"key\":";
  append_json_string(key, out);
  out += ",\"value\":";
  append_any_value_json(out, v);
  out.push_back('}');
}

void append_resource_json(std::string& out, const KeyValues& attrs) {
  out += "{\"attributes\":[";
  bool first = true;
  for (auto& kv : attrs) {
    if (!first) out.push_back(',');
    first = false;
    append_key_value_json(out, kv.key, kv.value);
  }
  out += "]}";
}

void append_scope_json(std::string& out) {
  out += "{\"name\":\"";
  out += kScopeName;
  out += "\",\"version\":\"" ODIGOS_VERSION "\"}";
}

bool append_span_json(std::string& out, const Record& r) {
  if (!is_span(r)) return false;
  out += "{\"traceId\":\"";
  append_hex(out, r.span.trace_id.data(), r.span.trace_id.size());
  out += "\",\"spanId\":\"";
  append_hex(out, r.span.span_id.data(), r.span.span_id.size());
  out.push_back('"');
  if (r.span.has_parent()) {
    out += ",\"parentSpanId\":\"";
    append_hex(out, r.span.parent_span_id.data(), r.span.parent_span_id.size());
    out.push_back('"');
  }
  if (!r.trace_state.empty()) {
    out += ",\"traceState\":";
    append_json_string(r.trace_state, out);
  }
  out += ",\"name\":";
  append_json_string(span_name(r), out);
  out += ",\"kind\":";
  out.push_back(char('0' + span_kind(r)));
  out += ",\"startTimeUnixNano\":";
  append_u64_string(out, r.start_ns);
  out += ",\"endTimeUnixNano\":";
  append_u64_string(out, std::max(r.end_ns(), r.start_ns));
  out += ",\"attributes\":[";
  bool first = true;
  for (auto& a : r.attrs) {
    if (!first) out.push_back(',');
    first = false;
    append_key_value_json(out, a.key, a.value);
  }
  if (r.tid) {
    if (!first) out.push_back(',');
    append_key_value_json(out, "thread.id", int64_t(r.tid));
  }
  out.push_back(']');
  if (r.status != SpanStatus::kUnset) {
    out += ",\"status\":{";
    std::string_view msg = status_message(r);
    if (!msg.empty()) {
      out += "\"message\":";
      append_json_string(msg, out);
      out.push_back(',');
    }
    out += "\"code\":";
    out.push_back(char('0' + int(r.status)));
    out.push_back('}');
  }
  out.push_back('}');
  return true;
}

void append_traces_json(std::string& out, const std::vector<JsonGroup>& groups) {
  out += "{\"resourceSpans\":[";
  bool first = true;
  for (auto& g : groups) {
    if (g.spans.empty()) continue;
    if (!first) out.push_back(',');
    first = false;
    out += "{\"resource\":";
    out += g.resource->json;
    out += ",\"scopeSpans\":[{\"scope\":";
    append_scope_json(out);
    out += ",\"spans\":[";
    out += g.spans;
    out += "]}]}";
  }
  out += "]}";
}

} // namespace odigos::otlp
