// TLS plaintext probes, per process: finds the TLS libraries a traced process
// maps (libssl.so*, libgnutls.so*, or OpenSSL/GnuTLS linked into its
// executable), picks cheap probe
// points once per library file (src/loader/probe_points.cpp) and attaches the
// uprobes for that process only, so other processes mapping the same library
// (load generators included) are never trapped. Called at start for the
// traced processes and then on their fork, exec and executable-mmap events;
// detaches when they exit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <set>
#include <mutex>
#include <thread>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loader/go_binary.hpp"
#include "loader/probe_points.hpp"

struct bpf_link;

namespace odigos {

class BpfProbes;

class TlsAttacher {
 public:
  explicit TlsAttacher(BpfProbes& probes);
  ~TlsAttacher();
  TlsAttacher(const TlsAttacher&) = delete;
  TlsAttacher& operator=(const TlsAttacher&) = delete;

  // Attaches to the TLS libraries `pid` maps and is not probed in yet.
  // Returns how many libraries were newly probed in it.
  int scan(uint32_t pid);
  // Launch mode, before the command execs: the files it will load (its
  // executable, the system's libssl), probed for its PID already.
  int attach_files(uint32_t pid, const std::vector<std::string>& paths);
  // --exe targets: TLS code inside the executable itself (Go, static OpenSSL)
  // is probed once for every process running it — only those trap — so a
  // process exec'd later is covered from its first instruction.
  int attach_global_files(const std::vector<std::string>& paths);
  // Every process mapping a library found in `pids` (tracing all processes).
  int scan_global(const std::vector<uint32_t>& pids);
  // A traced process forked. Attaching a uprobe takes tens of milliseconds
  // on this kernel (each registration waits for RCU grace periods), longer
  // than a forked server child takes to start its TLS handshake. A probed
  // process that forks (PostgreSQL forks a backend per connection) has its
  // TLS libraries attached for every process instead, filtered in the kernel
  // by the traced set; its per-process attachments are then dropped.
  void on_fork(uint32_t parent);
  // The process exited: its probes go.
  void forget(uint32_t pid);
  // Trace linking wants the goroutine-creation probe of pid's Go executable
  // (a call came from a goroutine serving no request): attached from now on
  // for every traced process running that file. Not attached before: it
  // costs a probe hit per goroutine started (net/http's server starts one
  // per request), useless where handlers start none that make calls.
  // Returns whether it was newly attached.
  bool follow_goroutines(uint32_t pid);
  // Problems worth telling the user, each once (a library without a cheap
  // probe point, an attach failure).
  std::vector<std::string> take_messages();
  // Where each file got its probes (file offsets), once per file: for -v, and
  // for benchmarks that put other probes on the same points.
  std::vector<std::string> take_notes();
  // The libssl files a launched command would load (standard library paths).
  static std::vector<std::string> system_libraries();

 private:
  using FileKey = std::pair<uint64_t, uint64_t>; // (dev, ino)
  struct Library {
    bool usable = false;
    int kind = 0;             // enum ot_tls_lib
    uint64_t read_offset = 0; // uprobe offsets of the read and write functions
    uint64_t write_offset = 0;
    uint64_t copied_offset = 0; // Go: Read's point after the copy
    int n_regs_offset = -1;     // Go: where the count is there (struct pt_regs)
    int go_minor = 0;           // Go: 19 for go1.19.x
    uint64_t http_round_trip = 0;   // Go: net/http client points (0: none), see GoTlsProbes
    uint64_t http_request_write = 0;
    uint64_t spawn = 0;        // Go: goroutine creation point (0: none), see GoSpawnProbe
    uint64_t spawn_cookie = 0;
    uint64_t spawn_exit = 0;   // Go: goroutine exit point, with spawn
    bool spawn_wanted = false; // attach them too (follow_goroutines)
  };
  const Library& library(const FileKey& key, const std::string& path, bool expect_tls);
  // The one way files get probed: for `who` (a PID, or kGlobal: every
  // process), unless already probed there (or for everyone), or failed there
  // before. Returns whether it was newly probed.
  bool attach_file(uint32_t who, const FileKey& key, const std::string& path, bool expect_tls);
  bool probed(uint32_t who, const FileKey& key) const;
  int attach_paths(uint32_t who, const std::vector<std::string>& paths);
  static constexpr uint32_t kGlobal = ~0u;

  // Closing a uprobe waits for an SRCU grace period in the kernel (~ms each):
  // links of exited processes are closed by a background thread so the ring
  // buffer reader is not held up (a fork-per-connection server exits a
  // process per connection).
  void reap(std::vector<bpf_link*> links);
  void reaper_main();
  std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::vector<bpf_link*> to_reap_;
  bool reaper_stop_ = false;
  std::thread reaper_;

  BpfProbes& probes_;
  std::map<FileKey, Library> libs_;
  struct Attached {
    FileKey file;
    std::string path; // as opened for the attachment
    std::vector<bpf_link*> links;
  };
  std::unordered_map<uint32_t, std::vector<Attached>> procs_; // pid (-1 as ~0u: global)
  std::set<std::pair<uint32_t, FileKey>> failed_; // (who, file): not retried
  std::set<FileKey> global_;                      // files attached for every process
  std::vector<std::string> messages_;
  std::vector<std::string> notes_;
};

} // namespace odigos
