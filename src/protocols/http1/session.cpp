// One connection: a framing state machine per direction, plus a FIFO of open
// exchanges that pairs each final response with the oldest unanswered request.
// Only incomplete heads (and chunk/trailer lines) are copied; bodies are
// counted in place and copied only up to max_body_keep.
#include "http1.hpp"
#include "parser_internal.hpp"

#include <algorithm>
#include <cstring>

namespace odigos::http1 {
namespace {

using detail::HeadInfo;
using detail::Scan;

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

constexpr uint64_t kNoSeq = UINT64_MAX;
// Side::kUnknown: segments skipped without finding a request line before the
// connection is written off as not HTTP/1. Idle HTTP connections resume at a
// message boundary, so real HTTP traffic is recognised long before this.
constexpr unsigned kUnknownGiveUp = 64;
constexpr size_t kMaxChunkLine = 4096;
constexpr std::string_view kDesync = "desync";

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
  size_t resume = 0;
  size_t trailer_bytes = 0;
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

// Bytes of `more` that complete a head whose first part is `have`, or npos.
size_t head_end_in(std::string_view have, std::string_view more) {
  static constexpr std::string_view kEnd = "\r\n\r\n";
  char tmp[6];
  const size_t a = std::min<size_t>(3, have.size());
  const size_t b = std::min<size_t>(3, more.size());
  std::memcpy(tmp, have.data() + have.size() - a, a);
  std::memcpy(tmp + a, more.data(), b);
  for (size_t i = 0; i < a && i + 4 <= a + b; ++i)
    if (std::string_view(tmp + i, 4) == kEnd) return i + 4 - a;
  const size_t pos = more.find(kEnd);
  return pos == std::string_view::npos ? pos : pos + 4;
}

} // namespace

struct Session::Impl {
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
  uint64_t resync_seq = kNoSeq;
  uint64_t await_seq = kNoSeq;
  std::vector<Stashed> stash;
  size_t stash_bytes = 0;
  std::vector<Exchange> ready;

  Impl(Side s, Limits l) : side(s), lim(l) {
    lim.max_pending = std::max<size_t>(lim.max_pending, 1);
    dirs[0].ingress = false;
    dirs[1].ingress = true;
    if (s != Side::kUnknown) {
      const bool req_in = s == Side::kServer;
      dirs[req_in].role = Role::kRequest;
      dirs[!req_in].role = Role::kResponse;
      for (Dir& d : dirs) {
        d.state = St::kIdle;
        d.fresh = true;
      }
    }
  }

  bool finished() const {
    return closed || tunnel || verdict == Verdict::kHttp2 || verdict == Verdict::kNotHttp;
  }
  bool undecided_start(const Dir& d) const { return d.fresh && verdict == Verdict::kUndecided; }
  Dir& request_dir() { return dirs[side == Side::kServer]; }
  uint64_t next_seq() const { return front_seq + count; }
  Entry& at(size_t k) { return ring[(ring_head + k) & (ring.size() - 1)]; }
  Entry* entry(uint64_t seq) {
    if (seq == kNoSeq || seq < front_seq || seq >= next_seq()) return nullptr;
    return &at(static_cast<size_t>(seq - front_seq));
  }

  Entry& push_entry() {
    if (count == ring.size()) {
      std::vector<Entry> bigger(std::max<size_t>(8, ring.size() * 2));
      for (size_t k = 0; k < count; ++k) bigger[k] = std::move(at(k));
      ring.swap(bigger);
      ring_head = 0;
    }
    // Slots are reused: the previous Exchange was moved out (its request is
    // always assigned before an exchange is emitted), so resetting what a
    // move leaves behind is enough and cheaper than assigning a fresh Entry.
    Entry& e = at(count++);
    e.ex.informational.clear();
    e.ex.response.reset();
    e.ex.error_type.clear();
    e.ex.tunnel = false;
    e.req_done = e.resp_done = false;
    return e;
  }
  void drop_front() {
    at(0) = Entry{};
    ring_head = (ring_head + 1) & (ring.size() - 1);
    --count;
    ++front_seq;
  }

  void try_emit() {
    while (count > 0 && at(0).req_done && at(0).resp_done) {
      ready.push_back(std::move(at(0).ex));
      ring_head = (ring_head + 1) & (ring.size() - 1);
      --count;
      ++front_seq;
    }
  }

