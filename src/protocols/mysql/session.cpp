// One connection: per-direction packet framing (headers, continuation
// chunks, uncaptured bytes, loss and resynchronisation) feeding a queue of
// commands, each answered by the server in order.
#include "protocols/mysql/mysql.hpp"
#include "protocols/mysql/packets.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace odigos::mysql {

namespace {

using wire::Reader;

enum class Role : uint8_t { kUnknown, kClient, kServer }; // which end writes this direction
enum class Sync : uint8_t { kFramed, kLost };

// What a command's response looks like.
enum class Expect : uint8_t {
  kNone,       // no response (QUIT, STMT_CLOSE, STMT_SEND_LONG_DATA)
  kHandshake,  // auth exchange until OK/ERR
  kResult,     // OK | ERR | EOF | LOCAL INFILE | result set(s)
  kPrepare,    // STMT_PREPARE_OK + definitions | ERR
  kFieldList,  // column definitions until EOF | ERR
  kRows,       // STMT_FETCH: rows until EOF/OK | ERR
  kOnePacket,  // STATISTICS: one string packet
  kChangeUser, // auth exchange until OK/ERR
};

// Where in its response a command is.
enum class Rs : uint8_t {
  kFirst,          // next packet starts a response (or the next result set)
  kColumns,        // column definitions
  kAfterColumns,   // EOF ending the metadata, or the first row / terminator
  kRows,           // rows until a terminator
  kInfileUpload,   // the client sends the file
  kInfileResult,   // OK/ERR after the file
  kPrepParams,     // parameter definitions
  kPrepParamsEnd,  // EOF after them, or (DEPRECATE_EOF) the first column definition
  kPrepColumns,    // column definitions
  kPrepColumnsEnd, // EOF after them
  kProvisional,    // may be over: an EOF may still follow (capabilities unknown)
};

constexpr uint32_t kMaxChunk = 0xffffff;
constexpr size_t kServerKeep = 1024;   // OK/ERR/greeting/terminators fit
constexpr size_t kClientExtra = 1024;  // command header + query attributes before the text
constexpr size_t kMaxErrorMessage = 512;
constexpr unsigned kUnknownGiveUp = 64;
// Side found from a command but nothing answered it yet: server segments that
// do not start its response before the connection is written off.
constexpr unsigned kUnansweredGiveUp = 8;
constexpr uint32_t kLastPrepared = 0xffffffff; // MariaDB: "the statement just prepared"
constexpr size_t kMaxPrefix = 64;

struct Packet {
  std::string_view head; // captured prefix of the payload (at most the direction's keep)
  uint64_t len = 0;      // payload length (all chunks)
  uint8_t seq = 0;       // sequence id of the first chunk
  uint8_t last_seq = 0;  // of the last chunk
  bool head_short = false; // bytes of the wanted prefix were not captured
  uint64_t first_ts = 0;
  uint64_t last_ts = 0;
  uint64_t wire = 0;     // bytes on the wire, headers included

  uint8_t first() const { return head.empty() ? 0 : static_cast<uint8_t>(head[0]); }
};

struct Dir {
  bool ingress = false;
  Role role = Role::kUnknown;
  Sync sync = Sync::kLost;
  bool started = false; // a header was framed in this direction
  // Framing.
  uint8_t hdr[4] = {};
  uint8_t hdr_got = 0;
  uint64_t hdr_ts = 0;
  bool in_packet = false;  // between a packet's first header and its end
  bool in_payload = false; // inside a chunk's payload
  bool more_chunks = false;
  uint32_t chunk_left = 0;
  uint64_t pkt_len = 0;
  uint64_t pkt_wire = 0;
  uint64_t pkt_first_ts = 0;
  uint8_t pkt_seq = 0;
  uint8_t pkt_last_seq = 0;
  size_t keep = 0;
  bool head_lost = false;
  std::string buf;            // head bytes of a packet that spans segments
  const char* view = nullptr; // head bytes inside the current segment
  size_t view_len = 0;
  // While detecting or resynchronising: the first bytes of a packet that
  // came in a segment too short to judge (a 4-byte header read alone, a
  // greeting cut before its version string ends), at most kMaxPrefix.
  std::string pre;
  uint64_t pre_ts = 0;
  unsigned unknown_segments = 0;
};

struct Pending {
  Exchange ex;
  Expect expect = Expect::kResult;
  Rs rs = Rs::kFirst;
  uint8_t next_seq = 1;    // sequence id of the next server packet
  bool done = false;
  bool lost = false;       // server framing lost while this waited
  bool lost_desync = false;
  bool got_client = false; // kHandshake: the handshake response was seen
  bool responded = false;  // a server packet was taken for this command
  bool sets_db = false;
  bool clears_statements = false;
  uint16_t prep_columns = 0;
  uint64_t cols_left = 0;
  int64_t set_rows = 0;
  int64_t total_rows = 0;
  std::string new_db;
};

void assign_capped(std::string& dst, std::string_view src, size_t cap) {
  dst.assign(src.data(), std::min(src.size(), cap));
}

uint32_t u24(const uint8_t* h) { return h[0] | (h[1] << 8) | (static_cast<uint32_t>(h[2]) << 16); }

} // namespace

