#include "trace/linker.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "trace/naming.hpp"

namespace odigos::trace {

namespace {

struct ExchKey {
  uint64_t cookie;
  uint64_t seq;
  bool operator==(const ExchKey& o) const { return cookie == o.cookie && seq == o.seq; }
};
struct ExchHash {
  size_t operator()(const ExchKey& k) const { return k.cookie * 0x9e3779b97f4a7c15ull ^ k.seq; }
};

struct CtxKey {
  uint32_t pid;
  uint64_t ctx;
  bool operator==(const CtxKey& o) const { return pid == o.pid && ctx == o.ctx; }
};
struct CtxHash {
  size_t operator()(const CtxKey& k) const { return k.ctx * 0x9e3779b97f4a7c15ull ^ k.pid; }
};

// One end of a TCP connection as seen from a side: (local, remote), with
// IPv4-mapped IPv6 addresses written as IPv4 so both ends agree.
struct Endpoint {
  uint16_t family = 0;
  uint16_t port = 0;
  uint8_t addr[16] = {};
};
Endpoint endpoint(const ot_addr& a) {
  Endpoint e;
  e.family = a.family;
  e.port = a.port;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.family == AF_INET6 && memcmp(a.addr, kMapped, 12) == 0) {
    e.family = AF_INET;
    memcpy(e.addr, a.addr + 12, 4);
  } else if (a.family == AF_INET) {
    memcpy(e.addr, a.addr, 4);
  } else {
    memcpy(e.addr, a.addr, 16);
  }
  return e;
}
struct PairKey {
  Endpoint local, remote;
  bool operator==(const PairKey& o) const { return memcmp(this, &o, sizeof(*this)) == 0; }
};
static_assert(sizeof(PairKey) == 40);
struct PairHash {
  size_t operator()(const PairKey& k) const {
    uint64_t w[5];
    memcpy(w, &k, sizeof(w));
    uint64_t h = 0;
    for (uint64_t x : w) h = (h ^ x) * 0x9e3779b97f4a7c15ull + (h >> 29);
    return h;
  }
};

uint64_t fnv(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ull;
  return h;
}

// What must be equal on both ends of one exchange, and what a proxy forwards
// unchanged: HTTP method and target; a SQL query's text; 0 when not known.
uint64_t content_of(const Record& r) {
  if (r.protocol == "http") {
    std::string_view m = r.get_view("http.request.method");
    if (m.empty()) return 0;
    uint64_t h = fnv(m);
    h = fnv(r.get_view("url.path"), h ^ 1);
    if (r.get("url.query")) h = fnv(r.get_view("url.query"), h ^ 2);
    return h;
  }
  std::string_view q = r.get_view("db.query.text");
  return q.empty() ? 0 : fnv(r.protocol, fnv(q));
}

// One goroutine's life on a g struct: the g and when it was created.
struct Incarnation {
  uint64_t g = 0;
  uint64_t spawned_at = 0;
};
// The goroutines from a request's own goroutine down to one that works for it
// (the request's goroutine itself excluded), outermost first.
constexpr size_t kMaxSpawnDepth = 4;
struct SpawnChain {
  std::array<Incarnation, kMaxSpawnDepth> inc{};
  uint8_t depth = 0;
};
struct IncKey {
  uint32_t pid;
  uint64_t g, spawned_at;
  bool operator==(const IncKey& o) const { return pid == o.pid && g == o.g && spawned_at == o.spawned_at; }
};
struct IncHash {
  size_t operator()(const IncKey& k) const {
    return (k.g * 0x9e3779b97f4a7c15ull) ^ (k.spawned_at * 0xc2b2ae3d27d4eb4full) ^ k.pid;
  }
};

} // namespace

struct Node {
  Record rec;
  uint64_t seq = 0;     // index of the exchange on its connection
  uint64_t content = 0; // content_of(rec)
  uint64_t arrived = 0; // kernel clock, for the wait bound
  // Waiting for records (the mirror client exchange, or the server requests
  // active when this call started): how many have not arrived or ended yet.
  std::vector<ExchKey> deps;
  size_t missing = 0;
  bool multi = false;   // the context ever had several server requests active
  bool spawned = false; // its dependency is the request that started its goroutine
  bool ended = false;   // ... which had ended when it started
  SpawnChain chain;     // spawned: the goroutines that must have ended first
  bool exit_wait = false;      // its request's record is here; waiting for those exits
  bool exit_wait_over = false; // ... in vain
  uint64_t exit_deadline = 0;
  bool decided = false; // parent chosen (or none)
  Node* parent = nullptr;
  std::vector<Node*> trace_waiters; // children waiting for our trace id
  bool emitted = false;
  uint64_t emitted_at = 0;
  bool retain = false; // a late server span may look for us (client with a traced peer)
  int pins = 0;        // waiters holding a pointer to us
  // The traceparent the request carried (span_from_header): its trace id and
  // parent id (server: the caller's span; client: what the header names).
  std::array<uint8_t, 16> hdr_trace{};
  std::array<uint8_t, 8> hdr_parent{};
};

