#include "conn/addr.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <sys/socket.h>

namespace odigos {

std::string format_addr(const ot_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.family == AF_INET) {
    inet_ntop(AF_INET, a.addr, buf, sizeof(buf));
    return buf;
  }
  if (a.family == AF_INET6) {
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a.addr, v4mapped, 12) == 0) {
      inet_ntop(AF_INET, a.addr + 12, buf, sizeof(buf));
      return buf;
    }
    inet_ntop(AF_INET6, a.addr, buf, sizeof(buf));
    return buf;
  }
  if (a.family == AF_UNIX) return "unix";
  return "";
}

} // namespace odigos
