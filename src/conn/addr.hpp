#pragma once
#include <string>

extern "C" {
#include "odigos/abi.h"
}

namespace odigos {
// "127.0.0.1", "::1", "unix" (AF_UNIX), "" (unknown).
std::string format_addr(const ot_addr& a);
} // namespace odigos