struct Linker::Impl {
  LinkerOptions opt;
  EmitFn emit;
  IsGoFn is_go;
  LinkerStats stats;
  std::mt19937_64 rng;
  uint64_t now = 0; // latest kernel time seen

  std::unordered_map<Node*, std::unique_ptr<Node>> nodes;
  std::unordered_map<ExchKey, Node*, ExchHash> arrived;  // retained or pinned nodes by exchange
  std::unordered_map<ExchKey, std::vector<Node*>, ExchHash> waiters;
  std::unordered_map<uint64_t, std::vector<uint64_t>> waited_seqs; // cookie -> seqs waited on
  std::unordered_set<Node*> waiting;
  // Everything known of one connection, in one entry: one lookup per record
  // or request start.
  struct Conn {
    PairKey pair{};
    bool has_pair = false; // addresses known (conn_open)
    uint32_t pid = 0;
    int8_t go = -1;        // the process is Go (-1: not asked yet)
    bool ended = false;
    uint64_t ended_at = 0;
    uint64_t seq = 0;      // request records so far
    // The other end, when traced: looked up at the first record (its
    // conn_open always comes first: it read or wrote before we got a record).
    enum : uint8_t { kUnknown, kNone, kFound } mirror_state = kUnknown;
    uint64_t mirror = 0;
    // The server request being handled on this connection (active).
    bool on = false;
    CtxKey key{};
    uint64_t since = 0;
    uint64_t active_seq = 0;
  };
  std::unordered_map<uint64_t, Conn> conns;
  std::unordered_map<PairKey, uint64_t, PairHash> by_pair;
  std::unordered_map<CtxKey, std::vector<uint64_t>, CtxHash> active_by_ctx; // active cookies
  std::unordered_set<CtxKey, CtxHash> multi_ctx;
  // Go: the server request a goroutine works for, inherited from the
  // goroutine that started it (its exchange on its connection).
  struct Origin {
    uint64_t cookie = 0;
    uint64_t seq = 0;
    uint64_t spawned_at = 0; // the goroutine's creation (kernel clock)
    SpawnChain chain;        // it and the goroutines between it and the request
  };
  // Goroutines working for a request that ended: when (kernel clock), kept
  // while their request is active and a little after.
  struct Exit {
    uint64_t cookie = 0, seq = 0; // the request it worked for (Origin's, not its chain)
    uint64_t at = 0;
  };
  std::unordered_map<IncKey, Exit, IncHash> exited;
  // A goroutine working for a request may end a little after the request's
  // response went out (its WaitGroup.Done wakes the handler first): spans
  // whose goroutines have not ended yet when the request's record arrives
  // wait that long for their exits.
  static constexpr uint64_t kExitGraceNs = 50'000'000;
  std::vector<Node*> exit_waiting;
  // Have n's goroutine and those between it and its request all ended, by
  // kExitGraceNs after the request's end?
  bool chain_exited(const Node* n, uint64_t request_end) const {
    for (uint8_t i = 0; i < n->chain.depth; i++) {
      auto e = exited.find(IncKey{n->rec.pid, n->chain.inc[i].g, n->chain.inc[i].spawned_at});
      if (e == exited.end() || e->second.at > request_end + kExitGraceNs) return false;
    }
    return true;
  }
  // The request record a spawned span depends on, once arrived.
  Node* spawn_request(const Node* n) const {
    if (n->deps.size() != 1) return nullptr;
    auto a = arrived.find(n->deps[0]);
    return a == arrived.end() ? nullptr : a->second;
  }
  std::unordered_map<CtxKey, Origin, CtxHash> spawned;
  static constexpr size_t kMaxSpawned = 65536;
  Linker::NeedSpawnsFn need_spawns;
  std::unordered_set<uint32_t> spawns_asked; // pids need_spawns was called for
  Linker::SpawnLostFn spawn_lost;
  uint64_t spawn_lost_seen = 0;
  // Creations were lost since ancestry was last trusted: forget it.
  void check_spawn_loss() {
    if (!spawn_lost) return;
    uint64_t v = spawn_lost();
    if (v != spawn_lost_seen) {
      spawn_lost_seen = v;
      spawned.clear();
    }
  }
  // Go processes that have served requests (noted at each server
  // connection's first request).
  std::unordered_set<uint32_t> go_servers;
  std::unordered_map<uint32_t, bool> go_cache;
  std::vector<Node*> retained;
  std::vector<Node*> resolve_stack; // resolve_trace's scratch
  uint64_t last_sweep = 0;

