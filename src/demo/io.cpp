#include "demo/io.hpp"

#include <cctype>
#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace odigos::demo::io {

template <typename Op>
static bool all(std::string_view s, Op op) {
  while (!s.empty()) {
    const ssize_t n = op(s);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s.remove_prefix(size_t(n));
  }
  return true;
}

bool write_all(int fd, std::string_view s) {
  return all(s, [fd](std::string_view r) { return ::write(fd, r.data(), r.size()); });
}

bool send_all(int fd, std::string_view s) {
  return all(s, [fd](std::string_view r) { return ::send(fd, r.data(), r.size(), MSG_NOSIGNAL); });
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

} // namespace odigos::demo::io
