// Session: framing, pairing, loss handling and protocol detection, on byte
// fixtures fed as kernel-style segments.
#include <catch2/catch.hpp>

#include "segments.hpp"
#include "protocols/http1/http1.hpp"

#include <sstream>
#include <string>
#include <vector>

using namespace odigos::http1;
using namespace odigos::test;

namespace {

std::string describe(const Message& m) {
  std::ostringstream o;
  o << m.method << ' ' << m.target << ' ' << m.status << ' ' << m.reason << " 1." << m.minor_version
    << " {";
  for (const Header& h : m.headers) o << h.name << '=' << h.value << ';';
  o << "} head=" << m.head_size << " body=" << m.body_size << " [" << m.body << "] trunc="
    << m.body_truncated << " chunked=" << m.chunked << " complete=" << m.complete << " ts="
    << m.first_ts_ns << '-' << m.last_ts_ns;
  return o.str();
}

std::string describe(const std::vector<Exchange>& xs) {
  std::ostringstream o;
  for (const Exchange& x : xs) {
    o << "REQ " << describe(x.request) << "\n";
    for (const Message& i : x.informational) o << "INFO " << describe(i) << "\n";
    o << "RESP " << (x.response ? describe(*x.response) : "none") << "\n";
    o << "ERR " << x.error_type << " tunnel=" << x.tunnel << "\n";
  }
  return o.str();
}

const std::string kPost =
    "POST /api/items?id=7 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "{\"name\":\"x\"}\n";

const std::string kGet = "GET /health HTTP/1.1\r\nHost: example.com\r\n\r\n";

const std::string kResp =
    "HTTP/1.1 201 Created\r\n"
    "Content-Length: 5\r\n"
    "Connection: keep-alive\r\n"
    "\r\n"
    "hello";

const std::string kChunked =
    "HTTP/1.1 200 OK\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "4;name=val\r\nWiki\r\n"
    "5\r\npedia\r\n"
    "E; a=b ;c\r\n in\r\n\r\nchunks.\r\n"
    "0\r\n"
    "Expires: never\r\n"
    "X-Trailer:  t \r\n"
    "\r\n";

std::string ok(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

std::string get(std::string_view path) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: a\r\n\r\n";
}

// Server side: request in, response out, whole, at ts 1 and 2.
std::vector<Exchange> run_whole(const std::string& req, const std::string& resp) {
  Session s(Side::kServer);
  s.on_data(kIn, seg(req, 1));
  s.on_data(kOut, seg(resp, 2));
  return s.take_exchanges();
}

} // namespace

TEST_CASE("http1 server: simple request/response exchange", "[http1][session]") {
  Session s(Side::kServer);
  CHECK(s.verdict() == Verdict::kUndecided);
  s.on_data(kIn, seg(kPost, 100));
  CHECK(s.verdict() == Verdict::kHttp1);
  CHECK(s.take_exchanges().empty());
  s.on_data(kOut, seg(kResp, 250));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  const Exchange& x = xs[0];
  CHECK(x.request.method == "POST");
  CHECK(x.request.target == "/api/items?id=7");
  CHECK(x.request.body == "{\"name\":\"x\"}\n");
  CHECK(x.request.body_size == 13);
  CHECK(x.request.complete);
  CHECK(x.request.first_ts_ns == 100);
  CHECK(x.request.last_ts_ns == 100);
  REQUIRE(x.response);
  CHECK(x.response->status == 201);
  CHECK(x.response->reason == "Created");
  CHECK(x.response->body == "hello");
  CHECK(x.response->head_size == kResp.size() - 5);
  CHECK(x.response->complete);
  CHECK(x.response->first_ts_ns == 250);
  CHECK(x.response->last_ts_ns == 250);
  CHECK(x.error_type.empty());
  CHECK_FALSE(x.tunnel);
  CHECK(s.desyncs() == 0);
  CHECK_FALSE(s.done());
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("http1 client: requests are written, responses read", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(kGet, 1));
  s.on_data(kIn, seg(kResp, 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/health");
  CHECK(xs[0].response->status == 201);
  CHECK(s.side() == Side::kClient);
}

TEST_CASE("http1 timing spans the segments carrying first and last byte", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(std::string_view(kPost).substr(0, 10), 10));
  s.on_data(kIn, seg(std::string_view(kPost).substr(10, 60), 11));
  s.on_data(kIn, seg(std::string_view(kPost).substr(70), 12));
  s.on_data(kOut, seg(std::string_view(kResp).substr(0, 20), 20));
  s.on_data(kOut, seg(std::string_view(kResp).substr(20, kResp.size() - 22), 21));
  CHECK(s.take_exchanges().empty());
  s.on_data(kOut, seg(std::string_view(kResp).substr(kResp.size() - 2), 22));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.first_ts_ns == 10);
  CHECK(xs[0].request.last_ts_ns == 12);
  CHECK(xs[0].response->first_ts_ns == 20);
  CHECK(xs[0].response->last_ts_ns == 22);
  CHECK(xs[0].response->body == "hello");
}

TEST_CASE("http1 keep-alive and pipelining pair responses in request order", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(get("/1") + kPost + get("/3"), 1));
  CHECK(s.take_exchanges().empty());
  s.on_data(kOut, seg(ok("one") + ok("two") + ok("three"), 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].request.target == "/1");
  CHECK(xs[0].response->body == "one");
  CHECK(xs[1].request.method == "POST");
  CHECK(xs[1].response->body == "two");
  CHECK(xs[2].request.target == "/3");
  CHECK(xs[2].response->body == "three");