  void deactivate(uint64_t cookie, Conn& c) {
    c.on = false;
    auto it = active_by_ctx.find(c.key);
    if (it == active_by_ctx.end()) return;
    auto& v = it->second; // kept when empty: reused by the next request
    v.erase(std::remove(v.begin(), v.end(), cookie), v.end());
  }

  bool go(uint32_t pid) {
    auto it = go_cache.find(pid);
    if (it != go_cache.end()) return it->second;
    bool g = is_go ? is_go(pid) : false;
    if (go_cache.size() > 65536) go_cache.clear();
    go_cache.emplace(pid, g);
    return g;
  }
  uint64_t ctx_of(Conn& c, uint32_t pid, uint32_t tid, uint64_t user_ctx) {
    if (c.go < 0 || c.pid != pid) {
      c.pid = pid;
      c.go = go(pid);
    }
    return c.go ? user_ctx : tid;
  }

  // Is request `seq` of connection `cookie` still being handled?
  const Conn* active(uint64_t cookie, uint64_t seq) const {
    auto c = conns.find(cookie);
    return c != conns.end() && c->second.on && c->second.active_seq == seq ? &c->second : nullptr;
  }
  const Conn* active(const Origin& o) const { return active(o.cookie, o.seq); }
  // The one request context k works for: its own active one, else the one it
  // inherited when its goroutine was started, if still active.
  bool origin_of(const CtxKey& k, Origin* o) const {
    if (multi_ctx.count(k)) return false;
    auto it = active_by_ctx.find(k);
    if (it != active_by_ctx.end() && !it->second.empty()) {
      if (it->second.size() != 1) return false;
      auto c = conns.find(it->second[0]);
      if (c == conns.end() || !c->second.on) return false;
      *o = Origin{it->second[0], c->second.active_seq, 0, {}};
      return true;
    }
    auto s = spawned.find(k);
    if (s == spawned.end() || !active(s->second)) return false;
    *o = s->second;
    return true;
  }

  // The other end of connection c (cookie), if it is traced too.
  Conn* mirror(uint64_t cookie, Conn& c) {
    if (c.mirror_state == Conn::kUnknown) {
      c.mirror_state = Conn::kNone;
      if (c.has_pair && c.pair.local.family != AF_UNIX) {
        auto p = by_pair.find(PairKey{c.pair.remote, c.pair.local});
        if (p != by_pair.end() && p->second != cookie) {
          c.mirror_state = Conn::kFound;
          c.mirror = p->second;
        }
      }
    }
    if (c.mirror_state != Conn::kFound) return nullptr;
    auto it = conns.find(c.mirror);
    return it == conns.end() ? nullptr : &it->second;
  }

  template <size_t N>
  void random_id(std::array<uint8_t, N>& out) {
    bool zero = true;
    while (zero) {
      for (size_t i = 0; i < N; i += 8) {
        uint64_t v = rng();
        memcpy(out.data() + i, &v, std::min<size_t>(8, N - i));
      }
      zero = std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; });
    }
  }

  void add(Record& r);
  void depend(Node* n, ExchKey k);
  void arrive(Node* n, ExchKey k);
  void dep_done(ExchKey k, Node* arrived_node);
  void decide(Node* n, bool forced);
  void decide_server(Node* n);
  void decide_client(Node* n);
  void unlink(Node* n, uint64_t& counter, const char* why);
  void inherit(Node* c, Node* p);
  void resolve_trace(Node* n);
  void release(Node* n);
  void maybe_free(Node* n);
  void sweep(bool all);
};

