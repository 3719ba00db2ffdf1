// The OpenTelemetry sinks: OTLP/JSON lines to a file, OTLP/HTTP to a collector.
// Both run write() on the reader thread: a span is encoded once, straight into
// the bytes that are written or sent; resources are cached per process.
#include <cerrno>
#include <cstdio>

#include <fmt/format.h>

#include "export/otlp_http.hpp"
#include "export/otlp_json.hpp"
#include "export/otlp_proto.hpp"
#include "export/resource.hpp"
#include "sinks/sink.hpp"

namespace odigos {

namespace {

void print_warnings(otlp::ResourceCache& cache) {
  for (auto& w : cache.take_warnings()) fmt::print(stderr, "odigos-trace: warning: {}\n", w);
}

class OtlpFileSink final : public Sink {
 public:
  OtlpFileSink(FILE* out, bool owned, std::string name)
      : out_(out), owned_(owned), name_(std::move(name)), cache_(otlp::default_resource_settings()) {}
  ~OtlpFileSink() override {
    flush();
    if (owned_ && fclose(out_) != 0) fail(errno, "closing " + name_);
  }
  void write(const Record& r) override {
    if (!ok() || !otlp::is_span(r)) return;
    auto res = cache_.get(r.pid, r.command);
    Group* g = nullptr;
    for (auto& x : groups_)
      if (x.res == res) g = &x;
    if (!g) {
      groups_.push_back(Group{res, {}});
      g = &groups_.back();
    }
    if (!g->spans.empty()) g->spans.push_back(',');
    otlp::append_span_json(g->spans, r);
    if (++pending_ >= kMaxSpansPerLine) emit();
  }
  void flush() override {
    print_warnings(cache_);
    emit();
    if (ok() && fflush(out_) != 0) fail(errno, "writing " + name_);
  }

 private:
  static constexpr size_t kMaxSpansPerLine = 512;
  struct Group {
    std::shared_ptr<const otlp::Resource> res;
    std::string spans; // Span objects joined by commas
  };
  void emit() {
    if (!ok() || pending_ == 0) return;
    std::vector<otlp::JsonGroup> jg;
    for (auto& g : groups_)
      if (!g.spans.empty()) jg.push_back(otlp::JsonGroup{g.res.get(), g.spans});
    line_.clear();
    otlp::append_traces_json(line_, jg);
    line_.push_back('\n');
    if (fwrite(line_.data(), 1, line_.size(), out_) != line_.size()) fail(errno, "writing " + name_);
    pending_ = 0;
    // Buffers are kept for the next line, unless many processes came and went.
    if (groups_.size() > 64) groups_.clear();
    for (auto& g : groups_) g.spans.clear();
  }
  FILE* out_;
  bool owned_;
  std::string name_;
  otlp::ResourceCache cache_;
  std::vector<Group> groups_;
  size_t pending_ = 0;
  std::string line_;
};

class OtlpHttpSink final : public Sink {
 public:
  explicit OtlpHttpSink(otlp::HttpConfig c)
      : cache_(otlp::default_resource_settings()), json_(c.json), path_(otlp::endpoint_path(c.endpoint)) {
    auto transport = otlp::make_curl_transport(c);
    exporter_ = std::make_unique<otlp::Exporter>(std::move(c), std::move(transport));
  }
  ~OtlpHttpSink() override {
    exporter_->shutdown(exporter_->config().timeout_ms);
    fmt::print(stderr, "odigos-trace: {}\n", exporter_->summary());
  }
  void write(const Record& r) override {
    if (!otlp::is_span(r) || own_request(r)) return;
    if (exporter_->full()) { // before any encoding: dropping must be cheap
      exporter_->count_dropped();
      return;
    }
    auto res = cache_.get(r.pid, r.command);
    if (json_) otlp::append_span_json(buf_, r);
    else otlp::append_span_field_proto(buf_, r);
    exporter_->enqueue(std::move(res), buf_); // buf_ comes back empty: the next span's
  }
  void flush() override { print_warnings(cache_); }

 private:
  // The collector's side of our own export requests (a collector on this host
  // traced with --all): exporting those would feed back forever. Our side is
  // never traced (the kernel skips the tracer's own process).
  bool own_request(const Record& r) const {
    if (r.side != RecordSide::kServer) return false;
    int64_t port = r.get_int("network.peer.port");
    if (port <= 0 || port > 65535 || !exporter_->own_port(uint16_t(port))) return false;
    return r.get_view("url.path") == path_;
  }
  otlp::ResourceCache cache_;
  bool json_;
  std::string path_;
  std::string buf_; // the next span's encoding (pooled by the exporter)
  std::unique_ptr<otlp::Exporter> exporter_;
};

} // namespace

std::unique_ptr<Sink> make_otlp_file_sink(FILE* out, bool owned, std::string name) {
  return std::make_unique<OtlpFileSink>(out, owned, std::move(name));
}

std::unique_ptr<Sink> make_otlp_http_sink(const std::string& flag_endpoint, std::string* error) {
  auto env = otlp::process_env();
  if (!otlp::export_requested(flag_endpoint, env)) return nullptr;
  otlp::HttpConfig c;
  if (!otlp::resolve_http_config(flag_endpoint, env, &c, error)) return nullptr;
  return std::make_unique<OtlpHttpSink>(std::move(c));
}

} // namespace odigos
