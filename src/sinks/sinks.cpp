#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <unistd.h>

#include <fmt/format.h>

#include "sinks/json.hpp"
#include "sinks/sink.hpp"

namespace odigos {

void Sink::fail(int err, const std::string& what) {
  if (!error_.empty()) return;
  broken_pipe_ = err == EPIPE;
  error_ = what + ": " + strerror(err);
}

bool want_color(FILE* out) {
  const char* nc = getenv("NO_COLOR");
  if (nc && *nc) return false;
  return isatty(fileno(out));
}

namespace {

class NdjsonSink final : public Sink {
 public:
  NdjsonSink(FILE* out, bool owned, std::string name) : out_(out), owned_(owned), name_(std::move(name)) {}
  ~NdjsonSink() override {
    flush();
    if (owned_ && fclose(out_) != 0) fail(errno, "closing " + name_);
  }
  void write(const Record& r) override {
    if (!ok()) return;
    JsonLayout layout = layout_record_json(r);
    // Lines are written straight into buf_; to a file of our own (-o) they go
    // out in one piece when the next might not fit and at every flush (each
    // reader round), not copied into stdio's buffer one by one. buf_ only
    // grows (zero-filled once per growth).
    if (used_ + layout.bound + 1 > buf_.size()) {
      flush_lines();
      if (!ok()) return;
      if (buf_.size() < layout.bound + 1) buf_.resize(std::max(kBuffer, layout.bound + 1));
    }
    char* end = put_record_json(buf_.data() + used_, r, layout);
    *end++ = '\n';
    used_ = size_t(end - buf_.data());
    // Standard output may be shared with another sink (--json --traces): each
    // line goes to stdio at once there, to keep the two in order.
    if (!owned_) flush_lines();
  }
  void flush() override {
    flush_lines();
    if (ok() && fflush(out_) != 0) fail(errno, "writing " + name_);
  }

 private:
  static constexpr size_t kBuffer = 64 * 1024;
  void flush_lines() {
    if (used_ && ok() && fwrite(buf_.data(), 1, used_, out_) != used_) fail(errno, "writing " + name_);
    used_ = 0;
  }
  FILE* out_;
  bool owned_;
  std::string name_;
  std::string buf_; // lines not yet handed to out_: buf_[0, used_)
  size_t used_ = 0;
};

class TerminalSink final : public Sink {
 public:
  TerminalSink(FILE* out, TerminalOptions opt) : out_(out), opt_(opt) {}
  ~TerminalSink() override { flush(); }
  void write(const Record& r) override;
  void flush() override {
    if (ok() && fflush(out_) != 0) fail(errno, "writing to standard output");
  }

 private:
  std::string paint(std::string_view s, const char* code) const {
    if (!opt_.color || s.empty()) return std::string(s);
    return fmt::format("\033[{}m{}\033[0m", code, s);
  }
  FILE* out_;
  TerminalOptions opt_;
};

std::string fmt_size(int64_t n) {
  if (n < 0) return "-";
  if (n < 10 * 1024) return fmt::format("{}B", n);
  if (n < 10 * 1024 * 1024) return fmt::format("{}KiB", n / 1024);
  return fmt::format("{}MiB", n / (1024 * 1024));
}

std::string fmt_ms(double ms) {
  if (ms < 1) return fmt::format("{:.3f}ms", ms);
  if (ms < 1000) return fmt::format("{:.2f}ms", ms);
  return fmt::format("{:.2f}s", ms / 1000);
}

void TerminalSink::write(const Record& r) {
  if (!ok()) return;
  std::string line;
  std::string when = format_time_of_day(r.start_ns);
  if (r.kind == RecordKind::kLoss) {
    line = fmt::format("{} {}\n", paint(when, "2"),
                       paint(fmt::format("LOST {} events (ring buffer full)",
                                         r.get_int("odigos.lost_events", 0)), "1;31"));
  } else {
    std::string proc = fmt::format("{}/{}", r.pid, r.command);
    std::string peer = r.get_str("network.peer.address");
    int64_t pport = r.get_int("network.peer.port");
    if (!peer.empty() && pport > 0) peer += fmt::format(":{}", pport);
    if (peer.empty()) peer = "-";
    const char* side = r.side == RecordSide::kServer ? "server" : r.side == RecordSide::kClient ? "client" : "?";
    std::string what, status_s;
    const char* status_color = "0";
    if (r.kind == RecordKind::kRequest && r.get("db.system.name")) {
      // Databases: operation and the (sanitised) query, shortened to a line.
      std::string q = r.get_str("db.query.text");
      if (q.empty()) q = r.get_str("db.stored_procedure.name");
      for (auto& c : q)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
      if (q.size() > 100) q = q.substr(0, 97) + "...";
      what = fmt::format("{:<7} {}", r.get_str("db.operation.name"), q);
      std::string code = r.get_str("db.response.status_code");
      bool failed = !r.get_str("error.type").empty();
      status_s = failed ? (code.empty() ? std::string("ERR") : code.substr(0, 9)) : "OK";
      status_color = failed ? "31" : "32";
    } else if (r.kind == RecordKind::kRequest) {
      std::string target = r.get_str("url.path");
      std::string q = r.get_str("url.query");
      if (!q.empty()) target += "?" + q;
      what = fmt::format("{:<7} {}", r.get_str("http.request.method"), target);
      int64_t st = r.get_int("http.response.status_code");
      status_s = st > 0 ? std::to_string(st) : "---";
      status_color = st >= 500 || st < 0 ? "31" : st >= 400 ? "33" : st >= 300 ? "36" : "32";
    } else {
      what = r.protocol + " " + r.get_str("odigos.note");
      status_s = "---";
      status_color = "33";
    }
    std::string err = r.get_str("error.type");
    std::string tail = fmt::format("req {} resp {}", fmt_size(r.get_int("http.request.body.size")),
                                   fmt_size(r.get_int("http.response.body.size")));
    if (r.kind != RecordKind::kRequest || r.get("db.system.name")) tail.clear();
    if (!err.empty() && !(status_s != "---" && err == status_s)) tail += " " + paint("error=" + err, "1;31");
    line = fmt::format("{} {:<22} {:<6} {:<21} {} {:>9} {}\n", paint(when, "2"), proc, side, peer,
                       paint(fmt::format("{:>3}", status_s), status_color), fmt_ms(r.duration_ms),
                       what + "  " + tail);
  }
  if (opt_.show_headers || opt_.show_body) {
    for (auto& [k, v] : r.attrs) {
      bool hdr = k.rfind("http.request.header.", 0) == 0 || k.rfind("http.response.header.", 0) == 0;
      bool body = k == "http.request.body.content" || k == "http.response.body.content";
      if ((hdr && opt_.show_headers) || (body && opt_.show_body)) {
        const std::string* s = std::get_if<std::string>(&v);
        if (!s) continue;
        std::string name(hdr ? k.substr(k.rfind('.') + 1) : k);
        std::string dir = k.rfind("http.request.", 0) == 0 ? ">" : "<";
        line += fmt::format("    {} {}: {}\n", dir, name, *s);
      }
    }
  }
  if (fwrite(line.data(), 1, line.size(), out_) != line.size()) fail(errno, "writing to standard output");
}

} // namespace

std::unique_ptr<Sink> make_terminal_sink(FILE* out, TerminalOptions opt) {
  return std::make_unique<TerminalSink>(out, opt);
}

std::unique_ptr<Sink> make_ndjson_sink(FILE* out, bool owned, std::string name) {
  return std::make_unique<NdjsonSink>(out, owned, std::move(name));
}

} // namespace odigos