  static void reset_msg(Dir& d) {
    d.msg = Message{};
    d.in_msg = false;
    d.seq = kNoSeq;
  }

  void take_body(Dir& d, std::string_view bytes) {
    std::string& body = d.msg.body;
    if (body.size() < lim.max_body_keep)
      body.append(bytes.data(), std::min(bytes.size(), lim.max_body_keep - body.size()));
    d.msg.body_size += bytes.size();
  }

  void stash_bytes_of(std::string_view data, uint64_t missing, uint64_t ts, bool gap) {
    const size_t room = lim.max_head_bytes > stash_bytes ? lim.max_head_bytes - stash_bytes : 0;
    const size_t keep = std::min(room, data.size());
    // What does not fit is replayed as uncaptured bytes.
    stash.push_back({ts, data.size() + missing, gap, std::string(data.substr(0, keep))});
    stash_bytes += keep;
  }

  void run_replay() {
    replay = false;
    std::vector<Stashed> items = std::move(stash);
    stash.clear();
    stash_bytes = 0;
    for (const Stashed& s : items) {
      Segment seg;
      seg.ts_ns = s.ts;
      seg.len = s.len;
      seg.data = s.data;
      seg.gap_before = s.gap;
      feed(request_dir(), seg);
    }
  }

  void resolve_await() {
    await_seq = kNoSeq;
    Dir& rq = request_dir();
    if (rq.state == St::kAwait) {
      rq.state = St::kIdle;
      replay = true;
    } else {
      rq.await_after = false;
    }
  }

  void enter_skip(Dir& d) {
    ++desyncs;
    d.fresh = false;
    if (d.role == Role::kRequest) {
      if (Entry* e = d.in_msg ? entry(d.seq) : nullptr) {
        e->ex.request = std::move(d.msg);
        e->ex.request.complete = false;
        e->ex.error_type = kDesync;
        e->req_done = true;
        if (await_seq == d.seq) resolve_await();
      }
      d.await_after = false;
      resync_seq = next_seq();
    } else if (d.role == Role::kResponse) {
      uint64_t seq = d.seq;
      // A head lost before it could be parsed was the answer to the oldest
      // open request.
      if (!d.in_msg && entry(next_resp_seq)) seq = next_resp_seq++;
      if (Entry* e = entry(seq)) {
        if (d.in_msg) {
          e->ex.response = std::move(d.msg);
          e->ex.response->complete = false;
        }
        e->ex.error_type = kDesync;
        e->resp_done = true;
        if (await_seq == seq) resolve_await();
      }
    }
    reset_msg(d);
    d.buf.clear();
    d.state = St::kSkip;
    try_emit();
  }

  void decide_side(bool req_ingress) {
    side = req_ingress ? Side::kServer : Side::kClient;
    Dir& rq = dirs[req_ingress];
    Dir& rs = dirs[!req_ingress];
    rq.role = Role::kRequest;
    rq.state = St::kIdle;
    rs.role = Role::kResponse;
    rs.state = St::kSkip;
    resync_seq = next_seq();
  }

  // `data` is a whole segment's captured bytes.
  bool try_resync(Dir& d, std::string_view data) {
    if (d.role == Role::kCandidate) {
      if (detail::scan_h2_preface(data) == Scan::kYes) {
        verdict = Verdict::kHttp2;
        return false;
      }
      if (detail::scan_request_line(data) == Scan::kYes) {
        decide_side(d.ingress);
        return true;
      }
      if (++unknown_skipped >= kUnknownGiveUp) verdict = Verdict::kNotHttp;
      return false;
    }
    const Scan s = d.role == Role::kRequest ? detail::scan_request_line(data)
                                            : detail::scan_status_line(data);
    if (s != Scan::kYes) return false;
    d.state = St::kIdle;
    return true;
  }

  void on_gap(Dir& d, std::string_view data) {
    switch (d.state) {
      case St::kIdle: {
        d.fresh = false;
        const Scan s = d.role == Role::kRequest ? detail::scan_request_line(data)
                                                : detail::scan_status_line(data);
        if (s == Scan::kYes) {
          // Still at a boundary, but whole requests may be gone.
          if (d.role == Role::kRequest) resync_seq = next_seq();
          return;
        }
        enter_skip(d);
        return;
      }
      case St::kCloseBody:
        d.msg.body_truncated = true;
        return;
      case St::kSkip:
      case St::kAwait:
      case St::kDead:
        return;
      default:
        // The lost byte count is unknown, so the framing is lost too.
        enter_skip(d);
        return;
    }
  }