void Linker::Impl::add(Record& in) {
  if (in.kind != RecordKind::kRequest) {
    emit(in);
    return;
  }
  now = std::max(now, in.end_mono_ns);
  stats.spans++;
  Conn& conn = conns[in.conn_cookie];
  const uint64_t seq = conn.seq++;
  const ExchKey key{in.conn_cookie, seq};
  const uint64_t ctx = ctx_of(conn, in.pid, in.tid, in.exec_ctx);

  // What this span depends on, and who may depend on it.
  std::vector<ExchKey> deps;
  bool dep_arrived = false; // the mirror exchange is already here
  bool dep_ended = false;   // ... or will never come
  bool multi = false;
  bool retain = false;
  bool via_spawn = false, ended = false;
  SpawnChain chain;
  if (in.side == RecordSide::kServer) {
    // This request is no longer being handled.
    if (conn.on) deactivate(in.conn_cookie, conn);
    // The other end traced: its exchange is the parent, header or not (a
    // proxy forwards the header it received: the caller it names is not
    // the one on this connection).
    if (const Conn* m = mirror(in.conn_cookie, conn)) {
      ExchKey pk{conn.mirror, seq};
      deps.push_back(pk);
      dep_arrived = arrived.count(pk) > 0;
      dep_ended = !dep_arrived && m->ended && m->seq <= seq;
    }
  } else if (in.side == RecordSide::kClient) {
    CtxKey ck{in.pid, ctx};
    multi = multi_ctx.count(ck) > 0;
    auto it = active_by_ctx.find(ck);
    if (it != active_by_ctx.end() && !it->second.empty()) {
      for (uint64_t sc : it->second) {
        auto a = conns.find(sc);
        if (a != conns.end() && a->second.since <= in.start_mono_ns)
          deps.push_back(ExchKey{sc, a->second.active_seq});
      }
    } else if (!multi && !spawned.empty()) {
      // A goroutine started for a request: that request, while it lasts.
      check_spawn_loss();
      auto s = spawned.find(ck);
      // A call older than the creation known for its g was made by the
      // g's previous goroutine: nothing is known of that one.
      if (s != spawned.end() && s->second.spawned_at <= in.start_mono_ns) {
        const Conn* a = active(s->second);
        if (a && a->since <= in.start_mono_ns) {
          deps.push_back(ExchKey{s->second.cookie, s->second.seq});
          via_spawn = true;
          chain = s->second.chain;
        } else {
          ended = true;
        }
      }
    }
    if (deps.empty() && !ended && conn.go == 1 && need_spawns && !spawns_asked.count(in.pid) &&
        go_servers.count(in.pid)) {
      spawns_asked.insert(in.pid);
      need_spawns(in.pid, in);
    }
    // A late server span of a traced peer may look for this exchange.
    retain = mirror(in.conn_cookie, conn) != nullptr;
  }
  const bool awaited = !waiters.empty() && waiters.count(key) > 0;

  // Nothing to wait for, nobody waiting, nothing to keep: a root (or a span
  // its header decides), given its ids and emitted in place, no copy.
  if (deps.empty() && !awaited && !retain) {
    if (in.span_from_header) {
      if (in.side == RecordSide::kServer) random_id(in.span.span_id);
      stats.from_header++;
    } else {
      random_id(in.span.span_id);
      random_id(in.span.trace_id);
      if (ended) {
        stats.unlinked_ended++;
        in.set("odigos.trace.unlinked", std::string("parent_ended"));
      } else {
        stats.roots++;
      }
    }
    name_span(in);
    emit(in);
    return;
  }

  auto owned = std::make_unique<Node>();
  Node* n = owned.get();
  nodes.emplace(n, std::move(owned));
  std::swap(n->rec, in); // taken, not copied: the caller's record is left empty
  const Record& r = n->rec;
  n->seq = seq;
  n->content = content_of(r);
  n->arrived = now;
  n->multi = multi;
  n->spawned = via_spawn;
  n->ended = ended;
  n->chain = chain;
  n->retain = retain;
  if (r.span_from_header) {
    n->hdr_trace = r.span.trace_id;
    n->hdr_parent = r.side == RecordSide::kClient ? r.span.span_id : r.span.parent_span_id;
  }
  if (!r.span_from_header || r.side != RecordSide::kClient) random_id(n->rec.span.span_id);
  for (auto& k : deps) {
    if (r.side == RecordSide::kServer && (dep_arrived || dep_ended)) {
      n->deps.push_back(k);
      if (dep_arrived) arrived[k]->pins++;
    } else {
      depend(n, k);
    }
  }
  arrive(n, key);
  if (n->missing == 0) decide(n, false);
  else waiting.insert(n);
}

void Linker::Impl::depend(Node* n, ExchKey k) {
  n->deps.push_back(k);
  n->missing++;
  waiters[k].push_back(n);
  waited_seqs[k.cookie].push_back(k.seq);
}

