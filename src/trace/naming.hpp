// OpenTelemetry span name and status of a request record, by the semantic
// conventions: HTTP spans are named by their method (no route is known to a
// tracer on the wire), database spans "{operation} {target}"; 5xx is an error
// on both sides, 4xx only on the client side; a failed or incomplete exchange
// (error.type) is an error.
#pragma once

#include "core/record.hpp"

namespace odigos::trace {

void name_span(Record& r);

} // namespace odigos::trace
