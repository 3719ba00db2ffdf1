// HTTP/1.x as a connection decoder: http1::Session plus its records.
#include "conn/session_decoder.hpp"

namespace odigos {

namespace {

class Http1Decoder final : public SessionDecoder<http1::Session, http1::Exchange> {
 public:
  Http1Decoder(proto::Side side, const http1::Limits& lim)
      : SessionDecoder(http1::Session(side, lim)) {}
  Protocol protocol() const override { return Protocol::kHttp1; }
  const char* done_note() const override {
    return session_.verdict() == http1::Verdict::kHttp2 ? "http2, not decoded yet" : nullptr;
  }
  const char* done_protocol() const override {
    return session_.verdict() == http1::Verdict::kHttp2 ? "http2" : "http";
  }
  bool rejected() const override { return session_.verdict() == http1::Verdict::kNotHttp; }

 private:
  bool fill(RecordOut& out, const http1::Exchange& ex, uint64_t end_hint) override {
    fill_http1_record(out.scratch, ex, session_.side(), out.id, out.clock, out.opt, end_hint);
    return true;
  }
};

} // namespace

std::unique_ptr<Decoder> make_http1_decoder(proto::Side side, const DecoderLimits& lim) {
  return std::make_unique<Http1Decoder>(side, lim.http);
}

} // namespace odigos