  // Then a plain keep-alive exchange on the same connection.
  s.on_data(kIn, seg(get("/4"), 3));
  s.on_data(kOut, seg(ok("four"), 4));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/4");
  CHECK(xs[0].response->body == "four");
}

TEST_CASE("http1 responses are emitted as each one completes", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(get("/a") + get("/b"), 1));
  s.on_data(kOut, seg(ok("A"), 2));
  CHECK(s.take_exchanges().size() == 1);
  s.on_data(kOut, seg(ok("B"), 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/b");
}

TEST_CASE("http1 HEAD, 204 and 304 responses have no body", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg("HEAD /file HTTP/1.1\r\nHost: a\r\n\r\n", 1));
  s.on_data(kOut, seg(get("/nc"), 2));
  s.on_data(kOut, seg(get("/cached"), 3));
  s.on_data(kOut, seg(get("/after"), 4));
  s.on_data(kIn, seg("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
                     "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n" +
                         ok("body"),
                     5));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 4);
  CHECK(xs[0].response->status == 200);
  CHECK(xs[0].response->body_size == 0);
  CHECK(xs[0].response->complete);
  CHECK(xs[1].response->status == 204);
  CHECK(xs[1].response->body_size == 0);
  CHECK(xs[2].response->status == 304);
  CHECK(xs[2].response->body_size == 0);
  CHECK(xs[3].request.target == "/after");
  CHECK(xs[3].response->body == "body");
  CHECK(s.desyncs() == 0);
}

TEST_CASE("http1 100-continue: body after the 100 still belongs to the request", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(
      kIn,
      seg("PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n", 1));
  s.on_data(kOut, seg("HTTP/1.1 100 Continue\r\n\r\n", 2));
  CHECK(s.take_exchanges().empty());
  s.on_data(kIn, seg("abc", 3));
  s.on_data(kIn, seg("def", 4));
  CHECK(s.take_exchanges().empty());
  s.on_data(kOut, seg(ok("stored"), 5));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.body == "abcdef");
  CHECK(xs[0].request.last_ts_ns == 4);
  REQUIRE(xs[0].informational.size() == 1);
  CHECK(xs[0].informational[0].status == 100);
  CHECK(xs[0].informational[0].first_ts_ns == 2);
  CHECK(xs[0].response->status == 200);
  CHECK(xs[0].response->body == "stored");
}

