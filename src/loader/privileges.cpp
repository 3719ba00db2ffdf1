#include "loader/privileges.hpp"

#include <cstdlib>
#include <fstream>
#include <sys/stat.h>

namespace odigos {

namespace {
constexpr int kCapDacReadSearch = 2;
constexpr int kCapSysPtrace = 19;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;
bool has(uint64_t caps, int cap) { return caps & (1ull << cap); }
} // namespace

uint64_t effective_capabilities() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0)
      return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

PrivilegeReport check_privileges() {
  uint64_t caps = effective_capabilities();
  PrivilegeReport r;
  std::string missing;
  auto need = [&](bool ok, const char* name) {
    if (ok) return;
    if (!missing.empty()) missing += ", ";
    missing += name;
  };
  bool admin = has(caps, kCapSysAdmin);
  // CAP_BPF + CAP_PERFMON load and attach tracing programs; CAP_SYS_ADMIN
  // covers both on older kernels. Reading other users' /proc/PID/exe and
  // walking their fds needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.
  need(has(caps, kCapBpf) || admin, "CAP_BPF");
  need(has(caps, kCapPerfmon) || admin, "CAP_PERFMON");
  need(has(caps, kCapDacReadSearch), "CAP_DAC_READ_SEARCH");
  need(has(caps, kCapSysPtrace), "CAP_SYS_PTRACE");
  r.ok = missing.empty();
  r.missing = missing;
  return r;
}

const char* kernel_btf_path() {
  // ODIGOS_KERNEL_BTF overrides the path checked (used by the tests).
  const char* p = getenv("ODIGOS_KERNEL_BTF");
  return p && *p ? p : "/sys/kernel/btf/vmlinux";
}

bool kernel_has_btf() {
  struct stat st{};
  return stat(kernel_btf_path(), &st) == 0;
}

} // namespace odigos
