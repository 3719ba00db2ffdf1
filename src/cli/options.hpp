// Command-line options: parsing and validation only (no side effects).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "conn/protocol.hpp"

namespace odigos {

// Exit codes (documented in the man page and README).
constexpr int kExitOk = 0;
constexpr int kExitError = 125;       // odigos-trace itself failed (message on stderr)
constexpr int kExitCannotExec = 126;  // launch mode: command found but not executable
constexpr int kExitNotFound = 127;    // launch mode: command not found

// Upper bound of --max-connections (each tracked connection costs a few hundred
// bytes plus its buffered, undecoded bytes).
constexpr size_t kMaxConnectionsLimit = 16u << 20;

struct Options {
  std::vector<uint32_t> pids;
  std::vector<std::string> exes;
  bool all = false;
  std::vector<uint16_t> ports;
  // --protocol, --protocols and the PROTO of --port N=PROTO (which also puts
  // N in `ports`), parsed: what the connection tracker's detection needs.
  DetectOptions detect;
  std::vector<std::string> cgroups;
  std::vector<std::string> units;
  std::vector<std::string> command; // after "--"
  std::string user;                 // -u
  bool user_given = false;
  double duration_s = 0;            // 0 = until the end condition / Ctrl-C
  bool json = false;
  bool traces = false;              // --traces: waterfall of each finished trace on stdout
  std::string output;               // -o FILE
  bool otlp_file = false;           // --format otlp: -o FILE holds OTLP/JSON lines, not NDJSON
  std::string otlp_endpoint;        // --otlp-endpoint URL ("" = only from OTEL_EXPORTER_OTLP_*)
  bool quiet = false;
  bool show_headers = false;
  size_t show_body = 0;
  bool redact = true;
  bool tls = true;                  // TLS plaintext through library uprobes
  uint32_t capture_size = 4096;
  uint32_t ringbuf_bytes = 16u << 20;
  size_t max_connections = 65536;   // user-space connection table; longest-idle evicted beyond
  bool verbose = false;
  bool color_never = false;

  // Subcommands.
  bool demo = false;
  bool demo_server = false;   // hidden: __demo-server
  bool demo_client = false;   // hidden: __demo-client
  uint16_t demo_port = 0;
  int demo_ready_fd = -1;
  double demo_seconds = 5;
  bool demo_print = false;
};

struct ParseOutcome {
  std::optional<Options> options; // set when tracing should proceed
  int exit_code = 0;              // otherwise: exit with this (help: 0, error: 125)
};

ParseOutcome parse_options(int argc, char** argv);

// "30s", "5m", "1h", "250ms", "10" (seconds). nullopt when malformed.
std::optional<double> parse_duration(const std::string& s);
// "16M", "4K", "1G", "65536". nullopt when malformed.
std::optional<uint64_t> parse_size(const std::string& s);
// "headers", "body", "body=512", "headers,body=64"
bool parse_show(const std::string& s, bool* headers, size_t* body, std::string* error);

} // namespace odigos
