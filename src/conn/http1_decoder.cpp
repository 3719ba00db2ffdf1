// HTTP/1.x as a connection decoder: http1::Session plus its records.
#include <vector>

#include "conn/decoder.hpp"

namespace odigos {

namespace {

class Http1Decoder final : public Decoder {
 public:
  Http1Decoder(proto::Side side, const http1::Limits& lim) : session_(side, lim) {}
  Protocol protocol() const override { return Protocol::kHttp1; }
  void on_data(bool ingress, const proto::Segment& seg) override { session_.on_data(ingress, seg); }
  void on_eof(bool ingress, uint64_t ts) override { session_.on_eof(ingress, ts); }
  void on_close(uint64_t ts, std::string_view why) override { session_.on_close(ts, why); }
  void drain(RecordOut& out, uint64_t end_hint) override {
    session_.take_exchanges(exchanges_);
    for (const auto& ex : exchanges_) {
      fill_http1_record(out.scratch, ex, session_.side(), out.id, out.clock, out.opt, end_hint);
      out.records++;
      out.emit(out.scratch);
    }
  }
  bool done() const override { return session_.done(); }
  const char* done_note() const override {
    return session_.verdict() == http1::Verdict::kHttp2 ? "http2, not decoded yet" : nullptr;
  }
  const char* done_protocol() const override {
    return session_.verdict() == http1::Verdict::kHttp2 ? "http2" : "http";
  }
  bool rejected() const override { return session_.verdict() == http1::Verdict::kNotHttp; }
  proto::Side side() const override { return session_.side(); }
  uint64_t desyncs() const override { return session_.desyncs(); }

 private:
  http1::Session session_;
  std::vector<http1::Exchange> exchanges_; // swapped with the session's: no allocation per drain
};

} // namespace

std::unique_ptr<Decoder> make_http1_decoder(proto::Side side, const DecoderLimits& lim) {
  return std::make_unique<Http1Decoder>(side, lim.http);
}

const char* to_string(Protocol p) {
  switch (p) {
  case Protocol::kHttp1: return "http";
  case Protocol::kRedis: return "redis";
  case Protocol::kPostgres: return "postgresql";
  case Protocol::kMysql: return "mysql";
  default: return "unknown";
  }
}

bool parse_protocol(std::string_view n, Protocol& out) {
  if (n == "http" || n == "http1" || n == "http/1.1") out = Protocol::kHttp1;
  else if (n == "redis") out = Protocol::kRedis;
  else if (n == "postgresql" || n == "postgres" || n == "pg") out = Protocol::kPostgres;
  else if (n == "mysql" || n == "mariadb") out = Protocol::kMysql;
  else return false;
  return true;
}

} // namespace odigos