TEST_CASE("http1 early final response waits for the request to finish", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", 1));
  s.on_data(kOut, seg("HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", 2));
  CHECK(s.take_exchanges().empty());
  s.on_data(kIn, seg("67890", 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.complete);
  CHECK(xs[0].response->status == 413);
}

TEST_CASE("http1 103 Early Hints precede the final response", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(kGet, 1));
  s.on_data(kIn, seg("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", 2));
  CHECK(s.take_exchanges().empty());
  s.on_data(kIn, seg(ok("page"), 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  REQUIRE(xs[0].informational.size() == 1);
  CHECK(xs[0].informational[0].status == 103);
  CHECK(*xs[0].informational[0].header("link") == "</style.css>; rel=preload");
  CHECK(xs[0].response->status == 200);
  CHECK(xs[0].response->first_ts_ns == 3);
}

TEST_CASE("http1 chunked response with extensions and trailers", "[http1][session]") {
  auto xs = run_whole(kGet, kChunked);
  REQUIRE(xs.size() == 1);
  const Message& r = *xs[0].response;
  CHECK(r.chunked);
  CHECK(r.body == "Wikipedia in\r\n\r\nchunks.");
  CHECK(r.body_size == 23);
  CHECK(r.complete);
  REQUIRE(r.header("x-trailer") != nullptr);
  CHECK(*r.header("x-trailer") == "t");
  CHECK(*r.header("expires") == "never");
}

TEST_CASE("http1 chunked request body", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
                         get("/next"),
                     1));
  s.on_data(kOut, seg(ok("1") + ok("2"), 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].request.chunked);
  CHECK(xs[0].request.body == "abc");
  CHECK(xs[0].request.body_size == 3);
  CHECK(xs[1].request.target == "/next");
  CHECK(xs[1].response->body == "2");
}

TEST_CASE("http1 close-delimited response ends at on_eof", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(kGet, 1));
  s.on_data(kIn, seg("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart1-", 2));
  s.on_data(kIn, seg("part2", 3));
  CHECK(s.take_exchanges().empty());
  s.on_eof(kIn, 9);
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].response->body == "part1-part2");
  CHECK(xs[0].response->body_size == 11);
  CHECK(xs[0].response->complete);
  CHECK(xs[0].response->last_ts_ns == 3);
  CHECK(xs[0].error_type.empty());
}

TEST_CASE("http1 HTTP/1.0 response without Content-Length ends at close", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("GET /old HTTP/1.0\r\n\r\n", 1));
  s.on_data(kOut, seg("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello ", 2));
  s.on_data(kOut, seg("world", 3));
  CHECK(s.take_exchanges().empty());
  s.on_close(10, "connection_closed");
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.minor_version == 0);
  CHECK(xs[0].response->minor_version == 0);
  CHECK(xs[0].response->body == "hello world");
  CHECK(xs[0].response->complete);
  CHECK(xs[0].response->last_ts_ns == 3);
  CHECK(xs[0].error_type.empty());
}

TEST_CASE("http1 body larger than the capture size is counted, not parsed", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(kGet, 1));
  // 300 reads of 3500..16384 bytes, at most 4096 of each captured.
  std::vector<uint64_t> lens;
  uint64_t total = 0;
  uint32_t x = 12345;
  for (int i = 0; i < 300; ++i) {
    x = x * 1103515245u + 12345u;
    lens.push_back(3500 + (x >> 8) % (16384 - 3500 + 1));
    total += lens.back();
  }
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n";
  // Body bytes that would look like HTTP if they were ever parsed.
  std::string pattern;
  while (pattern.size() < 8192) pattern += "HTTP/1.1 500 Oops\r\n\r\n";
  const std::string first =
      (head + pattern).substr(0, std::min<uint64_t>(4096, head.size() + lens[0]));
  s.on_data(kIn, seg(first, 1000, head.size() + lens[0]));
  for (int i = 1; i < 300; ++i) {
    CHECK(s.take_exchanges().empty());
    s.on_data(kIn, seg(std::string_view(pattern).substr(0, std::min<uint64_t>(lens[i], 4096)),
                       1000 + i, lens[i]));
  }
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  const Message& r = *xs[0].response;
  CHECK(r.body_size == total);
  CHECK(r.body_truncated);
  CHECK(r.body.size() == 4096);
  CHECK(r.body.compare(0, 20, pattern, 0, 20) == 0);
  CHECK(r.complete);
  CHECK(r.first_ts_ns == 1000);
  CHECK(r.last_ts_ns == 1299);
  CHECK(s.desyncs() == 0);

  // Framing stayed in sync: the next exchange is decoded normally.
  s.on_data(kOut, seg(get("/again"), 2000));
  s.on_data(kIn, seg(ok("fine"), 2001));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].response->body == "fine");
}

