// Bytes of one direction → messages: headers and bodies across segments,
// uncaptured tails skipped by length, loss, resynchronisation.
#include "session_impl.hpp"

#include <algorithm>
#include <cstring>

namespace odigos::pg {

using namespace session_detail;
using wire::Check;

void Session::Impl::feed(Dir& d, const Segment& seg) {
  if (stopped() || d.state == St::kDead) return;
  if (side == Side::kUnknown && !decide(d, seg)) return;
  if (seg.gap_before) on_gap(d);
  std::string_view p = seg.data;
  const uint64_t missing = seg.len > p.size() ? seg.len - p.size() : 0;
  const uint64_t ts = seg.ts_ns;
  while (!p.empty() && !stopped()) {
    switch (d.state) {
      case St::kFresh: fresh(d, p, ts, seg.len); break;
      case St::kSkip: skip(d, p, missing == 0, ts); break;
      case St::kBoundary: boundary(d, p, ts); break;
      case St::kHeader: header(d, p, ts); break;
      case St::kBody: body(d, p, ts); break;
      case St::kDead: p = {}; break;
    }
  }
  if (missing && !stopped()) on_missing(d, missing, ts);
}

void Session::Impl::not_postgres() {
  verdict = Verdict::kNotPostgres;
  for (Dir& d : dirs) {
    d.state = St::kDead;
    d.buf.clear();
  }
}

// The first bytes of a direction: a startup packet or messages, else the
// connection is not PostgreSQL (unless the other direction showed it is:
// then these bytes start inside a message).
void Session::Impl::fresh(Dir& d, std::string_view& p, uint64_t ts, uint64_t len) {
  d.probation = 2;
  bool ok;
  if (d.client && wire::direct_tls(p)) {
    direct_tls(ts, len);
    p = {};
    return;
  }
  if (d.client) {
    d.startup_phase = p[0] == 0; // a type byte is never NUL, a startup length starts with one
    ok = d.startup_phase ? wire::check_startup(p, nullptr) != Check::kBad
                         : !wire::check_chain(p, true, -1, 2).bad;
  } else {
    ok = ssl_pending() || !wire::check_chain(p, false, d.ncols, 2).bad;
  }
  if (ok) {
    d.state = St::kBoundary;
    return;
  }
  if (verdict == Verdict::kUndecided) {
    not_postgres();
    p = {};
    return;
  }
  d.startup_phase = false;
  d.soft = false;
  d.state = St::kSkip;
}

void Session::Impl::skip(Dir& d, std::string_view& p, bool fully_captured, uint64_t ts) {
  size_t off = std::string_view::npos;
  if (d.client && d.startup_phase) {
    const Check c = wire::check_startup(p, nullptr);
    if (c == Check::kGood || c == Check::kPartial) off = 0;
    else d.startup_phase = false;
  }
  if (off == std::string_view::npos) off = wire::find_boundary(p, d.client, d.client ? -1 : d.ncols, fully_captured);
  if (off == std::string_view::npos) {
    if (d.soft) count_unframed(d, p.size(), ts);
    p = {};
    if (verdict == Verdict::kUndecided && ++bad_segments >= kBadGiveUp) not_postgres();
    return;
  }
  if (d.soft) count_unframed(d, off, ts);
  p.remove_prefix(off);
  d.state = St::kBoundary;
  d.probation = 2;
  if (d.soft) ++resyncs;
  d.soft = false;
}

void Session::Impl::boundary(Dir& d, std::string_view& p, uint64_t ts) {
  if (!d.client && ssl_pending() && ssl_answer(p, ts)) return;
  d.msg_ts = ts;
  d.body_lost = false;
  d.hdr_need = d.client && d.startup_phase ? 4 : 5;
  if (p.size() >= d.hdr_need) {
    if (!start_message(d, p.data())) return;
    p.remove_prefix(d.hdr_need);
    after_header(d, p, ts);
    return;
  }
  std::memcpy(d.hdr, p.data(), p.size());
  d.hdr_got = static_cast<uint8_t>(p.size());
  p = {};
  d.state = St::kHeader;
}

void Session::Impl::header(Dir& d, std::string_view& p, uint64_t ts) {
  const size_t take = std::min<size_t>(p.size(), d.hdr_need - d.hdr_got);
  std::memcpy(d.hdr + d.hdr_got, p.data(), take);
  d.hdr_got = static_cast<uint8_t>(d.hdr_got + take);
  p.remove_prefix(take);
  if (d.hdr_got < d.hdr_need) return;
  d.hdr_got = 0;
  if (!start_message(d, d.hdr)) return;
  after_header(d, p, ts);
}

// Validates a complete header; false when framing was lost (or the
// connection is not PostgreSQL).
bool Session::Impl::start_message(Dir& d, const char* h) {
  if (d.hdr_need == 4) {
    d.type = 0;
    d.len = wire::be32(h);
    if (d.len < 8 || d.len > wire::kMaxStartup) {
      bad_framing(d);
      return false;
    }
  } else {
    d.type = h[0];
    d.len = wire::be32(h + 1);
    const wire::Bounds& b = wire::bounds(d.client, static_cast<unsigned char>(d.type));
    if (b.max == 0 || d.len < b.min || d.len > b.max) {
      bad_framing(d);
      return false;
    }
  }
  d.body_left = d.len - 4;
  return true;
}

void Session::Impl::after_header(Dir& d, std::string_view& p, uint64_t ts) {
  if (p.size() >= d.body_left) { // whole body here: parse in place
    const std::string_view b = p.substr(0, d.body_left);
    p.remove_prefix(d.body_left);
    d.body_left = 0;
    d.state = St::kBoundary;
    message(d, b, d.msg_ts, ts);
    return;
  }
  d.keep = std::min<uint64_t>(keep_for(d), d.body_left);
  d.buf.clear();
  d.state = St::kBody;
}

void Session::Impl::body(Dir& d, std::string_view& p, uint64_t ts) {
  const size_t take = static_cast<size_t>(std::min<uint64_t>(p.size(), d.body_left));
  if (d.buf.size() < d.keep) d.buf.append(p.data(), std::min(take, d.keep - d.buf.size()));
  p.remove_prefix(take);
  d.body_left -= take;
  if (d.body_left) return;
  d.state = St::kBoundary;
  message(d, d.buf, d.msg_ts, ts);
}

// Bytes [captured, len) of a segment were not captured.
void Session::Impl::on_missing(Dir& d, uint64_t missing, uint64_t ts) {
  if (d.state == St::kBody) {
    const uint64_t take = std::min(missing, d.body_left);
    d.body_left -= take;
    missing -= take;
    d.body_lost = true;
    if (d.body_left == 0) {
      d.state = St::kBoundary;
      message(d, d.buf, d.msg_ts, ts);
    }
    if (!missing || stopped()) return;
  }
  switch (d.state) {
    case St::kBoundary:
    case St::kHeader: {
      const uint64_t partial = d.state == St::kHeader ? d.hdr_got : 0;
      soft_loss(d); // the next header is among the bytes we did not see
      count_unframed(d, partial + missing, ts);
      return;
    }
    case St::kFresh:
      d.state = St::kSkip;
      return;
    case St::kSkip:
      if (d.soft) count_unframed(d, missing, ts);
      return;
    default:
      return;
  }
}

// Bytes of a direction that could not be framed after a soft loss belong to
// the exchange in progress (the response being streamed, or CopyData in).
void Session::Impl::count_unframed(Dir& d, uint64_t n, uint64_t ts) {
  if (!n) return;
  cur_lost = true;
  if (d.client) add_request(copy_in, n, ts);
  else if (Item* h = head()) attribute(live(h->seq), n, ts, ts);
}

// Framing lost without losing bytes: they were not captured. Open exchanges
// stay; the direction resynchronises at the next strong boundary.
void Session::Impl::soft_loss(Dir& d) {
  d.state = St::kSkip;
  d.soft = true;
  d.hdr_got = 0;
  d.buf.clear();
  d.startup_phase = false;
  if (d.client) {
    if (Entry* e = live(copy_in)) {
      e->ex.truncated = true;
      return;
    }
    // Unseen frontend messages will be answered; their answers begin before
    // the next message we see was sent, so they are not taken for its own.
    if (Entry* e = live(open_group)) e->ex.truncated = true;
    close_group();
  } else {
    d.ncols = -1; // a new RowDescription may be among the unseen bytes
    if (Item* h = head())
      if (Entry* e = live(h->seq)) e->ex.truncated = true;
  }
}

// Bytes were lost (ring buffer overflow): what was open cannot be paired any
// more.
void Session::Impl::on_gap(Dir& d) {
  if (d.state == St::kDead) return;
  if (d.state == St::kFresh) { // nothing of this direction was seen yet
    if (count) {
      ++desyncs;
      drop_pending(kDesync);
    }
    return;
  }
  lose_framing(d);
}

// What is pending cannot be paired any more; d looks for a message boundary.
void Session::Impl::lose_framing(Dir& d) {
  ++desyncs;
  drop_pending(kDesync);
  d.state = St::kSkip;
  d.soft = false;
  d.hdr_got = 0;
  d.buf.clear();
  if (!d.client) d.ncols = -1;
}

// A message that cannot be there: treated like lost bytes.
void Session::Impl::bad_framing(Dir& d) {
  if (verdict == Verdict::kUndecided) {
    not_postgres();
    return;
  }
  lose_framing(d);
  d.startup_phase = false;
}

// Body bytes of the current message worth keeping when it spans segments.
size_t Session::Impl::keep_for(const Dir& d) const {
  if (d.client) {
    switch (d.type) {
      case 0: return wire::kMaxStartup;
      case 'Q': return lim.max_text_keep + 1;
      case 'P': return kNameKeep + lim.max_text_keep + 2;
      case 'B': case 'E': case 'D': case 'C': return 2 * kNameKeep + 2;
      case 'F': return 4;
      default: return 0;
    }
  }
  switch (d.type) {
    case 'C': return 1100;
    case 'E': return lim.max_error_keep + 1024;
    case 'S': return 2 * kNameKeep;
    case 'Z': return 1;
    case 'T': return 2;
    case 'R': case 'K': return 4;
    default: return 0;
  }
}

} // namespace odigos::pg