  void finish_request(Dir& d, uint64_t ts) {
    d.msg.complete = true;
    d.msg.last_ts_ns = ts;
    const uint64_t seq = d.seq;
    if (Entry* e = entry(seq)) {
      e->ex.request = std::move(d.msg);
      e->req_done = true;
    }
    reset_msg(d);
    d.state = St::kIdle;
    if (d.await_after) {
      d.await_after = false;
      d.state = St::kAwait;
      await_seq = seq;
      const Entry* e = entry(seq);
      if (!e || e->resp_done) resolve_await();
    }
    try_emit();
  }

  void finish_response(Dir& d, uint64_t ts) {
    d.msg.complete = true;
    d.msg.last_ts_ns = ts;
    const uint64_t seq = d.seq;
    if (Entry* e = entry(seq)) {
      e->ex.response = std::move(d.msg);
      e->resp_done = true;
    }
    reset_msg(d);
    d.state = St::kIdle;
    if (seq != kNoSeq && seq == await_seq) resolve_await();
    try_emit();
  }

  void finish_message(Dir& d, uint64_t ts) {
    if (d.role == Role::kRequest) finish_request(d, ts);
    else finish_response(d, ts);
  }

  void go_tunnel(uint64_t seq) {
    tunnel = true;
    Dir& rq = request_dir();
    if (Entry* e = rq.in_msg ? entry(rq.seq) : nullptr) {
      e->ex.request = std::move(rq.msg);
      e->ex.request.complete = false;
      e->req_done = true;
    }
    // Nothing after the switching request can be HTTP/1 any more.
    if (entry(seq))
      while (next_seq() > seq + 1) at(--count) = Entry{};
    try_emit();
    for (Dir& d : dirs) {
      reset_msg(d);
      d.state = St::kDead;
    }
    stash.clear();
  }

  // Oldest open request, unless this response began before a request that
  // followed lost bytes (then it answers one of the lost requests).
  uint64_t peek_response_seq(uint64_t first_ts) {
    const Entry* e = entry(next_resp_seq);
    if (!e) return kNoSeq;
    if (next_resp_seq == resync_seq && first_ts < e->req_first_ts) return kNoSeq;
    return next_resp_seq;
  }

  // The head was parsed into d.msg.
  void on_request_head(Dir& d, const HeadInfo& info, uint64_t ts) {
    if (info.has_te && !info.te_chunked) {
      enter_skip(d); // unframeable request (RFC 9112 6.3): the server will close
      return;
    }
    if (count >= lim.max_pending) {
      drop_front();
      ++desyncs;
      next_resp_seq = std::max(next_resp_seq, front_seq);
      if (await_seq != kNoSeq && await_seq < front_seq) resolve_await();
    }
    Entry& e = push_entry();
    const std::string_view method = d.msg.method;
    e.req_first_ts = d.msg.first_ts_ns;
    e.is_head = method == "HEAD";
    e.is_connect = method == "CONNECT";
    d.await_after = e.is_connect || info.upgrade;
    d.seq = next_seq() - 1;
    d.in_msg = true;
    if (info.has_te) {
      d.state = St::kChunkSize;
    } else if (info.has_length && info.content_length > 0) {
      d.state = St::kBody;
      d.remaining = info.content_length;
    } else {
      finish_request(d, ts);
    }
  }

