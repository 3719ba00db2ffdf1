#include "loader/procfs.hpp"

#include <algorithm>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "loader/sock_diag.hpp"

namespace odigos::procfs {

bool pid_exists(uint32_t pid) { return kill(pid_t(pid), 0) == 0 || errno == EPERM; }

std::string comm(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(in, s);
  return s;
}

std::optional<uint32_t> ppid(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(in, s)) return std::nullopt;
  // comm may contain spaces and parentheses: fields resume after the last ')'.
  auto close = s.rfind(')');
  if (close == std::string::npos || close + 4 > s.size()) return std::nullopt;
  const char* p = s.c_str() + close + 4; // ") S "
  return uint32_t(strtoul(p, nullptr, 10));
}

std::vector<uint32_t> all_pids() {
  std::vector<uint32_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    unsigned long v = strtoul(e->d_name, &end, 10);
    if (end && *end == '\0' && v > 0) out.push_back(uint32_t(v));
  }
  closedir(d);
  return out;
}

std::vector<uint32_t> with_descendants(uint32_t root) {
  std::multimap<uint32_t, uint32_t> children;
  for (uint32_t p : all_pids())
    if (auto pp = ppid(p)) children.emplace(*pp, p);
  std::vector<uint32_t> out{root};
  for (size_t i = 0; i < out.size(); i++) {
    auto [b, e] = children.equal_range(out[i]);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
  }
  return out;
}

static ot_exe_key key_of(const struct stat& st) {
  ot_exe_key k{};
  // The kernel's dev_t packs major:minor as 12:20 bits (MKDEV), unlike glibc's.
  k.dev = (uint64_t(major(st.st_dev)) << 20) | minor(st.st_dev);
  k.ino = st.st_ino;
  return k;
}

std::optional<ot_exe_key> exe_key(const std::string& path, std::string* error) {
  std::string why = why_not_executable(path);
  if (!why.empty()) {
    *error = why;
    return std::nullopt;
  }
  struct stat st{};
  stat(path.c_str(), &st);
  return key_of(st);
}

std::vector<uint32_t> pids_running(const ot_exe_key& key) {
  std::vector<uint32_t> out;
  for (uint32_t p : all_pids()) {
    struct stat st{};
    std::string exe = "/proc/" + std::to_string(p) + "/exe";
    if (stat(exe.c_str(), &st) != 0) continue;
    ot_exe_key k = key_of(st);
    if (k.dev == key.dev && k.ino == key.ino) out.push_back(p);
  }
  return out;
}

// Fallback only: /proc/PID/net/tcp{,6} list every socket of the namespace
// (TIME_WAIT included), which takes hundreds of milliseconds on a busy host.
static void parse_listeners(const std::string& file, sock_diag::Listeners* by_inode) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line); // header
  while (std::getline(in, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    char local[64] = {}, remote[64] = {};
    unsigned st = 0;
    unsigned long long inode = 0;
    if (sscanf(line.c_str(), "%*d: %63s %63s %x %*s %*s %*s %*u %*u %llu", local, remote, &st,
               &inode) != 4)
      continue;
    if (st != 0x0A) continue; // TCP_LISTEN
    const char* colon = strrchr(local, ':');
    if (!colon) continue;
    (*by_inode)[inode] = uint16_t(strtoul(colon + 1, nullptr, 16));
  }
}

static sock_diag::Listeners listeners_from_proc(const std::string& proc_net) {
  sock_diag::Listeners all;
  parse_listeners(proc_net + "/tcp", &all);
  parse_listeners(proc_net + "/tcp6", &all);
  return all;
}

// Listening sockets of a network namespace: `netns_fd` an open handle on it
// (-1: our own namespace), `proc_net` its /proc/.../net directory. Asks
// NETLINK_SOCK_DIAG for listeners only; when that fails (netlink refused, e.g.
// by a seccomp profile, or no permission to enter another namespace), falls
// back to parsing the /proc tables, which is slow with many sockets.
static sock_diag::Listeners listeners_of(int netns_fd, const std::string& proc_net) {
  if (auto l = sock_diag::tcp_listeners(netns_fd)) return std::move(*l);
  return listeners_from_proc(proc_net);
}

