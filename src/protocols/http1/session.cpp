// One connection: a framing state machine per direction (framing.cpp) plus
// a FIFO of open exchanges that pairs each final response with the oldest
// unanswered request (here).
#include "session_impl.hpp"

namespace odigos::http1 {

using namespace session_detail;
using detail::Scan;

namespace session_detail {
namespace {
constexpr size_t kHeaderPoolMax = 64;
constexpr size_t kPooledCapacityMax = 32; // a --show headers message may have many: not kept
std::vector<std::vector<Header>>& header_pool() {
  thread_local std::vector<std::vector<Header>> pool;
  return pool;
}
} // namespace

void recycle_headers(std::vector<Header>& v) {
  auto& pool = header_pool();
  if (v.capacity() == 0 || v.capacity() > kPooledCapacityMax || pool.size() >= kHeaderPoolMax) return;
  v.clear();
  pool.push_back(std::move(v));
}

void lend_headers(Message& m) {
  auto& pool = header_pool();
  if (m.headers.capacity() != 0 || pool.empty()) return;
  m.headers.swap(pool.back());
  pool.pop_back();
}
} // namespace session_detail

Session::Impl::Impl(Side s, Limits l) : side(s), lim(l) {
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

Entry& Session::Impl::push_entry() {
  if (count == ring.size()) {
    // Starts at 2: most connections have one exchange open at a time, and an
    // idle connection should cost little (10k open connections are common).
    std::vector<Entry> bigger(std::max<size_t>(2, ring.size() * 2));
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

void Session::Impl::pop_front() {
  ring_head = (ring_head + 1) & (ring.size() - 1);
  --count;
  ++front_seq;
}

void Session::Impl::drop_front() {
  at(0) = Entry{};
  pop_front();
}

void Session::Impl::try_emit() {
  while (count > 0 && at(0).req_done && at(0).resp_done) {
    ready.push_back(std::move(at(0).ex));
    pop_front();
  }
}

// Moves the unfinished request in rq (if any) into its exchange.
Entry* Session::Impl::store_partial_request(Dir& rq) {
  Entry* e = rq.in_msg ? entry(rq.seq) : nullptr;
  if (e) {
    e->ex.request = std::move(rq.msg);
    e->ex.request.complete = false;
  }
  return e;
}

void Session::Impl::stop_all() {
  for (Dir& d : dirs) {
    reset_msg(d);
    d.state = St::kDead;
  }
  stash.clear();
}

void Session::Impl::resolve_await() {
  await_seq = kNoSeq;
  Dir& rq = request_dir();
  if (rq.state == St::kAwait) {
    rq.state = St::kIdle;
    replay = true;
  } else {
    rq.await_after = false;
  }
}

void Session::Impl::enter_skip(Dir& d) {
  ++desyncs;
  d.fresh = false;
  if (d.role == Role::kRequest) {
    if (Entry* e = store_partial_request(d)) {
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

void Session::Impl::decide_side(bool req_ingress) {
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
bool Session::Impl::try_resync(Dir& d, std::string_view data) {
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
  if (detail::scan_start_line(data, d.role == Role::kRequest) != Scan::kYes) return false;
  d.state = St::kIdle;
  return true;
}

// Moves the complete message in d into its exchange (as request or response
// by d's role) and returns to a message boundary. Returns the exchange's seq.
uint64_t Session::Impl::store_complete(Dir& d, uint64_t ts) {
  d.msg.complete = true;
  d.msg.last_ts_ns = ts;
  const uint64_t seq = d.seq;
  if (Entry* e = entry(seq)) {
    if (d.role == Role::kRequest) {
      e->ex.request = std::move(d.msg);
      e->req_done = true;
    } else {
      e->ex.response = std::move(d.msg);
      e->resp_done = true;
    }
  }
  reset_msg(d);
  d.state = St::kIdle;
  return seq;
}

void Session::Impl::finish_request(Dir& d, uint64_t ts) {
  const uint64_t seq = store_complete(d, ts);
  if (d.await_after) {
    d.await_after = false;
    d.state = St::kAwait;
    await_seq = seq;
    const Entry* e = entry(seq);
    if (!e || e->resp_done) resolve_await();
  }
  try_emit();
}

void Session::Impl::finish_response(Dir& d, uint64_t ts) {
  const uint64_t seq = store_complete(d, ts);
  if (seq != kNoSeq && seq == await_seq) resolve_await();
  try_emit();
}

void Session::Impl::finish_message(Dir& d, uint64_t ts) {
  if (d.role == Role::kRequest) finish_request(d, ts);
  else finish_response(d, ts);
}

void Session::Impl::go_tunnel(uint64_t seq) {
  tunnel = true;
  if (Entry* e = store_partial_request(request_dir())) e->req_done = true;
  // Nothing after the switching request can be HTTP/1 any more.
  if (entry(seq))
    while (next_seq() > seq + 1) at(--count) = Entry{};
  try_emit();
  stop_all();
}

// Oldest open request, unless this response began before a request that
// followed lost bytes (then it answers one of the lost requests).
uint64_t Session::Impl::peek_response_seq(uint64_t first_ts) {
  const Entry* e = entry(next_resp_seq);
  if (!e) return kNoSeq;
  if (next_resp_seq == resync_seq && first_ts < e->req_first_ts) return kNoSeq;
  return next_resp_seq;
}

// The head was parsed into d.msg.
void Session::Impl::on_request_head(Dir& d, const HeadInfo& info, uint64_t ts) {
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
void Session::Impl::on_response_head(Dir& d, const HeadInfo& info, uint64_t ts) {
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

void Session::Impl::on_eof(Dir& d) {
  if (finished()) return;
  if (d.role == Role::kResponse && d.state == St::kCloseBody) {
    finish_response(d, d.msg.last_ts_ns);
    d.state = St::kDead;
  } else if (d.state == St::kIdle || d.state == St::kSkip) {
    d.state = St::kDead;
  }
}

void Session::Impl::on_close(std::string_view error_type) {
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
    store_partial_request(rq);
  }
  for (size_t k = 0; k < count; ++k) {
    Entry& e = at(k);
    if (!e.resp_done && e.ex.error_type.empty()) e.ex.error_type = error_type;
    e.req_done = e.resp_done = true;
  }
  try_emit();
  stop_all();
}

Session::Session(Side side, Limits limits) : impl_(std::make_unique<Impl>(side, limits)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

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
  take_exchanges(out);
  return out;
}

void Session::take_exchanges(std::vector<Exchange>& out) {
  for (Exchange& ex : out) { // the caller is done with the previous batch
    recycle_headers(ex.request.headers);
    if (ex.response) recycle_headers(ex.response->headers);
  }
  out.clear();
  out.swap(impl_->ready);
}

Side Session::side() const { return impl_->side; }
Verdict Session::verdict() const { return impl_->verdict; }
bool Session::done() const { return impl_->gave_up(); }
uint64_t Session::desyncs() const { return impl_->desyncs; }

} // namespace odigos::http1
