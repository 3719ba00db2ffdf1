#include "loader/cgroups.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/vfs.h>

namespace odigos::cgroups {

namespace {
constexpr long kCgroup2Magic = 0x63677270;

std::string normalize(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}
} // namespace

std::string cgroup2_mount() {
  std::ifstream in("/proc/self/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string dev, dir, type;
    f >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return "";
}

bool resolve(const std::string& spec, Target* out, std::string* error) {
  std::string root = cgroup2_mount();
  if (root.empty()) {
    *error = "cgroup v2 is not mounted on this host (no cgroup2 entry in /proc/self/mounts)";
    return false;
  }
  std::string dir = normalize(spec.empty() || spec[0] != '/' ? root + "/" + spec : spec);
  struct stat st{};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = "no cgroup directory '" + dir + "'";
    return false;
  }
  struct statfs fs{};
  if (statfs(dir.c_str(), &fs) != 0 || fs.f_type != kCgroup2Magic) {
    *error = "'" + dir + "' is not a cgroup v2 directory (cgroup v2 is mounted at " + root + ")";
    return false;
  }
  if (dir != root && dir.rfind(root + "/", 0) != 0) {
    *error = "'" + dir + "' is not below the cgroup v2 mount " + root;
    return false;
  }
  out->path = dir;
  out->id = st.st_ino;
  out->level = 0;
  for (size_t i = root.size(); i < dir.size(); i++)
    if (dir[i] == '/') out->level++;
  return true;
}

std::string unit_path(const std::string& unit) {
  std::string root = cgroup2_mount();
  if (root.empty()) root = "/sys/fs/cgroup";
  std::string u = unit.find('.') == std::string::npos ? unit + ".service" : unit;
  for (const char* slice : {"system.slice", "user.slice", ""}) {
    std::string p = root + (*slice ? std::string("/") + slice : "") + "/" + u;
    struct stat st{};
    if (stat(p.c_str(), &st) == 0) return p;
  }
  return root + "/system.slice/" + u;
}

} // namespace odigos::cgroups