  // The head was parsed into d.msg.
  void on_response_head(Dir& d, const HeadInfo& info, uint64_t ts) {
    const int st = d.msg.status;
    if (st < 200 && st != 101) {
      if (Entry* e = entry(peek_response_seq(d.msg.first_ts_ns))) {
        d.msg.complete = true;
        e->ex.informational.push_back(std::move(d.msg));
      }
      reset_msg(d);
      d.state = St::kIdle;
      return;
    }
    const uint64_t seq = peek_response_seq(d.msg.first_ts_ns);
    if (seq != kNoSeq) ++next_resp_seq;
    Entry* e = entry(seq);
    d.seq = seq;
    d.in_msg = true;
    if (st == 101 || (e && e->is_connect && st < 300)) {
      d.msg.complete = true;
      if (e) {
        e->ex.tunnel = true;
        e->ex.response = std::move(d.msg);
        e->resp_done = true;
      }
      go_tunnel(seq);
      return;
    }
    if ((e && e->is_head) || st == 204 || st == 304) {
      finish_response(d, ts);
    } else if (info.has_te) {
      d.state = info.te_chunked ? St::kChunkSize : St::kCloseBody;
    } else if (info.has_length) {
      if (info.content_length == 0) {
        finish_response(d, ts);
      } else {
        d.state = St::kBody;
        d.remaining = info.content_length;
      }
    } else {
      d.state = St::kCloseBody;
    }
  }

  // Parses a head from `view` (a segment's bytes or Dir::buf). Returns bytes
  // consumed, 0 for more data, -1 when decoding of this direction stopped.
  long take_head(Dir& d, std::string_view view, uint64_t ts) {
    const bool request = d.role == Role::kRequest;
    if (undecided_start(d)) {
      if (request) {
        const Scan h2 = detail::scan_h2_preface(view);
        if (h2 == Scan::kYes) {
          verdict = Verdict::kHttp2;
          return -1;
        }
        if (detail::scan_request_line(view) == Scan::kNo) {
          if (h2 == Scan::kMore) return 0;
          verdict = Verdict::kNotHttp;
          return -1;
        }
      } else if (detail::looks_like_h2_settings(view)) {
        verdict = Verdict::kHttp2;
        return -1;
      }
    }
    HeadInfo info;
    const long n = detail::parse_head_ex(view, request, d.msg, info, &d.resume);
    if (n == 0) return 0;
    if (n < 0) {
      if (undecided_start(d)) verdict = Verdict::kNotHttp;
      else enter_skip(d);
      return -1;
    }
    if (static_cast<size_t>(n) > lim.max_head_bytes) {
      head_too_long(d);
      return -1;
    }
    d.fresh = false;
    if (verdict == Verdict::kUndecided) verdict = Verdict::kHttp1;
    d.msg.first_ts_ns = d.head_first_ts;
    d.msg.last_ts_ns = ts;
    if (request) on_request_head(d, info, ts);
    else on_response_head(d, info, ts);
    return n;
  }

  void head_too_long(Dir& d) {
    d.buf.clear();
    if (undecided_start(d)) verdict = Verdict::kNotHttp;
    else enter_skip(d);
  }

  bool step_idle(Dir& d, std::string_view& p, uint64_t ts) {
    // Stray CRLFs between requests are allowed (RFC 9112 2.2); some servers
    // send them after a body too.
    while (!p.empty() && (p.front() == '\r' || p.front() == '\n')) p.remove_prefix(1);
    if (p.empty()) return true;
    d.head_first_ts = ts;
    d.resume = 0;
    const long n = take_head(d, p, ts);
    if (n > 0) {
      p.remove_prefix(static_cast<size_t>(n));
      return true;
    }
    if (n < 0) return false;
    if (p.size() > lim.max_head_bytes) {
      head_too_long(d);
      return false;
    }
    d.buf.assign(p);
    d.state = St::kHead;
    p = {};
    return true;
  }

  bool step_head(Dir& d, std::string_view& p, uint64_t ts) {
    const size_t end = head_end_in(d.buf, p);
    const size_t take = end == std::string_view::npos ? p.size() : end;
    if (d.buf.size() + take > lim.max_head_bytes) {
      head_too_long(d);
      return false;
    }
    d.buf.append(p.data(), take);
    p.remove_prefix(take);
    const long n = take_head(d, d.buf, ts);
    if (n < 0) return false;
    if (n > 0) d.buf.clear();
    return true;
  }

  enum class Line : uint8_t { kDone, kPartial, kTooLong };

  // A chunk-size or trailer line, CRLF included. Copied only when it spans
  // segments.
  Line take_line(Dir& d, std::string_view& p, std::string_view& line, size_t limit) {
    const void* nl = std::memchr(p.data(), '\n', p.size());
    const size_t take =
        nl ? static_cast<size_t>(static_cast<const char*>(nl) - p.data()) + 1 : p.size();
    if (d.buf.size() + take > limit) return Line::kTooLong;
    if (d.buf.empty() && nl) {
      line = p.substr(0, take);
    } else {
      d.buf.append(p.data(), take);
      line = d.buf;
    }
    p.remove_prefix(take);
    return nl ? Line::kDone : Line::kPartial;
  }

