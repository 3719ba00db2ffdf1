// Private to the http1 module: Session::Impl, shared by session.cpp (exchange
// bookkeeping and pairing) and framing.cpp (per-direction byte decoding).
#pragma once

#include "http1.hpp"
#include "parser_internal.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace odigos::http1 {
namespace session_detail {

enum class St : uint8_t {
  kIdle,       // at a message boundary, nothing buffered
  kHead,       // part of a head is in Dir::buf
  kBody,       // Content-Length body, Dir::remaining bytes left
  kChunkSize,  // chunk-size line (part may be in Dir::buf)
  kChunkData,  // Dir::remaining bytes of chunk data left
  kChunkCrlf,  // the CRLF after chunk data
  kTrailers,   // trailer section after the last chunk
  kCloseBody,  // body ends when the connection does
  kSkip,       // framing lost: wait for a segment that starts a message
  kAwait,      // after CONNECT/Upgrade: hold bytes until the response decides
  kDead,       // nothing more to decode in this direction
};

// kCandidate: Side::kUnknown, this direction may turn out to carry requests.
enum class Role : uint8_t { kCandidate, kRequest, kResponse };

inline constexpr uint64_t kNoSeq = UINT64_MAX;
// Side::kUnknown: segments skipped without finding a request line before the
// connection is written off as not HTTP/1. Idle HTTP connections resume at a
// message boundary, so real HTTP traffic is recognised long before this.
inline constexpr unsigned kUnknownGiveUp = 64;
inline constexpr size_t kMaxChunkLine = 4096;
inline constexpr std::string_view kDesync = "desync";

struct Dir {
  bool ingress = false;
  Role role = Role::kCandidate;
  St state = St::kSkip;
  // First bytes of the connection in this direction: a failure here means
  // "not HTTP" rather than "lost sync".
  bool fresh = false;
  bool in_msg = false;       // msg holds a message whose head was parsed
  bool await_after = false;  // request is CONNECT/Upgrade: await its response
  uint8_t crlf_got = 0;
  std::string buf;
  detail::HeadScan scan;
  size_t trailer_bytes = 0;
  detail::FieldKeep trailer_keep;
  uint64_t head_first_ts = 0;
  uint64_t remaining = 0;
  uint64_t seq = kNoSeq;  // exchange of msg; kNoSeq for a response nobody asked for
  Message msg;
};

struct Entry {
  Exchange ex;
  uint64_t req_first_ts = 0;
  bool is_head = false;
  bool is_connect = false;
  bool req_done = false;
  bool resp_done = false;
};

struct Stashed {
  uint64_t ts;
  uint64_t len;
  bool gap;
  std::string data;
};

// Header vectors of delivered exchanges, reused by the next heads (a message
// would otherwise allocate one vector and free one). A pool per thread, shared
// by the sessions of that thread: no lock, no memory per idle connection.
void recycle_headers(std::vector<Header>& v);
// Gives m a pooled vector when it has none.
void lend_headers(Message& m);

} // namespace session_detail

struct Session::Impl {
  using Dir = session_detail::Dir;
  using Entry = session_detail::Entry;
  using HeadInfo = detail::HeadInfo;

  Side side;
  Limits lim;
  Verdict verdict = Verdict::kUndecided;
  bool tunnel = false;
  bool closed = false;
  bool replay = false;
  unsigned unknown_skipped = 0;
  uint64_t desyncs = 0;
  Dir dirs[2]; // [0] egress, [1] ingress
  // Open exchanges, oldest first, in a ring: a deque would allocate a node
  // per Entry (they are large), which is most of the cost of an exchange.
  std::vector<Entry> ring;     // size is zero or a power of two
  size_t ring_head = 0;
  size_t count = 0;
  uint64_t front_seq = 0;      // seq of the oldest open exchange
  uint64_t next_resp_seq = 0;  // exchange the next final response answers
  // First request parsed after request bytes were lost: a response that
  // began before it answers a lost request, not this one.
  uint64_t resync_seq = session_detail::kNoSeq;
  uint64_t await_seq = session_detail::kNoSeq;
  std::vector<session_detail::Stashed> stash;
  size_t stash_bytes = 0;
  std::vector<Exchange> ready;

  Impl(Side s, Limits l);

  // Tunnel or not HTTP/1: nothing more will be decoded (Session::done).
  bool gave_up() const {
    return tunnel || verdict == Verdict::kHttp2 || verdict == Verdict::kNotHttp;
  }
  bool finished() const { return closed || gave_up(); }
  bool undecided_start(const Dir& d) const { return d.fresh && verdict == Verdict::kUndecided; }
  Dir& request_dir() { return dirs[side == Side::kServer]; }
  uint64_t next_seq() const { return front_seq + count; }
  Entry& at(size_t k) { return ring[(ring_head + k) & (ring.size() - 1)]; }
  Entry* entry(uint64_t seq) {
    if (seq == session_detail::kNoSeq || seq < front_seq || seq >= next_seq()) return nullptr;
    return &at(static_cast<size_t>(seq - front_seq));
  }
  static void reset_msg(Dir& d) {
    d.msg.clear();
    d.in_msg = false;
    d.seq = session_detail::kNoSeq;
  }

  // session.cpp: open exchanges, pairing, loss and connection events.
  Entry& push_entry();
  void pop_front();
  void drop_front();
  Entry* store_partial_request(Dir& rq);
  uint64_t store_complete(Dir& d, uint64_t ts);
  void stop_all();
  void try_emit();
  void resolve_await();
  void enter_skip(Dir& d);
  void decide_side(bool req_ingress);
  bool try_resync(Dir& d, std::string_view data);
  void finish_request(Dir& d, uint64_t ts);
  void finish_response(Dir& d, uint64_t ts);
  void finish_message(Dir& d, uint64_t ts);
  void go_tunnel(uint64_t seq);
  uint64_t peek_response_seq(uint64_t first_ts);
  void on_request_head(Dir& d, const HeadInfo& info, uint64_t ts);
  void on_response_head(Dir& d, const HeadInfo& info, uint64_t ts);
  void on_eof(Dir& d);
  void on_close(std::string_view error_type);

  // framing.cpp: bytes of one direction.
  enum class Line : uint8_t { kDone, kPartial, kTooLong };
  void feed(Dir& d, const Segment& seg);
  void run_replay();
  void stash_bytes_of(std::string_view data, uint64_t missing, uint64_t ts, bool gap);
  void take_body(Dir& d, std::string_view bytes);
  bool take_counted(Dir& d, std::string_view& p);
  void on_gap(Dir& d, std::string_view data);
  void on_missing(Dir& d, uint64_t missing, uint64_t ts);
  long take_head(Dir& d, std::string_view view, uint64_t ts);
  void reject_head(Dir& d);
  bool step_idle(Dir& d, std::string_view& p, uint64_t ts);
  bool step_head(Dir& d, std::string_view& p, uint64_t ts);
  Line take_line(Dir& d, std::string_view& p, std::string_view& line, size_t limit);
  bool step_chunked(Dir& d, std::string_view& p, uint64_t ts);
};

} // namespace odigos::http1
