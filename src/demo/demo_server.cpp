// Demo HTTP/1.1 server: one thread per connection, keep-alive, Content-Length
// request bodies. Requests are read with recv() (headers) and read() (body);
// responses go out with writev(), write() or send() depending on the endpoint.
#include "demo/demo.hpp"
#include "demo/io.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace odigos::demo {
namespace {
using io::iequals;
using io::send_all;
using io::write_all;

using namespace std::chrono_literals;

constexpr size_t kMaxHeader = 64 * 1024;
constexpr size_t kMaxBody = 1024 * 1024;
constexpr size_t kLargeSize = 256 * 1024;
constexpr int kIdleTimeoutSec = 30;
constexpr auto kStopGrace = std::chrono::seconds(1);
constexpr std::string_view kHello = "hello, odigos\n";

// Set by the signal handler, read by every thread: lock-free atomics are safe for both.
std::atomic<bool> g_stop{false};
std::atomic<int> g_wake_fd{-1}; // write end of the self-pipe
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

void on_signal(int) {
  const int saved = errno;
  g_stop = true;
  if (const int fd = g_wake_fd; fd >= 0) {
    const char c = 1;
    const ssize_t r = ::write(fd, &c, 1);
    (void)r; // the pipe is non-blocking; a full pipe already wakes the poll
  }
  errno = saved;
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Installs the server's signal dispositions; restores the previous ones.
class SignalScope {
 public:
  SignalScope() {
    struct sigaction sa {};
    sa.sa_handler = on_signal; // no SA_RESTART: poll() returns EINTR
    sigemptyset(&sa.sa_mask);
    ok_ = ::sigaction(SIGTERM, &sa, &old_term_) == 0 && ::sigaction(SIGINT, &sa, &old_int_) == 0;
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ok_ = ok_ && ::sigaction(SIGPIPE, &ign, &old_pipe_) == 0;
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  ~SignalScope() {
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGPIPE, &old_pipe_, nullptr);
  }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
  struct sigaction old_term_ {}, old_int_ {}, old_pipe_ {};
};

// ---- output helpers: each loops over partial writes and EINTR ----------------



bool writev_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    const ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    size_t left = size_t(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

iovec iov_of(std::string_view s) { return iovec{const_cast<char*>(s.data()), s.size()}; }

// ---- requests -----------------------------------------------------------------

struct Request {
  std::string method;
  std::string target;
  std::string path; // target without the query string
  std::string body;
  bool keep_alive = true;
};

enum class ReadStatus { kOk, kClosed, kBadRequest, kHeaderTooLarge, kBodyTooLarge, kNotImplemented };

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}


// Applies the tokens of a Connection header to keep_alive.
void apply_connection(std::string_view value, bool& keep_alive) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view token = trim(value.substr(0, comma));
    if (iequals(token, "close")) keep_alive = false;
    if (iequals(token, "keep-alive")) keep_alive = true;
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
  }
}

// Reads requests from one connection, keeping bytes that arrive early (pipelining).
class RequestReader {
 public:
  explicit RequestReader(int fd) : fd_(fd) {}