  // Returns false when the rest of the segment is not to be decoded.
  bool step_chunked(Dir& d, std::string_view& p, uint64_t ts) {
    std::string_view line;
    switch (d.state) {
      case St::kChunkSize: {
        const Line got = take_line(d, p, line, kMaxChunkLine);
        if (got == Line::kPartial) return true;
        uint64_t size = 0;
        if (got == Line::kTooLong || !detail::parse_chunk_line(line, size)) {
          enter_skip(d);
          return false;
        }
        d.buf.clear();
        if (size == 0) {
          d.state = St::kTrailers;
          d.trailer_bytes = 0;
        } else {
          d.state = St::kChunkData;
          d.remaining = size;
        }
        return true;
      }
      case St::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(d.remaining, p.size()));
        take_body(d, p.substr(0, take));
        d.remaining -= take;
        p.remove_prefix(take);
        if (d.remaining == 0) {
          d.state = St::kChunkCrlf;
          d.crlf_got = 0;
        }
        return true;
      }
      case St::kChunkCrlf:
        while (!p.empty() && d.crlf_got < 2) {
          if (p.front() != (d.crlf_got == 0 ? '\r' : '\n')) {
            enter_skip(d);
            return false;
          }
          p.remove_prefix(1);
          ++d.crlf_got;
        }
        if (d.crlf_got == 2) d.state = St::kChunkSize;
        return true;
      default: { // kTrailers
        const size_t room = lim.max_head_bytes - std::min(d.trailer_bytes, lim.max_head_bytes);
        const Line got = take_line(d, p, line, room);
        if (got == Line::kPartial) return true;
        if (got == Line::kTooLong) {
          enter_skip(d);
          return false;
        }
        d.trailer_bytes += line.size();
        if (line == "\r\n") {
          d.buf.clear();
          finish_message(d, ts);
          return true;
        }
        // Trailer fields join the headers: Message has no separate list and
        // they describe the same message (e.g. grpc-status).
        if (line.size() < 2 || line[line.size() - 2] != '\r' ||
            !detail::parse_field_line(line.substr(0, line.size() - 2), d.msg.headers)) {
          enter_skip(d);
          return false;
        }
        d.buf.clear();
        return true;
      }
    }
  }

  // Bytes [data.size(), len) of a segment were not captured.
  void on_missing(Dir& d, uint64_t missing, uint64_t ts) {
    switch (d.state) {
      case St::kBody: {
        const uint64_t take = std::min(missing, d.remaining);
        d.msg.body_size += take;
        d.msg.body_truncated = true;
        d.remaining -= take;
        if (d.remaining == 0) {
          finish_message(d, ts);
          // The next head began in bytes we never saw (or, after CONNECT,
          // bytes that may belong to the tunnel).
          if (missing > take && d.state == St::kAwait) stash_bytes_of({}, missing - take, ts, false);
          else if (missing > take) enter_skip(d);
        }
        return;
      }
      case St::kChunkData:
        d.msg.body_truncated = true;
        if (missing <= d.remaining) {
          d.msg.body_size += missing;
          d.remaining -= missing;
          if (d.remaining == 0) {
            d.state = St::kChunkCrlf;
            d.crlf_got = 0;
          }
        } else {
          d.msg.body_size += d.remaining;
          enter_skip(d); // the next chunk-size line is unseen
        }
        return;
      case St::kCloseBody:
        d.msg.body_size += missing;
        d.msg.body_truncated = true;
        d.msg.last_ts_ns = ts;
        return;
      case St::kSkip:
      case St::kAwait:
      case St::kDead:
        return;
      default:
        enter_skip(d); // part of a head or framing line is unseen
        return;
    }
  }

  void feed(Dir& d, const Segment& seg) {
    if (finished() || d.state == St::kDead) return;
    const uint64_t missing = seg.len > seg.data.size() ? seg.len - seg.data.size() : 0;
    const uint64_t ts = seg.ts_ns;
    if (d.state == St::kAwait) {
      stash_bytes_of(seg.data, missing, ts, seg.gap_before);
      return;
    }
    if (seg.gap_before) on_gap(d, seg.data);
    std::string_view p = seg.data;
    while (!p.empty()) {
      if (finished()) return;
      switch (d.state) {
        case St::kSkip:
          if (p.data() != seg.data.data() || !try_resync(d, p)) return;
          break;
        case St::kIdle:
          if (!step_idle(d, p, ts)) return;
          break;
        case St::kHead:
          if (!step_head(d, p, ts)) return;
          break;
        case St::kBody: {
          const size_t take = static_cast<size_t>(std::min<uint64_t>(d.remaining, p.size()));
          take_body(d, p.substr(0, take));
          d.remaining -= take;
          p.remove_prefix(take);
          if (d.remaining == 0) finish_message(d, ts);
          break;
        }
        case St::kCloseBody:
          take_body(d, p);
          d.msg.last_ts_ns = ts;
          p = {};
          break;
        case St::kAwait:
          stash_bytes_of(p, missing, ts, false);
          return;
        case St::kDead:
          return;
        default:
          if (!step_chunked(d, p, ts)) return;
          break;
      }
    }
    if (missing && !finished()) on_missing(d, missing, ts);
  }

  void on_eof(Dir& d) {
    if (finished()) return;
    if (d.role == Role::kResponse && d.state == St::kCloseBody) {
      finish_response(d, d.msg.last_ts_ns);
      d.state = St::kDead;
    } else if (d.state == St::kIdle || d.state == St::kSkip) {
      d.state = St::kDead;
    }
  }

  void on_close(std::string_view error_type) {
    if (closed) return;
    closed = true;
    if (side != Side::kUnknown) {
      Dir& rq = request_dir();
      Dir& rs = dirs[side != Side::kServer];
      if (rs.state == St::kCloseBody) {
        finish_response(rs, rs.msg.last_ts_ns);
      } else if (Entry* e = rs.in_msg ? entry(rs.seq) : nullptr) {
        e->ex.response = std::move(rs.msg);
        e->ex.response->complete = false;
        e->ex.error_type = error_type;
        e->resp_done = true;
      }
      if (Entry* e = rq.in_msg ? entry(rq.seq) : nullptr) {
        e->ex.request = std::move(rq.msg);
        e->ex.request.complete = false;
      }
    }
    for (size_t k = 0; k < count; ++k) {
      Entry& e = at(k);
      if (!e.resp_done && e.ex.error_type.empty()) e.ex.error_type = error_type;
      e.req_done = e.resp_done = true;
    }
    try_emit();
    for (Dir& d : dirs) {
      reset_msg(d);
      d.state = St::kDead;
    }
    stash.clear();
  }
};

