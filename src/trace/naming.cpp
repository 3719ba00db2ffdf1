#include "trace/naming.hpp"

#include <array>

namespace odigos::trace {

namespace {
bool known_http_method(std::string_view m) {
  static constexpr std::array<std::string_view, 10> kMethods = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"};
  for (auto k : kMethods)
    if (k == m) return true;
  return false;
}
} // namespace

void name_span(Record& r) {
  const bool http = r.protocol == "http";
  if (http) {
    std::string_view method = r.get_view("http.request.method");
    r.span_name.assign(known_http_method(method) ? method : std::string_view("HTTP"));
  } else {
    std::string_view op = r.get_view("db.operation.name");
    std::string_view target = r.get_view("db.collection.name");
    if (target.empty()) target = r.get_view("db.stored_procedure.name");
    if (target.empty()) target = r.get_view("db.namespace");
    r.span_name.assign(op);
    if (!op.empty() && !target.empty()) r.span_name.push_back(' ');
    r.span_name.append(target);
    if (r.span_name.empty()) {
      std::string_view sys = r.get_view("db.system.name");
      r.span_name.assign(!sys.empty() ? sys : !r.protocol.empty() ? std::string_view(r.protocol)
                                                                  : std::string_view("request"));
    }
  }
  r.status = SpanStatus::kUnset;
  // error.type is set by the decoders for failed or incomplete exchanges and,
  // for HTTP, for 5xx (and 4xx on the client side) — the status rule itself.
  if (r.get(("error.type"))) {
    r.status = SpanStatus::kError;
  } else if (http) {
    int64_t code = r.get_int("http.response.status_code", 0);
    if (code >= 500 || (code >= 400 && r.side == RecordSide::kClient)) r.status = SpanStatus::kError;
  }
}

} // namespace odigos::trace