  ReadStatus read(Request& req) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > kMaxHeader) return ReadStatus::kHeaderTooLarge;
      if (!recv_more()) return ReadStatus::kClosed;
    }
    const ReadStatus st = parse_head(std::string_view(buf_).substr(0, end), req);
    if (st != ReadStatus::kOk) return st;
    buf_.erase(0, end + 4);
    if (content_length_ > kMaxBody) return ReadStatus::kBodyTooLarge;
    // Body: whatever is already buffered, the rest straight from the socket with read().
    const size_t have = std::min(buf_.size(), content_length_);
    req.body.assign(buf_, 0, have);
    buf_.erase(0, have);
    while (req.body.size() < content_length_) {
      char tmp[16384];
      const ssize_t n = ::read(fd_, tmp, std::min(sizeof tmp, content_length_ - req.body.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ReadStatus::kClosed;
      req.body.append(tmp, size_t(n));
    }
    return ReadStatus::kOk;
  }

 private:
  bool recv_more() {
    char tmp[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false; // peer closed, reset, idle timeout or shutdown
      buf_.append(tmp, size_t(n));
      return true;
    }
  }

  ReadStatus parse_head(std::string_view head, Request& req) {
    size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1) return ReadStatus::kBadRequest;
    req.method = line.substr(0, sp1);
    req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return ReadStatus::kBadRequest;
    req.path = req.target.substr(0, req.target.find('?'));
    req.keep_alive = version == "HTTP/1.1";

    content_length_ = 0;
    bool have_length = false;
    while (eol != std::string_view::npos) {
      const size_t start = eol + 2;
      eol = head.find("\r\n", start);
      const std::string_view field = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
      const size_t colon = field.find(':');
      if (colon == 0 || colon == std::string_view::npos) return ReadStatus::kBadRequest;
      const std::string_view name = field.substr(0, colon);
      const std::string_view value = trim(field.substr(colon + 1));
      if (iequals(name, "content-length")) {
        size_t n = 0;
        const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || ec != std::errc{} || ptr != value.data() + value.size()) return ReadStatus::kBadRequest;
        if (have_length && n != content_length_) return ReadStatus::kBadRequest;
        content_length_ = n;
        have_length = true;
      } else if (iequals(name, "transfer-encoding")) {
        return ReadStatus::kNotImplemented; // chunked request bodies are not supported
      } else if (iequals(name, "connection")) {
        apply_connection(value, req.keep_alive);
      }
    }
    return ReadStatus::kOk;
  }

  int fd_;
  std::string buf_;
  size_t content_length_ = 0;
};

// ---- responses ----------------------------------------------------------------

// Which syscalls carry a fixed-length response.
enum class Via {
  kWritev,    // writev(header, body)
  kSend,      // one send() of header + body
  kWriteTwice, // write(header), write(body)
  kSendTwice, // send(header), send(body)
};

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    default: return "Unknown";
  }
}

std::string status_head(int status, bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  h += "Server: odigos-demo/1\r\n";
  h += keep_alive && !g_stop ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  return h;
}

struct Reply {
  int status = 200;
  std::string_view body;
  Via via = Via::kWritev;
  std::string_view content_type = "text/plain";
  std::string_view extra_headers = {}; // complete "Name: value\r\n" lines
};

