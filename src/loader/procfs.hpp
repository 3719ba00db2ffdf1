// Process discovery through /proc: descendants of a PID, processes running an
// executable, names. Only used at start-up and for names of new processes; the
// kernel follows forks and execs from then on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "odigos/abi.h"
}

namespace odigos::procfs {

bool pid_exists(uint32_t pid);
std::string comm(uint32_t pid);              // "" when gone
std::optional<uint32_t> ppid(uint32_t pid);
std::vector<uint32_t> all_pids();
// `pid` and every process below it in the process tree.
std::vector<uint32_t> with_descendants(uint32_t pid);
// The executable's identity as the kernel's sched_process_exec sees it.
std::optional<ot_exe_key> exe_key(const std::string& path, std::string* error);
std::vector<uint32_t> pids_running(const ot_exe_key& key);
// TCP ports the given processes listen on (sorted, no duplicates): their
// /proc/PID/fd socket inodes matched against the listening sockets of their
// network namespaces (NETLINK_SOCK_DIAG, or /proc/PID/net/tcp{,6} when netlink
// fails); every listening port of this namespace for the other.
std::vector<uint16_t> listening_ports(const std::vector<uint32_t>& pids);
std::vector<uint16_t> all_listening_ports();
// A file mapped executable by a process (/proc/PID/maps), once per file.
struct FileMapping {
  std::string path; // as the process sees it (its mount namespace)
  uint64_t dev = 0; // st_dev encoding (makedev)
  uint64_t ino = 0;
};
std::vector<FileMapping> executable_mappings(uint32_t pid);
// The file execvp would run for `cmd` (searched in $PATH when it has no
// slash); "" when none.
std::string resolve_command(const std::string& cmd);
// The process's executable path ("" when gone).
std::string exe_path(uint32_t pid);

// Is the file an ELF executable (or a script with #!)? Returns "" when it is,
// else why not.
std::string why_not_executable(const std::string& path);

} // namespace odigos::procfs