struct Session::Impl {
  Side side;
  Limits lim;
  Dir dirs[2]; // [0] egress, [1] ingress
  Verdict verdict = Verdict::kUndecided;
  bool stopped = false;
  bool closed = false;
  uint64_t desyncs = 0;
  uint64_t now = 0;
  // Connection state.
  bool greeting_seen = false;
  uint32_t server_caps = 0;
  uint32_t caps = 0;     // negotiated
  bool caps_known = false;
  int deprecate_eof = -1; // -1 unknown
  int query_attrs = -1;
  bool compress_after_auth = false;
  std::string database;
  struct Statement {
    std::string text;
    bool truncated = false;
  };
  std::unordered_map<uint32_t, Statement> statements;
  Statement last_prepare;
  bool last_prepare_known = false;
  uint32_t last_prepare_id = 0;
  bool last_prepare_id_known = false;
  // Commands in order; [head, size) are open or waiting to be emitted.
  std::vector<Pending> q;
  size_t q_head = 0;
  std::vector<Exchange> ready;

  Impl(Side s, Limits l) : side(s), lim(l) {
    lim.max_pending = std::max<size_t>(lim.max_pending, 1);
    dirs[0].ingress = false;
    dirs[1].ingress = true;
    if (s != Side::kUnknown) {
      const bool client_in = s == Side::kServer;
      dirs[client_in].role = Role::kClient;
      dirs[!client_in].role = Role::kServer;
      for (Dir& d : dirs) d.sync = Sync::kFramed;
    }
  }

  Dir& client_dir() { return dirs[side == Side::kServer]; }
  Dir& server_dir() { return dirs[side != Side::kServer]; }

  // ---- queue -------------------------------------------------------------

  Pending* awaiting() {
    for (size_t k = q_head; k < q.size(); ++k)
      if (!q[k].done) return &q[k];
    return nullptr;
  }

