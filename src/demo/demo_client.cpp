// Demo HTTP/1.1 client: sends the request mix over a keep-alive connection and
// reads every response in full (Content-Length, chunked, or no body). Requests go
// out with send(), writev() (POST) or write() ("Connection: close"); responses are
// read with read() on the keep-alive connection and recv() on fresh ones.
#include "demo/demo.hpp"
#include "demo/io.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <thread>

namespace odigos::demo {
namespace {
using io::iequals;
using io::send_all;
using io::write_all;

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kMaxHeader = 64 * 1024;
constexpr size_t kMaxChunk = 16 * 1024 * 1024;
constexpr int kTimeoutSec = 10;
constexpr std::string_view kEchoBody = "{\"demo\":\"odigos\",\"payload\":\"0123456789abcdefghijklmnopqrstuvw\"}\n";
static_assert(kEchoBody.size() == 64);

enum class Check { kNone, kHello, kEmpty, kLarge, kChunks, kEcho };

struct Spec {
  const char* method;
  const char* target;
  const char* extra_headers; // complete "Name: value\r\n" lines
  int expect_status;
  Check check;
};

constexpr Spec kMix[] = {
    {"GET", "/fast", "", 200, Check::kHello},
    {"GET", "/fast?user=demo&token=abc123", "Authorization: Bearer demo-secret\r\n", 200, Check::kHello},
    {"GET", "/slow", "", 200, Check::kNone},
    {"GET", "/error", "", 500, Check::kNone},
    {"GET", "/missing", "", 404, Check::kNone},
    {"GET", "/large", "", 200, Check::kLarge},
    {"GET", "/chunked", "", 200, Check::kChunks},
    {"POST", "/echo", "Content-Type: application/json\r\n", 200, Check::kEcho},
    {"HEAD", "/fast", "", 200, Check::kEmpty},
    {"GET", "/nocontent", "", 204, Check::kEmpty},
};
constexpr Spec kCloseSpec = {"GET", "/fast", "", 200, Check::kHello};

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Ignores SIGPIPE (write()/writev() to a closed peer); restores the old disposition.
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ok_ = ::sigaction(SIGPIPE, &ign, &old_) == 0;
  }
  IgnoreSigpipe(const IgnoreSigpipe&) = delete;
  IgnoreSigpipe& operator=(const IgnoreSigpipe&) = delete;
  ~IgnoreSigpipe() {
    if (ok_) ::sigaction(SIGPIPE, &old_, nullptr);
  }

 private:
  bool ok_ = false;
  struct sigaction old_ {};
};

// One client connection and its read buffer.
class Conn {
 public:
  explicit Conn(bool use_recv) : use_recv_(use_recv) {}
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { close(); }

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool reused() const { return reused_; }
  void mark_used() { reused_ = true; }
  std::string& buf() { return buf_; }

  bool open(uint16_t port, std::string& err) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      err = errno_text("socket");
      return false;
    }
    const int one = 1;
    const timeval tv{kTimeoutSec, 0};
    if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
      err = errno_text("setsockopt");
      close();
      return false;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 && !finish_connect(err)) {
      err = "connect to 127.0.0.1:" + std::to_string(port) + ": " + err;
      close();
      return false;
    }
    return true;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
    reused_ = false;
  }

  // Reads more bytes into the buffer: > 0 bytes read, 0 at end of stream, < 0 on error (errno set).
  ssize_t fill() {
    char tmp[65536];
    for (;;) {
      const ssize_t n = use_recv_ ? ::recv(fd_, tmp, sizeof tmp, 0) : ::read(fd_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) buf_.append(tmp, size_t(n));
      return n;
    }
  }

 private:
  // connect() failed: fine if it was interrupted and completes anyway.
  bool finish_connect(std::string& err) {
    if (errno != EINTR) {
      err = std::strerror(errno);
      return false;
    }
    pollfd p{fd_, POLLOUT, 0};
    int r;
    while ((r = ::poll(&p, 1, kTimeoutSec * 1000)) < 0 && errno == EINTR) {
    }
    if (r <= 0) {
      err = r == 0 ? "timed out" : std::strerror(errno);
      return false;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
    if (soerr != 0) err = std::strerror(soerr);
    return soerr == 0;
  }

  int fd_ = -1;
  bool use_recv_;
  bool reused_ = false; // a response has been read on this connection
  std::string buf_;
};

// ---- sending --------------------------------------------------------------------



// writev(head, body), then plain writes for whatever a short writev left.
bool writev_all(int fd, std::string_view head, std::string_view body) {
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()}, {const_cast<char*>(body.data()), body.size()}};
  ssize_t n;
  while ((n = ::writev(fd, iov, 2)) < 0 && errno == EINTR) {
  }
  if (n < 0) return false;
  const size_t sent = size_t(n);
  if (sent < head.size()) return write_all(fd, head.substr(sent)) && write_all(fd, body);
  return write_all(fd, body.substr(sent - head.size()));
}

