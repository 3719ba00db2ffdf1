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

// Should the terminal be coloured? Only on a TTY, never with NO_COLOR set.
bool want_color(FILE* out);

} // namespace odigos
