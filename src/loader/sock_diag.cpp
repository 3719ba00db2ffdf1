#include "loader/sock_diag.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h> // TCP_LISTEN
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <vector>

namespace odigos::sock_diag {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

bool fail(std::string* error, const std::string& why) {
  if (error) *error = why;
  return false;
}

int open_netlink(std::string* error) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    fail(error, std::string("netlink socket: ") + strerror(errno));
    return -1;
  }
  // A dump answers at once; the timeout only guards against a kernel that
  // never ends it, so that start-up falls back to /proc instead of hanging.
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// A socket belongs to the network namespace its creator was in when it was
// made. The namespace is per thread: a short-lived thread enters the target
// namespace and creates the socket there, and this thread stays where it is.
int open_netlink_in(int netns_fd, std::string* error) {
  int fd = -1;
  std::string why;
  try {
    std::thread t([&] {
      if (setns(netns_fd, CLONE_NEWNET) != 0) {
        why = std::string("entering the network namespace: ") + strerror(errno);
        return;
      }
      fd = open_netlink(&why);
    });
    t.join();
  } catch (const std::system_error& e) {
    why = std::string("thread: ") + e.what();
  }
  if (fd < 0) fail(error, why);
  return fd;
}

// One dump request for `family`; reads replies until NLMSG_DONE.
bool dump(int fd, uint8_t family, uint32_t seq, std::vector<char>* buf, Listeners* out,
          std::string* error) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = 1u << TCP_LISTEN; // the kernel then skips the established hash
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  } while (sent < 0 && errno == EINTR);
  if (sent != ssize_t(sizeof(msg))) return fail(error, std::string("netlink send: ") + strerror(errno));

  for (;;) {
    iovec iov{buf->data(), buf->size()};
    msghdr mh{};
    mh.msg_name = &kernel;
    mh.msg_namelen = sizeof(kernel);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(error, std::string("netlink receive: ") + strerror(errno));
    if (n == 0) return fail(error, "netlink: connection closed");
    if (mh.msg_flags & MSG_TRUNC) return fail(error, "netlink: reply truncated");
    size_t len = size_t(n), off = 0;
    while (len - off >= sizeof(nlmsghdr)) {
      const auto* h = reinterpret_cast<const nlmsghdr*>(buf->data() + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > len - off)
        return fail(error, "netlink: malformed reply");
      off += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_seq != seq) continue; // not an answer to this request
      const void* data = NLMSG_DATA(h);
      size_t data_len = h->nlmsg_len - NLMSG_HDRLEN;
      if (h->nlmsg_type == NLMSG_ERROR) {
        int e = 0;
        if (data_len >= sizeof(int)) memcpy(&e, data, sizeof(int));
        if (e == 0) continue; // an acknowledgement
        return fail(error, std::string("sock_diag: ") + strerror(-e));
      }
      if (h->nlmsg_type == NLMSG_DONE) {
        // The dump's final status; a negative value means it stopped early.
        int e = 0;
        if (data_len >= sizeof(int)) memcpy(&e, data, sizeof(int));
        if (e < 0) return fail(error, std::string("sock_diag dump: ") + strerror(-e));
        return true;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || data_len < sizeof(inet_diag_msg)) continue;
      inet_diag_msg m;
      memcpy(&m, data, sizeof(m));
      if (m.idiag_state != TCP_LISTEN) continue;
      (*out)[m.idiag_inode] = ntohs(m.id.idiag_sport);
    }
  }
}

} // namespace

std::optional<Listeners> tcp_listeners(int netns_fd, std::string* error) {
  Fd nl{netns_fd < 0 ? open_netlink(error) : open_netlink_in(netns_fd, error)};
  if (nl.fd < 0) return std::nullopt;
  // Dumps are sent in skbs of at most 32 KiB when the reader's buffer allows;
  // a larger buffer never truncates one.
  std::vector<char> buf(64 * 1024);
  Listeners out;
  if (!dump(nl.fd, AF_INET, 1, &buf, &out, error)) return std::nullopt;
  if (!dump(nl.fd, AF_INET6, 2, &buf, &out, error)) return std::nullopt;
  return out;
}

} // namespace odigos::sock_diag
