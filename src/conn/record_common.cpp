#include "conn/record_common.hpp"

#include <algorithm>

namespace odigos {

RecordSide record_side(proto::Side s) {
  return s == proto::Side::kServer   ? RecordSide::kServer
         : s == proto::Side::kClient ? RecordSide::kClient
                                     : RecordSide::kUnknown;
}

void fill_request_basics(Record& r, const char* protocol, proto::Side side, const ConnIdentity& id,
                         const WallClock& clock, uint64_t start, uint64_t end, uint64_t first_resp,
                         uint64_t end_hint) {
  r.clear();
  r.attrs.reserve(24);
  r.kind = RecordKind::kRequest;
  r.protocol = protocol;
  r.side = record_side(side);
  set_linking_inputs(r, id);
  r.command = id.command;
  if (end == 0) end = std::max(end_hint, start);
  r.start_mono_ns = start;
  r.end_mono_ns = std::max(end, start);
  r.start_ns = clock.to_wall_ns(start);
  r.duration_ms = end > start ? double(end - start) / 1e6 : 0.0;
  if (first_resp && first_resp >= start) r.ttfb_ms = double(first_resp - start) / 1e6;
}

void set_connection_attrs(Record& r, const ConnIdentity& id) {
  const std::string& local = id.local_str;
  const std::string& remote = id.remote_str;
  const bool unix_socket = id.local.family == 1;
  if (r.side == RecordSide::kClient) {
    if (!remote.empty()) {
      r.set("server.address", remote);
      if (!unix_socket) r.set("server.port", int64_t(id.remote.port));
    }
  } else if (r.side == RecordSide::kServer) {
    if (!local.empty()) {
      r.set("server.address", local);
      if (!unix_socket) r.set("server.port", int64_t(id.local.port));
    }
  }
  if (!remote.empty() && !unix_socket) {
    r.set("network.peer.address", remote);
    r.set("network.peer.port", int64_t(id.remote.port));
  }
  if (!local.empty() && !unix_socket) {
    r.set("network.local.address", local);
    r.set("network.local.port", int64_t(id.local.port));
  }
  if (unix_socket) r.set("network.transport", "unix");
  if (id.tls_library) {
    r.set("tls.established", true);
    r.set("odigos.tls.library", id.tls_library);
  }
}

} // namespace odigos
