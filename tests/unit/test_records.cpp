#include <catch2/catch.hpp>

#include "conn/addr.hpp"
#include "conn/http1_records.hpp"
#include "core/clock.hpp"
#include "core/utf8.hpp"
#include "sinks/json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <random>

using namespace odigos;

TEST_CASE("credential query values are redacted", "[redact]") {
  CHECK(redact_query("user=demo&token=abc123") == "user=demo&token=REDACTED");
  CHECK(redact_query("a=1&Signature=xyz&b=2") == "a=1&Signature=REDACTED&b=2");
  CHECK(redact_query("password=hunter2") == "password=REDACTED");
  CHECK(redact_query("q=token") == "q=token");
  CHECK(redact_query("flag&x=1") == "flag&x=1");
  CHECK(redact_query("") == "");
}

TEST_CASE("secret headers are recognised", "[redact]") {
  CHECK(is_sensitive_header("authorization"));
  CHECK(is_sensitive_header("cookie"));
  CHECK(is_sensitive_header("set-cookie"));
  CHECK(is_sensitive_header("proxy-authorization"));
  CHECK_FALSE(is_sensitive_header("user-agent"));
}

TEST_CASE("RFC 3339 timestamps keep nanoseconds", "[clock]") {
  CHECK(format_rfc3339_ns(1700000000123456789ull) == "2023-11-14T22:13:20.123456789Z");
  CHECK(format_rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z");
}

static http1::Exchange sample_exchange() {
  http1::Exchange ex;
  ex.request.method = "GET";
  ex.request.target = "/api/items?id=7&api_key=s3cr3t";
  ex.request.headers = {{"host", "shop.example:8080"},
                        {"user-agent", "curl/7.88"},
                        {"authorization", "Bearer abc"}};
  ex.request.first_ts_ns = 1'000'000;
  ex.request.last_ts_ns = 1'000'000;
  http1::Message resp;
  resp.status = 503;
  resp.body_size = 12;
  resp.first_ts_ns = 3'000'000;
  resp.last_ts_ns = 4'500'000;
  resp.complete = true;
  resp.headers = {{"set-cookie", "sid=1"}};
  ex.response = resp;
  return ex;
}

TEST_CASE("an HTTP exchange becomes a record with OpenTelemetry names", "[records]") {
  WallClock clock;
  ConnIdentity id;
  id.pid = 42;
  id.command = "curl";
  id.addrs_known = true;
  id.local.family = 2;
  id.local.port = 50000;
  id.local.addr[0] = 127, id.local.addr[3] = 1;
  id.remote.family = 2;
  id.remote.port = 8080;
  id.remote.addr[0] = 10, id.remote.addr[3] = 2;
  id.local_str = format_addr(id.local);
  id.remote_str = format_addr(id.remote);
  RecordOptions opt;
  opt.show_headers = true;
  Record r = http1_record(sample_exchange(), http1::Side::kClient, id, clock, opt, 0);
  CHECK(r.duration_ms == Approx(3.5));
  CHECK(r.ttfb_ms == Approx(2.0));
  CHECK(r.get_str("http.request.method") == "GET");
  CHECK(r.get_str("url.path") == "/api/items");
  CHECK(r.get_str("url.query") == "id=7&api_key=REDACTED");
  CHECK(r.get_int("http.response.status_code") == 503);
  CHECK(r.get_str("server.address") == "shop.example"); // client side: from Host
  CHECK(r.get_int("server.port") == 8080);
  CHECK(r.get_str("network.peer.address") == "10.0.0.2");
  CHECK(r.get_str("client.address") == "127.0.0.1");
  CHECK(r.get_str("error.type") == "503");
  CHECK(r.get_str("http.request.header.authorization") == "REDACTED");
  CHECK(r.get_str("http.response.header.set-cookie") == "REDACTED");
  CHECK(r.get_str("user_agent.original") == "curl/7.88");

  opt.redact = false;
  Record v = http1_record(sample_exchange(), http1::Side::kServer, id, clock, opt, 0);
  CHECK(v.get_str("url.query") == "id=7&api_key=s3cr3t");
  CHECK(v.get_str("http.request.header.authorization") == "Bearer abc");
  CHECK(v.get_str("client.address") == "10.0.0.2"); // server side: the peer
  CHECK(v.get_int("server.port") == 50000);
}

TEST_CASE("4xx is an error only on the client side", "[records]") {
  WallClock clock;
  auto ex = sample_exchange();
  ex.response->status = 404;
  CHECK(http1_record(ex, http1::Side::kClient, {}, clock, {}, 0).get_str("error.type") == "404");
  CHECK(http1_record(ex, http1::Side::kServer, {}, clock, {}, 0).get("error.type") == nullptr);
}

TEST_CASE("JSON records nest dotted names", "[json]") {
  Record r;
  r.protocol = "http";
  r.side = RecordSide::kServer;
  r.pid = 7;
  r.command = "nginx";
  r.start_ns = 1700000000000000000ull;
  r.duration_ms = 1.23456;
  r.set("http.request.method", std::string("GET"));
  r.set("http.response.status_code", int64_t(200));
  r.set("url.path", std::string("/"));
  r.set("http.request.body.size", int64_t(0));
  r.set("url.query", std::string("a=\"b\"\n"));
  r.set("user_agent.original", std::string("bad\xff\xfeutf8 \xc3\xa9"));
  std::string line;
  append_record_json(r, line);
  INFO(line);
  auto j = nlohmann::json::parse(line);
  CHECK(j["http"]["request"]["body"]["size"] == 0);
  CHECK(j["url"]["query"] == "a=\"b\"\n");
  CHECK(j["user_agent"]["original"] == "bad\xef\xbf\xbd\xef\xbf\xbdutf8 \xc3\xa9");
  CHECK(j["thread"]["id"] == 0);
  CHECK(j["kind"] == "request");
  CHECK(j["schema_version"] == 1);
  CHECK(j["http"]["request"]["method"] == "GET");
  CHECK(j["http"]["response"]["status_code"] == 200);
  CHECK(j["url"]["path"] == "/");
  CHECK(j["process"]["pid"] == 7);
  CHECK(j["process"]["command"] == "nginx");
  CHECK(j["duration_ms"].get<double>() == Approx(1.235));
  CHECK(j["time"] == "2023-11-14T22:13:20.000000000Z");
}

TEST_CASE("JSON layouts are cached per attribute-name set, never mixed up", "[json]") {
  // Two name sets written alternately (each reuses its cached layout), and a record with
  // a dynamic key (header names: not cached) between them.
  auto make = [](bool http) {
    Record r;
    r.pid = 1;
    if (http) {
      r.set("http.request.method", std::string("GET"));
      r.set("url.path", std::string("/a"));
      r.set("url.query", std::string("q=1")); // as many names as the other set
    } else {
      r.set("db.system.name", std::string("redis"));
      r.set("db.operation.name", std::string("GET"));
      r.set("db.query.text", std::string("GET k"));
    }
    return r;
  };
  for (int round = 0; round < 3; round++) {
    for (bool http : {true, false}) {
      std::string line;
      append_record_json(make(http), line);
      auto j = nlohmann::json::parse(line);
      if (http) {
        CHECK(j["http"]["request"]["method"] == "GET");
        CHECK(j["url"]["path"] == "/a");
        CHECK(j["url"]["query"] == "q=1");
        CHECK_FALSE(j.contains("db"));
      } else {
        CHECK(j["db"]["system"]["name"] == "redis");
        CHECK(j["db"]["query"]["text"] == "GET k");
        CHECK_FALSE(j.contains("http"));
      }
    }
    Record d = make(true);
    d.set_dynamic("http.request.header.x-round", std::to_string(round));
    std::string line;
    append_record_json(d, line);
    auto j = nlohmann::json::parse(line);
    CHECK(j["http"]["request"]["header"]["x-round"] == std::to_string(round));
    CHECK(j["http"]["request"]["method"] == "GET");
  }
}

TEST_CASE("JSON strings: valid UTF-8 kept, every invalid sequence replaced (RFC 3629)",
          "[records][utf8]") {
  auto j = [](std::string_view s) {
    std::string out;
    append_json_string(s, out);
    return out;
  };
  CHECK(j("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  CHECK(j("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
  // Overlong forms, a surrogate, beyond U+10FFFF, a lone continuation, a cut sequence:
  // each byte that starts no valid sequence becomes U+FFFD (as protobuf strings do).
  CHECK(j("\xC0\xAF") == "\"\\ufffd\\ufffd\"");
  CHECK(j("\xE0\x80\xAF") == "\"\\ufffd\\ufffd\\ufffd\"");
  CHECK(j("\xED\xA0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");
  CHECK(j("\xF4\x90\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  CHECK(j("\x80x") == "\"\\ufffdx\"");
  CHECK(j("\xE2\x82") == "\"\\ufffd\\ufffd\"");
}

// put_json_string copies plain ASCII eight bytes at a time and finishes a plain tail with one
// overlapping eight-byte copy: every length and every position of a byte that needs escaping
// must give what a byte-at-a-time writer gives, and valid UTF-8 must parse back to itself.
TEST_CASE("JSON strings: the word-at-a-time writer equals a byte-at-a-time one",
          "[records][utf8]") {
  auto reference = [](std::string_view s) {
    std::string out = "\"";
    for (size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += char(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20) {
        out += fmt::format("\\u{:04x}", c);
      } else if (c < 0x80) {
        out += char(c);
      } else if (size_t len = utf8_seq(s, i)) {
        out.append(s.substr(i, len));
        i += len;
        continue;
      } else {
        out += "\\ufffd";
      }
      i++;
    }
    return out + "\"";
  };
  const std::string alphabet[] = {"a", "Z", " ", "\"", "\\", "\n", "\t", std::string(1, '\x01'),
                                  "\x7f", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                  "\x80", "\xC3", "/"};
  std::mt19937 rng(7);
  for (int round = 0; round < 20000; round++) {
    std::string s;
    const int parts = int(rng() % 24);
    // Mostly plain text, so that the eight-byte paths and their tails are exercised.
    for (int k = 0; k < parts; k++) s += rng() % 4 ? alphabet[rng() % 3] : alphabet[rng() % 15];
    std::string got;
    append_json_string(s, got);
    REQUIRE(got == reference(s));
    bool valid = true;
    for (size_t i = 0; i < s.size() && valid;) {
      const size_t len = utf8_seq(s, i);
      valid = len > 0;
      i += len;
    }
    if (valid) REQUIRE(nlohmann::json::parse(got).get<std::string>() == s);
  }
}
