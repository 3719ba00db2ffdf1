// libbpf attaches syscall tracepoints through tracefs; a fresh machine may not
// have it mounted.
#pragma once
#include <string>

namespace odigos {
// Makes sure tracefs is reachable (mounting it when we may). Returns false with
// a message and a hint when it is not.
bool ensure_tracefs(std::string* error, std::string* hint);
} // namespace odigos