bool send_request(int fd, uint16_t port, const Spec& spec, bool close) {
  const bool post = std::string_view(spec.method) == "POST";
  std::string h = std::string(spec.method) + " " + spec.target + " HTTP/1.1\r\n";
  h += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  h += "User-Agent: odigos-demo/1\r\nAccept: */*\r\n";
  h += spec.extra_headers;
  if (post) h += "Content-Length: " + std::to_string(kEchoBody.size()) + "\r\n";
  if (close) h += "Connection: close\r\n";
  h += "\r\n";
  if (post) return writev_all(fd, h, kEchoBody);
  if (close) return write_all(fd, h);
  return send_all(fd, h);
}

// ---- reading --------------------------------------------------------------------

struct Response {
  int status = 0;
  std::string body;
  bool keep_alive = true;
};

enum class ReadStatus { kOk, kNothing, kError }; // kNothing: closed before any byte arrived


bool icontains(std::string_view hay, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Ensures the buffer holds at least n bytes.
bool need(Conn& c, size_t n, std::string& err) {
  while (c.buf().size() < n) {
    const ssize_t r = c.fill();
    if (r == 0) err = "connection closed mid-response";
    if (r < 0) err = errno_text("read");
    if (r <= 0) return false;
  }
  return true;
}

// Ensures the buffer holds a CRLF; returns its offset, or npos (err set).
size_t need_line(Conn& c, std::string& err) {
  size_t eol;
  while ((eol = c.buf().find("\r\n")) == std::string::npos) {
    if (c.buf().size() > kMaxHeader) {
      err = "line too long";
      return eol;
    }
    if (!need(c, c.buf().size() + 1, err)) return eol;
  }
  return eol;
}

bool read_chunked(Conn& c, std::string& body, std::string& err) {
  for (;;) {
    const size_t eol = need_line(c, err);
    if (eol == std::string::npos) return false;
    const std::string_view line = std::string_view(c.buf()).substr(0, eol);
    const std::string_view digits = trim(line.substr(0, line.find(';')));
    size_t size = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
    if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size() || size > kMaxChunk) {
      err = "bad chunk size line";
      return false;
    }
    c.buf().erase(0, eol + 2);
    if (size == 0) { // trailer section, ends with an empty line
      for (;;) {
        const size_t end = need_line(c, err);
        if (end == std::string::npos) return false;
        c.buf().erase(0, end + 2);
        if (end == 0) return true;
      }
    }
    if (!need(c, size + 2, err)) return false;
    if (c.buf().compare(size, 2, "\r\n") != 0) {
      err = "chunk not followed by CRLF";
      return false;
    }
    body.append(c.buf(), 0, size);
    c.buf().erase(0, size + 2);
  }
}

ReadStatus read_response(Conn& c, bool head_request, Response& resp, std::string& err) {
  size_t end;
  while ((end = c.buf().find("\r\n\r\n")) == std::string::npos) {
    if (c.buf().size() > kMaxHeader) {
      err = "response header too large";
      return ReadStatus::kError;
    }
    const ssize_t r = c.fill();
    if (r > 0) continue;
    // Nothing at all (EOF or reset): the server may have closed an idle connection.
    const bool nothing = c.buf().empty() && (r == 0 || errno == ECONNRESET);
    err = r == 0 ? "connection closed before the end of the response header" : errno_text("read");
    if (nothing) err = r == 0 ? "connection closed without a response" : err;
    return nothing ? ReadStatus::kNothing : ReadStatus::kError;
  }
  const std::string_view headers = std::string_view(c.buf()).substr(0, end);
  // Status line: "HTTP/1.x NNN reason".
  if (headers.size() < 12 || headers.substr(0, 7) != "HTTP/1." || headers[8] != ' ') {
    err = "malformed status line";
    return ReadStatus::kError;
  }
  const auto [ptr, ec] = std::from_chars(headers.data() + 9, headers.data() + 12, resp.status);
  if (ec != std::errc{} || ptr != headers.data() + 12) {
    err = "malformed status code";
    return ReadStatus::kError;
  }
  resp.keep_alive = headers[7] == '1';
  bool chunked = false;
  long long length = -1;
  for (size_t eol = headers.find("\r\n"); eol != std::string_view::npos;) {
    const size_t start = eol + 2;
    eol = headers.find("\r\n", start);
    const std::string_view field = headers.substr(start, eol == std::string_view::npos ? eol : eol - start);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim(field.substr(colon + 1));
    if (iequals(name, "content-length")) {
      const auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (e != std::errc{} || p != value.data() + value.size() || length < 0) {
        err = "bad Content-Length";
        return ReadStatus::kError;
      }
    } else if (iequals(name, "transfer-encoding")) {
      chunked = icontains(value, "chunked");
    } else if (iequals(name, "connection")) {
      if (icontains(value, "close")) resp.keep_alive = false;
    }
  }
  c.buf().erase(0, end + 4);

  if (head_request || resp.status < 200 || resp.status == 204 || resp.status == 304) return ReadStatus::kOk;
  if (chunked) return read_chunked(c, resp.body, err) ? ReadStatus::kOk : ReadStatus::kError;
  if (length >= 0) {
    if (!need(c, size_t(length), err)) return ReadStatus::kError;
    resp.body.assign(c.buf(), 0, size_t(length));
    c.buf().erase(0, size_t(length));
    return ReadStatus::kOk;
  }
  // No framing: the body runs to the end of the connection.
  ssize_t r;
  while ((r = c.fill()) > 0) {
  }
  if (r < 0) {
    err = errno_text("read");
    return ReadStatus::kError;
  }
  resp.body = std::move(c.buf());
  c.buf().clear();
  resp.keep_alive = false;
  return ReadStatus::kOk;
}