bool send_reply(int fd, const Reply& r, bool head_only, bool keep_alive) {
  std::string h = status_head(r.status, keep_alive);
  const bool has_body = r.status != 204 && r.status != 304;
  if (has_body) {
    h += "Content-Type: ";
    h += r.content_type;
    h += "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  h += r.extra_headers;
  h += "\r\n";
  const std::string_view body = (has_body && !head_only) ? r.body : std::string_view{};
  switch (r.via) {
    case Via::kWritev: {
      iovec iov[2] = {iov_of(h), iov_of(body)};
      return writev_all(fd, iov, body.empty() ? 1 : 2);
    }
    case Via::kSend: return send_all(fd, h + std::string(body));
    case Via::kWriteTwice: return write_all(fd, h) && write_all(fd, body);
    case Via::kSendTwice: return send_all(fd, h) && send_all(fd, body);
  }
  return false;
}

// Header with send(), each chunk with writev(), the last chunk with write().
bool send_chunked(int fd, bool head_only, bool keep_alive) {
  std::string h = status_head(200, keep_alive);
  h += "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
  if (!send_all(fd, h)) return false;
  if (head_only) return true;
  for (int i = 1; i <= 3; ++i) {
    if (i > 1) std::this_thread::sleep_for(40ms);
    const std::string data = "chunk " + std::to_string(i) + " of 3\n";
    char size_line[32];
    const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    iovec iov[3] = {{size_line, size_t(len)}, iov_of(data), iov_of("\r\n")};
    if (!writev_all(fd, iov, 3)) return false;
  }
  return write_all(fd, "0\r\n\r\n");
}

const std::string& large_body() {
  static const std::string body = [] {
    std::string s(kLargeSize, '\n');
    for (size_t i = 0; i < s.size(); ++i)
      if (i % 64 != 63) s[i] = char('a' + (i / 64) % 26);
    return s;
  }();
  return body;
}

// Answers one request; false if the connection is no longer writable.
bool respond(int fd, const Request& req, bool keep_alive) {
  const bool head = req.method == "HEAD";
  const bool get = req.method == "GET" || head;
  const std::string& p = req.path;
  auto reply = [&](const Reply& r) { return send_reply(fd, r, head, keep_alive); };
  auto not_allowed = [&](std::string_view allow) {
    return reply({.status = 405, .body = "method not allowed\n", .via = Via::kSend, .extra_headers = allow});
  };
  constexpr std::string_view kAllowGet = "Allow: GET, HEAD\r\n";

  if (p == "/fast") {
    if (!get) return not_allowed(kAllowGet);
    return reply({.status = 200, .body = kHello, .via = Via::kWritev});
  }
  if (p == "/slow") {
    if (!get) return not_allowed(kAllowGet);
    std::this_thread::sleep_for(150ms);
    return reply({.status = 200, .body = "slow, but here\n", .via = Via::kSend});
  }
  if (p == "/error") {
    if (!get) return not_allowed(kAllowGet);
    return reply({.status = 500, .body = "something went wrong (on purpose)\n", .via = Via::kWriteTwice});
  }
  if (p == "/large") {
    if (!get) return not_allowed(kAllowGet);
    return reply({.status = 200, .body = large_body(), .via = Via::kWritev});
  }
  if (p == "/chunked") {
    if (!get) return not_allowed(kAllowGet);
    return send_chunked(fd, head, keep_alive);
  }
  if (p == "/echo") {
    if (req.method != "POST") return not_allowed("Allow: POST\r\n");
    return reply({.status = 200, .body = req.body, .via = Via::kWritev, .content_type = "application/octet-stream"});
  }
  if (p == "/nocontent") {
    if (!get) return not_allowed(kAllowGet);
    return reply({.status = 204, .body = {}, .via = Via::kWriteTwice});
  }
  return reply({.status = 404, .body = "not found\n", .via = Via::kSendTwice});
}

void serve_connection(int fd) {
  RequestReader reader(fd);
  for (;;) {
    Request req;
    const ReadStatus st = reader.read(req);
    if (st == ReadStatus::kClosed) return;
    if (st != ReadStatus::kOk) {
      const int status = st == ReadStatus::kHeaderTooLarge ? 431
                         : st == ReadStatus::kBodyTooLarge ? 413
                         : st == ReadStatus::kNotImplemented ? 501
                                                             : 400;
      const std::string body = std::string(reason(status)) + "\n";
      send_reply(fd, {.status = status, .body = body, .via = Via::kSend}, false, false);
      return;
    }
    const bool keep_alive = req.keep_alive && !g_stop;
    if (!respond(fd, req, keep_alive) || !keep_alive || g_stop) return;
  }
}

// ---- connection threads -----------------------------------------------------

class Workers {
 public:
  Workers() = default;
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;
  ~Workers() { stop_all(); }

  // Serves fd on a new thread (which owns and closes it). False if no thread.
  bool spawn(int fd) {
    std::list<Worker>::iterator it;
    {
      std::lock_guard lock(mu_);
      it = workers_.emplace(workers_.end());
      it->fd = fd;
    }
    // Threads block SIGTERM/SIGINT so that the signals wake the accept loop.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    const bool masked = ::pthread_sigmask(SIG_BLOCK, &block, &old) == 0;
    bool ok = true;
    try {
      it->thread = std::thread(&Workers::run, this, &*it);
    } catch (const std::exception&) {
      ok = false;
    }
    if (masked) ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (!ok) {
      std::lock_guard lock(mu_);
      ::close(it->fd);
      workers_.erase(it);
    }
    return ok;
  }

  // Joins the threads whose connection has ended.
  void reap() {
    std::list<Worker> done;
    {
      std::lock_guard lock(mu_);
      for (auto it = workers_.begin(); it != workers_.end();) {
        auto next = std::next(it);
        if (it->done) done.splice(done.end(), workers_, it);
        it = next;
      }
    }
    for (Worker& w : done) w.thread.join();
  }

  // Ends every connection and joins all threads. Reads are shut down first, so
  // idle connections end at once while responses in progress complete; whatever
  // is still running after a grace period is cut off.
  void stop_all() {
    std::list<Worker> all;
    {
      std::unique_lock lock(mu_);
      shutdown_all(SHUT_RD);
      const auto all_done = [&] {
        return std::all_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.done; });
      };
      if (!done_cv_.wait_for(lock, kStopGrace, all_done)) shutdown_all(SHUT_RDWR);
      all.splice(all.end(), workers_);
    }
    for (Worker& w : all)
      if (w.thread.joinable()) w.thread.join();
  }

 private:
  struct Worker {
    std::thread thread; // touched only by the accepting thread
    int fd = -1;        // guarded by mu_
    bool done = false;  // guarded by mu_
  };

  void shutdown_all(int how) { // mu_ held
    for (Worker& w : workers_)
      if (w.fd >= 0) ::shutdown(w.fd, how);
  }

  void run(Worker* w) {
    int fd;
    {
      std::lock_guard lock(mu_);
      fd = w->fd;
    }
    try {
      serve_connection(fd);
    } catch (...) {
      // Allocation failure: drop this connection, keep serving others.
    }
    std::lock_guard lock(mu_);
    ::close(w->fd);
    w->fd = -1;
    w->done = true;
    done_cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable done_cv_;
  std::list<Worker> workers_;
};