  void emit() {
    while (q_head < q.size() && q[q_head].done) ready.push_back(std::move(q[q_head++].ex));
    if (q_head == q.size()) {
      q.clear();
      q_head = 0;
    } else if (q_head > 64 && q_head * 2 > q.size()) {
      q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(q_head));
      q_head = 0;
    }
  }

  // Marks p answered; emit() hands finished exchanges out (and may move the
  // queue: no Pending reference survives it).
  void settle(Pending& p) {
    Exchange& x = p.ex;
    x.complete = true;
    if (x.result_sets > 0) x.rows = p.total_rows;
    else if (x.affected_rows >= 0) x.rows = x.affected_rows;
    p.done = true;
  }

  void complete(Pending& p) {
    settle(p);
    emit();
  }

  void fail(Pending& p, std::string_view error_type) {
    p.ex.complete = false;
    if (p.ex.error_type.empty()) p.ex.error_type = error_type;
    if (p.ex.result_sets > 0) p.ex.rows = p.total_rows + p.set_rows;
    p.done = true;
  }

  // A lost response ends (the next command was sent, or the server
  // direction found its footing again).
  void finish_lost(Pending& p) {
    if (p.lost_desync) {
      fail(p, "desync");
      p.ex.rows = -1;
    } else {
      p.ex.truncated = true;
      p.ex.complete = true;
      p.ex.rows = -1;
      p.done = true;
    }
  }

  void finish_all_lost() {
    for (size_t k = q_head; k < q.size(); ++k)
      if (!q[k].done && q[k].lost) finish_lost(q[k]);
    emit();
  }

  Pending& push() {
    size_t open = 0;
    for (size_t k = q_head; k < q.size(); ++k) open += !q[k].done;
    if (open >= lim.max_pending) {
      if (Pending* p = awaiting()) fail(*p, "desync");
      ++desyncs;
      emit();
    }
    q.emplace_back();
    return q.back();
  }

  void stop() {
    stopped = true;
    for (Dir& d : dirs) {
      d.in_packet = d.in_payload = false;
      d.view = nullptr;
    }
  }

  void not_mysql() {
    verdict = Verdict::kNotMysql;
    stop();
  }

  void learn_deprecate(int v) {
    if (deprecate_eof < 0) deprecate_eof = v;
  }

  const Statement* statement(uint32_t id) const {
    if (id == kLastPrepared) return last_prepare_known ? &last_prepare : nullptr;
    auto it = statements.find(id);
    return it == statements.end() ? nullptr : &it->second;
  }

  // ---- loss --------------------------------------------------------------

  void reset_framing(Dir& d) {
    d.hdr_got = 0;
    d.in_packet = d.in_payload = d.more_chunks = false;
    d.chunk_left = 0;
    d.view = nullptr;
    d.view_len = 0;
  }

  // The framing of `d` is lost. desync: a gap or a protocol violation
  // (counted; open exchanges end as "desync"); otherwise bytes beyond the
  // capture size (open exchanges end truncated).
  void lose(Dir& d, bool desync, bool count = true) {
    const bool was_framed = d.sync == Sync::kFramed;
    reset_framing(d);
    d.sync = Sync::kLost;
    d.pre.clear();
    if (desync && count && was_framed) ++desyncs;
    if (d.role != Role::kServer) return;
    for (size_t k = q_head; k < q.size(); ++k) {
      Pending& p = q[k];
      if (p.done) continue;
      if (p.rs == Rs::kProvisional) {
        settle(p);
        continue;
      }
      p.lost = true;
      p.lost_desync = p.lost_desync || desync;
    }
    emit();
  }

  void on_gap(Dir& d) {
    d.pre.clear();
    if (d.role == Role::kUnknown) return;
    lose(d, true);
    // Lost client bytes may have held commands: their responses cannot be
    // told from the ones we wait for. (One gap, one desync.)
    if (d.role == Role::kClient) lose(server_dir(), true, false);
  }

  // ---- detection and resynchronisation -----------------------------------

  // `probe`: the segment's first bytes, behind a saved header if any.
  bool server_resync_ok(std::string_view probe) {
    Pending* p = awaiting();
    if (!p || p->lost || p->responded || probe.size() < 4) return false;
    const auto* h = reinterpret_cast<const uint8_t*>(probe.data());
    const uint32_t len = u24(h);
    if (h[3] != p->next_seq || len == 0) return false;
    if (probe.size() == 4) return true;
    const uint8_t b = h[4];
    switch (p->expect) {
      case Expect::kResult:
        if (b == 0x00) return len >= 3 && len < 0x10000;
        if (b == 0xff) return len >= 3 && len < 0x10000;
        if (b == 0xfe) return len < 9;
        if (b == 0xfb) return true;
        {
          uint64_t count = 0;
          bool meta = true;
          return wire::parse_column_count(probe.substr(4), len, count, meta);
        }
      case Expect::kPrepare:
        return (b == 0x00 && len >= 9 && len <= 13) || (b == 0xff && len >= 3);
      default:
        return true;
    }
  }

  bool resync_probe_ok(Dir& d, std::string_view probe) {
    if (d.role == Role::kClient) return looks_like_mysql_command(probe);
    return server_resync_ok(probe);
  }

  // Could `v` (all of what was seen) be the start of the packet we look
  // for, too short to tell yet?
  bool could_be_prefix(Dir& d, std::string_view v) {
    if (v.size() >= kMaxPrefix) return false;
    Pending* a = d.role == Role::kServer ? awaiting() : nullptr;
    if (d.role == Role::kServer && (!a || a->lost || a->responded)) return false;
    if (v.size() < 4) return true;
    const auto* h = reinterpret_cast<const uint8_t*>(v.data());
    if (u24(h) == 0) return false;
    if (d.role == Role::kServer) return v.size() == 4 && h[3] == a->next_seq;
    if (h[3] != 0) return false;
    if (v.size() == 4) return true;
    // A greeting whose version string is not complete yet.
    if (d.role != Role::kUnknown || h[4] != 10) return false;
    for (unsigned char c : v.substr(5))
      if (c < 0x20 || c > 0x7e) return false;
    return true;
  }

  // The probe: saved prefix + the segment's first bytes.
  struct Probe {
    char tmp[2 * kMaxPrefix];
    std::string_view view;
  };

  void make_probe(Dir& d, std::string_view p, Probe& pr) {
    if (d.pre.empty()) {
      pr.view = p;
      return;
    }
    const size_t n = std::min(p.size(), kMaxPrefix);
    std::memcpy(pr.tmp, d.pre.data(), d.pre.size());
    if (n) std::memcpy(pr.tmp + d.pre.size(), p.data(), n);
    pr.view = std::string_view(pr.tmp, d.pre.size() + n);
  }

  // Not judged yet: keep what was seen (a whole captured segment only).
  bool keep_prefix(Dir& d, const Probe& pr, std::string_view p, const Segment& seg) {
    if (seg.len != p.size() || pr.view.size() != d.pre.size() + p.size() || !could_be_prefix(d, pr.view)) {
      d.pre.clear();
      return false;
    }
    if (d.pre.empty()) d.pre_ts = seg.ts_ns;
    d.pre.append(p.data(), p.size());
    return true;
  }

  // Framing restarts at the saved prefix, then this segment.
  void start_framing(Dir& d) {
    reset_framing(d);
    d.sync = Sync::kFramed;
    d.started = true;
    if (d.pre.empty()) return;
    const uint64_t ts = now;
    now = d.pre_ts;
    run(d, d.pre);
    if (d.view) {
      d.buf.assign(d.view, d.view_len);
      d.view = nullptr;
    }
    now = ts;
    d.pre.clear();
  }

  // Probes saved prefix + segment, then (the prefix was not a packet start
  // after all) the segment alone.
  template <typename Check>
  bool probe(Dir& d, std::string_view p, Probe& pr, Check check) {
    make_probe(d, p, pr);
    if (check(pr.view)) return true;
    if (d.pre.empty()) return false;
    d.pre.clear();
    make_probe(d, p, pr);
    return check(pr.view);
  }

  bool try_resync(Dir& d, std::string_view p, const Segment& seg) {
    Probe pr;
    if (!probe(d, p, pr, [&](std::string_view v) { return resync_probe_ok(d, v); })) {
      keep_prefix(d, pr, p, seg);
      return false;
    }
    start_framing(d);
    return true;
  }

  // Side::kUnknown: a greeting or a command decides which end is which.
  bool detect(Dir& d, std::string_view p, const Segment& seg) {
    Probe pr;
    if (probe(d, p, pr, [](std::string_view v) {
          return looks_like_mysql_handshake(v) || looks_like_mysql_command(v);
        })) {
      const bool greeting = looks_like_mysql_handshake(pr.view);
      Dir& other = dirs[!d.ingress];
      d.role = greeting ? Role::kServer : Role::kClient;
      other.role = greeting ? Role::kClient : Role::kServer;
      side = (d.ingress == greeting) ? Side::kClient : Side::kServer;
      // After a greeting the client's handshake response comes next; after
      // a command the server may be anywhere in an earlier response.
      reset_framing(other);
      other.pre.clear();
      other.sync = greeting ? Sync::kFramed : Sync::kLost;
      start_framing(d);
      return true;
    }
    if (!keep_prefix(d, pr, p, seg)) ++d.unknown_segments;
    const unsigned a = dirs[0].unknown_segments, b = dirs[1].unknown_segments;
    if ((a >= 2 && b >= 2) || a + b >= kUnknownGiveUp) not_mysql();
    return false;
  }

  // ---- framing -----------------------------------------------------------

  // First header of a direction on a connection seen from its start.
  bool first_header_ok(const Dir& d, uint32_t len, uint8_t seq) const {
    if (d.role == Role::kServer) return seq == 0 && len >= 1 && len < 0x10000;
    return (seq == 1 && len >= 4 && len < 0x10000) || (seq == 0 && len >= 1);
  }

  void on_header(Dir& d) {
    const uint32_t len = u24(d.hdr);
    const uint8_t seq = d.hdr[3];
    if (!d.in_packet) {
      if (!d.started) {
        d.started = true;
        if (verdict == Verdict::kUndecided && !first_header_ok(d, len, seq)) {
          not_mysql();
          return;
        }
      }
      d.in_packet = true;
      d.pkt_len = 0;
      d.pkt_wire = 0;
      d.pkt_seq = seq;
      d.pkt_first_ts = d.hdr_ts;
      d.keep = d.role == Role::kClient ? lim.max_text + kClientExtra : kServerKeep;
      d.buf.clear();
      d.view = nullptr;
      d.view_len = 0;
      d.head_lost = false;
    } else if (seq != static_cast<uint8_t>(d.pkt_last_seq + 1)) {
      lose(d, true); // continuation chunk out of sequence
      return;
    }
    d.pkt_last_seq = seq;
    d.pkt_wire += 4 + static_cast<uint64_t>(len);
    d.chunk_left = len;
    d.more_chunks = len == kMaxChunk;
    d.in_payload = true;
    if (len == 0) end_chunk(d);
  }

  void add_head(Dir& d, const char* ptr, size_t n) {
    if (d.head_lost || d.pkt_len >= d.keep) return;
    const size_t want = std::min<size_t>(n, d.keep - d.pkt_len);
    if (d.view) d.view_len += want;
    else if (d.buf.empty() && d.pkt_len == 0) {
      d.view = ptr;
      d.view_len = want;
    } else {
      d.buf.append(ptr, want);
    }
  }

  void end_chunk(Dir& d) {
    d.in_payload = false;
    if (d.more_chunks) return;
    Packet pk;
    pk.head = d.view ? std::string_view(d.view, d.view_len) : std::string_view(d.buf);
    pk.len = d.pkt_len;
    pk.seq = d.pkt_seq;
    pk.last_seq = d.pkt_last_seq;
    pk.head_short = d.head_lost;
    pk.first_ts = d.pkt_first_ts;
    pk.last_ts = now;
    pk.wire = d.pkt_wire;
    d.in_packet = false;
    d.view = nullptr;
    d.view_len = 0;
    if (d.role == Role::kClient) on_client_packet(d, pk);
    else on_server_packet(d, pk);
  }

  void run(Dir& d, std::string_view p) {
    while (!p.empty() && d.sync == Sync::kFramed && !stopped) {
      if (!d.in_payload) {
        if (d.hdr_got == 0) d.hdr_ts = now;
        const size_t take = std::min<size_t>(4 - d.hdr_got, p.size());
        std::memcpy(d.hdr + d.hdr_got, p.data(), take);
        d.hdr_got = static_cast<uint8_t>(d.hdr_got + take);
        p.remove_prefix(take);
        if (d.hdr_got < 4) break;
        d.hdr_got = 0;
        on_header(d);
      } else {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(d.chunk_left, p.size()));
        add_head(d, p.data(), take);
        d.pkt_len += take;
        d.chunk_left -= static_cast<uint32_t>(take);
        p.remove_prefix(take);
        if (d.chunk_left == 0) end_chunk(d);
      }
    }
  }

  // Bytes the kernel did not capture: skipped inside a payload; a header
  // among them loses the framing.
  void skip_missing(Dir& d, uint64_t m) {
    while (m > 0 && d.sync == Sync::kFramed && !stopped) {
      if (!d.in_payload) {
        // Response bytes not in any packet taken: the open one's so far, the rest.
        const uint64_t unaccounted = m + d.hdr_got + (d.in_packet ? d.pkt_wire : 0);
        lose(d, false);
        if (d.role == Role::kServer)
          if (Pending* p = awaiting(); p && p->lost) p->ex.response_bytes += unaccounted;
        return;
      }
      const uint64_t take = std::min<uint64_t>(d.chunk_left, m);
      if (d.pkt_len < d.keep) d.head_lost = true;
      d.pkt_len += take;
      d.chunk_left -= static_cast<uint32_t>(take);
      m -= take;
      if (d.chunk_left == 0) end_chunk(d);
    }
  }

  void note_lost_segment(Dir& d, const Segment& seg) {
    if (d.role != Role::kServer) return;
    Pending* p = awaiting();
    if (p && p->lost) {
      p->ex.response_bytes += seg.len;
      p->ex.last_ts_ns = seg.ts_ns;
    }
  }

  void feed(Dir& d, const Segment& seg) {
    if (stopped || closed) return;
    now = seg.ts_ns;
    std::string_view p = seg.data;
    const uint64_t missing = seg.len > p.size() ? seg.len - p.size() : 0;
    if (seg.gap_before) on_gap(d);
    if (d.role == Role::kUnknown) {
      if (!detect(d, p, seg)) return;
    } else if (d.sync == Sync::kLost) {
      if (!try_resync(d, p, seg)) {
        note_lost_segment(d, seg);
        if (verdict == Verdict::kUndecided && d.role == Role::kServer && d.pre.empty() &&
            ++d.unknown_segments >= kUnansweredGiveUp)
          not_mysql();
        return;
      }
    }
    run(d, p);
    if (stopped || d.sync != Sync::kFramed) return;
    if (d.view) { // the packet continues in a later segment
      d.buf.assign(d.view, d.view_len);
      d.view = nullptr;
    }
    if (missing) skip_missing(d, missing);
  }

  // ---- client packets ----------------------------------------------------

  void on_client_packet(Dir& d, const Packet& pk) {
    (void)d;
    if (pk.seq != 0) {
      on_client_continuation(pk);
      return;
    }
    if (verdict == Verdict::kUndecided && !wire::command_plausible(pk.head, pk.len)) {
      not_mysql();
      return;
    }
    if (server_dir().sync == Sync::kLost) {
      // A command: responses lost before it are over.
      finish_all_lost();
    } else if (!server_dir().started && !greeting_seen) {
      // A connection "seen from its start" without a greeting: the server
      // direction must find its footing at this command's response.
      Dir& s = server_dir();
      reset_framing(s);
      s.sync = Sync::kLost;
    }
    if (Pending* a = awaiting(); a && a->rs == Rs::kProvisional) {
      learn_deprecate(1);
      complete(*a);
    }
    on_command(pk);
  }

  // A client packet that is not a command: handshake response, auth data,
  // LOCAL INFILE contents.
  void on_client_continuation(const Packet& pk) {
    Pending* a = awaiting();
    if (a && a->expect == Expect::kHandshake) {
      if (!a->got_client) {
        if (handshake_response(*a, pk) != Hs::kOk) return;
      }
      a->ex.request_bytes += pk.wire;
      a->next_seq = static_cast<uint8_t>(pk.last_seq + 1);
      return;
    }
    if (a && (a->rs == Rs::kInfileUpload || a->expect == Expect::kChangeUser)) {
      a->ex.request_bytes += pk.wire;
      a->next_seq = static_cast<uint8_t>(pk.last_seq + 1);
      if (a->rs == Rs::kInfileUpload && pk.len == 0) a->rs = Rs::kInfileResult;
      return;
    }
    if (!a && !greeting_seen && pk.seq == 1) {
      // Handshake response whose greeting was not seen.
      Pending& p = push();
      p.ex.kind = Exchange::Kind::kHandshake;
      p.expect = Expect::kHandshake;
      p.ex.first_ts_ns = pk.first_ts;
      const Hs r = handshake_response(p, pk);
      if (r == Hs::kBad) q.pop_back(); // nothing was emitted: p is the last entry
      if (r != Hs::kOk) return;
      p.ex.request_bytes += pk.wire;
      p.next_seq = static_cast<uint8_t>(pk.last_seq + 1);
      return;
    }
    if (verdict == Verdict::kUndecided) not_mysql();
    // Otherwise a stray packet (its command was lost): ignored.
  }

  enum class Hs { kOk, kBad, kDone };
  // kBad: not a handshake response; kDone: p was emitted (SSLRequest) and
  // decoding stopped.
  Hs handshake_response(Pending& p, const Packet& pk) {
    wire::HandshakeResponse r;
    if (!wire::parse_handshake_response(pk.head, pk.len, r)) {
      if (verdict == Verdict::kUndecided) not_mysql();
      return Hs::kBad;
    }
    p.got_client = true;
    p.ex.last_ts_ns = std::max(p.ex.last_ts_ns, pk.last_ts);
    if (verdict == Verdict::kUndecided) verdict = Verdict::kMysql;
    if (r.ssl_request) {
      p.ex.ssl_requested = true;
      p.ex.request_bytes += pk.wire;
      verdict = Verdict::kEncrypted;
      complete(p);
      stop();
      return Hs::kDone;
    }
    // Without the greeting the server's half of the capabilities is unknown.
    caps = greeting_seen ? (r.caps & server_caps) : r.caps;
    caps_known = greeting_seen;
    if (greeting_seen) {
      deprecate_eof = (caps & kClientDeprecateEof) ? 1 : 0;
      query_attrs = (caps & kClientQueryAttributes) ? 1 : 0;
      compress_after_auth = (caps & (kClientCompress | kClientZstdCompression)) != 0;
    }
    assign_capped(p.ex.user, r.user, 256);
    assign_capped(p.new_db, r.database, 256);
    p.ex.database = p.new_db;
    p.sets_db = !r.database.empty();
    return Hs::kOk;
  }

  void take_text(Pending& p, const Packet& pk, std::string_view text, size_t offset) {
    assign_capped(p.ex.text, text, lim.max_text);
    p.ex.text_known = true;
    p.ex.text_truncated = pk.len - offset > p.ex.text.size();
  }

  void take_statement(Pending& p, const Packet& pk) {
    Reader r(pk.head);
    r.u8();
    p.ex.statement_id = r.u32();
    if (!r.ok()) return;
    if (const Statement* st = statement(p.ex.statement_id)) {
      p.ex.text = st->text;
      p.ex.text_known = true;
      p.ex.text_truncated = st->truncated;
    }
  }

  void on_command(const Packet& pk) {
    const uint8_t c = pk.first();
    const std::string_view body = pk.head.empty() ? std::string_view() : pk.head.substr(1);
    Pending& p = push();
    Exchange& x = p.ex;
    x.command = c;
    x.first_ts_ns = pk.first_ts;
    x.last_ts_ns = pk.last_ts;
    x.request_bytes = pk.wire;
    x.database = database;
    p.next_seq = static_cast<uint8_t>(pk.last_seq + 1);
    using K = Exchange::Kind;
    switch (c) {
      case kComQuery: {
        x.kind = K::kQuery;
        std::string_view text;
        size_t offset = 0;
        if (wire::query_text(pk.head, query_attrs, text, offset)) take_text(p, pk, text, offset);
        break;
      }
      case kComStmtPrepare:
        x.kind = K::kPrepare;
        p.expect = Expect::kPrepare;
        if (!pk.head.empty() || pk.len == 1) take_text(p, pk, body, 1);
        last_prepare_known = p.ex.text_known;
        last_prepare_id_known = false;
        last_prepare = {p.ex.text, p.ex.text_truncated};
        break;
      case kComStmtExecute:
      case kComStmtBulkExecute:
        x.kind = K::kExecute;
        take_statement(p, pk);
        if (x.statement_id == kLastPrepared && last_prepare_id_known) x.statement_id = last_prepare_id;
        break;
      case kComStmtClose:
        x.kind = K::kClose;
        p.expect = Expect::kNone;
        take_statement(p, pk);
        statements.erase(x.statement_id);
        break;
      case kComStmtSendLongData:
        p.expect = Expect::kNone;
        take_statement(p, pk);
        break;
      case kComStmtReset:
        take_statement(p, pk);
        break;
      case kComStmtFetch:
        p.expect = Expect::kRows;
        p.rs = Rs::kRows;
        take_statement(p, pk);
        x.result_sets = 1;
        break;
      case kComQuit:
        x.kind = K::kQuit;
        p.expect = Expect::kNone;
        break;
      case kComPing:
        x.kind = K::kPing;
        break;
      case kComInitDb:
        x.kind = K::kInitDb;
        assign_capped(p.new_db, body, 256);
        x.database = p.new_db;
        p.sets_db = true;
        break;
      case kComFieldList: {
        p.expect = Expect::kFieldList;
        assign_capped(x.text, body.substr(0, body.find('\0')), lim.max_text);
        x.text_known = true;
        break;
      }
      case kComStatistics:
        p.expect = Expect::kOnePacket;
        break;
      case kComChangeUser: {
        p.expect = Expect::kChangeUser;
        p.clears_statements = true;
        Reader r(pk.head);
        r.u8();
        assign_capped(x.user, r.nul_str(), 256);
        // Auth data: 1-byte length with secure connection (every 4.1+ client).
        if (!caps_known || (caps & kClientSecureConnection)) r.bytes(r.u8());
        else r.nul_str();
        const std::string_view db = r.nul_str();
        if (r.ok()) {
          assign_capped(p.new_db, db, 256);
          x.database = p.new_db;
          p.sets_db = true;
        }
        break;
      }
      case kComResetConnection:
        p.clears_statements = true;
        break;
      case kComBinlogDump:
      case kComBinlogDumpGtid:
      case kComClone:
        // An endless stream of events follows: stop decoding here.
        for (size_t k = q_head; k < q.size(); ++k)
          if (!q[k].done) fail(q[k], "not_decoded");
        emit();
        stop();
        return;
      default:
        break;
    }
    if (p.expect == Expect::kNone) complete(p);
  }

  // ---- server packets ----------------------------------------------------

  void account(Pending& p, const Packet& pk) {
    p.responded = true;
    p.ex.response_bytes += pk.wire;
    p.ex.last_ts_ns = pk.last_ts;
    p.next_seq = static_cast<uint8_t>(pk.last_seq + 1);
  }

  void protocol_error(Dir& d) {
    if (verdict == Verdict::kUndecided) not_mysql();
    else lose(d, true);
  }

  void take_err(Pending& p, const wire::Err& e) {
    p.ex.error_code = e.code;
    p.ex.sql_state.assign(e.sql_state);
    assign_capped(p.ex.error_message, e.message, kMaxErrorMessage);
  }

  // An OK packet answering (not ending a result set).
  void take_ok(Pending& p, const wire::Ok& ok) {
    p.ex.affected_rows = (p.ex.affected_rows < 0 ? 0 : p.ex.affected_rows) +
                         static_cast<int64_t>(std::min<uint64_t>(ok.affected_rows, INT64_MAX / 2));
    if (ok.has_schema) database.assign(ok.schema);
  }

  void on_ok_final(Pending& p) {
    if (p.sets_db) database = p.new_db;
    if (p.clears_statements) {
      statements.clear();
      last_prepare_known = false;
    }
    complete(p);
  }

  void on_greeting(const Packet& pk) {
    wire::Greeting g;
    if (!wire::parse_greeting(pk.head, g)) {
      if (verdict == Verdict::kUndecided) not_mysql();
      return;
    }
    greeting_seen = true;
    server_caps = g.caps;
    verdict = Verdict::kMysql;
    Pending& p = push();
    p.ex.kind = Exchange::Kind::kHandshake;
    p.expect = Expect::kHandshake;
    p.ex.first_ts_ns = pk.first_ts;
    p.ex.last_ts_ns = pk.last_ts;
    p.ex.response_bytes = pk.wire;
    assign_capped(p.ex.server_version, g.server_version, 256);
    p.next_seq = 1;
  }

  void on_server_packet(Dir& d, const Packet& pk) {
    Pending* p = awaiting();
    if (p && p->rs == Rs::kProvisional) {
      if (pk.seq == p->next_seq && pk.first() == 0xfe && pk.len <= 5) {
        account(*p, pk);
        learn_deprecate(0);
        complete(*p);
        return;
      }
      learn_deprecate(1);
      complete(*p);
      p = awaiting();
    }
    if (!p) {
      if (!greeting_seen && pk.seq == 0 && pk.first() == 10) {
        on_greeting(pk);
        return;
      }
      if (!greeting_seen && pk.seq == 0 && pk.first() == 0xff && verdict == Verdict::kUndecided) {
        // Refused before the greeting (too many connections, host blocked).
        wire::Err e;
        if (!wire::parse_err(pk.head, e) || e.code < 1000) {
          not_mysql();
          return;
        }
        verdict = Verdict::kMysql;
        Pending& h = push();
        h.ex.kind = Exchange::Kind::kHandshake;
        h.ex.first_ts_ns = pk.first_ts;
        h.ex.last_ts_ns = pk.last_ts;
        h.ex.response_bytes = pk.wire;
        take_err(h, e);
        complete(h);
        return;
      }
      if (verdict == Verdict::kUndecided) not_mysql();
      return; // a response nobody asked for (its command was lost): ignored
    }
    if (pk.seq != p->next_seq) {
      protocol_error(d);
      return;
    }
    if (pk.len == 0 && p->expect != Expect::kOnePacket) {
      protocol_error(d);
      return;
    }
    switch (p->expect) {
      case Expect::kHandshake: on_auth_packet(*p, pk, true); break;
      case Expect::kChangeUser: on_auth_packet(*p, pk, false); break;
      case Expect::kResult: on_result_packet(d, *p, pk); break;
      case Expect::kPrepare: on_prepare_packet(d, *p, pk); break;
      case Expect::kFieldList: on_field_list_packet(*p, pk); break;
      case Expect::kRows: on_rows_packet(*p, pk, false); break;
      case Expect::kOnePacket:
        account(*p, pk);
        complete(*p);
        break;
      case Expect::kNone: break;
    }
    if (verdict == Verdict::kUndecided && !stopped) verdict = Verdict::kMysql;
  }

  void on_auth_packet(Pending& p, const Packet& pk, bool handshake) {
    account(p, pk);
    const uint8_t b = pk.first();
    if (b == 0x00) {
      if (handshake) {
        p.ex.database = p.new_db;
        on_ok_final(p);
        if (compress_after_auth) stop(); // compressed protocol from here on
      } else {
        on_ok_final(p);
      }
    } else if (b == 0xff) {
      wire::Err e;
      if (wire::parse_err(pk.head, e)) {
        if (wire::is_progress(e)) return;
        take_err(p, e);
      }
      complete(p);
    }
    // 0xfe auth switch, 0x01 more data (caching_sha2 fast/full auth, public
    // key, ed25519 ...): the client answers, the exchange goes on.
  }

  bool is_err_progress(const Packet& pk) {
    wire::Err e;
    return wire::parse_err(pk.head, e) && wire::is_progress(e);
  }

  // An ERR answering, or ending a result set.
  void on_err(Pending& p, const Packet& pk) {
    wire::Err e;
    if (wire::parse_err(pk.head, e)) take_err(p, e);
    p.total_rows += p.set_rows;
    p.set_rows = 0;
    complete(p);
  }

  // A 0xfe packet (< 16 MiB) among rows ends the result set: EOF (5 bytes)
  // or, with DEPRECATE_EOF, an OK packet with the 0xfe header.
  void end_result_set(Pending& p, const Packet& pk, bool more_allowed) {
    uint16_t status = 0;
    if (pk.len <= 5) {
      status = wire::eof_status(pk.head);
    } else {
      wire::Ok ok;
      if (wire::parse_ok(pk.head, caps, caps_known, ok)) {
        status = ok.status;
        if (ok.has_schema) database.assign(ok.schema);
      }
    }
    p.total_rows += p.set_rows;
    p.set_rows = 0;
    if (more_allowed && (status & kServerMoreResultsExists)) p.rs = Rs::kFirst;
    else complete(p);
  }

  void on_rows_packet(Pending& p, const Packet& pk, bool more_allowed) {
    account(p, pk);
    const uint8_t b = pk.first();
    if (b == 0xfe && pk.len < kMaxChunk) end_result_set(p, pk, more_allowed);
    else if (b == 0xff) {
      if (!is_err_progress(pk)) on_err(p, pk);
    } else ++p.set_rows;
  }

  // Is this 0xfe packet the EOF that ends column definitions?
  bool is_metadata_eof(const Packet& pk) const {
    if (pk.first() != 0xfe) return false;
    if (deprecate_eof == 0) return pk.len < 9;
    return pk.len <= 5;
  }

  void on_result_packet(Dir& d, Pending& p, const Packet& pk) {
    const uint8_t b = pk.first();
    switch (p.rs) {
      case Rs::kFirst:
      case Rs::kInfileUpload: // the file's end was not seen: the server's answer ends it
      case Rs::kInfileResult: {
        if (b == 0x00 && pk.len >= 3) {
          wire::Ok ok;
          if (!wire::parse_ok(pk.head, caps, caps_known, ok)) {
            if (!pk.head_short) return protocol_error(d);
            account(p, pk);
            return on_ok_final(p);
          }
          account(p, pk);
          take_ok(p, ok);
          if (ok.status & kServerMoreResultsExists) p.rs = Rs::kFirst;
          else on_ok_final(p);
          return;
        }
        if (b == 0xff) {
          account(p, pk);
          if (!is_err_progress(pk)) on_err(p, pk);
          return;
        }
        if (b == 0xfe && pk.len < 9) { // SET_OPTION, DEBUG, SHUTDOWN answer with EOF
          account(p, pk);
          return complete(p);
        }
        if (p.rs != Rs::kFirst) return protocol_error(d);
        if (b == 0xfb) { // LOCAL INFILE request: the client sends the file
          account(p, pk);
          p.rs = Rs::kInfileUpload;
          return;
        }
        uint64_t count = 0;
        bool meta = true;
        if (!wire::parse_column_count(pk.head, pk.len, count, meta)) return protocol_error(d);
        account(p, pk);
        ++p.ex.result_sets;
        p.set_rows = 0;
        p.cols_left = count;
        p.rs = meta ? Rs::kColumns : Rs::kAfterColumns;
        return;
      }
      case Rs::kColumns:
        account(p, pk);
        if (--p.cols_left == 0) p.rs = Rs::kAfterColumns;
        return;
      case Rs::kAfterColumns:
        if (is_metadata_eof(pk)) {
          account(p, pk);
          learn_deprecate(0);
          p.rs = Rs::kRows;
          // A cursor was opened (COM_STMT_EXECUTE): rows come with COM_STMT_FETCH.
          if (wire::eof_status(pk.head) & kServerStatusCursorExists) complete(p);
          return;
        }
        // A row, or an OK-with-0xfe terminator (>= 7 bytes): no metadata EOF.
        if (b != 0xff) learn_deprecate(1);
        p.rs = Rs::kRows;
        return on_rows_packet(p, pk, true);
      case Rs::kRows:
        return on_rows_packet(p, pk, true);
      default:
        return protocol_error(d);
    }
  }

  void prepare_columns(Pending& p) {
    if (p.prep_columns) {
      p.cols_left = p.prep_columns;
      p.rs = Rs::kPrepColumns;
    } else {
      complete(p);
    }
  }

  // After a group of definitions: an EOF follows unless DEPRECATE_EOF.
  void after_definitions(Pending& p, bool params) {
    if (deprecate_eof == 0) {
      p.rs = params ? Rs::kPrepParamsEnd : Rs::kPrepColumnsEnd;
    } else if (deprecate_eof == 1) {
      if (params) prepare_columns(p);
      else complete(p);
    } else if (params && p.prep_columns) {
      p.rs = Rs::kPrepParamsEnd; // the next packet tells: EOF or a column definition
    } else {
      p.rs = Rs::kProvisional;
    }
  }

  void on_prepare_packet(Dir& d, Pending& p, const Packet& pk) {
    const uint8_t b = pk.first();
    switch (p.rs) {
      case Rs::kFirst: {
        if (b == 0xff) {
          account(p, pk);
          if (!is_err_progress(pk)) on_err(p, pk);
          return;
        }
        wire::PrepareOk r;
        if (b != 0x00 || !wire::parse_prepare_ok(pk.head, pk.len, r)) return protocol_error(d);
        account(p, pk);
        p.ex.statement_id = r.statement_id;
        if (p.ex.text_known) {
          if (statements.size() >= lim.max_statements && !statements.count(r.statement_id))
            statements.erase(statements.begin());
          statements[r.statement_id] = {p.ex.text, p.ex.text_truncated};
        }
        if (last_prepare_known && p.ex.text == last_prepare.text) {
          last_prepare_id = r.statement_id;
          last_prepare_id_known = true;
        }
        p.prep_columns = r.columns;
        if (!r.metadata_follows) return complete(p);
        if (r.params) {
          p.cols_left = r.params;
          p.rs = Rs::kPrepParams;
        } else {
          prepare_columns(p);
        }
        return;
      }
      case Rs::kPrepParams:
        account(p, pk);
        if (--p.cols_left == 0) after_definitions(p, true);
        return;
      case Rs::kPrepParamsEnd:
        if (b == 0xfe && pk.len < 9 && (deprecate_eof == 0 || pk.len <= 5)) {
          account(p, pk);
          learn_deprecate(0);
          return prepare_columns(p);
        }
        if (deprecate_eof == 0 || !p.prep_columns) return protocol_error(d);
        learn_deprecate(1); // a column definition: no EOF between the groups
        p.cols_left = p.prep_columns;
        p.rs = Rs::kPrepColumns;
        account(p, pk);
        if (--p.cols_left == 0) after_definitions(p, false);
        return;
      case Rs::kPrepColumns:
        account(p, pk);
        if (--p.cols_left == 0) after_definitions(p, false);
        return;
      case Rs::kPrepColumnsEnd:
        if (b != 0xfe || pk.len >= 9) return protocol_error(d);
        account(p, pk);
        return complete(p);
      default:
        return protocol_error(d);
    }
  }

  void on_field_list_packet(Pending& p, const Packet& pk) {
    account(p, pk);
    const uint8_t b = pk.first();
    if (b == 0xff) {
      if (!is_err_progress(pk)) on_err(p, pk);
    } else if (b == 0xfe && pk.len < kMaxChunk) {
      complete(p);
    }
  }

  // ---- end of connection -------------------------------------------------

  void on_eof(Dir& d) {
    if (stopped || closed || d.role != Role::kServer) return;
    if (Pending* p = awaiting(); p && p->rs == Rs::kProvisional) complete(*p);
  }

  void on_close(std::string_view error_type) {
    if (closed) return;
    closed = true;
    for (size_t k = q_head; k < q.size(); ++k) {
      Pending& p = q[k];
      if (p.done) continue;
      if (p.rs == Rs::kProvisional) {
        settle(p);
        continue;
      }
      if (p.lost) {
        if (!p.lost_desync) p.ex.truncated = true;
        fail(p, p.lost_desync ? std::string_view("desync") : error_type);
        p.ex.rows = -1;
        continue;
      }
      fail(p, error_type);
    }
    emit();
    stop();
  }
};

Session::Session(Side side, Limits limits) : impl_(std::make_unique<Impl>(side, limits)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::on_data(bool ingress, const Segment& seg) { impl_->feed(impl_->dirs[ingress], seg); }

void Session::on_eof(bool ingress, uint64_t /*ts_ns*/) { impl_->on_eof(impl_->dirs[ingress]); }

void Session::on_close(uint64_t /*ts_ns*/, std::string_view error_type) { impl_->on_close(error_type); }

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
bool Session::done() const { return impl_->stopped; }
uint64_t Session::desyncs() const { return impl_->desyncs; }

} // namespace odigos::mysql
