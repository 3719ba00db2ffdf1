#include "cli/options.hpp"


#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>

namespace odigos {

std::optional<double> parse_duration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v) || v < 0) return std::nullopt;
  std::string unit(end);
  if (unit.empty() || unit == "s") return v;
  if (unit == "ms") return v / 1000;
  if (unit == "m" || unit == "min") return v * 60;
  if (unit == "h") return v * 3600;
  return std::nullopt;
}

std::optional<uint64_t> parse_size(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  unsigned long long v = strtoull(s.c_str(), &end, 10);
  if (end == s.c_str()) return std::nullopt;
  std::string unit(end);
  uint64_t mult = 1;
  if (unit.empty()) mult = 1;
  else if (unit == "K" || unit == "k" || unit == "KiB") mult = 1024;
  else if (unit == "M" || unit == "MiB") mult = 1024 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024ull * 1024 * 1024;
  else return std::nullopt;
  return uint64_t(v) * mult;
}

bool parse_show(const std::string& s, bool* headers, size_t* body, std::string* error) {
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item == "headers") {
      *headers = true;
    } else if (item == "body") {
      *body = 256;
    } else if (item.rfind("body=", 0) == 0) {
      auto n = parse_size(item.substr(5));
      if (!n || *n == 0) {
        *error = "--show body=N needs a positive byte count, got '" + item.substr(5) + "'";
        return false;
      }
      *body = *n;
    } else {
      *error = "--show takes headers, body or body=N (comma-separated), got '" + item + "'";
      return false;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

static const char* kExamples = R"(
Examples:
  sudo odigos-trace --pid 1234                 trace a process (and its children)
  sudo odigos-trace --pid $(pgrep -o nginx)    nginx master and its workers
  sudo odigos-trace --exe /usr/sbin/nginx      every nginx, running now or started later
  sudo odigos-trace --port 8080 --duration 30s whatever talks on port 8080, for 30 s
  sudo odigos-trace --pid $(pgrep -o postgres)  every query of every backend
  sudo odigos-trace --port 7000=redis          connections on port 7000, decoded as Redis
  sudo odigos-trace -- curl -s http://localhost/   launch a command and trace it
  sudo odigos-trace --pid 1234 --json | jq 'select(.http.response.status_code >= 500)'
  sudo odigos-trace --pid 1234 -o trace.ndjson --show headers
  sudo odigos-trace --pid $(pgrep -o nginx) --pid $(pgrep -f app.py) --traces   request trees
  sudo odigos-trace --exe /usr/sbin/nginx --otlp-endpoint http://localhost:4318   spans to a collector
  sudo odigos-trace demo                       a demo server and client, traced

Exit status: 0 on success; in launch mode the command's own status (128+N if it
died of signal N); 125 when odigos-trace itself fails; 126/127 when the command
cannot be executed / is not found.
)";