// n, the record of exchange k, arrived: those waiting for it get one
// dependency fewer (and keep n pinned until they decide).
void Linker::Impl::arrive(Node* n, ExchKey k) {
  arrived[k] = n;
  dep_done(k, n);
}

void Linker::Impl::dep_done(ExchKey k, Node* arrived_node) {
  auto w = waiters.find(k);
  if (w == waiters.end()) return;
  if (arrived_node) { // no longer waited for on its connection
    auto ws = waited_seqs.find(k.cookie);
    if (ws != waited_seqs.end()) {
      auto& v = ws->second;
      v.erase(std::remove(v.begin(), v.end(), k.seq), v.end());
      if (v.empty()) waited_seqs.erase(ws);
    }
  }
  std::vector<Node*> ws = std::move(w->second);
  waiters.erase(w);
  // Pinned for every waiter first: a waiter's decision may unpin it.
  if (arrived_node) arrived_node->pins += int(ws.size());
  for (Node* x : ws) {
    if (x->missing > 0 && --x->missing == 0) {
      waiting.erase(x);
      decide(x, false);
    }
  }
}

void Linker::Impl::unlink(Node* n, uint64_t& counter, const char* why) {
  counter++;
  n->parent = nullptr;
  n->rec.set("odigos.trace.unlinked", std::string(why));
}

void Linker::Impl::decide(Node* n, bool forced) {
  if (n->decided) return;
  // A call of a goroutine started for the request: decided once the
  // goroutines' exits are here, or their wait is over.
  if (!forced && n->spawned && !n->exit_wait_over && n->missing == 0) {
    Node* req = spawn_request(n);
    if (req && !chain_exited(n, req->rec.end_mono_ns)) {
      if (!n->exit_wait) {
        n->exit_wait = true;
        n->exit_deadline = now + kExitGraceNs;
        exit_waiting.push_back(n);
      }
      return;
    }
  }
  if (n->exit_wait) {
    n->exit_wait = false;
    exit_waiting.erase(std::remove(exit_waiting.begin(), exit_waiting.end(), n), exit_waiting.end());
  }
  n->decided = true;
  if (forced && n->missing > 0) {
    unlink(n, stats.unlinked_timeout, "timeout");
  } else if (n->rec.side == RecordSide::kServer) {
    decide_server(n);
  } else {
    decide_client(n);
  }
  std::vector<ExchKey> deps = std::move(n->deps);
  if (n->parent && !n->parent->emitted) {
    n->parent->trace_waiters.push_back(n);
  } else {
    if (n->parent) inherit(n, n->parent);
    resolve_trace(n);
  }
  // What it waited for is no longer needed by it: the nodes that arrived
  // while it waited (pinned then) are unpinned.
  for (auto& k : deps) {
    auto a = arrived.find(k);
    if (a != arrived.end() && a->second->pins > 0 && a->second != n) {
      Node* d = a->second;
      d->pins--;
      maybe_free(d);
    }
  }
}

void Linker::Impl::decide_server(Node* n) {
  const bool header = n->rec.span_from_header;
  auto a = n->deps.empty() ? arrived.end() : arrived.find(n->deps[0]);
  Node* c = a == arrived.end() ? nullptr : a->second;
  if (header && c && !(c->rec.side == RecordSide::kClient && c->rec.span_from_header &&
                       c->hdr_trace == n->hdr_trace && c->hdr_parent == n->hdr_parent))
    c = nullptr; // the peer did not send this header: it decides
  if (header && !c) {
    stats.from_header++;
    return;
  }
  if (n->deps.empty()) {
    stats.roots++;
    return;
  }
  if (!c) {
    unlink(n, stats.unlinked_mismatch, "peer_missing");
    return;
  }
  const Record& cr = c->rec;
  const Record& sr = n->rec;
  bool contained = cr.start_mono_ns <= sr.start_mono_ns && sr.end_mono_ns <= cr.end_mono_ns;
  bool same = cr.side == RecordSide::kClient && cr.protocol == sr.protocol &&
              (c->content == 0 || n->content == 0 || c->content == n->content);
  if (!contained || !same) {
    if (header) stats.from_header++; // the header still decides
    else unlink(n, stats.unlinked_mismatch, contained ? "peer_mismatch" : "peer_time");
    return;
  }
  n->parent = c;
  stats.cross_process++;
}

