// One connection: a FIFO of commands, each waiting for its replies (one, none
// under CLIENT REPLY OFF/SKIP, one per channel for (UN)SUBSCRIBE), and the
// connection state that decides which replies are out of band (pub/sub
// messages, RESP3 pushes, MONITOR lines).
#include "session_impl.hpp"

namespace odigos::redis {

using namespace session_detail;
using detail::ieq;

namespace {

Fam fam_of(std::string_view name) {
  if (name.size() < 9 || name.size() > 12) return Fam::kNone;
  if (ieq(name, "subscribe")) return Fam::kSubscribe;
  if (ieq(name, "unsubscribe")) return Fam::kUnsubscribe;
  if (ieq(name, "psubscribe")) return Fam::kPsubscribe;
  if (ieq(name, "punsubscribe")) return Fam::kPunsubscribe;
  if (ieq(name, "ssubscribe")) return Fam::kSsubscribe;
  if (ieq(name, "sunsubscribe")) return Fam::kSunsubscribe;
  return Fam::kNone;
}

bool is_unsub(Fam f) {
  return f == Fam::kUnsubscribe || f == Fam::kPunsubscribe || f == Fam::kSunsubscribe;
}

// ["subscribe", channel, count] and its relatives, RESP2 array or RESP3 push.
Fam confirmation(const Dir& d) {
  if ((d.top_type != '*' && d.top_type != '>') || !d.flat || d.rep.elements != 3 ||
      !d.third_int || d.name_over)
    return Fam::kNone;
  return fam_of(std::string_view(d.name, d.name_len));
}

// ["message", channel, payload], ["pmessage", pattern, channel, payload],
// ["smessage", channel, payload].
bool is_message(const Dir& d) {
  if ((d.top_type != '*' && d.top_type != '>') || d.name_over) return false;
  const std::string_view n(d.name, d.name_len);
  const int64_t k = d.rep.elements;
  return ((n == "message" || n == "smessage") && k == 3) || (n == "pmessage" && k == 4);
}

// "+1339518083.107412 [0 127.0.0.1:60866] \"keys\" \"*\""
bool is_monitor_line(const Reply& r) {
  return r.type == '+' && !r.value.empty() && r.value[0] >= '0' && r.value[0] <= '9' &&
         r.value.find(" [") != std::string::npos;
}

} // namespace

Session::Impl::Impl(Side s, Limits l) : side(s), lim(l) {
  lim.max_pending = std::max<size_t>(lim.max_pending, 1);
  lim.max_args = std::max<size_t>(lim.max_args, 1);
  // The command name must be kept whole to recognise it.
  lim.max_arg_bytes = std::max<size_t>(lim.max_arg_bytes, 16);
  dirs[0].ingress = false;
  dirs[1].ingress = true;
  if (s != Side::kUnknown) {
    const bool cmd_in = s == Side::kServer;
    dirs[cmd_in].role = Role::kCommand;
    dirs[!cmd_in].role = Role::kReply;
    for (Dir& d : dirs) d.st = St::kBoundary;
  } else {
    // Joined mid-stream, perhaps: subscriptions made before are unknown.
    classic_known = shard_known = false;
  }
}

Entry& Session::Impl::push_entry() {
  if (count == ring.size()) {
    std::vector<Entry> bigger(std::max<size_t>(8, ring.size() * 2));
    for (size_t k = 0; k < count; ++k) bigger[k] = std::move(at(k));
    ring.swap(bigger);
    ring_head = 0;
  }
  // Slots are reused: the previous Exchange was moved out, so resetting what
  // a move leaves behind is enough (and cheaper than a fresh Entry).
  Entry& e = at(count++);
  e.ex.command = Command{};
  e.ex.reply.reset();
  e.ex.error_type.clear();
  e.ex.reply_suppressed = false;
  e.seq = next_seq() - 1;
  e.expect = 1;
  e.got = 0;
  e.fam = Fam::kNone;
  e.kind = Kind::kOther;
  e.cmd_done = e.resp_done = false;
  return e;
}

void Session::Impl::pop_front() {
  ring_head = (ring_head + 1) & (ring.size() - 1);
  --count;
  ++front_seq;
}

void Session::Impl::try_emit() {
  while (count > 0 && at(0).cmd_done && at(0).resp_done) {
    ready.push_back(std::move(at(0).ex));
    pop_front();
  }
}

// The oldest exchange still waiting for a reply.
Entry* Session::Impl::awaiting() {
  if (reply_seq < front_seq) reply_seq = front_seq;
  while (reply_seq < next_seq()) {
    Entry& e = at(static_cast<size_t>(reply_seq - front_seq));
    if (!e.resp_done) return &e;
    ++reply_seq;
  }
  return nullptr;
}

void Session::Impl::open_command(Dir& d, uint64_t argc, bool is_inline) {
  if (count >= lim.max_pending) evict_front();
  Entry& e = push_entry();
  Command& c = e.ex.command;
  c.inline_command = is_inline;
  c.argc = argc;
  c.first_ts_ns = d.first_ts;
  if (argc) c.args.reserve(static_cast<size_t>(std::min<uint64_t>(argc, lim.max_args)));
  if (argc > lim.max_args) c.truncated = true;
  d.seq = e.seq;
}

// Too many commands without replies: the oldest goes out without one, and
// its replies, when they come, are skipped by count.
void Session::Impl::evict_front() {
  Entry& f = at(0);
  ++desyncs;
  if (!f.resp_done) {
    if (f.cmd_done && f.fam == Fam::kNone && f.expect != kOpen) {
      skip_replies += f.expect - f.got;
      if (f.ex.error_type.empty()) f.ex.error_type = kDesync;
      f.resp_done = true;
    } else {
      drop_alignment();
    }
  }
  f.cmd_done = f.resp_done = true;
  try_emit();
}

// How many replies the command gets, and what it changes.
void Session::Impl::classify(Entry& e) {
  const Command& c = e.ex.command;
  auto arg = [&](size_t i) {
    return i < c.args.size() ? std::string_view(c.args[i]) : std::string_view{};
  };
  const std::string_view name = arg(0);
  e.expect = 1;
  e.fam = Fam::kNone;
  e.kind = Kind::kOther;
  if (!in_multi && ieq(name, "client") && ieq(arg(1), "reply")) {
    const std::string_view mode = arg(2);
    if (ieq(mode, "on")) {
      reply_mode = ReplyMode::kOn;
    } else if (ieq(mode, "off")) {
      reply_mode = ReplyMode::kOff;
      e.expect = 0;
    } else if (ieq(mode, "skip")) {
      e.expect = 0;
      if (reply_mode != ReplyMode::kOff) reply_mode = ReplyMode::kSkipNext;
    } else { // an error, unless replies are off
      e.expect = reply_mode == ReplyMode::kOn ? 1 : 0;
      if (reply_mode == ReplyMode::kSkipNext) reply_mode = ReplyMode::kOn;
    }
    e.ex.reply_suppressed = e.expect == 0;
    return;
  }
  if (ieq(name, "reset")) { // always answered, ends MULTI, CLIENT REPLY OFF, pub/sub, MONITOR
    in_multi = false;
    reply_mode = ReplyMode::kOn;
    e.kind = Kind::kReset;
    return;
  }
  if (in_multi) {
    // Queued: one +QUEUED (or error) each; EXEC/DISCARD end the block.
    if (ieq(name, "exec") || ieq(name, "discard")) in_multi = false;
  } else if (ieq(name, "multi")) {
    in_multi = true;
  } else if (const Fam f = fam_of(name); f != Fam::kNone) {
    e.fam = f;
    if (c.argc >= 2) e.expect = static_cast<uint32_t>(std::min<uint64_t>(c.argc - 1, kOpen - 1));
    else if (is_unsub(f)) e.expect = kOpen; // one per current subscription
  } else if (ieq(name, "hello")) {
    e.kind = Kind::kHello;
  } else if (ieq(name, "monitor")) {
    e.kind = Kind::kMonitor;
  } else if (ieq(name, "psync") || ieq(name, "sync")) {
    e.kind = Kind::kSync;
  }
  if (reply_mode == ReplyMode::kOff) {
    e.expect = 0;
  } else if (reply_mode == ReplyMode::kSkipNext) {
    e.expect = 0;
    reply_mode = ReplyMode::kOn;
  }
  if (e.expect == 0) {
    e.fam = Fam::kNone;
    e.ex.reply_suppressed = true;
  }
}

void Session::Impl::finish_command(Dir& d, uint64_t bytes, uint64_t ts) {
  Entry* e = entry(d.seq);
  d.seq = kNoSeq;
  if (!e) return;
  Command& c = e->ex.command;
  c.last_ts_ns = ts;
  c.bytes = bytes;
  c.complete = true;
  classify(*e);
  e->cmd_done = true;
  if (!e->resp_done && e->expect != kOpen && e->got >= e->expect) e->resp_done = true;
  if (verdict == Verdict::kUndecided) verdict = Verdict::kRedis;
  try_emit();
}

void Session::Impl::finish_reply(Dir& d, uint64_t bytes, uint64_t ts) {
  Reply& r = d.rep;
  r.first_ts_ns = d.first_ts;
  r.last_ts_ns = ts;
  r.bytes = bytes;
  r.complete = true;
  r.messages = 1;
  finish_text(r);
  deliver(d);
}

// Error prefix, and the verbatim string's format removed (also for a reply
// cut short).
void Session::Impl::finish_text(Reply& r) {
  if (r.error) {
    const std::string_view m = r.error_message;
    r.error_prefix.assign(m.substr(0, std::min<size_t>(m.find(' '), 32)));
  }
  if (r.type == '=') {
    if (r.value.size() >= 4 && r.value[3] == ':') r.value.erase(0, 4);
    if (r.value.size() > lim.max_arg_bytes) r.value.resize(lim.max_arg_bytes);
  }
}

// A complete reply: out of band, a confirmation, or the answer to the
// oldest waiting command.
void Session::Impl::deliver(Dir& d) {
  const Reply& r = d.rep;
  const Fam f = confirmation(d);
  const bool msg = is_message(d);
  Entry* e = awaiting();
  // An arg-less UNSUBSCRIBE whose count of confirmations was not known ends
  // at the first reply that is not one of them.
  if (e && e->expect == kOpen && e->got > 0 && f != e->fam) {
    e->resp_done = true;
    try_emit();
    e = awaiting();
  }
  const bool matches = e && f != Fam::kNone && f == e->fam;
  if (!matches) {
    if (r.type == '>' || ((msg || f != Fam::kNone) && subscribed_resp2())) {
      push(d, f);
      return;
    }
    if (monitor && is_monitor_line(r)) {
      ++pushes;
      return;
    }
  }
  if (skip_replies > 0) {
    --skip_replies;
    ++unpaired;
    return;
  }
  if (!e) {
    if (msg || f != Fam::kNone) {
      if (msg && !resp3) maybe_subscribed = true;
      push(d, f);
    } else {
      ++unpaired;
    }
    return;
  }
  // After lost bytes: a reply cannot begin before its command did.
  if (resync_seq != kNoSeq && e->seq >= resync_seq) {
    if (r.first_ts_ns < e->ex.command.first_ts_ns) {
      ++unpaired;
      return;
    }
    resync_seq = kNoSeq;
  }
  if (matches) confirm(*e, d, f);
  else answer(*e, d);
}

void Session::Impl::add_reply(Entry& e, Reply& r) {
  if (!e.ex.reply) {
    e.ex.reply = std::move(r);
    return;
  }
  Reply& a = *e.ex.reply;
  a.last_ts_ns = r.last_ts_ns;
  a.bytes += r.bytes;
  a.messages += r.messages;
  a.integer = r.integer;
  a.complete = r.complete;
  a.truncated = a.truncated || r.truncated;
}

void Session::Impl::confirm(Entry& e, Dir& d, Fam f) {
  if (e.expect == kOpen && e.got == 0) {
    // Arg-less: one confirmation per subscription of that kind, or one
    // (with a null channel) when there is none.
    if (f == Fam::kUnsubscribe && classic_known) e.expect = static_cast<uint32_t>(std::max<int64_t>(1, n_channels));
    else if (f == Fam::kPunsubscribe && classic_known) e.expect = static_cast<uint32_t>(std::max<int64_t>(1, n_patterns));
    else if (f == Fam::kSunsubscribe && shard_known) e.expect = static_cast<uint32_t>(std::max<int64_t>(1, sub_shard));
  }
  const int64_t n = d.sub_count;
  const bool none_left = n == 0 || d.second_null;
  d.rep.integer = n;
  track_subs(f, n);
  add_reply(e, d.rep);
  ++e.got;
  if (e.expect == kOpen ? none_left : e.got >= e.expect) e.resp_done = true;
  try_emit();
}

void Session::Impl::answer(Entry& e, Dir& d) {
  const bool err = d.rep.error;
  const char type = d.rep.type;
  add_reply(e, d.rep);
  ++e.got;
  // Anything but a confirmation (an error) ends a (un)subscribe too.
  if (e.fam != Fam::kNone || !e.cmd_done || e.expect == kOpen || e.got >= e.expect)
    e.resp_done = true;
  if (!err) {
    switch (e.kind) {
      case Kind::kHello:
        if (type == '%') resp3 = true;
        else if (type == '*') resp3 = false;
        break;
      case Kind::kMonitor:
        monitor = true;
        break;
      case Kind::kReset:
        monitor = resp3 = maybe_subscribed = false;
        sub_classic = sub_shard = n_channels = n_patterns = 0;
        classic_known = shard_known = true;
        break;
      case Kind::kSync:
        start_replication();
        return;
      case Kind::kOther:
        break;
    }
  }
  try_emit();
}

// The reply to SYNC/PSYNC (+FULLRESYNC, +CONTINUE, or SYNC's RDB payload):
// what follows is an RDB file and the replication stream (commands flowing
// from the master, REPLCONF ACKs from the replica, no replies), not
// request/response traffic. Commands sent after SYNC/PSYNC get no reply.
void Session::Impl::start_replication() {
  replication = true;
  for (size_t k = 0; k < count; ++k) {
    Entry& e = at(k);
    if (!e.resp_done && !e.ex.reply) e.ex.reply_suppressed = true;
    e.cmd_done = e.resp_done = true;
  }
  try_emit();
  for (Dir& d : dirs) {
    d.st = St::kDead;
    d.in_msg = false;
  }
}

// SYNC's reply is a bulk string of RDB bytes without the final CRLF.
bool Session::Impl::sync_payload(const Dir& d) {
  if (d.role != Role::kReply || d.cur != kTop || d.top_type != '$') return false;
  const Entry* e = awaiting();
  return e && e->kind == Kind::kSync;
}

void Session::Impl::push(Dir& d, Fam f) {
  ++pushes;
  if (f != Fam::kNone) track_subs(f, d.sub_count);
}

// Confirmations carry the client's subscription count after the change:
// channels + patterns for (P)(UN)SUBSCRIBE, shard channels for S(UN)SUBSCRIBE.
void Session::Impl::track_subs(Fam f, int64_t n) {
  n = std::max<int64_t>(n, 0);
  switch (f) {
    case Fam::kSubscribe: case Fam::kUnsubscribe: case Fam::kPsubscribe: case Fam::kPunsubscribe: {
      const int64_t delta = n - sub_classic;
      if (f == Fam::kSubscribe || f == Fam::kUnsubscribe) n_channels += delta;
      else n_patterns += delta;
      sub_classic = n;
      if (n == 0) {
        n_channels = n_patterns = 0;
        classic_known = true;
        maybe_subscribed = false;
      } else if (n_channels < 0 || n_patterns < 0) {
        classic_known = false;
      }
      break;
    }
    case Fam::kSsubscribe: case Fam::kSunsubscribe:
      sub_shard = n;
      shard_known = true;
      break;
    case Fam::kNone:
      break;
  }
}

// Replies were lost (or cannot be counted): every command that was complete
// may have lost its reply, so none is paired any more; a command still being
// received has not been answered yet and keeps waiting. Replies after this
// are paired only with commands that began before them.
void Session::Impl::drop_alignment() {
  uint64_t first_new = next_seq();
  for (size_t k = 0; k < count; ++k) {
    Entry& e = at(k);
    if (!e.cmd_done) {
      first_new = std::min(first_new, e.seq);
      continue;
    }
    if (e.resp_done) continue;
    if (e.ex.error_type.empty()) e.ex.error_type = kDesync;
    e.resp_done = true;
  }
  skip_replies = 0;
  resync_seq = first_new;
  // Confirmations may have been lost with the replies.
  classic_known = shard_known = false;
  try_emit();
}

// The framing of d is lost (bytes lost or not parseable): finish what can be
// finished and wait for a segment that starts a message. `lost_bytes`: bytes
// of d were lost or not captured (at ts).
void Session::Impl::lose_sync(Dir& d, bool lost_bytes, uint64_t ts) {
  ++desyncs;
  d.fresh = false;
  const bool framed = d.st != St::kSkip;
  if (d.role == Role::kCommand) {
    // The command being received, or (lost at a boundary) the first command
    // in the lost bytes, is the next one the server answers: it keeps one
    // reply. Commands after the loss are told apart by time (resync_seq).
    Entry* e = d.in_msg ? entry(d.seq) : nullptr;
    if (!e && framed && (d.in_msg || lost_bytes)) {
      if (!d.in_msg) d.first_ts = ts;
      open_command(d, 0, false);
      e = entry(d.seq);
      e->ex.error_type = kDesync; // not seen: only its reply is known
      e->ex.command.last_ts_ns = d.in_msg ? d.last_ts : ts;
    }
    if (e) {
      Command& c = e->ex.command;
      c.complete = false;
      c.truncated = true;
      if (d.in_msg) {
        c.last_ts_ns = d.last_ts;
        c.bytes = d.seg_end - d.msg_start;
      }
      e->expect = 1;
      e->fam = Fam::kNone;
      e->cmd_done = true;
      if (e->got >= 1) e->resp_done = true;
    }
    resync_seq = next_seq();
  } else if (d.role == Role::kReply) {
    // The reply being received answers the oldest waiting command (unless it
    // is pub/sub traffic); it ends here, cut.
    const bool maybe_push = d.top_type == '>' || (d.top_type == '*' && subscribed_resp2()) ||
                            (d.top_type == '+' && monitor);
    Entry* e = d.in_msg && d.top_seen && !maybe_push ? awaiting() : nullptr;
    if (e && e->cmd_done && skip_replies == 0) {
      attach_cut_reply(d, *e, d.seg_end);
      e->ex.error_type = kDesync;
      e->resp_done = true;
    }
    drop_alignment();
  }
  d.in_msg = false;
  d.seq = kNoSeq;
  d.st = St::kSkip;
  d.lt = 0;
  d.lbuf.clear();
  d.dst = Dst::kNone;
  d.keep = 0;
  try_emit();
}

void Session::Impl::not_redis() {
  verdict = Verdict::kNotRedis;
  front_seq += count;
  count = 0;
  ring.clear();
  ring_head = 0;
  for (Dir& d : dirs) d.st = St::kDead;
}

// Side::kUnknown: d's bytes decided the roles.
void Session::Impl::decide(Dir& d, bool carries_commands) {
  const bool cmd_in = carries_commands ? d.ingress : !d.ingress;
  side = cmd_in ? Side::kServer : Side::kClient;
  Dir& other = dirs[!d.ingress];
  d.role = carries_commands ? Role::kCommand : Role::kReply;
  other.role = carries_commands ? Role::kReply : Role::kCommand;
  d.st = St::kBoundary;
  other.st = St::kSkip;
  other.fresh = false;
  // Replies to commands sent before tracing may still come.
  resync_seq = next_seq();
}

// The reply d was receiving, cut at stream offset `end` (bytes lost, or the
// connection ended), becomes e's incomplete reply.
void Session::Impl::attach_cut_reply(Dir& d, Entry& e, uint64_t end) {
  Reply& r = d.rep;
  r.first_ts_ns = d.first_ts;
  r.last_ts_ns = d.last_ts;
  r.bytes = end - d.msg_start;
  r.complete = false;
  r.messages = 1;
  finish_text(r);
  add_reply(e, r);
  ++e.got;
}

void Session::Impl::on_close(std::string_view error_type) {
  if (closed) return;
  if (side != Side::kUnknown && verdict != Verdict::kNotRedis) {
    Dir& cd = command_dir();
    Dir& rd = reply_dir();
    if (rd.in_msg && rd.top_seen && rd.top_type != '>' &&
        !(rd.top_type == '*' && subscribed_resp2()) && skip_replies == 0) {
      if (Entry* e = awaiting()) {
        attach_cut_reply(rd, *e, rd.pos);
        if (e->ex.error_type.empty()) e->ex.error_type = error_type;
        e->resp_done = true;
      }
    }
    if (cd.in_msg) {
      if (Entry* e = entry(cd.seq)) {
        Command& c = e->ex.command;
        c.complete = false;
        c.last_ts_ns = cd.last_ts;
        c.bytes = cd.pos - cd.msg_start;
      }
    }
  }
  for (size_t k = 0; k < count; ++k) {
    Entry& e = at(k);
    if (!e.resp_done) {
      const bool got_all = e.ex.reply && (e.expect == kOpen || e.got >= e.expect);
      if (!got_all && e.ex.error_type.empty()) e.ex.error_type = error_type;
    }
    e.cmd_done = e.resp_done = true;
  }
  try_emit();
  closed = true;
  for (Dir& d : dirs) d.st = St::kDead;
}

Session::Session(Side side, Limits limits) : impl_(std::make_unique<Impl>(side, limits)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::on_data(bool ingress, const Segment& seg) { impl_->feed(impl_->dirs[ingress], seg); }

void Session::on_eof(bool ingress, uint64_t /*ts_ns*/) {
  // Nothing more comes this way; a message cut here ends at on_close.
  Dir& d = impl_->dirs[ingress];
  if (d.st == St::kBoundary || d.st == St::kSkip || d.st == St::kProbe) d.st = St::kDead;
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
  out.clear();
  out.swap(impl_->ready);
}

Side Session::side() const { return impl_->side; }
Verdict Session::verdict() const { return impl_->verdict; }
bool Session::done() const { return impl_->verdict == Verdict::kNotRedis || impl_->replication; }
uint64_t Session::desyncs() const { return impl_->desyncs; }
uint64_t Session::pushes() const { return impl_->pushes; }
uint64_t Session::unpaired() const { return impl_->unpaired; }

} // namespace odigos::redis