ParseOutcome parse_options(int argc, char** argv) {
  // Everything after the first "--" is the command to launch.
  std::vector<std::string> args;
  Options o;
  bool in_command = false;
  for (int i = 1; i < argc; i++) {
    if (!in_command && strcmp(argv[i], "--") == 0) {
      in_command = true;
      continue;
    }
    (in_command ? o.command : args).push_back(argv[i]);
  }
  if (in_command && o.command.empty()) {
    std::cerr << "odigos-trace: error: '--' must be followed by a command to launch\n";
    return {std::nullopt, kExitError};
  }

  CLI::App app{"odigos-trace: trace HTTP, Redis, PostgreSQL and MySQL requests of running processes "
               "with eBPF, no code changes",
               "odigos-trace"};
  app.footer(kExamples);
  app.set_version_flag("--version", std::string("odigos-trace ") + ODIGOS_VERSION);
  app.add_option("-p,--pid", o.pids, "Trace this process, its threads and descendants (repeatable)");
  app.add_option("-e,--exe", o.exes, "Trace every process running this executable, now and later (repeatable)");
  app.add_flag("-a,--all", o.all, "Trace every process on the host");
  std::vector<std::string> port_args, protocols_arg;
  std::string protocol_arg;
  app.add_option("--port", port_args,
                 "Only connections with this local or remote port; PORT=PROTO also decodes them "
                 "as PROTO (repeatable)");
  app.add_option("--protocol", protocol_arg,
                 "Decode every connection as this protocol (http, redis, postgresql, mysql)");
  app.add_option("--protocols", protocols_arg,
                 "Decode only these protocols, comma-separated (default: all)")
      ->delimiter(',');
  app.add_option("--cgroup", o.cgroups, "Only processes in this cgroup v2 directory (repeatable)");
  app.add_option("--unit", o.units, "Only processes of this systemd unit (repeatable)");
  app.add_option("-u,--user", o.user, "Run the launched command as USER (default: $SUDO_USER under sudo)");
  std::string duration, show, capture, ringbuf, max_conns;
  app.add_option("-d,--duration", duration, "Stop after this long (e.g. 30s, 5m, 250ms)");
  app.add_flag("-j,--json", o.json, "Write NDJSON records to standard output");
  app.add_flag("--traces", o.traces,
               "Show each finished trace as an indented waterfall instead of one line per request");
  app.add_option("-o,--output", o.output, "Write NDJSON records to FILE (created mode 0600)");
  std::string format = "ndjson";
  app.add_option("--format", format, "Format of -o FILE: ndjson (default) or otlp (OTLP/JSON lines)");
  app.add_option("--otlp-endpoint", o.otlp_endpoint,
                 "Export spans with OTLP/HTTP to this URL (e.g. http://localhost:4318); see also "
                 "OTEL_EXPORTER_OTLP_*");
  app.add_flag("-q,--quiet", o.quiet, "No terminal lines (with -o) and no status line");
  app.add_option("--show", show, "Also show headers and/or body bytes: headers,body[=N]");
  bool no_redact = false;
  app.add_flag("--no-redact", no_redact, "Show secrets (Authorization, Cookie, credential query values) verbatim");
  bool no_tls = false;
  app.add_flag("--no-tls", no_tls,
               "Do not probe TLS libraries (OpenSSL): encrypted connections are reported, not decoded");
  app.add_option("--capture-size", capture, "Payload bytes copied per socket call (default 4096, max 16384)");
  app.add_option("--ringbuf-size", ringbuf, "Kernel ring buffer size (default 16M, power of two)");
  app.add_option("--max-connections", max_conns,
                 "Connections tracked at once (default 65536); beyond, the longest idle is evicted");
  app.add_flag("-v,--verbose", o.verbose, "Debug output from libbpf and the loader (TLS probe points with their file offsets)");
  app.add_flag("--no-color", o.color_never, "Never colour the terminal output");

  CLI::App* demo = app.add_subcommand("demo", "Start a small HTTP server and client and trace both");
  demo->add_option("-d,--duration", duration, "How long the demo client runs (default 5s)");
  demo->fallthrough(); // `demo --json`, `demo -o FILE` work like the global flags

  CLI::App* dserver = app.add_subcommand("__demo-server");
  dserver->group("");
  dserver->add_option("--port", o.demo_port);
  dserver->add_option("--ready-fd", o.demo_ready_fd);
  CLI::App* dclient = app.add_subcommand("__demo-client");
  dclient->group("");
  dclient->add_option("--port", o.demo_port)->required();
  dclient->add_option("--seconds", o.demo_seconds);
  dclient->add_flag("--print", o.demo_print);

  try {
    std::reverse(args.begin(), args.end());
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return {std::nullopt, kExitOk};
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return {std::nullopt, kExitOk};
  } catch (const CLI::ParseError& e) {
    std::cerr << "odigos-trace: error: " << e.what() << "\n"
              << "hint: see odigos-trace --help\n";
    return {std::nullopt, kExitError};
  }
  auto fail = [](const std::string& msg) {
    std::cerr << "odigos-trace: error: " << msg << "\n";
    return ParseOutcome{std::nullopt, kExitError};
  };
  o.demo = demo->parsed();
  o.demo_server = dserver->parsed();
  o.demo_client = dclient->parsed();
  o.redact = !no_redact;
  o.tls = !no_tls;
  o.user_given = app.count("--user") > 0;
  if (!duration.empty()) {
    auto d = parse_duration(duration);
    if (!d) return fail("--duration: '" + duration + "' is not a duration (e.g. 30s, 5m, 250ms)");
    o.duration_s = *d;
    if (o.demo) o.demo_seconds = *d;
  }
  if (format == "otlp") o.otlp_file = true;
  else if (format != "ndjson") return fail("--format: '" + format + "' is not ndjson or otlp");
  if (o.otlp_file && o.output.empty())
    return fail("--format otlp applies to -o FILE (OTLP/JSON lines); to send spans to a collector use "
                "--otlp-endpoint URL");
  if (app.count("--otlp-endpoint") > 0 && o.otlp_endpoint.rfind("http://", 0) != 0 &&
      o.otlp_endpoint.rfind("https://", 0) != 0)
    return fail("--otlp-endpoint: '" + o.otlp_endpoint + "' is not an http:// or https:// URL");
  if (o.traces && o.json)
    return fail("--traces and --json both write to standard output: use --traces with -o FILE");
  if (!show.empty()) {
    std::string err;
    if (!parse_show(show, &o.show_headers, &o.show_body, &err)) return fail(err);
  }
  if (!capture.empty()) {
    auto n = parse_size(capture);
    if (!n || *n < 64 || *n > 16384)
      return fail("--capture-size must be between 64 and 16384 bytes, got '" + capture + "'");
    o.capture_size = uint32_t(*n);
  }
  if (!ringbuf.empty()) {
    auto n = parse_size(ringbuf);
    if (!n || *n < 4096 || *n > (1ull << 30) || (*n & (*n - 1)) != 0)
      return fail("--ringbuf-size must be a power of two between 4K and 1G, got '" + ringbuf + "'");
    o.ringbuf_bytes = uint32_t(*n);
  }
  if (app.count("--max-connections") > 0) {
    // A count: plain decimal digits only (no sign, no unit, no spaces).
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    bool digits = max_conns.size() <= 9 && std::all_of(max_conns.begin(), max_conns.end(), is_digit);
    unsigned long n = digits ? strtoul(max_conns.c_str(), nullptr, 10) : 0;
    if (n < 1 || n > kMaxConnectionsLimit)
      return fail("--max-connections must be a whole number between 1 and " +
                  std::to_string(kMaxConnectionsLimit) + ", got '" + max_conns + "'");
    o.max_connections = n;
  }
  for (auto p : o.pids)
    if (p == 0) return fail("--pid: 0 is not a process ID");
  for (auto& a : port_args) {
    size_t eq = a.find('=');
    std::string num = a.substr(0, eq);
    bool digits = !num.empty() && num.size() <= 5 &&
                  std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; });
    unsigned long port = digits ? strtoul(num.c_str(), nullptr, 10) : 0;
    if (!digits || port > 65535) return fail("--port: '" + num + "' is not a port number");
    o.ports.push_back(uint16_t(port));
    if (eq != std::string::npos) {
      std::string proto = a.substr(eq + 1);
      Protocol p;
      if (!parse_protocol(proto, p))
        return fail("--port " + a + ": unknown protocol '" + proto +
                    "' (http, redis, postgresql, mysql)");
      o.detect.port_hints.emplace_back(uint16_t(port), p);
    }
  }
  if (!protocol_arg.empty() && !parse_protocol(protocol_arg, o.detect.forced))
    return fail("--protocol: unknown protocol '" + protocol_arg + "' (http, redis, postgresql, mysql)");
  if (!protocols_arg.empty()) o.detect.enabled = 0;
  for (auto& name : protocols_arg) {
    Protocol p;
    if (!parse_protocol(name, p))
      return fail("--protocols: unknown protocol '" + name + "' (http, redis, postgresql, mysql)");
    o.detect.enabled |= 1u << unsigned(p);
  }
  for (auto p : o.ports)
    if (p == 0) return fail("--port: 0 is not a port");
  bool internal = o.demo_server || o.demo_client;
  if (!internal && !o.demo && o.pids.empty() && o.exes.empty() && !o.all && o.ports.empty() &&
      o.cgroups.empty() && o.units.empty() && o.command.empty())
    return fail("nothing to trace: give --pid, --exe, --all, --port, --cgroup, --unit or -- COMMAND "
                "(try: odigos-trace demo)");
  if (o.all && (!o.pids.empty() || !o.exes.empty() || !o.command.empty()))
    return fail("--all cannot be combined with --pid, --exe or a command");
  if (o.user_given && o.command.empty()) return fail("-u/--user only applies to a launched command");
  return {o, 0};
}

} // namespace odigos
