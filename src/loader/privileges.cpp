#include "loader/privileges.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
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

bool drop_all_capabilities(std::string* error) {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) {
    *error = std::string("capset: ") + strerror(errno);
    return false;
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  return true;
}

} // namespace odigos