Session::Session(Side side, Limits limits) : impl_(new Impl(side, limits)) {}
Session::~Session() { delete impl_; }
Session::Session(Session&& o) noexcept : impl_(o.impl_) { o.impl_ = nullptr; }
Session& Session::operator=(Session&& o) noexcept {
  if (this != &o) {
    delete impl_;
    impl_ = o.impl_;
    o.impl_ = nullptr;
  }
  return *this;
}

void Session::on_data(bool ingress, const Segment& seg) {
  impl_->feed(impl_->dirs[ingress], seg);
  while (impl_->replay) impl_->run_replay();
}

void Session::on_eof(bool ingress, uint64_t /*ts_ns*/) {
  impl_->on_eof(impl_->dirs[ingress]);
  while (impl_->replay) impl_->run_replay();
}

void Session::on_close(uint64_t /*ts_ns*/, std::string_view error_type) {
  impl_->on_close(error_type);
}

std::vector<Exchange> Session::take_exchanges() {
  std::vector<Exchange> out;
  out.swap(impl_->ready);
  // Callers drain regularly: start the next batch at the size of this one
  // instead of regrowing (and moving every Exchange) from empty.
  impl_->ready.reserve(out.size());
  return out;
}

Side Session::side() const { return impl_->side; }
Verdict Session::verdict() const { return impl_->verdict; }
bool Session::done() const {
  return impl_->tunnel || impl_->verdict == Verdict::kHttp2 || impl_->verdict == Verdict::kNotHttp;
}
uint64_t Session::desyncs() const { return impl_->desyncs; }

} // namespace odigos::http1
