// /proc and sock_diag discovery on this very process: no root, no BPF (the
// other-namespace case uses a user namespace when not root, or skips).
#include <catch2/catch.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader/procfs.hpp"
#include "loader/sock_diag.hpp"

using namespace odigos;

namespace {

struct Sock {
  int fd = -1;
  uint16_t port = 0;
  uint64_t inode = 0;
  Sock() = default;
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;
  ~Sock() {
    if (fd >= 0) close(fd);
  }
  void fill() { // port and inode of the bound socket
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&a)->sin_port
                                        : reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
    struct stat st{};
    REQUIRE(fstat(fd, &st) == 0);
    inode = st.st_ino;
  }
};

// A TCP listener on the loopback address of `family`, on a free port; false
// when the family is unusable here (IPv6 disabled or without ::1).
bool listen_loopback(int family, Sock* s) {
  s->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->fd < 0) return false;
  int rc;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = bind(s->fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    rc = bind(s->fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0 || listen(s->fd, 4) != 0) return false;
  s->fill();
  return true;
}

// A connection to `server` (client end in *client, server end in *accepted).
void connect_to(int family, const Sock& server, Sock* client, Sock* accepted) {
  client->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(client->fd >= 0);
  int rc;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(server.port);
    rc = connect(client->fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    a.sin6_port = htons(server.port);
    rc = connect(client->fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  REQUIRE(rc == 0);
  client->fill();
  accepted->fd = accept(server.fd, nullptr, nullptr);
  REQUIRE(accepted->fd >= 0);
  accepted->fill();
}

bool contains(const std::vector<uint16_t>& v, uint16_t port) {
  return std::find(v.begin(), v.end(), port) != v.end();
}

} // namespace

TEST_CASE("listening ports are found per process, and only for the processes asked", "[procfs]") {
  Sock l4;
  REQUIRE(listen_loopback(AF_INET, &l4));
  CHECK(contains(procfs::listening_ports({uint32_t(getpid())}), l4.port));
  CHECK(contains(procfs::all_listening_ports(), l4.port));
  // No process asked: no port (an empty set is not "everything").
  CHECK(procfs::listening_ports({}).empty());
  // Another process (our parent) does not own our socket.
  CHECK_FALSE(contains(procfs::listening_ports({uint32_t(getppid())}), l4.port));
  close(l4.fd);
  l4.fd = -1;
  CHECK_FALSE(contains(procfs::listening_ports({uint32_t(getpid())}), l4.port));
}

TEST_CASE("listening ports: IPv4 and IPv6 listeners, not connected sockets", "[procfs]") {
  for (int family : {AF_INET, AF_INET6}) {
    const char* name = family == AF_INET ? "IPv4" : "IPv6";
    INFO(name);
    Sock listener, client, accepted;
    if (!listen_loopback(family, &listener)) {
      REQUIRE(family == AF_INET6);
      WARN("no IPv6 loopback here: IPv6 case skipped");
      continue;
    }
    connect_to(family, listener, &client, &accepted);
    REQUIRE(client.port != listener.port);

    auto mine = procfs::listening_ports({uint32_t(getpid())});
    CHECK(contains(mine, listener.port));
    CHECK_FALSE(contains(mine, client.port)); // connected, owned by us, not listening
    CHECK(std::is_sorted(mine.begin(), mine.end()));
    CHECK(std::adjacent_find(mine.begin(), mine.end()) == mine.end());
    CHECK(contains(procfs::all_listening_ports(), listener.port));

    // The netlink query itself (the functions above fall back to /proc when it
    // fails, which would hide a broken query): it must work without privileges
    // and name the listener by inode, and neither end of the connection.
    std::string err;
    auto diag = sock_diag::tcp_listeners(-1, &err);
    INFO(err);
    REQUIRE(diag.has_value());
    REQUIRE(diag->count(listener.inode) == 1);
    CHECK(diag->at(listener.inode) == listener.port);
    CHECK(diag->count(client.inode) == 0);
    CHECK(diag->count(accepted.inode) == 0);

    // Once closed, the listener is gone from both.
    close(listener.fd);
    listener.fd = -1;
    auto after = sock_diag::tcp_listeners();
    REQUIRE(after.has_value());
    CHECK(after->count(listener.inode) == 0);
    CHECK_FALSE(contains(procfs::listening_ports({uint32_t(getpid())}), listener.port));
  }
}

TEST_CASE("listening ports of a process in another network namespace", "[procfs]") {
  int up[2], down[2];
  REQUIRE(pipe(up) == 0);
  REQUIRE(pipe(down) == 0);
  struct Report {
    int32_t port;
    uint64_t inode;
  };
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    Report r{-1, 0};
    // A new network namespace (root), or a user namespace owning one (not root).
    if (unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
      // The new namespace's loopback is down: listen on the wildcard address.
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      socklen_t len = sizeof(a);
      struct stat st{};
      if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
          listen(fd, 1) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
          fstat(fd, &st) == 0)
        r = {ntohs(a.sin_port), uint64_t(st.st_ino)};
    }
    if (write(up[1], &r, sizeof(r)) != ssize_t(sizeof(r))) _exit(1);
    char c;
    while (read(down[0], &c, 1) < 0) { // until the parent closes its end
    }
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  Report r{-1, 0};
  REQUIRE(read(up[0], &r, sizeof(r)) == ssize_t(sizeof(r)));
  close(up[0]);
  if (r.port < 0) {
    WARN("cannot create a network namespace here: case skipped");
  } else {
    // Found through the child's own namespace (netlink in it when we may enter
    // it, else its /proc/PID/net tables).
    CHECK(contains(procfs::listening_ports({uint32_t(child)}), uint16_t(r.port)));
    // Our namespace does not have that socket.
    auto own = sock_diag::tcp_listeners();
    REQUIRE(own.has_value());
    CHECK(own->count(r.inode) == 0);
    if (geteuid() == 0) { // root may enter it: the netlink path is the one used
      int nsfd = open(("/proc/" + std::to_string(child) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
      REQUIRE(nsfd >= 0);
      std::string err;
      auto theirs = sock_diag::tcp_listeners(nsfd, &err);
      close(nsfd);
      INFO(err);
      REQUIRE(theirs.has_value());
      REQUIRE(theirs->count(r.inode) == 1);
      CHECK(theirs->at(r.inode) == uint16_t(r.port));
    }
  }
  close(down[1]);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
}
