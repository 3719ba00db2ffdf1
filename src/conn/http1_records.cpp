#include "conn/http1_records.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "conn/addr.hpp"
#include "protocols/w3c/trace_context.hpp"

namespace odigos {

namespace {
constexpr const char* kRedacted = "REDACTED";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int64_t port_number(std::string_view s) {
  int64_t v = -1;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  return res.ec == std::errc() && v >= 0 && v <= 65535 ? v : -1;
}

// Host header → (host, port). "[::1]:8080", "example.com", "a:80".
std::pair<std::string_view, int64_t> split_host(std::string_view host) {
  if (host.empty()) return {"", -1};
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) return {host, -1};
    std::string_view h = host.substr(1, close - 1);
    if (close + 1 < host.size() && host[close + 1] == ':')
      return {h, port_number(host.substr(close + 2))};
    return {h, -1};
  }
  auto colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(':') == colon)
    return {host.substr(0, colon), port_number(host.substr(colon + 1))};
  return {host, -1};
}

std::string printable(std::string_view body, size_t n) {
  std::string out;
  out.reserve(std::min(n, body.size()));
  for (size_t i = 0; i < body.size() && i < n; i++) {
    unsigned char c = static_cast<unsigned char>(body[i]);
    out.push_back((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t' ? char(c) : '.');
  }
  return out;
}
} // namespace

bool is_sensitive_header(std::string_view n) {
  static constexpr std::array<std::string_view, 7> kNames = {
      "authorization", "cookie",       "set-cookie", "proxy-authorization",
      "x-api-key",     "x-auth-token", "x-csrf-token"};
  return std::find(kNames.begin(), kNames.end(), n) != kNames.end();
}

std::string redact_query(std::string_view q) {
  // Keys whose values are credentials (OpenTelemetry asks to redact
  // Signature/sig/AWSAccessKeyId/X-Goog-Signature; we cover the common rest).
  static constexpr std::array<std::string_view, 18> kKeys = {
      "token",    "access_token", "refresh_token", "id_token",  "api_key",  "apikey",
      "key",      "secret",       "client_secret", "password",  "passwd",   "pwd",
      "auth",     "signature",    "sig",           "awsaccesskeyid", "x-goog-signature",
      "session"};
  std::string out;
  size_t start = 0;
  while (start <= q.size()) {
    size_t amp = q.find('&', start);
    std::string_view part = q.substr(start, amp == std::string_view::npos ? q.npos : amp - start);
    size_t eq = part.find('=');
    std::string key = lower(part.substr(0, eq));
    if (!out.empty() || start > 0) out.push_back('&');
    if (eq != std::string_view::npos &&
        std::find(kKeys.begin(), kKeys.end(), key) != kKeys.end()) {
      out.append(part.substr(0, eq + 1));
      out.append(kRedacted);
    } else {
      out.append(part);
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

void set_linking_inputs(Record& r, const ConnIdentity& id) {
  r.pid = id.pid;
  r.tid = id.req_tid ? id.req_tid : id.tid;
  r.conn_cookie = id.cookie;
  r.exec_ctx = id.req_ctx;
}

void apply_trace_context(Record& r, const http1::Message& req) {
  // Every traceparent/tracestate field the request carried (the header may be
  // repeated: traceparent then is invalid, tracestate is combined).
  std::vector<std::string_view> parents, states;
  for (auto& h : req.headers) {
    if (h.name == "traceparent") parents.push_back(h.value);
    else if (h.name == "tracestate") states.push_back(h.value);
  }
  if (parents.empty()) return;
  auto tp = w3c::traceparent_of(parents);
  if (!tp) {
    r.set("odigos.trace.invalid_traceparent", true);
    return;
  }
  // Server: the caller's span is our parent. Client: the application already
  // propagates a context, whose parent-id is this very call's span.
  r.span.trace_id = tp->trace_id;
  if (r.side == RecordSide::kServer) r.span.parent_span_id = tp->parent_id;
  else if (r.side == RecordSide::kClient) r.span.span_id = tp->parent_id;
  else {
    r.span = SpanIds{};
    return;
  }
  r.span_from_header = true;
  if (auto ts = w3c::tracestate_of(states)) r.trace_state = std::move(*ts);
}

void fill_http1_record(Record& r, const http1::Exchange& ex, http1::Side side,
                       const ConnIdentity& id, const WallClock& clock, const RecordOptions& opt,
                       uint64_t end_hint_ns) {
  const http1::Message& req = ex.request;
  const http1::Message* resp = ex.response ? &*ex.response : nullptr;
  r.clear();
  r.attrs.reserve(24); // once per reused record, not a regrowth per few attributes
  r.kind = RecordKind::kRequest;
  r.protocol = "http";
  r.side = side == http1::Side::kServer   ? RecordSide::kServer
           : side == http1::Side::kClient ? RecordSide::kClient
                                          : RecordSide::kUnknown;
  set_linking_inputs(r, id);
  r.command = id.command;
  uint64_t start = req.first_ts_ns;
  uint64_t end = resp ? resp->last_ts_ns : std::max(end_hint_ns, req.last_ts_ns);
  r.start_mono_ns = start;
  r.end_mono_ns = std::max(end, start);
  r.start_ns = clock.to_wall_ns(start);
  r.duration_ms = end > start ? double(end - start) / 1e6 : 0.0;
  if (resp && resp->first_ts_ns >= start) r.ttfb_ms = double(resp->first_ts_ns - start) / 1e6;
  r.complete = resp && resp->complete && ex.error_type.empty();

  r.set("http.request.method", req.method);
  std::string_view target = req.target;
  // absolute-form (proxies): keep the path part.
  if (auto p = target.find("://"); p != std::string_view::npos && target.front() != '/') {
    auto slash = target.find('/', p + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  auto qpos = target.find('?');
  r.set("url.path", target.substr(0, qpos));
  if (qpos != std::string_view::npos) {
    std::string_view q = target.substr(qpos + 1);
    r.set("url.query", opt.redact ? redact_query(q) : std::string(q));
  }
  if (resp) r.set("http.response.status_code", int64_t(resp->status));
  r.set("http.request.body.size", int64_t(req.body_size));
  if (resp) r.set("http.response.body.size", int64_t(resp->body_size));
  r.set("url.scheme", id.tls_library ? "https" : "http");
  r.set("network.protocol.version", req.minor_version == 0 ? "1.0" : "1.1");
  if (auto* ua = req.header("user-agent")) r.set("user_agent.original", *ua);

  const std::string& local = id.local_str;
  const std::string& remote = id.remote_str;
  const std::string* host_hdr = req.header("host");
  auto [host, host_port] = split_host(host_hdr ? std::string_view(*host_hdr) : std::string_view());
  if (r.side == RecordSide::kClient) {
    if (!host.empty()) {
      r.set("server.address", host);
      r.set("server.port", host_port > 0 ? host_port : int64_t(id.remote.port));
    } else if (!remote.empty()) {
      r.set("server.address", remote);
      r.set("server.port", int64_t(id.remote.port));
    }
    if (!local.empty()) {
      r.set("client.address", local);
      r.set("client.port", int64_t(id.local.port));
    }
  } else {
    if (!host.empty()) r.set("server.address", host);
    else if (!local.empty()) r.set("server.address", local);
    if (id.addrs_known) r.set("server.port", int64_t(id.local.port));
    if (!remote.empty()) {
      r.set("client.address", remote);
      r.set("client.port", int64_t(id.remote.port));
    }
  }
  if (!remote.empty()) {
    r.set("network.peer.address", remote);
    r.set("network.peer.port", int64_t(id.remote.port));
  }
  if (!local.empty()) {
    r.set("network.local.address", local);
    r.set("network.local.port", int64_t(id.local.port));
  }
  if (id.local.family == 1) r.set("network.transport", "unix");

  std::string error = ex.error_type;
  if (error.empty() && resp &&
      (resp->status >= 500 || (resp->status >= 400 && r.side == RecordSide::kClient)))
    error = std::to_string(resp->status);
  if (!error.empty()) r.set("error.type", error);
  if (id.tls_library) {
    r.set("tls.established", true);
    r.set("odigos.tls.library", id.tls_library);
  }
  if (ex.tunnel) r.set("odigos.http.tunnel", true);
  apply_trace_context(r, req);
  if (id.retransmits) r.set("odigos.tcp.retransmits", int64_t(id.retransmits));
  if (req.body_truncated || (resp && resp->body_truncated)) r.set("odigos.capture.truncated", true);

  if (opt.show_headers) {
    auto put = [&](const http1::Message& m, const char* prefix) {
      for (auto& h : m.headers) {
        std::string key = std::string(prefix) + h.name;
        bool secret = opt.redact && is_sensitive_header(h.name);
        r.set_dynamic(std::move(key), secret ? std::string(kRedacted) : h.value);
      }
    };
    put(req, "http.request.header.");
    if (resp) put(*resp, "http.response.header.");
  }
  if (opt.show_body > 0) {
    if (!req.body.empty()) r.set("http.request.body.content", printable(req.body, opt.show_body));
    if (resp && !resp->body.empty())
      r.set("http.response.body.content", printable(resp->body, opt.show_body));
  }
}

} // namespace odigos
