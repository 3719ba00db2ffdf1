// Owns the compiled-in BPF skeleton: sets the run-time knobs, loads, attaches,
// and exposes the few map operations the rest of the program needs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "odigos/abi.h"
}

struct odigos_bpf;
struct ring_buffer;
struct bpf_link;

namespace odigos {

struct ProbeConfig {
  uint32_t self_tgid = 0;
  uint32_t capture_size = 4096;
  uint32_t ringbuf_bytes = 16u << 20; // power of two
  bool filter_pid = false;
  bool filter_cgroup = false;
  uint32_t cgroup_levels = 0; // bit L: a --cgroup target sits at depth L
  bool filter_port = false;
  bool match_exe = false;
  bool tls = false;      // TLS plaintext: report executable mmaps of traced processes
  bool verbose = false; // libbpf debug output
};

// File offsets of a Go executable's probe points (see BpfProbes::attach_go).
struct GoPoints {
  uint64_t write = 0, read = 0, copied = 0;
  int n_regs_offset = -1;
  bool layout_known = false;
  uint64_t http_round_trip = 0, http_request_write = 0;
  uint64_t spawn = 0;        // goroutine creation (0: none), see GoSpawnProbe
  uint64_t spawn_cookie = 0; // g.m offset | m.curg offset << 16
  uint64_t exit = 0;         // goroutine exit (with spawn)
};

class BpfProbes {
 public:
  ~BpfProbes();
  // Opens and loads (verifies) the programs. On failure returns null and fills error.
  static std::unique_ptr<BpfProbes> load(const ProbeConfig& cfg, std::string* error);
  bool attach(std::string* error);
  // Detaches every program; maps (and the ring buffer) stay readable.
  void detach();

  bool add_tgid(uint32_t tgid, bool follow_forks);
  bool add_exe(const ot_exe_key& key);
  bool add_cgroup(uint64_t id);
  bool add_port(uint16_t port);
  bool add_listen_port(uint16_t port);
  // TLS plaintext: the programs of `lib` (enum ot_tls_lib: OpenSSL, GnuTLS)
  // at file offsets of `path` (entry and return of the library's read and
  // write functions), for process `pid` (-1: every process mapping the file).
  // Empty result: `error` says why.
  std::vector<bpf_link*> attach_tls(int lib, int pid, const std::string& path,
                                    uint64_t read_offset, uint64_t write_offset,
                                    std::string* error);
  // Go crypto/tls: entry points of (*Conn).Write and (*Conn).Read and the
  // point in Read after the copy, where the register at byte `n_regs_offset`
  // of struct pt_regs holds the count. `layout_known`: the binary's Go
  // version lays out tls.Conn/net.TCPConn/poll.FD as bpf/tls.bpf.c reads them
  // (go_conn_cookie). And, when non-zero, net/http's client points (trace
  // linking: whose request a writeLoop goroutine writes). No return probes
  // (Go moves stacks).
  // Goroutine creations the kernel side could not report (ring buffer full):
  // read from the mapped .bss, no system call.
  uint64_t go_spawn_lost() const;
  // The goroutine creation and exit probes alone (GoPoints::spawn, exit),
  // added to a Go executable already probed with attach_go.
  std::vector<bpf_link*> attach_go_spawn(int pid, const std::string& path, uint64_t offset,
                                         uint64_t cookie, uint64_t exit_offset, std::string* error);
  std::vector<bpf_link*> attach_go(int pid, const std::string& path, const GoPoints& points,
                                   std::string* error);
  static void destroy_links(std::vector<bpf_link*>& links);
  // Socket I/O starts looking for TLS calls (once the first probe is attached).
  void enable_tls();
  // Stop copying a connection's bytes in the kernel.
  void ignore_conn(uint64_t cookie);
  size_t traced_tgid_count() const;
  uint64_t drops(ot_drop_kind kind) const; // summed over CPUs
  std::vector<uint64_t> drops_per_cpu(ot_drop_kind kind) const; // index: CPU
  int events_fd() const;
  int bpf_program_count() const;

 private:
  BpfProbes() = default;
  odigos_bpf* skel_ = nullptr;
};

// The last libbpf messages (kept even without --verbose, shown on failure).
std::string libbpf_recent_log();

} // namespace odigos