static std::vector<uint16_t> sorted_unique(std::vector<uint16_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::vector<uint16_t> all_listening_ports() {
  std::vector<uint16_t> out;
  for (auto& [ino, port] : listeners_of(-1, "/proc/net")) out.push_back(port);
  return sorted_unique(std::move(out));
}

std::vector<uint16_t> listening_ports(const std::vector<uint32_t>& pids) {
  std::vector<uint16_t> out;
  if (pids.empty()) return out;
  char self_ns[64] = {};
  if (readlink("/proc/self/ns/net", self_ns, sizeof(self_ns) - 1) <= 0) self_ns[0] = '\0';
  // One query per network namespace.
  std::map<std::string, sock_diag::Listeners> by_netns;
  for (uint32_t pid : pids) {
    std::string base = "/proc/" + std::to_string(pid);
    char ns[64] = {};
    if (readlink((base + "/ns/net").c_str(), ns, sizeof(ns) - 1) <= 0) continue;
    auto [it, fresh] = by_netns.try_emplace(ns);
    if (fresh) {
      if (self_ns[0] && strcmp(ns, self_ns) == 0) {
        it->second = listeners_of(-1, base + "/net");
      } else {
        int nsfd = open((base + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd >= 0) {
          it->second = listeners_of(nsfd, base + "/net");
          close(nsfd);
        } else {
          it->second = listeners_from_proc(base + "/net");
        }
      }
    }
    const auto& listeners = it->second;
    if (listeners.empty()) continue;
    DIR* d = opendir((base + "/fd").c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[64] = {};
      std::string link = base + "/fd/" + e->d_name;
      ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
      unsigned long long ino = 0;
      if (n > 0 && sscanf(target, "socket:[%llu]", &ino) == 1) {
        auto found = listeners.find(ino);
        if (found != listeners.end()) out.push_back(found->second);
      }
    }
    closedir(d);
  }
  return sorted_unique(std::move(out));
}

std::string why_not_executable(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0)
    return "'" + path + "': " + strerror(errno);
  if (!S_ISREG(st.st_mode)) return "'" + path + "' is not a regular file";
  if (!(st.st_mode & 0111)) return "'" + path + "' is not executable (no x permission)";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "'" + path + "': " + strerror(errno);
  char magic[4] = {};
  ssize_t n = read(fd, magic, sizeof(magic));
  close(fd);
  if (n == 4 && memcmp(magic, "\x7f" "ELF", 4) == 0) return "";
  if (n >= 2 && magic[0] == '#' && magic[1] == '!')
    return "'" + path + "' is a script: trace its interpreter with --exe, or launch it with -- " + path;
  return "'" + path + "' is not an ELF executable";
}

std::vector<FileMapping> executable_mappings(uint32_t pid) {
  std::vector<FileMapping> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    // start-end perms offset major:minor inode   path
    char perms[8] = {};
    unsigned maj = 0, min = 0;
    unsigned long long ino = 0;
    int path_at = 0;
    if (sscanf(line.c_str(), "%*x-%*x %7s %*x %x:%x %llu %n", perms, &maj, &min, &ino,
               &path_at) < 4)
      continue;
    if (perms[2] != 'x' || ino == 0 || path_at <= 0 || size_t(path_at) >= line.size()) continue;
    std::string path = line.substr(size_t(path_at));
    if (path.empty() || path[0] != '/' || path.find(" (deleted)") != std::string::npos) continue;
    uint64_t dev = makedev(maj, min);
    bool seen = std::any_of(out.begin(), out.end(),
                            [&](const FileMapping& m) { return m.dev == dev && m.ino == ino; });
    if (!seen) out.push_back({path, dev, ino});
  }
  return out;
}

std::string resolve_command(const std::string& cmd) {
  if (cmd.empty()) return {};
  if (cmd.find('/') != std::string::npos) return access(cmd.c_str(), X_OK) == 0 ? cmd : "";
  const char* path = getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string cand = (dir.empty() ? "." : dir) + "/" + cmd;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return {};
}

std::string exe_path(uint32_t pid) {
  char buf[4096];
  ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

} // namespace odigos::procfs
