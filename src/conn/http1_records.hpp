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
  uint32_t pid = 0;
  uint32_t tid = 0;
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

// Redaction helpers (unit-tested).
bool is_sensitive_header(std::string_view lower_name);
std::string redact_query(std::string_view query);

} // namespace odigos