// ---- one exchange -----------------------------------------------------------------

// Sends one request and reads its response, reconnecting (once) if a reused
// keep-alive connection turns out to have been closed by the server.
bool exchange(Conn& c, uint16_t port, const Spec& spec, bool close, Response& resp, std::string& err) {
  const bool head = std::string_view(spec.method) == "HEAD";
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!c.is_open() && !c.open(port, err)) return false;
    const bool stale_ok = c.reused() && attempt == 0;
    if (!send_request(c.fd(), port, spec, close)) {
      if (stale_ok && (errno == EPIPE || errno == ECONNRESET)) {
        c.close();
        continue;
      }
      err = errno_text("send");
      return false;
    }
    resp = Response{};
    const ReadStatus st = read_response(c, head, resp, err);
    if (st == ReadStatus::kNothing && stale_ok) {
      c.close();
      continue;
    }
    if (st != ReadStatus::kOk) return false;
    c.mark_used();
    if (close || !resp.keep_alive) c.close();
    return true;
  }
  err = "server keeps closing the connection";
  return false;
}

bool body_ok(const Spec& spec, const std::string& body) {
  switch (spec.check) {
    case Check::kNone: return true;
    case Check::kHello: return body == "hello, odigos\n";
    case Check::kEmpty: return body.empty();
    case Check::kLarge: return body.size() == 256 * 1024;
    case Check::kChunks: return body == "chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n";
    case Check::kEcho: return body == kEchoBody;
  }
  return false;
}

bool run_one(Conn& c, uint16_t port, const Spec& spec, bool close, bool print) {
  const auto start = Clock::now();
  Response resp;
  std::string err;
  if (!exchange(c, port, spec, close, resp, err)) {
    std::fprintf(stderr, "demo client: %s %s: %s\n", spec.method, spec.target, err.c_str());
    return false;
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (print) {
    std::printf("%s %s -> %d (%zu bytes, %.1f ms)\n", spec.method, spec.target, resp.status, resp.body.size(), ms);
    std::fflush(stdout);
  }
  if (resp.status != spec.expect_status || !body_ok(spec, resp.body)) {
    std::fprintf(stderr, "demo client: %s %s: unexpected response (status %d, %zu body bytes; expected %d)\n",
                 spec.method, spec.target, resp.status, resp.body.size(), spec.expect_status);
    return false;
  }
  return true;
}

int run(uint16_t port, double seconds, bool print) {
  IgnoreSigpipe ignore_sigpipe;
  if (!(seconds > 0)) seconds = 0; // also NaN
  const auto start = Clock::now();
  auto expired = [&] { return std::chrono::duration<double>(Clock::now() - start).count() >= seconds; };

  Conn keep_alive(false);
  for (unsigned round = 0;; ++round) {
    for (const Spec& spec : kMix) {
      if (round > 0 && expired()) return 0;
      if (!run_one(keep_alive, port, spec, false, print)) return 1;
    }
    if (round % 3 == 0) {
      if (round > 0 && expired()) return 0;
      Conn fresh(true);
      if (!run_one(fresh, port, kCloseSpec, true, print)) return 1;
    }
    if (expired()) return 0;
    std::this_thread::sleep_for(100ms);
  }
}

} // namespace

int run_client(uint16_t port, double seconds, bool print) {
  try {
    return run(port, seconds, print);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo client: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "demo client: unexpected error\n");
  }
  return 1;
}

} // namespace odigos::demo
