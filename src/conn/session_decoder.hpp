// What every connection decoder shares: bytes forwarded to a pure protocol
// session, finished exchanges drained into records. A protocol's adapter
// (src/conn/<p>_decoder.cpp) adds only its record mapping (fill) and what its
// verdict means (rejected, done_note).
#pragma once

#include <utility>
#include <vector>

#include "conn/decoder.hpp"

namespace odigos {

template <class Session, class Exchange>
class SessionDecoder : public Decoder {
 public:
  explicit SessionDecoder(Session session) : session_(std::move(session)) {}
  void on_data(bool ingress, const proto::Segment& seg) override { session_.on_data(ingress, seg); }
  void on_eof(bool ingress, uint64_t ts) override { session_.on_eof(ingress, ts); }
  void on_close(uint64_t ts, std::string_view why) override { session_.on_close(ts, why); }
  void drain(RecordOut& out, uint64_t end_hint) override {
    session_.take_exchanges(exchanges_); // swapped, not reallocated: nothing allocated per drain
    for (const Exchange& ex : exchanges_) {
      if (!fill(out, ex, end_hint)) continue;
      out.records++;
      out.emit(out.scratch);
    }
  }
  bool done() const override { return session_.done(); }
  proto::Side side() const override { return session_.side(); }
  uint64_t desyncs() const override { return session_.desyncs(); }

 protected:
  // Builds ex's record in out.scratch; false when the exchange is not a
  // record (connection set-up, a message with no answer to time).
  virtual bool fill(RecordOut& out, const Exchange& ex, uint64_t end_hint) = 0;
  Session session_;

 private:
  std::vector<Exchange> exchanges_;
};

} // namespace odigos
