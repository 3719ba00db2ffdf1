// The traffic behind `odigos-trace demo`: a small HTTP/1.1 server and a client
// that sends it a fixed mix of requests. Both are plain POSIX-socket code with no
// dependencies; `odigos-trace` runs each in its own child process (hidden
// subcommands __demo-server and __demo-client) and traces them with eBPF.
//
// The server and client deliberately move bytes with different syscalls
// (read, write, writev, send, recv) so that every hooked path is exercised.
#pragma once

#include <cstdint>

namespace odigos::demo {

// Listens on 127.0.0.1:port (0 = pick a free port). Once listening, writes the
// bound port in decimal followed by '\n' to ready_fd (if ready_fd >= 0) and
// closes it. Serves, one thread per connection, until SIGTERM or SIGINT, then
// returns 0. Returns non-zero, with a message on stderr, if it cannot listen.
// Installs handlers for SIGTERM and SIGINT and ignores SIGPIPE while running;
// the previous dispositions are restored on return. Not reentrant.
//
// Endpoints (a query string is ignored; HEAD works wherever GET does):
//   GET  /fast       200 "hello, odigos\n"
//   GET  /slow       200 after 150 ms
//   GET  /error      500
//   GET  /large      200, 256 KiB body with Content-Length
//   GET  /chunked    200, Transfer-Encoding: chunked, 3 chunks 40 ms apart
//   POST /echo       200, echoes the request body
//   GET  /nocontent  204
//   anything else    404 (405 for a known path with the wrong method)
int run_server(uint16_t port, int ready_fd);

// Sends the request mix to 127.0.0.1:port over a keep-alive connection (every
// third round also one "Connection: close" request on a fresh connection),
// pausing ~100 ms between rounds, until `seconds` have elapsed; always completes
// at least one full round. Returns 0, or non-zero with a message on stderr on a
// failure (connection refused, malformed or unexpected response, 10 s timeout).
// If print is true, prints one line per response to stdout, e.g.
//   GET /fast -> 200 (14 bytes, 0.4 ms)
// Ignores SIGPIPE while running; the previous disposition is restored on return.
int run_client(uint16_t port, double seconds, bool print);

} // namespace odigos::demo
