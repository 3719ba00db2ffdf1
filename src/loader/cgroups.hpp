// cgroup v2 targets (--cgroup, --unit): resolve a directory to the id the
// kernel reports (the directory's inode number) and its depth below the root,
// so the BPF filter can match processes in descendant cgroups created later
// (bpf_get_current_ancestor_cgroup_id at that depth).
#pragma once

#include <cstdint>
#include <string>

namespace odigos::cgroups {

struct Target {
  std::string path; // absolute directory
  uint64_t id = 0;
  uint32_t level = 0; // 0 = the cgroup2 root
};

// Where cgroup2 is mounted ("/sys/fs/cgroup" on unified hosts,
// "/sys/fs/cgroup/unified" on hybrid ones), "" when it is not.
std::string cgroup2_mount();
// `spec`: absolute directory, or relative to the cgroup2 mount.
bool resolve(const std::string& spec, Target* out, std::string* error);
// A systemd unit's cgroup directory (".service" added when no suffix).
std::string unit_path(const std::string& unit);

} // namespace odigos::cgroups
