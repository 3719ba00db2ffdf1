// The protocols connections are decoded as, and the options that choose one
// (--protocol, --protocols, --port N=PROTO): parsed once, by the CLI.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace odigos {

enum class Protocol : uint8_t { kUnknown, kHttp1, kRedis, kPostgres, kMysql };
const char* to_string(Protocol p);                 // "http", "redis", "postgresql", "mysql"
bool parse_protocol(std::string_view name, Protocol& out); // also "http1", "pg", "postgres", "mariadb"

// How a connection's protocol is chosen.
struct DetectOptions {
  Protocol forced = Protocol::kUnknown;                      // --protocol
  std::vector<std::pair<uint16_t, Protocol>> port_hints;     // --port 6379=redis
  uint32_t enabled = ~0u;                                    // --protocols (bit per Protocol)
  bool enabled_has(Protocol p) const { return enabled & (1u << unsigned(p)); }
};

} // namespace odigos