TEST_CASE("http1 uncaptured bytes inside chunk data are counted", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(kGet, 1));
  // 0x2710 = 10000 bytes of chunk data, of which only "abcd" was captured.
  const std::string first = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2710\r\nabcd";
  s.on_data(kIn, seg(first, 2, first.size() - 4 + 10000));
  s.on_data(kIn, seg("\r\n0\r\n\r\n", 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].response->body_size == 10000);
  CHECK(xs[0].response->body == "abcd");
  CHECK(xs[0].response->body_truncated);
  CHECK(xs[0].response->complete);
  CHECK(xs[0].response->last_ts_ns == 3);
}

TEST_CASE("http1 max_body_keep bounds the kept body", "[http1][session]") {
  Limits lim;
  lim.max_body_keep = 4;
  Session s(Side::kServer, lim);
  s.on_data(kIn, seg(kPost, 1));
  s.on_data(kOut, seg(ok("0123456789"), 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.body == "{\"na");
  CHECK(xs[0].response->body == "0123");
  CHECK(xs[0].response->body_size == 10);
  CHECK_FALSE(xs[0].response->body_truncated);
}

TEST_CASE("http1 gap inside a request head: desync, then resync on the next request",
          "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(get("/a"), 1));
  s.on_data(kOut, seg(ok("A"), 2));
  CHECK(s.take_exchanges().size() == 1);
  s.on_data(kIn, seg("GET /b HTTP/1.1\r\nHo", 3));
  s.on_data(kIn, seg("st: a\r\n\r\nGET /c HTTP/1.1\r\n\r\n", 4, 0, true));
  CHECK(s.desyncs() == 1);
  // Delivered late: the answer to /b began before /d was read.
  s.on_data(kIn, seg(get("/d"), 6));
  s.on_data(kOut, seg(ok("B"), 5));
  s.on_data(kOut, seg(ok("D"), 7));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/d");
  CHECK(xs[0].response->body == "D");
  CHECK(xs[0].error_type.empty());
  CHECK(s.verdict() == Verdict::kHttp1);
}

TEST_CASE("http1 gap inside a response head marks the exchange desync", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(get("/a"), 1));
  s.on_data(kIn, seg("HTTP/1.1 200 OK\r\nContent-Le", 2));
  s.on_data(kIn, seg("ngth: 3\r\n\r\nabc", 3, 0, true));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/a");
  CHECK_FALSE(xs[0].response);
  CHECK(xs[0].error_type == "desync");
  CHECK(s.desyncs() == 1);
  s.on_data(kIn, seg("abc", 4)); // still skipped: not a message boundary
  s.on_data(kOut, seg(get("/b"), 5));
  s.on_data(kIn, seg(ok("B"), 6));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/b");
  CHECK(xs[0].response->body == "B");
}

TEST_CASE("http1 head cut by uncaptured bytes is a desync", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(get("/a"), 1));
  std::string big = "HTTP/1.1 200 OK\r\nSet-Cookie: " + std::string(5000, 'c') + "\r\n\r\n";
  s.on_data(kIn, seg(std::string_view(big).substr(0, 4096), 2, big.size() + 10));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].error_type == "desync");
  CHECK(s.desyncs() == 1);
  s.on_data(kOut, seg(get("/b"), 3));
  s.on_data(kIn, seg(ok("B"), 4));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].response->body == "B");
}

TEST_CASE("http1 gap inside a chunk-size line mid-response", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(get("/a"), 1));
  s.on_data(kIn, seg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1", 2));
  s.on_data(kIn, seg("0\r\n0123456789ABCDEF\r\n0\r\n\r\n", 3, 0, true));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].error_type == "desync");
  REQUIRE(xs[0].response);
  CHECK_FALSE(xs[0].response->complete);
  CHECK(xs[0].response->body == "abc");
  CHECK(s.desyncs() == 1);
}

TEST_CASE("http1 garbage where a response should start is a desync", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(get("/a"), 1));
  s.on_data(kOut, seg("not an http response at all\r\n\r\n", 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].error_type == "desync");
  CHECK(s.verdict() == Verdict::kHttp1);
  CHECK_FALSE(s.done());
}

