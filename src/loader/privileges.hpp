// Up-front checks of what loading the probes needs, so a missing capability is
// one clear error rather than a libbpf failure deep in the load.
#pragma once
#include <cstdint>
#include <string>

namespace odigos {

struct PrivilegeReport {
  bool ok = false;
  std::string missing; // e.g. "CAP_BPF, CAP_PERFMON"
};

uint64_t effective_capabilities();
PrivilegeReport check_privileges();
// Kernel BTF is needed for CO-RE and tp_btf programs.
bool kernel_has_btf();
// After setup: programs are attached and every map, link and ring buffer is an
// open fd, which needs no capability to use. Drops every capability (effective,
// permitted, inheritable, ambient) and sets no_new_privs.
bool drop_all_capabilities(std::string* error);
// The same, keeping `keep` (effective and permitted; nothing inheritable).
bool drop_capabilities_except(uint64_t keep, std::string* error);
// What attaching TLS uprobes to processes that appear later needs: loading
// nothing new, but perf_event_open uprobes and BPF links (CAP_SYS_ADMIN: the
// uprobe PMU refuses CAP_PERFMON alone; CAP_PERFMON, CAP_BPF), and reading
// their /proc/PID/maps and libraries (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH).
uint64_t runtime_attach_capabilities();
const char* kernel_btf_path();

} // namespace odigos
