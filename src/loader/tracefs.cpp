#include "loader/tracefs.hpp"

#include <cerrno>
#include <cstring>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace odigos {

static bool has_events(const char* dir) {
  std::string p = std::string(dir) + "/events/syscalls";
  struct stat st{};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ensure_tracefs(std::string* error, std::string* hint) {
  if (has_events("/sys/kernel/tracing") || has_events("/sys/kernel/debug/tracing"))
    return true;
  if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0 &&
      has_events("/sys/kernel/tracing"))
    return true;
  int err = errno;
  *error = std::string("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: ") +
           strerror(err);
  *hint = "mount it as root: mount -t tracefs nodev /sys/kernel/tracing";
  return false;
}

} // namespace odigos