TEST_CASE("http1 HTTP/2 preface gives kHttp2", "[http1][session]") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  SECTION("in one segment") {
    Session s(Side::kServer);
    s.on_data(kIn, seg(preface + std::string("\0\0\0\4\0\0\0\0\0", 9), 1));
    CHECK(s.verdict() == Verdict::kHttp2);
    CHECK(s.done());
  }
  SECTION("split inside the preface") {
    Session s(Side::kClient);
    s.on_data(kOut, seg(std::string_view(preface).substr(0, 16), 1));
    CHECK(s.verdict() == Verdict::kUndecided);
    s.on_data(kOut, seg(std::string_view(preface).substr(16), 2));
    CHECK(s.verdict() == Verdict::kHttp2);
    CHECK(s.done());
  }
  SECTION("server SETTINGS seen before the client preface") {
    Session s(Side::kServer);
    s.on_data(kOut, seg(std::string("\0\0\x06\x04\0\0\0\0\0\0\x03\0\0\0\x64", 15), 1));
    CHECK(s.verdict() == Verdict::kHttp2);
  }
  SECTION("bytes after the verdict are ignored") {
    Session s(Side::kServer);
    s.on_data(kIn, seg(preface, 1));
    s.on_data(kIn, seg(get("/x"), 2));
    s.on_data(kOut, seg(ok("x"), 3));
    s.on_close(4, "connection_closed");
    CHECK(s.take_exchanges().empty());
    CHECK(s.verdict() == Verdict::kHttp2);
  }
}

TEST_CASE("http1 non-HTTP first bytes give kNotHttp", "[http1][session]") {
  const std::string inputs[] = {
      "*1\r\n$4\r\nPING\r\n",
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
      std::string("\x00\x9f\x13\xee\xfa\x01\x02\x7f\x80", 9),
      "get / http/1.1\r\n\r\n",
      "SSH-2.0-OpenSSH_9.3\r\n",
  };
  for (const std::string& in : inputs) {
    INFO(in);
    Session s(Side::kServer);
    s.on_data(kIn, seg(in, 1));
    CHECK(s.verdict() == Verdict::kNotHttp);
    CHECK(s.done());
    s.on_data(kIn, seg(get("/late"), 2));
    s.on_data(kOut, seg(ok("late"), 3));
    CHECK(s.take_exchanges().empty());
  }
  SECTION("server speaking first") {
    Session s(Side::kClient);
    s.on_data(kIn, seg("220 mail.example.com ESMTP\r\n", 1));
    CHECK(s.verdict() == Verdict::kNotHttp);
  }
}

TEST_CASE("http1 a prefix that may still become a request is not judged", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("GE", 1));
  CHECK(s.verdict() == Verdict::kUndecided);
  CHECK_FALSE(s.done());
  s.on_data(kIn, seg("T / HTTP/1.1\r", 2));
  CHECK(s.verdict() == Verdict::kUndecided);
  s.on_data(kIn, seg("\n\r\n", 3));
  CHECK(s.verdict() == Verdict::kHttp1);
  s.on_data(kOut, seg(ok("x"), 4));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.first_ts_ns == 1);
  CHECK(xs[0].request.last_ts_ns == 3);

  Session bad(Side::kServer);
  bad.on_data(kIn, seg("GE", 1));
  bad.on_data(kIn, seg("T\x01", 2));
  CHECK(bad.verdict() == Verdict::kNotHttp);
}

TEST_CASE("http1 oversized heads: kNotHttp at start, desync later", "[http1][session]") {
  Limits lim;
  lim.max_head_bytes = 256;
  const std::string huge = "GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n";
  Session fresh(Side::kServer, lim);
  fresh.on_data(kIn, seg(std::string_view(huge).substr(0, 200), 1));
  CHECK(fresh.verdict() == Verdict::kUndecided);
  fresh.on_data(kIn, seg(std::string_view(huge).substr(200), 2));
  CHECK(fresh.verdict() == Verdict::kNotHttp);

  Session later(Side::kServer, lim);
  later.on_data(kIn, seg(get("/a"), 1));
  later.on_data(kIn, seg(huge, 2));
  CHECK(later.desyncs() == 1);
  later.on_data(kIn, seg(get("/b"), 3));
  later.on_data(kOut, seg(ok("A") + ok("B"), 4));
  auto xs = later.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[1].request.target == "/b");
}