void set_sockopt_int(int fd, int level, int name, int value) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
    std::fprintf(stderr, "demo server: setsockopt: %s\n", std::strerror(errno));
}

// Accepts every pending connection. False on an unrecoverable error.
bool accept_pending(int lfd, Workers& workers) {
  for (;;) {
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO: continue;
        case EAGAIN: return true;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          std::fprintf(stderr, "demo server: accept: %s\n", std::strerror(errno));
          std::this_thread::sleep_for(50ms);
          return true;
        default:
          std::fprintf(stderr, "demo server: accept: %s\n", std::strerror(errno));
          return false;
      }
    }
    set_sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    const timeval idle{kIdleTimeoutSec, 0};
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle) != 0)
      std::fprintf(stderr, "demo server: setsockopt: %s\n", std::strerror(errno));
    if (!workers.spawn(fd)) std::fprintf(stderr, "demo server: cannot start a connection thread\n");
  }
}

int serve(uint16_t port, int ready_fd) {
  Fd ready(ready_fd);
  Fd lfd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (lfd.get() < 0) {
    std::fprintf(stderr, "demo server: socket: %s\n", std::strerror(errno));
    return 1;
  }
  set_sockopt_int(lfd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd.get(), 128) != 0) {
    std::fprintf(stderr, "demo server: cannot listen on 127.0.0.1:%u: %s\n", unsigned(port), std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof addr;
  if (::getsockname(lfd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "demo server: getsockname: %s\n", std::strerror(errno));
    return 1;
  }
  const unsigned bound = ntohs(addr.sin_port);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "demo server: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  Fd wake_r(pipe_fds[0]), wake_w(pipe_fds[1]);
  g_stop = false;
  g_wake_fd = wake_w.get();
  struct ClearWake {
    ~ClearWake() { g_wake_fd = -1; }
  } clear_wake;
  SignalScope signals;
  if (!signals.ok()) {
    std::fprintf(stderr, "demo server: sigaction: %s\n", std::strerror(errno));
    return 1;
  }

  if (ready.get() >= 0) {
    char line[16];
    const int n = std::snprintf(line, sizeof line, "%u\n", bound);
    if (!write_all(ready.get(), std::string_view(line, size_t(n)))) {
      std::fprintf(stderr, "demo server: cannot report the port: %s\n", std::strerror(errno));
      return 1;
    }
    ready.reset();
  }

  Workers workers;
  int rc = 0;
  while (!g_stop) {
    pollfd fds[2] = {{lfd.get(), POLLIN, 0}, {wake_r.get(), POLLIN, 0}};
    if (::poll(fds, 2, 1000) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "demo server: poll: %s\n", std::strerror(errno));
      rc = 1;
      break;
    }
    workers.reap();
    if ((fds[0].revents & POLLIN) && !accept_pending(lfd.get(), workers)) {
      rc = 1;
      break;
    }
  }
  lfd.reset(); // refuse new connections while the open ones wind down
  workers.stop_all();
  return rc;
}

} // namespace

int run_server(uint16_t port, int ready_fd) {
  try {
    return serve(port, ready_fd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo server: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "demo server: unexpected error\n");
  }
  return 1;
}

} // namespace odigos::demo
