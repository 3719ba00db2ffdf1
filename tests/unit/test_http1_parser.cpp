// parse_head and the start-line detectors, on byte fixtures.
#include <catch2/catch.hpp>

#include "protocols/http1/http1.hpp"

#include <string>

using namespace odigos::http1;

namespace {

const std::string kGetHead =
    "GET /index.html?q=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent:   curl/8.0 \t\r\n"
    "ACCEPT: */*\r\n"
    "\r\n";

const std::string kRespHead =
    "HTTP/1.0 404 Not Found\r\n"
    "Content-Length: 9\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n";

const std::string kChunkedHead =
    "HTTP/1.1 200 OK\r\n"
    "Transfer-Encoding: gzip, chunked\r\n"
    "\r\n";

long parse(std::string_view buf, bool req, Message& m) { return parse_head(buf, req, m); }

} // namespace

TEST_CASE("http1 parse_head: request line and headers", "[http1][parser]") {
  Message m;
  const std::string buf = kGetHead + "trailing body bytes";
  REQUIRE(parse(buf, true, m) == static_cast<long>(kGetHead.size()));
  CHECK(m.method == "GET");
  CHECK(m.target == "/index.html?q=1");
  CHECK(m.minor_version == 1);
  CHECK(m.head_size == kGetHead.size());
  REQUIRE(m.headers.size() == 3);
  CHECK(m.headers[0].name == "host");
  CHECK(m.headers[0].value == "example.com");
  CHECK(m.headers[1].name == "user-agent");
  CHECK(m.headers[1].value == "curl/8.0");
  CHECK(m.headers[2].name == "accept");
  REQUIRE(m.header("accept") != nullptr);
  CHECK(*m.header("accept") == "*/*");
  CHECK(m.header("cookie") == nullptr);
  CHECK_FALSE(m.chunked);
}

TEST_CASE("http1 parse_head: status line variants", "[http1][parser]") {
  Message m;
  REQUIRE(parse(kRespHead, false, m) == static_cast<long>(kRespHead.size()));
  CHECK(m.status == 404);
  CHECK(m.reason == "Not Found");
  CHECK(m.minor_version == 0);
  CHECK(*m.header("content-length") == "9");

  Message bare;
  REQUIRE(parse("HTTP/1.1 204\r\n\r\n", false, bare) == 16);
  CHECK(bare.status == 204);
  CHECK(bare.reason.empty());
  CHECK(bare.headers.empty());

  Message chunked;
  REQUIRE(parse(kChunkedHead, false, chunked) > 0);
  CHECK(chunked.chunked);
}

TEST_CASE("http1 parse_head: request-target forms and methods", "[http1][parser]") {
  Message m;
  CHECK(parse("CONNECT example.com:443 HTTP/1.1\r\n\r\n", true, m) > 0);
  CHECK(m.method == "CONNECT");
  CHECK(m.target == "example.com:443");
  CHECK(parse("OPTIONS * HTTP/1.1\r\n\r\n", true, m) > 0);
  CHECK(m.target == "*");
  CHECK(parse("GET http://a.example/x HTTP/1.0\r\n\r\n", true, m) > 0);
  CHECK(m.target == "http://a.example/x");
  CHECK(m.minor_version == 0);
  CHECK(parse("PROPFIND /dav HTTP/1.1\r\n\r\n", true, m) > 0);
  CHECK(m.method == "PROPFIND");
  const std::string m20(20, 'X');
  CHECK(parse(m20 + " / HTTP/1.1\r\n\r\n", true, m) > 0);
  CHECK(parse(m20 + "X / HTTP/1.1\r\n\r\n", true, m) == -1);
}

TEST_CASE("http1 parse_head: every proper prefix needs more data", "[http1][parser]") {
  for (const auto& [head, req] : {std::pair{kGetHead, true}, std::pair{kRespHead, false},
                                  std::pair{kChunkedHead, false}}) {
    for (size_t k = 0; k < head.size(); ++k) {
      Message m;
      INFO("prefix length " << k << " of " << head);
      CHECK(parse(std::string_view(head).substr(0, k), req, m) == 0);
    }
    Message m;
    CHECK(parse(head, req, m) == static_cast<long>(head.size()));
  }
}