TEST_CASE("http1 Side::kUnknown: mid-body bytes are skipped until a request line", "[http1][session]") {
  Session s(Side::kUnknown);
  s.on_data(kIn, seg("tinue the upload\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1));
  s.on_data(kOut, seg(ok("answer to something older"), 2));
  CHECK(s.side() == Side::kUnknown);
  CHECK(s.verdict() == Verdict::kUndecided);
  CHECK_FALSE(s.done());
  s.on_data(kIn, seg(get("/next"), 3));
  CHECK(s.side() == Side::kServer);
  s.on_data(kOut, seg(ok("yes"), 4));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/next");
  CHECK(xs[0].response->body == "yes");
  CHECK(s.verdict() == Verdict::kHttp1);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("http1 Side::kUnknown: client decided from written request", "[http1][session]") {
  Session s(Side::kUnknown);
  s.on_data(kIn, seg("some response tail", 1));
  s.on_data(kOut, seg(kPost, 2));
  CHECK(s.side() == Side::kClient);
  // A response that began before the request cannot answer it.
  s.on_data(kIn, seg(ok("stale"), 1));
  s.on_data(kIn, seg(kResp, 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].response->body == "hello");
}

TEST_CASE("http1 Side::kUnknown gives up on a connection that never shows HTTP", "[http1][session]") {
  Session s(Side::kUnknown);
  for (int i = 0; i < 200 && !s.done(); ++i) s.on_data(i % 2, seg("*1\r\n$4\r\nPING\r\n", i));
  CHECK(s.verdict() == Verdict::kNotHttp);
  CHECK(s.done());
}

TEST_CASE("http1 CONNECT 200 opens a tunnel", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg("CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n", 1));
  s.on_data(kOut, seg(std::string("\x16\x03\x01\x00\x10", 5), 2)); // eager ClientHello
  s.on_data(kIn, seg("HTTP/1.1 200 Connection established\r\n\r\n", 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].tunnel);
  CHECK(xs[0].request.method == "CONNECT");
  CHECK(xs[0].response->status == 200);
  CHECK(s.done());
  CHECK(s.desyncs() == 0);
  s.on_data(kIn, seg(std::string("\x16\x03\x03\x00\x20", 5), 4));
  s.on_data(kOut, seg(get("/inside"), 5));
  s.on_close(6, "connection_closed");
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("http1 refused CONNECT keeps decoding HTTP", "[http1][session]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg("CONNECT db.example:443 HTTP/1.1\r\n\r\n", 1));
  s.on_data(kOut, seg(get("/held"), 2)); // held until the answer is known
  s.on_data(kIn, seg("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", 3));
  CHECK_FALSE(s.done());
  s.on_data(kIn, seg(ok("held"), 4));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK_FALSE(xs[0].tunnel);
  CHECK(xs[0].response->status == 407);
  CHECK(xs[1].request.target == "/held");
  CHECK(xs[1].response->body == "held");
}

TEST_CASE("http1 101 Switching Protocols opens a tunnel", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(
      kIn,
      seg("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 1));
  CHECK_FALSE(s.done());
  s.on_data(kOut, seg("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n\r\n\x81\x05hello",
                      2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].tunnel);
  CHECK(xs[0].response->status == 101);
  CHECK(xs[0].informational.empty());
  CHECK(s.done());
  s.on_data(kIn, seg("\x81\x85garbage", 3));
  CHECK(s.desyncs() == 0);
}

TEST_CASE("http1 Upgrade ignored by the server: HTTP continues", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 1));
  s.on_data(kOut, seg(ok("plain"), 2));
  s.on_data(kIn, seg(get("/2"), 3));
  s.on_data(kOut, seg(ok("two"), 4));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK_FALSE(xs[0].tunnel);
  CHECK(xs[1].response->body == "two");
}

TEST_CASE("http1 on_close turns pending requests into exchanges", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(get("/1") + get("/2") + get("/3"), 1));
  s.on_data(kOut, seg(ok("1"), 2));
  s.on_data(kOut, seg("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 3));
  CHECK(s.take_exchanges().size() == 1);
  s.on_close(9, "connection_reset");
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].request.target == "/2");
  REQUIRE(xs[0].response);
  CHECK_FALSE(xs[0].response->complete);
  CHECK(xs[0].response->body == "abc");
  CHECK(xs[0].error_type == "connection_reset");
  CHECK(xs[1].request.target == "/3");
  CHECK(xs[1].request.complete);
  CHECK_FALSE(xs[1].response);
  CHECK(xs[1].error_type == "connection_reset");
  s.on_data(kOut, seg(ok("late"), 10));
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("http1 on_close with a request cut mid-body", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial", 1));
  s.on_close(2, "incomplete");
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK_FALSE(xs[0].request.complete);
  CHECK(xs[0].request.body == "partial");
  CHECK_FALSE(xs[0].response);
  CHECK(xs[0].error_type == "incomplete");
}

TEST_CASE("http1 max_pending drops the oldest requests", "[http1][session]") {
  Limits lim;
  lim.max_pending = 2;
  Session s(Side::kServer, lim);
  s.on_data(kIn, seg(get("/1") + get("/2") + get("/3") + get("/4"), 1));
  CHECK(s.desyncs() == 2);
  s.on_data(kOut, seg(ok("x"), 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target == "/3");
}

TEST_CASE("http1 stray CRLF between requests is tolerated", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(kPost + "\r\n", 1));
  s.on_data(kIn, seg(get("/2"), 2));
  s.on_data(kOut, seg(ok("a") + ok("b"), 3));
  CHECK(s.take_exchanges().size() == 2);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("http1 response without a request is decoded and dropped", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kOut, seg("HTTP/1.1 408 Request Timeout\r\nContent-Length: 4\r\n\r\nGET ", 1));
  s.on_data(kIn, seg(get("/x"), 2));
  s.on_data(kOut, seg(ok("x"), 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].response->body == "x");
  CHECK(s.desyncs() == 0);
}

TEST_CASE("http1 request with an unframeable Transfer-Encoding is not decoded", "[http1][session]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(get("/ok"), 1));
  s.on_data(kIn, seg("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxyz", 2));
  CHECK(s.desyncs() == 1);
  s.on_data(kOut, seg(ok("ok"), 3));
  CHECK(s.take_exchanges().size() == 1);
}

TEST_CASE("http1 sessions are movable", "[http1][session]") {
  Session a(Side::kServer);
  a.on_data(kIn, seg(kGet, 1));
  Session b(std::move(a));
  b.on_data(kOut, seg(kResp, 2));
  CHECK(b.take_exchanges().size() == 1);
  Session c(Side::kClient);
  c = std::move(b);
  CHECK(c.side() == Side::kServer);
}

// --- Truncation and split sweeps ------------------------------------------

TEST_CASE("http1 sweep: every proper prefix of a request needs more data", "[http1][sweep]") {
  const size_t head = kPost.find("\r\n\r\n") + 4;
  for (size_t k = 1; k < kPost.size(); ++k) {
    INFO("prefix " << k);
    Session s(Side::kServer);
    s.on_data(kIn, seg(std::string_view(kPost).substr(0, k), 1));
    CHECK(s.verdict() == (k >= head ? Verdict::kHttp1 : Verdict::kUndecided));
    s.on_data(kOut, seg(kResp, 2));
    CHECK(s.take_exchanges().empty());
    CHECK(s.desyncs() == 0);
    s.on_close(3, "incomplete");
    auto xs = s.take_exchanges();
    // Once the head is known the request is reported, incomplete.
    REQUIRE(xs.size() == (k >= head ? 1u : 0u));
    if (!xs.empty()) {
      CHECK_FALSE(xs[0].request.complete);
      CHECK(xs[0].request.body_size == k - head);
    }
  }
}

TEST_CASE("http1 sweep: every proper prefix of a response needs more data", "[http1][sweep]") {
  for (const std::string* resp : {&kResp, &kChunked}) {
    for (size_t k = 1; k < resp->size(); ++k) {
      INFO("prefix " << k << " of " << *resp);
      Session s(Side::kServer);
      s.on_data(kIn, seg(kGet, 1));
      s.on_data(kOut, seg(std::string_view(*resp).substr(0, k), 2));
      CHECK(s.take_exchanges().empty());
      CHECK(s.desyncs() == 0);
      s.on_close(3, "connection_reset");
      auto xs = s.take_exchanges();
      REQUIRE(xs.size() == 1);
      CHECK(xs[0].error_type == "connection_reset");
      if (xs[0].response) CHECK_FALSE(xs[0].response->complete);
    }
  }
}

TEST_CASE("http1 sweep: a split at any byte equals the whole", "[http1][sweep]") {
  for (const auto& [req, resp] : {std::pair{&kPost, &kResp}, std::pair{&kGet, &kChunked}}) {
    const std::string whole = describe(run_whole(*req, *resp));
    REQUIRE(!whole.empty());
    for (size_t k = 1; k < req->size(); ++k) {
      Session s(Side::kServer);
      s.on_data(kIn, seg(std::string_view(*req).substr(0, k), 1));
      s.on_data(kIn, seg(std::string_view(*req).substr(k), 1));
      s.on_data(kOut, seg(*resp, 2));
      INFO("request split at " << k);
      CHECK(describe(s.take_exchanges()) == whole);
    }
    for (size_t k = 1; k < resp->size(); ++k) {
      Session s(Side::kServer);
      s.on_data(kIn, seg(*req, 1));
      s.on_data(kOut, seg(std::string_view(*resp).substr(0, k), 2));
      s.on_data(kOut, seg(std::string_view(*resp).substr(k), 2));
      INFO("response split at " << k);
      CHECK(describe(s.take_exchanges()) == whole);
    }
  }
}

TEST_CASE("http1 sweep: one byte per segment equals the whole", "[http1][sweep]") {
  const std::string reqs = kPost + kGet;
  const std::string resps = kResp + kChunked;
  Session whole(Side::kClient);
  whole.on_data(kOut, seg(reqs, 1));
  whole.on_data(kIn, seg(resps, 2));
  const std::string expect = describe(whole.take_exchanges());
  Session bytes(Side::kClient);
  for (char c : reqs) bytes.on_data(kOut, seg(std::string_view(&c, 1), 1));
  for (char c : resps) bytes.on_data(kIn, seg(std::string_view(&c, 1), 2));
  const auto xs = bytes.take_exchanges();
  CHECK(xs.size() == 2);
  CHECK(describe(xs) == expect);
}

TEST_CASE("http1 long heads trickling in byte by byte", "[http1][session]") {
  // Rescanning the buffered head on every byte would make this quadratic.
  const std::string req = "GET /" + std::string(20000, 't') + " HTTP/1.1\r\nCookie: " +
                          std::string(30000, 'c') + "\r\n\r\n";
  Session s(Side::kServer);
  for (size_t i = 0; i < req.size(); ++i)
    s.on_data(kIn, seg(std::string_view(req).substr(i, 1), 1 + i));
  CHECK(s.verdict() == Verdict::kHttp1);
  s.on_data(kOut, seg(ok("big"), req.size() + 1));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].request.target.size() == 20001);
  CHECK(xs[0].request.header("cookie")->size() == 30000);
  CHECK(xs[0].request.head_size == req.size());
  CHECK(xs[0].request.first_ts_ns == 1);
  CHECK(xs[0].request.last_ts_ns == req.size());
}

// A caller that hands its exchange vector back (take_exchanges(out), as SessionDecoder::drain
// does) returns the header vectors of the previous batch to a pool: the next messages' heads
// are parsed into them instead of newly allocated ones, and carry nothing over. (A data
// pointer would not tell: malloc hands a freed block back at once. The capacity does: a fresh
// vector is reserved for the head's own field count.)
TEST_CASE("http1: header vectors of a delivered batch serve the next heads", "[http1][session]") {
  Session s(Side::kServer);
  std::vector<Exchange> out;
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  // Three kept fields: its vector holds 3 (the response's 1).
  s.on_data(kIn, seg("GET /one HTTP/1.1\r\nHost: a\r\nUser-Agent: u\r\nTraceparent: x\r\n\r\n", 1));
  s.on_data(kOut, seg(resp, 2));
  s.take_exchanges(out);
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].request.headers.capacity() == 3);
  s.on_data(kIn, seg(get("/two"), 3));
  s.on_data(kOut, seg(resp, 4));
  s.take_exchanges(out); // the first batch goes back to the pool here
  s.on_data(kIn, seg(get("/three"), 5));
  s.on_data(kOut, seg(resp, 6));
  s.take_exchanges(out);
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].response);
  // The pool is last in, first out: /three's request took /one's response vector, and its
  // response (one field) /one's request vector, with room for 3.
  const Message& rs = *out[0].response;
  CHECK(rs.headers.capacity() == 3);
  REQUIRE(rs.headers.size() == 1); // nothing of /one's fields is left
  CHECK(rs.headers[0].name == "content-length");
  REQUIRE(out[0].request.headers.size() == 1);
  CHECK(out[0].request.headers[0].name == "host");
  CHECK(out[0].request.target == "/three");
}
