// /proc discovery on this very process: no root, no BPF.
#include <catch2/catch.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loader/procfs.hpp"

using namespace odigos;

TEST_CASE("listening ports are found per process, and only for the processes asked", "[procfs]") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(fd, 1) == 0);
  socklen_t len = sizeof(a);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  uint16_t port = ntohs(a.sin_port);

  auto contains = [&](const std::vector<uint16_t>& v) {
    return std::find(v.begin(), v.end(), port) != v.end();
  };
  CHECK(contains(procfs::listening_ports({uint32_t(getpid())})));
  CHECK(contains(procfs::all_listening_ports()));
  // No process asked: no port (an empty set is not "everything").
  CHECK(procfs::listening_ports({}).empty());
  // Another process (our parent) does not own our socket.
  CHECK_FALSE(contains(procfs::listening_ports({uint32_t(getppid())})));
  close(fd);
  CHECK_FALSE(contains(procfs::listening_ports({uint32_t(getpid())})));
}
