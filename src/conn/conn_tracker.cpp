#include "conn/conn_tracker.hpp"

#include <algorithm>
#include <cerrno>
#include <sys/socket.h>
#include <cstring>

#include "conn/addr.hpp"
#include "conn/record_common.hpp"
#include "loader/procfs.hpp"

namespace odigos {

struct ConnTracker::Conn {
  ConnIdentity id;
  uint8_t role = OT_ROLE_UNKNOWN;
  uint64_t next_pos[2] = {0, 0};
  bool pos_known[2] = {false, false};
  uint64_t last_ts = 0;
  bool ignored = false;
  uint64_t close_ts = 0;  // set when the kernel reported the close
  const char* close_reason = nullptr;
  uint64_t last_ts_dir[2] = {0, 0}; // last call per direction (ingress, egress)
  std::unique_ptr<Decoder> dec;      // chosen by the first bytes (or options)
  std::list<uint64_t>::iterator lru; // position in ConnTracker::lru_ (back: most recent)
  int undetected = 0;                // segments seen before a protocol was recognised
  // TLS records seen and no plaintext from a TLS library call yet: held
  // (no decoder) until plaintext arrives or we give up on it.
  const char* ciphertext = nullptr;  // protocol to name in the note ("tls", "postgresql")
  uint64_t cipher_bytes = 0;
  uint64_t cipher_ts = 0;
};

namespace {
const char* tls_library_name(uint16_t call) {
  switch (call - OT_SYSCALL_TLS_BASE) {
  case OT_TLS_OPENSSL: return "openssl";
  case OT_TLS_GNUTLS: return "gnutls";
  case OT_TLS_GO: return "go";
  default: return "tls";
  }
}

// A TLS record header: handshake (ClientHello first) or application data
// (a connection joined mid-stream), protocol version 3.x.
bool looks_like_tls_record(std::string_view p) {
  if (p.size() < 5) return false;
  auto type = uint8_t(p[0]);
  return (type == 0x16 || type == 0x17) && p[1] == 3 && uint8_t(p[2]) <= 4;
}
} // namespace

static proto::Side side_of(uint8_t role) {
  switch (role) {
  case OT_ROLE_SERVER: return proto::Side::kServer;
  case OT_ROLE_CLIENT: return proto::Side::kClient;
  default: return proto::Side::kUnknown;
  }
}

ConnTracker::ConnTracker(TrackerOptions opt, const WallClock& clock, EmitFn emit,
                         IgnoreFn ignore, ProcFn on_proc)
    : opt_(std::move(opt)), clock_(clock), emit_(std::move(emit)), ignore_(std::move(ignore)),
      on_proc_(std::move(on_proc)) {
  // Headers the records do not use are only kept when they are shown.
  opt_.http_limits.keep_all_headers = opt_.record.show_headers;
}

ConnTracker::~ConnTracker() = default;

const std::string& ConnTracker::command_of(uint32_t tgid) {
  auto it = comms_.find(tgid);
  if (it != comms_.end()) return it->second;
  return comms_.emplace(tgid, procfs::comm(tgid)).first->second;
}

void ConnTracker::evict_if_full() {
  if (conns_.size() < opt_.max_connections || lru_.empty()) return;
  // The connection idle the longest: the front of the activity list, O(1).
  uint64_t victim = lru_.front();
  Conn* c = find(victim);
  stats_.evicted++;
  close_conn(victim, c ? c->last_ts : 0, "evicted");
}

void ConnTracker::touch(Conn& c) {
  if (c.lru != std::prev(lru_.end())) lru_.splice(lru_.end(), lru_, c.lru);
}

ConnTracker::Conn* ConnTracker::find(uint64_t cookie) {
  auto it = conns_.find(cookie);
  return it == conns_.end() ? nullptr : it->second.get();
}

ConnTracker::Conn& ConnTracker::conn_for(uint64_t cookie, uint32_t tgid, uint8_t role,
                                         uint64_t ts) {
  if (Conn* c = find(cookie)) {
    touch(*c);
    return *c;
  }
  evict_if_full();
  auto c = std::make_unique<Conn>();
  c->role = role;
  c->id.cookie = cookie;
  c->id.pid = tgid;
  c->id.command = command_of(tgid);
  c->last_ts = ts;
  c->lru = lru_.insert(lru_.end(), cookie);
  stats_.connections++;
  return *conns_.emplace(cookie, std::move(c)).first->second;
}

bool ConnTracker::handle(const void* data, size_t size) {
  stats_.events++;
  if (size < sizeof(ot_event_hdr)) {
    stats_.malformed++;
    return false;
  }
  ot_event_hdr hdr;
  memcpy(&hdr, data, sizeof(hdr));
  switch (hdr.type) {
  case OT_EV_DATA: {
    if (size < sizeof(ot_data_event)) break;
    ot_data_event ev;
    memcpy(&ev, data, sizeof(ev));
    if (sizeof(ev) + ev.cap > size || ev.cap > ev.len) break;
    on_data(ev, static_cast<const uint8_t*>(data) + sizeof(ev));
    return true;
  }
  case OT_EV_CONN_OPEN:
  case OT_EV_CONN_CLOSE:
  case OT_EV_CONN_FAIL:
  case OT_EV_CONN_RESET:
  case OT_EV_RETRANSMIT: {
    if (size < sizeof(ot_conn_event)) break;
    ot_conn_event ev;
    memcpy(&ev, data, sizeof(ev));
    on_conn(ev);
    return true;
  }
  case OT_EV_PROC_FORK:
  case OT_EV_PROC_EXEC:
  case OT_EV_PROC_EXIT:
  case OT_EV_PROC_MMAP: {
    if (size < sizeof(ot_proc_event)) break;
    ot_proc_event ev;
    memcpy(&ev, data, sizeof(ev));
    std::string comm(ev.comm, strnlen(ev.comm, sizeof(ev.comm)));
    if (hdr.type == OT_EV_PROC_EXIT) comms_.erase(ev.hdr.tgid);
    else comms_[ev.hdr.tgid] = comm;
    if (on_proc_) on_proc_(ev);
    return true;
  }
  case OT_EV_GO_SPAWN:
  case OT_EV_GO_EXIT: {
    if (size < sizeof(ot_go_spawn_event)) break;
    ot_go_spawn_event ev;
    memcpy(&ev, data, sizeof(ev));
    if (!observer_) return true;
    if (hdr.type == OT_EV_GO_SPAWN) observer_->go_spawn(ev.hdr.tgid, ev.parent, ev.child, ev.hdr.ts_ns);
    else observer_->go_exit(ev.hdr.tgid, ev.child, ev.hdr.ts_ns);
    return true;
  }
  default:
    break;
  }
  stats_.malformed++;
  return false;
}

void ConnTracker::on_data(const ot_data_event& ev, const uint8_t* payload) {
  // An end or error of a connection we do not hold (evicted, or never seen
  // with data) has nothing to finish: do not make (and evict for) a new one.
  if ((ev.flags & (OT_DATA_EOF | OT_DATA_ERROR)) && !find(ev.cookie)) return;
  Conn& c = conn_for(ev.cookie, ev.hdr.tgid, ev.role, ev.hdr.ts_ns);
  c.last_ts = ev.hdr.ts_ns;
  c.id.tid = ev.hdr.tid;
  if (ev.flags & OT_DATA_TLS) {
    if (!c.id.tls_library) start_plaintext(c, tls_library_name(ev.syscall));
  } else if (c.id.tls_library && ev.len > 0) {
    return; // ciphertext racing the switch: its plaintext is what we decode
  }
  if (c.ignored) return;
  bool ingress = ev.dir == OT_DIR_INGRESS;
  int d = ingress ? 0 : 1;
  stats_.bytes_captured += ev.cap;
  // A segment is timed by when its bytes were on the wire (ot_data_event.wire_ns):
  // the request's arrival before the server read it, the response's push before
  // the sender's call returned. A wire time older than the previous call in the
  // same direction belongs to bytes already seen. The client side keeps its read
  // times: its latency ends when the response was read.
  proto::Side side = c.dec ? c.dec->side() : side_of(c.role);
  uint64_t seg_ts = ev.hdr.ts_ns;
  bool wire_applies = !ingress || side != proto::Side::kClient;
  if (wire_applies && ev.wire_ns && ev.wire_ns <= ev.hdr.ts_ns && ev.wire_ns > c.last_ts_dir[d])
    seg_ts = ev.wire_ns;
  c.last_ts_dir[d] = ev.hdr.ts_ns;

  if (ev.flags & OT_DATA_ERROR) {
    if (c.dec && (ev.err == -ECONNRESET || ev.err == -EPIPE || ev.err == -ETIMEDOUT)) {
      const char* why = ev.err == -ETIMEDOUT ? "timeout" : "connection_reset";
      c.dec->on_close(ev.hdr.ts_ns, why);
      drain(c, ev.hdr.ts_ns);
    }
    return;
  }
  if (ev.flags & OT_DATA_EOF) {
    if (c.dec) {
      c.dec->on_eof(ingress, ev.hdr.ts_ns);
      drain(c, ev.hdr.ts_ns);
    }
    return;
  }
  proto::Segment seg;
  seg.ts_ns = seg_ts;
  seg.len = ev.len;
  seg.data = std::string_view(reinterpret_cast<const char*>(payload), ev.cap);
  if (c.pos_known[d] && ev.pos != c.next_pos[d]) {
    seg.gap_before = true;
    stats_.gaps++;
  }
  c.pos_known[d] = true;
  c.next_pos[d] = ev.pos + ev.len;
  if (!c.dec && !c.id.tls_library && (c.ciphertext || looks_like_tls_record(seg.data))) {
    hold_ciphertext(ev.cookie, c, "tls", ev.hdr.ts_ns, ev.len);
    return;
  }
  // The request's sender (client) or reader (server): what the trace linker
  // follows. A server's request bytes also make its request active.
  if (side != proto::Side::kUnknown && ingress == (side == proto::Side::kServer)) {
    c.id.req_tid = ev.hdr.tid;
    c.id.req_ctx = ev.user_ctx;
    if (observer_ && ingress)
      observer_->server_request_bytes(ev.cookie, c.id.pid, ev.hdr.tid, ev.user_ctx, seg_ts);
  }
  if (!c.dec) {
    Protocol p = detect_protocol(seg.data, ingress, side_of(c.role), c.id.local.port,
                                 c.id.remote.port, opt_.detect);
    if (p == Protocol::kUnknown) { // not ours (or not enough bytes yet to tell)
      if (++c.undetected >= kDetectGiveUp) stop_decoding(ev.cookie, c, true);
      return;
    }
    c.dec = make_decoder(p, side_of(c.role), opt_.limits());
    if (!c.dec) {
      stop_decoding(ev.cookie, c, true);
      return;
    }
  }
  c.dec->on_data(ingress, seg);
  drain(c, ev.hdr.ts_ns);
  check_verdict(ev.cookie, c, ev.hdr.ts_ns);
}

void ConnTracker::drain(Conn& c, uint64_t end_hint) {
  if (!c.dec) return;
  RecordOut out{c.id, clock_, opt_.record, scratch_, emit_, stats_.records};
  c.dec->drain(out, end_hint);
}

void ConnTracker::stop_decoding(uint64_t cookie, Conn& c, bool not_ours) {
  if (not_ours) stats_.not_decoded++;
  c.ignored = true;
  if (ignore_) ignore_(cookie); // the kernel stops copying its bytes
  if (observer_) observer_->conn_end(cookie);
}

void ConnTracker::emit_note(Conn& c, const char* protocol, const char* note, uint64_t ts) {
  // One connection-level record says why nothing more is decoded.
  Record& r = scratch_;
  r.clear();
  r.kind = RecordKind::kConnection;
  r.protocol = protocol;
  r.side = record_side(side_of(c.role));
  r.pid = c.id.pid;
  r.tid = c.id.tid;
  r.command = c.id.command;
  r.start_ns = clock_.to_wall_ns(ts);
  r.complete = false;
  r.set("odigos.note", std::string(note));
  if (c.id.tls_library) {
    r.set("tls.established", true);
    r.set("odigos.tls.library", std::string(c.id.tls_library));
  }
  if (c.id.addrs_known) {
    r.set("network.peer.address", c.id.remote_str);
    r.set("network.peer.port", int64_t(c.id.remote.port));
  }
  stats_.records++;
  emit_(r);
}

void ConnTracker::check_verdict(uint64_t cookie, Conn& c, uint64_t ts) {
  if (c.ignored || !c.dec->done()) return;
  if (c.dec->encrypted()) {
    // TLS follows (PostgreSQL SSLRequest, MySQL SSL): its plaintext may come
    // from a TLS library call; the note waits until we know it will not.
    const char* proto = c.dec->done_protocol();
    c.dec.reset();
    hold_ciphertext(cookie, c, proto, ts, 0);
    return;
  }
  if (const char* note = c.dec->done_note()) emit_note(c, c.dec->done_protocol(), note, ts);
  stop_decoding(cookie, c, c.dec->rejected());
}

void ConnTracker::hold_ciphertext(uint64_t cookie, Conn& c, const char* protocol, uint64_t ts,
                                  uint64_t len) {
  if (!c.ciphertext) {
    c.ciphertext = protocol;
    c.cipher_ts = ts;
  }
  c.cipher_bytes += len;
  // Past the handshake and well into the data without plaintext: the calls
  // are not probed (or were missed). Say so once and stop copying.
  if (c.cipher_bytes > kCiphertextGiveUp) give_up_ciphertext(cookie, c);
}

void ConnTracker::give_up_ciphertext(uint64_t cookie, Conn& c) {
  if (!c.ciphertext || c.ignored) return;
  emit_note(c, c.ciphertext, kTlsNotDecoded, c.cipher_ts);
  stats_.tls_not_decoded++;
  stop_decoding(cookie, c, false);
}

void ConnTracker::start_plaintext(Conn& c, const char* library) {
  // From now on the connection is its plaintext: a fresh decoder, stream
  // positions counted from the first plaintext byte. If we had given up on
  // its ciphertext the kernel has already resumed copying (OT_CONN_TLS).
  c.id.tls_library = library;
  c.ignored = false;
  c.dec.reset();
  c.undetected = 0;
  c.pos_known[0] = c.pos_known[1] = false;
  // The handshake's reads are not earlier calls of this stream: the request
  // may have arrived with the client's Finished, before the server read it.
  c.last_ts_dir[0] = c.last_ts_dir[1] = 0;
  c.ciphertext = nullptr;
  c.cipher_bytes = 0;
  stats_.tls_connections++;
}

void ConnTracker::close_conn(uint64_t cookie, uint64_t ts, const char* error_type) {
  auto it = conns_.find(cookie);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  if (c.ciphertext && !c.ignored) give_up_ciphertext(cookie, c);
  if (!c.ignored && c.dec) {
    c.dec->on_close(ts, error_type);
    drain(c, ts);
  }
  if (c.dec) stats_.desyncs += c.dec->desyncs();
  if (observer_) observer_->conn_end(cookie);
  lru_.erase(c.lru);
  conns_.erase(it);
}

void ConnTracker::on_conn(const ot_conn_event& ev) {
  uint64_t ts = ev.hdr.ts_ns;
  switch (ev.hdr.type) {
  case OT_EV_CONN_OPEN: {
    Conn& c = conn_for(ev.cookie, ev.hdr.tgid, ev.role, ts);
    c.id.local = ev.local;
    c.id.remote = ev.remote;
    c.id.addrs_known = true;
    c.id.local_str = format_addr(ev.local);
    c.id.remote_str = format_addr(ev.remote);
    if (c.role == OT_ROLE_UNKNOWN && ev.local.family != AF_UNIX) {
      auto has = [&](uint16_t p) {
        return std::find(opt_.server_ports.begin(), opt_.server_ports.end(), p) !=
               opt_.server_ports.end();
      };
      if (has(ev.local.port)) c.role = OT_ROLE_SERVER;
      else if (has(ev.remote.port)) c.role = OT_ROLE_CLIENT;
    }
    if (ev.comm[0]) c.id.command = std::string(ev.comm, strnlen(ev.comm, sizeof(ev.comm)));
    if (observer_) observer_->conn_open(ev.cookie, c.id.pid, ev.local, ev.remote);
    break;
  }
  case OT_EV_CONN_CLOSE:
    schedule_close(ev.cookie, ts, "connection_closed");
    break;
  case OT_EV_CONN_RESET: {
    if (Conn* c = find(ev.cookie)) {
      c->id.retransmits = ev.retransmits;
      schedule_close(ev.cookie, ts, "connection_reset");
    }
    break;
  }
  case OT_EV_RETRANSMIT: {
    if (Conn* c = find(ev.cookie)) c->id.retransmits = ev.retransmits;
    break;
  }
  case OT_EV_CONN_FAIL: {
    // An active open that never connected: no request was sent, but the
    // failure is what the user is looking for.
    Record r;
    r.kind = RecordKind::kConnection;
    r.protocol = "tcp";
    r.side = RecordSide::kClient;
    r.pid = ev.hdr.tgid;
    r.tid = ev.hdr.tid;
    r.command = command_of(ev.hdr.tgid);
    r.start_ns = clock_.to_wall_ns(ts);
    r.complete = false;
    int err = ev.err;
    r.set("error.type", std::string(err == ECONNREFUSED ? "connection_refused"
                                    : err == ETIMEDOUT  ? "timeout"
                                    : err == EHOSTUNREACH || err == ENETUNREACH
                                        ? "unreachable"
                                        : "connect_failed"));
    r.set("server.address", format_addr(ev.remote));
    r.set("server.port", int64_t(ev.remote.port));
    r.set("network.peer.address", format_addr(ev.remote));
    r.set("network.peer.port", int64_t(ev.remote.port));
    if (ev.retransmits) r.set("odigos.tcp.retransmits", int64_t(ev.retransmits));
    stats_.records++;
    emit_(r);
    break;
  }
  default:
    break;
  }
}

void ConnTracker::schedule_close(uint64_t cookie, uint64_t ts, const char* error_type) {
  Conn* cp = find(cookie);
  if (!cp) return;
  Conn& c = *cp;
  // A reset outranks an orderly close seen before it.
  if (!c.close_reason || std::string_view(error_type) == "connection_reset") c.close_reason = error_type;
  if (!c.close_ts) {
    c.close_ts = ts;
    closing_.push_back(cookie);
  }
}

void ConnTracker::tick(uint64_t now) {
  size_t keep = 0;
  for (size_t i = 0; i < closing_.size(); i++) {
    uint64_t cookie = closing_[i];
    Conn* c = find(cookie);
    if (!c) continue;
    if (c->close_ts + kCloseGraceNs <= now) close_conn(cookie, c->close_ts, c->close_reason);
    else closing_[keep++] = cookie;
  }
  closing_.resize(keep);
}

void ConnTracker::finish(uint64_t now, const char* error_type) {
  for (uint64_t cookie : closing_) {
    if (Conn* c = find(cookie)) close_conn(cookie, c->close_ts, c->close_reason);
  }
  closing_.clear();
  while (!conns_.empty()) close_conn(conns_.begin()->first, now, error_type);
}

} // namespace odigos
