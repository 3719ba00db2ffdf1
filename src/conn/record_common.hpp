// Record fields every protocol fills the same way: who, when, and the
// connection's addresses under OpenTelemetry names.
#pragma once

#include <cstdint>

#include "conn/http1_records.hpp"
#include "core/clock.hpp"
#include "core/record.hpp"
#include "protocols/common.hpp"

namespace odigos {

RecordSide record_side(proto::Side s);

// Clears r and sets kind (request), protocol, side, process, thread and the
// timing: start .. end (end 0: unknown, then end_hint), first response byte.
void fill_request_basics(Record& r, const char* protocol, proto::Side side, const ConnIdentity& id,
                         const WallClock& clock, uint64_t start_ns, uint64_t end_ns,
                         uint64_t first_response_ns, uint64_t end_hint_ns);

// server.*, client.*, network.peer.*, network.local.*, network.transport
// (unix) from the socket's addresses: the server is the local end on the
// server side, the remote end on the client side.
void set_connection_attrs(Record& r, const ConnIdentity& id);

} // namespace odigos