void Linker::Impl::decide_client(Node* n) {
  if (n->deps.empty()) {
    if (n->ended && !n->rec.span_from_header) unlink(n, stats.unlinked_ended, "parent_ended");
    else if (!n->rec.span_from_header) stats.roots++;
    return;
  }
  std::vector<Node*> cands;
  for (auto& k : n->deps) {
    auto a = arrived.find(k);
    if (a == arrived.end()) continue;
    Node* s = a->second;
    if (s->rec.side == RecordSide::kServer && s->rec.pid == n->rec.pid &&
        s->rec.start_mono_ns <= n->rec.start_mono_ns && n->rec.end_mono_ns <= s->rec.end_mono_ns)
      cands.push_back(s);
  }
  // A header the application "sends" may be one it forwards: the one a
  // request it is handling came with. Then it does not name this call's span.
  if (n->rec.span_from_header) {
    for (auto& k : n->deps) {
      auto a = arrived.find(k);
      if (a == arrived.end()) continue;
      Node* s = a->second;
      if (s->rec.side == RecordSide::kServer && s->rec.span_from_header &&
          s->hdr_trace == n->hdr_trace && s->hdr_parent == n->hdr_parent) {
        random_id(n->rec.span.span_id);
        break;
      }
    }
  }
  Node* parent = nullptr;
  if (n->spawned && cands.size() == 1 && !chain_exited(n, cands[0]->rec.end_mono_ns)) {
    // Its goroutine, and those between it and the request, must have ended
    // with the request: a goroutine that lives on may be a worker serving
    // other requests.
    unlink(n, stats.unlinked_outlived, "outlived");
    return;
  }
  if (cands.size() == 1 && n->deps.size() == 1 && !n->multi) {
    parent = cands[0];
  } else if (!cands.empty()) {
    // An event loop handles several requests on one thread: only a request
    // that forwards what it received identifies its parent.
    Node* match = nullptr;
    int matches = 0;
    for (Node* s : cands)
      if (n->rec.protocol == "http" && s->rec.protocol == "http" && n->content &&
          n->content == s->content) {
        match = s;
        matches++;
      }
    if (matches == 1) parent = match;
    else {
      unlink(n, stats.unlinked_ambiguous, "ambiguous");
      return;
    }
  } else {
    unlink(n, stats.unlinked_mismatch, "parent_missing");
    return;
  }
  n->parent = parent;
  stats.in_process++;
  if (n->spawned) stats.in_process_spawned++;
}

// Child c takes the trace of its (resolved) parent p — unless c carries the
// application's own context for another trace, which wins.
void Linker::Impl::inherit(Node* c, Node* p) {
  Record& r = c->rec;
  c->parent = nullptr; // p may be freed once emitted
  if (r.span_from_header && r.span.trace_id != p->rec.span.trace_id) {
    if (r.side == RecordSide::kClient) {
      stats.in_process--;
      if (c->spawned) stats.in_process_spawned--;
    }
    else stats.cross_process--;
    unlink(c, stats.unlinked_mismatch, "trace_conflict");
    return;
  }
  r.span.trace_id = p->rec.span.trace_id;
  r.span.parent_span_id = p->rec.span.span_id;
  if (r.trace_state.empty()) r.trace_state = p->rec.trace_state;
}

// n has its parent's ids (or no parent): it gets a trace if it has none, is
// emitted, and so are the children that waited for it.
void Linker::Impl::resolve_trace(Node* first) {
  std::vector<Node*>& stack = resolve_stack; // emit() never comes back here
  stack.assign(1, first);
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    Record& r = n->rec;
    if (!r.span.valid()) random_id(r.span.trace_id);
    name_span(r);
    emit(r);
    n->emitted = true;
    n->emitted_at = now;
    for (Node* c : n->trace_waiters) {
      inherit(c, n);
      stack.push_back(c);
    }
    n->trace_waiters.clear();
    release(n);
  }
}

// Emitted: the record's attributes are no longer needed (matching reads
// side, protocol, times and ids; the content is hashed in the node). A client
// span a late peer may still look for is kept (without them) until the sweep
// lets it go; others go once no waiter holds them.
void Linker::Impl::release(Node* n) {
  if (n->retain) {
    retained.push_back(n);
    std::vector<Record::Attr>().swap(n->rec.attrs);
    n->rec.owned_keys.clear();
  }
  maybe_free(n);
}

void Linker::Impl::maybe_free(Node* n) {
  if (!n->emitted || n->retain || n->pins > 0 || !n->trace_waiters.empty()) return;
  ExchKey k{n->rec.conn_cookie, n->seq};
  auto a = arrived.find(k);
  if (a != arrived.end() && a->second == n) arrived.erase(a);
  nodes.erase(n);
}

