// Turns a decoded HTTP/1 exchange into an output Record with OpenTelemetry
// attribute names, applying the redaction and --show options.
#pragma once

#include <string>

#include "core/clock.hpp"
#include "core/record.hpp"
#include "protocols/http1/http1.hpp"

extern "C" {
#include "odigos/abi.h"
}

namespace odigos {

struct RecordOptions {
  bool show_headers = false;
  size_t show_body = 0; // bytes of body to include
  bool redact = true;
};

struct ConnIdentity {
  uint64_t cookie = 0; // the kernel's socket cookie
  uint32_t pid = 0;
  uint32_t tid = 0;
  // Who sent (client) or read (server) the latest request bytes: the thread,
  // and the caller's R14 (the goroutine in Go programs; see ot_data_event).
  uint32_t req_tid = 0;
  uint64_t req_ctx = 0;
  std::string command;
  ot_addr local{};
  ot_addr remote{};
  bool addrs_known = false;
  std::string local_str, remote_str; // formatted once per connection
  uint32_t retransmits = 0;
  const char* tls_library = nullptr; // plaintext from this TLS library ("openssl"...), else null
};

// Fills `r` (cleared first; a reused record keeps its capacity).
void fill_http1_record(Record& r, const http1::Exchange& ex, http1::Side side,
                       const ConnIdentity& id, const WallClock& clock, const RecordOptions& opt,
                       uint64_t end_hint_ns);
inline Record http1_record(const http1::Exchange& ex, http1::Side side, const ConnIdentity& id,
                           const WallClock& clock, const RecordOptions& opt, uint64_t end_hint_ns) {
  Record r;
  fill_http1_record(r, ex, side, id, clock, opt, end_hint_ns);
  return r;
}

// Record fields the trace linker matches on (pid, request thread, cookie,
// execution context), from the connection.
void set_linking_inputs(Record& r, const ConnIdentity& id);
// The request's W3C traceparent/tracestate decide the span's trace and its
// parent (server) or its own id (client); an invalid traceparent is ignored
// and flagged (odigos.trace.invalid_traceparent).
void apply_trace_context(Record& r, const http1::Message& req);

// Redaction helpers (unit-tested).
bool is_sensitive_header(std::string_view lower_name);
std::string redact_query(std::string_view query);

} // namespace odigos
