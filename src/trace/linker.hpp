// Turns request records into spans and links them into traces — never under
// a wrong parent: a span is left unlinked (and counted) rather than guessed.
//
// Evidence, strongest first:
//  1. W3C traceparent (set on the record by the HTTP/1 decoder): an incoming
//     header decides a server span's trace and parent; an outgoing one a client
//     span's trace and own id.
//  2. Across processes: a server span whose connection's other end is traced
//     (same socket pair, seen from the other side) is the child of the client
//     span of the same exchange (same index on the connection), checked by
//     time containment and, for HTTP and SQL, identical method/path or query.
//  3. In a process: a client call is the child of the server request active
//     on the same execution context (thread; goroutine in Go programs) when it
//     started. With several active (event loops), or on a context that ever
//     had several, only a server request with the same HTTP method and target
//     (a proxy forwarding what it received) qualifies, and only if unique.
//     Go: a goroutine started (`go f()`) while its parent handled exactly one
//     request, or by a goroutine that itself descends from one, works for
//     that request while it is active (go_spawn); a call it makes after the
//     request ended is left unlinked, and so is a call older than the
//     goroutine creation the linker knows for its g (the g was reused since),
//     and a call by a goroutine (or one of the goroutines between it and the
//     request) that had not ended when the request did: a worker a request
//     happened to start may serve other requests.
// Records arrive bottom-up (a child ends before its parent), so a span waits
// for the records it depends on; a trace is emitted root first, as soon as its
// root is resolved. Single-threaded: called by the ring-buffer reader.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "conn/conn_tracker.hpp"
#include "core/record.hpp"

namespace odigos::trace {

struct LinkerStats {
  uint64_t spans = 0;
  uint64_t roots = 0;            // no parent to find (nothing active, peer not traced)
  uint64_t from_header = 0;      // trace decided by a traceparent header
  uint64_t cross_process = 0;    // linked to the other end of the connection
  uint64_t in_process = 0;       // linked to the server request being handled
  uint64_t in_process_spawned = 0; // ... of them, from a goroutine the handler started
  uint64_t unlinked_ambiguous = 0;  // several possible parents, none singled out
  uint64_t unlinked_mismatch = 0;   // the candidate failed the checks
  uint64_t unlinked_timeout = 0;    // what it waited for never came
  uint64_t unlinked_ended = 0;      // a goroutine's call after the request that started it
  uint64_t unlinked_outlived = 0;   // ... during it, by a goroutine that outlived it
  uint64_t unlinked() const {
    return unlinked_ambiguous + unlinked_mismatch + unlinked_timeout + unlinked_ended + unlinked_outlived;
  }
};

struct LinkerOptions {
  // Longest wait for a record a span depends on (kernel clock).
  uint64_t max_wait_ns = 60'000'000'000ull;
  // Spans waiting at once; beyond, the oldest is resolved unlinked.
  size_t max_pending = 100'000;
  // How long an emitted span stays matchable by late records.
  uint64_t retain_ns = 10'000'000'000ull;
  uint64_t seed = 0; // 0: random ids seeded from the system
};

class Linker : public ConnObserver {
 public:
  using EmitFn = std::function<void(Record&)>;
  // True for Go programs: their execution context is the goroutine (R14).
  using IsGoFn = std::function<bool(uint32_t pid)>;

  Linker(LinkerOptions opt, EmitFn emit, IsGoFn is_go);
  ~Linker() override;
  // Called once per Go process the first time a goroutine with no request of
  // its own, and none inherited, makes a call: goroutine creations (go_spawn)
  // would tell whether a request started it. (The probe reporting them costs
  // a hit per goroutine started, so it is attached only on this demand.)
  using NeedSpawnsFn = std::function<void(uint32_t pid, const Record& call)>;
  void on_need_spawns(NeedSpawnsFn fn);
  // How many goroutine creations the kernel side could not report so far:
  // read before ancestry is trusted; when it moved, ancestry is forgotten
  // (in-band, unlike events_lost(), which comes with the periodic loss check).
  using SpawnLostFn = std::function<uint64_t()>;
  void set_spawn_lost_counter(SpawnLostFn fn);

  // Every record from the tracker; non-request records pass straight through.
  // A span decided at once is given its ids in place and emitted without a
  // copy; one that waits is taken (swapped out: `r` is left empty, as a
  // record the caller clears and fills again).
  void add(Record& r);
  void add(Record&& r) { add(r); }
  void add(const Record&) = delete; // would copy into a temporary: pass the record itself
  // Timeouts and retention; `now` on the kernel clock. Once per reader round.
  void tick(uint64_t now_mono_ns);
  // End of tracing: everything still waiting is resolved (unlinked) and emitted.
  void finish();
  // Process pid exec'd another program: what was cached about it
  // (whether it is Go, whether it serves, whether goroutine probes were
  // asked for) is forgotten.
  void process_changed(uint32_t pid);
  // Ring-buffer events were lost: goroutine creations may be among them, so
  // what was known of goroutine ancestry is forgotten (a g struct is reused
  // once its goroutine exits: a missed creation would leave a stale parent).
  void events_lost();

  const LinkerStats& stats() const;
  size_t pending() const; // spans waiting for a record they depend on, or for goroutine exits

  // ConnObserver
  void conn_open(uint64_t cookie, uint32_t pid, const ot_addr& local, const ot_addr& remote) override;
  void server_request_bytes(uint64_t cookie, uint32_t pid, uint32_t tid, uint64_t ctx,
                            uint64_t ts) override;
  void conn_end(uint64_t cookie) override;
  void go_spawn(uint32_t pid, uint64_t parent, uint64_t child, uint64_t ts) override;
  void go_exit(uint32_t pid, uint64_t g, uint64_t ts) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace odigos::trace
