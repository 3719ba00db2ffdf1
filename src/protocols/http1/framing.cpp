// Byte decoding of one direction: heads, Content-Length, chunked and
// close-delimited bodies, uncaptured bytes and losses. Only incomplete heads
// (and chunk/trailer lines) are copied; bodies are counted in place and
// copied only up to max_body_keep.
#include "session_impl.hpp"

#include <cstring>

namespace odigos::http1 {

using namespace session_detail;
using detail::Scan;

namespace {

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

void Session::Impl::take_body(Dir& d, std::string_view bytes) {
  std::string& body = d.msg.body;
  if (body.size() < lim.max_body_keep)
    body.append(bytes.data(), std::min(bytes.size(), lim.max_body_keep - body.size()));
  d.msg.body_size += bytes.size();
}

// Up to d.remaining body bytes from p (Content-Length body or chunk data).
// True when the counted part is complete.
bool Session::Impl::take_counted(Dir& d, std::string_view& p) {
  const size_t take = static_cast<size_t>(std::min<uint64_t>(d.remaining, p.size()));
  take_body(d, p.substr(0, take));
  d.remaining -= take;
  p.remove_prefix(take);
  return d.remaining == 0;
}

void Session::Impl::stash_bytes_of(std::string_view data, uint64_t missing, uint64_t ts, bool gap) {
  const size_t room = lim.max_head_bytes > stash_bytes ? lim.max_head_bytes - stash_bytes : 0;
  const size_t keep = std::min(room, data.size());
  // What does not fit is replayed as uncaptured bytes.
  stash.push_back({ts, data.size() + missing, gap, std::string(data.substr(0, keep))});
  stash_bytes += keep;
}

void Session::Impl::run_replay() {
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

void Session::Impl::on_gap(Dir& d, std::string_view data) {
  switch (d.state) {
    case St::kIdle: {
      d.fresh = false;
      if (detail::scan_start_line(data, d.role == Role::kRequest) == Scan::kYes) {
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

// Parses a head from `view` (a segment's bytes or Dir::buf). Returns bytes
// consumed, 0 for more data, -1 when decoding of this direction stopped.
long Session::Impl::take_head(Dir& d, std::string_view view, uint64_t ts) {
  const bool request = d.role == Role::kRequest;
  if (undecided_start(d)) {
    if (request) {
      const Scan h2 = detail::scan_h2_preface(view);
      if (h2 == Scan::kYes) {
        verdict = Verdict::kHttp2;
        return -1;
      }
      // Both may still fit a short prefix ("PRI * HTTP/"); anything else
      // that is not a request is judged by the parser below.
      if (h2 == Scan::kMore && detail::scan_request_line(view) == Scan::kNo) return 0;
    } else if (detail::looks_like_h2_settings(view)) {
      verdict = Verdict::kHttp2;
      return -1;
    }
  }
  HeadInfo info;
  lend_headers(d.msg);
  const long n = detail::parse_head_ex(view, request, d.msg, info, &d.scan, lim.keep_all_headers);
  if (n == 0) return 0;
  if (n < 0 || static_cast<size_t>(n) > lim.max_head_bytes) {
    reject_head(d);
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

// Not a head (or too long for one): not HTTP at the start of a connection,
// lost sync later.
void Session::Impl::reject_head(Dir& d) {
  d.buf.clear();
  if (undecided_start(d)) verdict = Verdict::kNotHttp;
  else enter_skip(d);
}

bool Session::Impl::step_idle(Dir& d, std::string_view& p, uint64_t ts) {
  // Stray CRLFs between requests are allowed (RFC 9112 2.2); some servers
  // send them after a body too.
  while (!p.empty() && (p.front() == '\r' || p.front() == '\n')) p.remove_prefix(1);
  if (p.empty()) return true;
  d.head_first_ts = ts;
  d.scan = {};
  const long n = take_head(d, p, ts);
  if (n > 0) {
    p.remove_prefix(static_cast<size_t>(n));
    return true;
  }
  if (n < 0) return false;
  if (p.size() > lim.max_head_bytes) {
    reject_head(d);
    return false;
  }
  d.buf.assign(p);
  d.state = St::kHead;
  p = {};
  return true;
}

bool Session::Impl::step_head(Dir& d, std::string_view& p, uint64_t ts) {
  const size_t end = head_end_in(d.buf, p);
  const size_t take = end == std::string_view::npos ? p.size() : end;
  if (d.buf.size() + take > lim.max_head_bytes) {
    reject_head(d);
    return false;
  }
  d.buf.append(p.data(), take);
  p.remove_prefix(take);
  const long n = take_head(d, d.buf, ts);
  if (n < 0) return false;
  if (n > 0) d.buf.clear();
  return true;
}

// A chunk-size or trailer line, CRLF included. Copied only when it spans
// segments.
Session::Impl::Line Session::Impl::take_line(Dir& d, std::string_view& p, std::string_view& line,
                                             size_t limit) {
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
bool Session::Impl::step_chunked(Dir& d, std::string_view& p, uint64_t ts) {
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
        d.trailer_keep = detail::FieldKeep{lim.keep_all_headers,
                                           lim.keep_all_headers && !d.msg.headers.empty(), false};
      } else {
        d.state = St::kChunkData;
        d.remaining = size;
      }
      return true;
    }
    case St::kChunkData:
      if (take_counted(d, p)) {
        d.state = St::kChunkCrlf;
        d.crlf_got = 0;
      }
      return true;
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
          !detail::parse_field_line(line.substr(0, line.size() - 2), d.msg.headers, &d.trailer_keep)) {
        enter_skip(d);
        return false;
      }
      d.buf.clear();
      return true;
    }
  }
}

// Bytes [data.size(), len) of a segment were not captured.
void Session::Impl::on_missing(Dir& d, uint64_t missing, uint64_t ts) {
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

void Session::Impl::feed(Dir& d, const Segment& seg) {
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
      case St::kBody:
        if (take_counted(d, p)) finish_message(d, ts);
        break;
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

} // namespace odigos::http1
