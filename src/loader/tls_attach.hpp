// TLS plaintext probes, per process: finds the TLS libraries a traced process
// maps (libssl.so*, or OpenSSL linked into its executable), picks cheap probe
// points once per library file (src/loader/probe_points.cpp) and attaches the
// uprobes for that process only, so other processes mapping the same library
// (load generators included) are never trapped. Called at start for the
// traced processes and then on their fork, exec and executable-mmap events;
// detaches when they exit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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
  // Every process mapping a library found in `pids` (tracing all processes).
  int scan_global(const std::vector<uint32_t>& pids);
  // The process exited: its probes go.
  void forget(uint32_t pid);

  size_t processes() const { return procs_.size(); }
  uint64_t attachments() const { return attachments_; }
  // Problems worth telling the user, each once (a library without a cheap
  // probe point, an attach failure).
  std::vector<std::string> take_messages();
  // The libssl files a launched command would load (standard library paths).
  static std::vector<std::string> system_libraries();

 private:
  using FileKey = std::pair<uint64_t, uint64_t>; // (dev, ino)
  struct Library {
    bool usable = false;
    OpensslProbes probes;
  };
  const Library& library(const FileKey& key, const std::string& path, bool expect_tls);
  bool attach(int pid, const FileKey& key, const std::string& path, const Library& lib);

  BpfProbes& probes_;
  std::map<FileKey, Library> libs_;
  struct Attached {
    FileKey file;
    std::vector<bpf_link*> links;
  };
  std::unordered_map<uint32_t, std::vector<Attached>> procs_; // pid (-1 as ~0u: global)
  std::map<std::pair<uint32_t, FileKey>, bool> failed_;        // not retried
  std::vector<std::string> messages_;
  uint64_t attachments_ = 0;
};

} // namespace odigos