TEST_CASE("http1 parse_head: rejects what cannot be HTTP/1", "[http1][parser]") {
  Message m;
  const char* bad_requests[] = {
      "get / HTTP/1.1\r\n\r\n",               // lower-case method
      "GET  / HTTP/1.1\r\n\r\n",              // empty target
      "GET / HTTP/2.0\r\n\r\n",               // not HTTP/1
      "GET / HTTP/1.1\n\n",                   // bare LF line ends
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",     // no colon
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",   // space before colon
      "GET / HTTP/1.1\r\n: x\r\n\r\n",        // empty name
      "GET / HTTP/1.1\r\nA: b\x01" "c\r\n\r\n", // control byte in value
      "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",    // CR without LF
      "GET / HTTP/1.1\r\n folded\r\n\r\n",    // continuation with nothing to continue
      "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  };
  for (const char* b : bad_requests) {
    INFO(b);
    CHECK(parse(b, true, m) == -1);
  }
  const char* bad_responses[] = {
      "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/2 200\r\n\r\n",       "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 200 O\x02K\r\n\r\n",
  };
  for (const char* b : bad_responses) {
    INFO(b);
    CHECK(parse(b, false, m) == -1);
  }
}

TEST_CASE("http1 parse_head: rejects garbage before the head is complete", "[http1][parser]") {
  Message m;
  CHECK(parse("*1\r\n$4\r\nPING\r\n", true, m) == -1);
  CHECK(parse(std::string_view("\x16\x03\x01\x02\x00\x01", 6), true, m) == -1);
  CHECK(parse("GET /x HTTP/1.1\r", true, m) == 0);
  CHECK(parse("GE", true, m) == 0);
  CHECK(parse("GET /x HTTX", true, m) == -1);
  CHECK(parse("+OK\r\n", false, m) == -1);
  CHECK(parse("HTTP/1.1 2", false, m) == 0);
}

TEST_CASE("http1 parse_head: lenient field forms", "[http1][parser]") {
  Message m;
  REQUIRE(parse("GET / HTTP/1.1\r\nX-Long: part one\r\n\tpart two\r\nContent-Length: 5, 5\r\n"
                "Empty:\r\n\r\n",
                true, m) > 0);
  CHECK(*m.header("x-long") == "part one part two");
  CHECK(*m.header("content-length") == "5, 5");
  REQUIRE(m.header("empty") != nullptr);
  CHECK(m.header("empty")->empty());

  Message te;
  REQUIRE(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, te) > 0);
  CHECK_FALSE(te.chunked); // only the final coding counts
  REQUIRE(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
                false, te) > 0);
  CHECK(te.chunked);
}

TEST_CASE("http1 looks_like_request / looks_like_response", "[http1][parser]") {
  CHECK(looks_like_request("GET / HTTP/1.1\r\nHost: a\r\n"));
  CHECK(looks_like_request("DELETE /items/5 HTT"));
  CHECK(looks_like_request("PATCH "));
  CHECK_FALSE(looks_like_request("GE"));
  CHECK_FALSE(looks_like_request(""));
  CHECK_FALSE(looks_like_request("get / HTTP/1.1\r\n"));
  CHECK_FALSE(looks_like_request("GET / HTTP/1.1\n"));
  CHECK_FALSE(looks_like_request("HTTP/1.1 200 OK\r\n"));
  CHECK_FALSE(looks_like_request("*1\r\n$4\r\nPING\r\n"));
  CHECK_FALSE(looks_like_request("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));

  CHECK(looks_like_response("HTTP/1.1 200 OK\r\n"));
  CHECK(looks_like_response("HTTP/1.0 302 "));
  CHECK(looks_like_response("HTTP/1.1 204\r\n"));
  CHECK_FALSE(looks_like_response("HTTP/1."));
  CHECK_FALSE(looks_like_response("HTTP/2 200\r\n"));
  CHECK_FALSE(looks_like_response("GET / HTTP/1.1\r\n"));
}

TEST_CASE("http1 looks_like_h2_preface", "[http1][parser]") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  CHECK(looks_like_h2_preface(preface));
  CHECK(looks_like_h2_preface(preface + std::string("\x00\x00\x12\x04", 4)));
  CHECK(looks_like_h2_preface("PRI * HTTP/2"));
  CHECK(looks_like_h2_preface("P"));
  CHECK_FALSE(looks_like_h2_preface(""));
  CHECK_FALSE(looks_like_h2_preface("PRI * HTTP/1.1\r\n"));
  CHECK_FALSE(looks_like_h2_preface("GET / HTTP/1.1\r\n"));
}

// The session reuses one Message per direction: clear() must leave exactly what Message{}
// is, whatever the previous message left (a parsed head, a body, flags).
TEST_CASE("http1 Message::clear is a new message", "[http1][parser]") {
  Message m;
  REQUIRE(parse(kGetHead, true, m) > 0);
  m.status = 404;
  m.reason = "Not Found";
  m.minor_version = 0;
  m.body_size = 70000;
  m.body.assign(5000, 'x'); // a large buffer is released, not kept per connection
  m.body_truncated = m.chunked = m.complete = true;
  m.first_ts_ns = 1;
  m.last_ts_ns = 2;
  m.clear();
  const Message fresh;
  CHECK(m.method == fresh.method);
  CHECK(m.target == fresh.target);
  CHECK(m.status == fresh.status);
  CHECK(m.reason == fresh.reason);
  CHECK(m.minor_version == fresh.minor_version);
  CHECK(m.headers.empty());
  CHECK(m.head_size == fresh.head_size);
  CHECK(m.body_size == fresh.body_size);
  CHECK(m.body.empty());
  CHECK(m.body.capacity() <= 256);
  CHECK(m.body_truncated == fresh.body_truncated);
  CHECK(m.chunked == fresh.chunked);
  CHECK(m.first_ts_ns == fresh.first_ts_ns);
  CHECK(m.last_ts_ns == fresh.last_ts_ns);
  CHECK(m.complete == fresh.complete);
}
