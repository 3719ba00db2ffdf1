// Output back-ends behind one interface. A sink reports write failures (broken
// pipe, full disk) through ok()/error() so the main loop can stop cleanly.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/record.hpp"

namespace odigos {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const Record& r) = 0;
  virtual void flush() = 0;
  bool ok() const { return error_.empty(); }
  bool broken_pipe() const { return broken_pipe_; }
  const std::string& error() const { return error_; }

 protected:
  void fail(int err, const std::string& what);
  std::string error_;
  bool broken_pipe_ = false;
};

struct TerminalOptions {
  bool color = false;
  bool show_headers = false;
  bool show_body = false;
};

// FILE* is borrowed (stdout) or owned (close_on_destroy).
std::unique_ptr<Sink> make_terminal_sink(FILE* out, TerminalOptions opt);
std::unique_ptr<Sink> make_ndjson_sink(FILE* out, bool owned, std::string name);
// --traces: every finished trace as an indented waterfall (span, process,
// duration bar); colours only when `color`.
std::unique_ptr<Sink> make_waterfall_sink(FILE* out, bool color);

// Should the terminal be coloured? Only on a TTY, never with NO_COLOR set.
bool want_color(FILE* out);

} // namespace odigos

// ---- OpenTelemetry (src/sinks/otlp_sinks.cpp, src/export/) -------------------
namespace odigos {

// OTLP/JSON to a file: one TracesData per line, spans grouped by process
// (resource). Only request records that are spans are written.
std::unique_ptr<Sink> make_otlp_file_sink(FILE* out, bool owned, std::string name);

// OTLP/HTTP export to --otlp-endpoint (flag_endpoint, "" when not given) or the
// OTEL_EXPORTER_OTLP_* environment. nullptr when export is not requested, or
// when the settings are bad (then *error says why). Its summary line goes to
// stderr when it is destroyed (after the final, bounded flush).
std::unique_ptr<Sink> make_otlp_http_sink(const std::string& flag_endpoint, std::string* error);

} // namespace odigos
