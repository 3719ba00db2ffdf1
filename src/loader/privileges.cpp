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

uint64_t runtime_attach_capabilities() {
  // The kernel's uprobe PMU (perf_event_open of a uprobe) wants CAP_SYS_ADMIN
  // itself: CAP_PERFMON is refused with EACCES (measured on 6.18).
  return (1ull << kCapBpf) | (1ull << kCapPerfmon) | (1ull << kCapSysAdmin) |
         (1ull << kCapSysPtrace) | (1ull << kCapDacReadSearch);
}

bool drop_capabilities_except(uint64_t keep, std::string* error) {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  keep &= effective_capabilities(); // only what we hold
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; i++) {
    data[i].effective = data[i].permitted = uint32_t(keep >> (32 * i));
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &hdr, data) != 0) {
    *error = std::string("capset: ") + strerror(errno);
    return false;
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  return true;
}

bool drop_all_capabilities(std::string* error) { return drop_capabilities_except(0, error); }

} // namespace odigos
