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
const char* kernel_btf_path();

} // namespace odigos