void Linker::Impl::sweep(bool all) {
  // Retained nodes past their time.
  size_t keep = 0;
  for (Node* n : retained) {
    if (all || now >= n->emitted_at + opt.retain_ns) {
      n->retain = false;
      maybe_free(n);
    } else {
      retained[keep++] = n;
    }
  }
  retained.resize(keep);
  // Spans that waited too long (or all of them at the end).
  std::vector<Node*> late;
  for (Node* n : waiting)
    if (all || now >= n->arrived + opt.max_wait_ns) late.push_back(n);
  if (!all && waiting.size() > opt.max_pending) {
    std::vector<Node*> w(waiting.begin(), waiting.end());
    std::sort(w.begin(), w.end(), [](Node* a, Node* b) { return a->arrived < b->arrived; });
    for (size_t i = 0; i < w.size() - opt.max_pending; i++) late.push_back(w[i]);
  }
  std::sort(late.begin(), late.end(), [](Node* a, Node* b) { return a->arrived < b->arrived; });
  late.erase(std::unique(late.begin(), late.end()), late.end());
  for (Node* n : late) {
    if (!waiting.erase(n)) continue;
    for (auto& k : n->deps) {
      auto w = waiters.find(k);
      if (w == waiters.end()) continue;
      auto& v = w->second;
      v.erase(std::remove(v.begin(), v.end(), n), v.end());
      if (v.empty()) waiters.erase(w);
    }
    decide(n, true);
  }
  // Requests active for longer than any wait (a stream nobody answers) are
  // no longer candidate parents; ended connections are forgotten once nothing
  // can ask about them.
  for (auto it = conns.begin(); it != conns.end();) {
    Conn& c = it->second;
    if (c.on && (all || now >= c.since + opt.max_wait_ns)) deactivate(it->first, c);
    if (c.ended && (all || now >= c.ended_at + opt.retain_ns)) {
      if (c.has_pair) {
        auto p = by_pair.find(c.pair);
        if (p != by_pair.end() && p->second == it->first) by_pair.erase(p);
      }
      it = conns.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = active_by_ctx.begin(); it != active_by_ctx.end();) {
    if (it->second.empty() && active_by_ctx.size() > 4096) it = active_by_ctx.erase(it);
    else ++it;
  }
  // Goroutines of requests long gone (a program that keeps starting new ones).
  if (all || spawned.size() > kMaxSpawned)
    for (auto it = spawned.begin(); it != spawned.end();)
      it = all || !active(it->second) ? spawned.erase(it) : std::next(it);
  // Spans whose goroutines did not end with their request.
  if (!exit_waiting.empty()) {
    std::vector<Node*> over;
    for (Node* n : exit_waiting)
      if (all || now >= n->exit_deadline) over.push_back(n);
    for (Node* n : over) {
      n->exit_wait_over = true;
      decide(n, false);
    }
  }
  // Exits nothing asks about any more: their request is over (and the
  // waits for late exits too).
  for (auto it = exited.begin(); it != exited.end();)
    it = all || (!active(it->second.cookie, it->second.seq) && now >= it->second.at + 4 * kExitGraceNs)
             ? exited.erase(it)
             : std::next(it);
}

Linker::Linker(LinkerOptions opt, EmitFn emit, IsGoFn is_go) : impl_(std::make_unique<Impl>()) {
  impl_->opt = opt;
  impl_->emit = std::move(emit);
  impl_->is_go = std::move(is_go);
  uint64_t seed = opt.seed;
  if (!seed) {
    std::random_device rd;
    seed = (uint64_t(rd()) << 32) ^ rd();
  }
  impl_->rng.seed(seed);
}

Linker::~Linker() = default;

void Linker::on_need_spawns(NeedSpawnsFn fn) { impl_->need_spawns = std::move(fn); }

void Linker::set_spawn_lost_counter(SpawnLostFn fn) {
  impl_->spawn_lost = std::move(fn);
  impl_->spawn_lost_seen = impl_->spawn_lost ? impl_->spawn_lost() : 0;
}

void Linker::add(Record& r) { impl_->add(r); }

void Linker::tick(uint64_t now) {
  Impl& m = *impl_;
  m.now = std::max(m.now, now);
  if (m.now < m.last_sweep + 200'000'000ull && m.waiting.size() <= m.opt.max_pending) return;
  m.last_sweep = m.now;
  m.sweep(false);
}

void Linker::finish() { impl_->sweep(true); }

const LinkerStats& Linker::stats() const { return impl_->stats; }
size_t Linker::pending() const { return impl_->waiting.size() + impl_->exit_waiting.size(); }

void Linker::conn_open(uint64_t cookie, uint32_t pid, const ot_addr& local, const ot_addr& remote) {
  Impl& m = *impl_;
  Impl::Conn& c = m.conns[cookie];
  if (c.has_pair) {
    auto p = m.by_pair.find(c.pair);
    if (p != m.by_pair.end() && p->second == cookie) m.by_pair.erase(p);
  }
  c.pair = PairKey{endpoint(local), endpoint(remote)};
  c.has_pair = true;
  c.pid = pid;
  c.go = -1;
  c.mirror_state = Impl::Conn::kUnknown;
  m.by_pair[c.pair] = cookie;
}

void Linker::server_request_bytes(uint64_t cookie, uint32_t pid, uint32_t tid, uint64_t user_ctx,
                                  uint64_t ts) {
  Impl& m = *impl_;
  Impl::Conn& c = m.conns[cookie];
  if (c.on) return;
  CtxKey key{pid, m.ctx_of(c, pid, tid, user_ctx)};
  if (!c.since && c.go == 1 && m.need_spawns) m.go_servers.insert(pid);
  c.on = true;
  c.key = key;
  c.since = ts;
  c.active_seq = c.seq;
  auto& v = m.active_by_ctx[key];
  v.push_back(cookie);
  if (v.size() > 1) m.multi_ctx.insert(key);
  if (m.multi_ctx.size() > 65536) m.multi_ctx.clear();
}

void Linker::go_spawn(uint32_t pid, uint64_t parent, uint64_t child, uint64_t ts) {
  Impl& m = *impl_;
  m.check_spawn_loss();
  // The child's g struct may have served an earlier goroutine: what is known
  // of it (requests it had active, several at once, an origin) was that one's.
  const CtxKey ck{pid, child};
  if (auto a = m.active_by_ctx.find(ck); a != m.active_by_ctx.end()) a->second.clear();
  m.multi_ctx.erase(ck);
  Impl::Origin o;
  if (parent && m.origin_of(CtxKey{pid, parent}, &o) && o.chain.depth < kMaxSpawnDepth) {
    o.spawned_at = ts;
    o.chain.inc[o.chain.depth++] = Incarnation{child, ts};
    m.spawned[ck] = o;
  } else if (!m.spawned.empty()) {
    m.spawned.erase(ck);
  }
}

void Linker::go_exit(uint32_t pid, uint64_t g, uint64_t ts) {
  Impl& m = *impl_;
  auto s = m.spawned.find(CtxKey{pid, g});
  if (s == m.spawned.end()) return; // not one that works for a request
  if (m.exited.size() >= Impl::kMaxSpawned) m.exited.clear(); // spans then stay unlinked
  const IncKey key{pid, g, s->second.spawned_at};
  m.exited[key] = Impl::Exit{s->second.cookie, s->second.seq, ts};
  m.spawned.erase(s);
  // Spans that waited for this exit.
  if (m.exit_waiting.empty()) return;
  std::vector<Node*> ready;
  for (Node* n : m.exit_waiting) {
    if (n->rec.pid != pid) continue;
    for (uint8_t i = 0; i < n->chain.depth; i++)
      if (n->chain.inc[i].g == g && n->chain.inc[i].spawned_at == key.spawned_at) ready.push_back(n);
  }
  for (Node* n : ready) m.decide(n, false); // decides, or keeps waiting for another exit
}

void Linker::events_lost() { impl_->spawned.clear(); }

void Linker::process_changed(uint32_t pid) {
  Impl& m = *impl_;
  m.go_cache.erase(pid);
  m.spawns_asked.erase(pid);
  m.go_servers.erase(pid);
}

void Linker::conn_end(uint64_t cookie) {
  Impl& m = *impl_;
  auto c = m.conns.find(cookie);
  if (c != m.conns.end()) {
    if (c->second.on) m.deactivate(cookie, c->second);
    c->second.ended = true;
    c->second.ended_at = m.now;
  }
  // Exchanges waited for on it will not come.
  auto w = m.waited_seqs.find(cookie);
  if (w != m.waited_seqs.end()) {
    std::vector<uint64_t> seqs = std::move(w->second);
    m.waited_seqs.erase(w);
    for (uint64_t s : seqs) m.dep_done(ExchKey{cookie, s}, nullptr);
  }
}

} // namespace odigos::trace
