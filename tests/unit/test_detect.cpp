// Protocol detection from a connection's first bytes, options and ports.
#include <catch2/catch.hpp>

#include <string>

#include "conn/decoder.hpp"

using namespace odigos;
using proto::Side;

namespace {
const std::string kPgStartup = [] {
  // StartupMessage v3: length, 196608, "user\0postgres\0database\0db\0\0"
  std::string body = std::string("\x00\x03\x00\x00", 4) + std::string("user\0postgres\0database\0db\0\0", 27);
  uint32_t len = uint32_t(body.size() + 4);
  std::string m;
  for (int s = 24; s >= 0; s -= 8) m.push_back(char((len >> s) & 0xff));
  return m + body;
}();
const std::string kSslRequest("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8);
const std::string kRedisSet = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
} // namespace

TEST_CASE("first bytes choose the protocol", "[detect]") {
  DetectOptions opt;
  // Client bytes are ingress on the server side, egress on the client side.
  CHECK(detect_protocol("GET / HTTP/1.1\r\n", true, Side::kServer, 80, 5000, opt) == Protocol::kHttp1);
  CHECK(detect_protocol("HTTP/1.1 200 OK\r\n", true, Side::kClient, 5000, 80, opt) == Protocol::kHttp1);
  CHECK(detect_protocol(kRedisSet, true, Side::kServer, 6379, 5000, opt) == Protocol::kRedis);
  CHECK(detect_protocol(kRedisSet, false, Side::kClient, 5000, 6379, opt) == Protocol::kRedis);
  // Redis replies are not commands: a server's own reply bytes do not make it Redis.
  CHECK(detect_protocol("+OK\r\n", false, Side::kServer, 6379, 5000, opt) != Protocol::kRedis);
  CHECK(detect_protocol(kPgStartup, true, Side::kServer, 5432, 5000, opt) == Protocol::kPostgres);
  CHECK(detect_protocol(kSslRequest, false, Side::kClient, 5000, 5432, opt) == Protocol::kPostgres);
  CHECK(detect_protocol(kPgStartup, true, Side::kUnknown, 0, 0, opt) == Protocol::kPostgres);
}

TEST_CASE("options override and restrict detection", "[detect]") {
  DetectOptions opt;
  opt.port_hints.emplace_back(7000, Protocol::kRedis);
  // A port hint wins over what the bytes look like, on either end's port.
  CHECK(detect_protocol("GET / HTTP/1.1\r\n", true, Side::kServer, 7000, 5000, opt) == Protocol::kRedis);
  CHECK(detect_protocol("PING\r\n", false, Side::kClient, 5000, 7000, opt) == Protocol::kRedis);
  DetectOptions forced;
  forced.forced = Protocol::kPostgres;
  CHECK(detect_protocol("anything", true, Side::kServer, 1, 2, forced) == Protocol::kPostgres);
  DetectOptions only_redis;
  only_redis.enabled = 1u << unsigned(Protocol::kRedis);
  CHECK(detect_protocol("GET / HTTP/1.1\r\n", true, Side::kServer, 80, 5000, only_redis) ==
        Protocol::kUnknown);
  CHECK(detect_protocol(kRedisSet, true, Side::kServer, 6379, 5000, only_redis) == Protocol::kRedis);
  CHECK(detect_protocol(kPgStartup, true, Side::kServer, 5432, 5000, only_redis) == Protocol::kUnknown);
}

TEST_CASE("protocol names", "[detect]") {
  Protocol p;
  REQUIRE(parse_protocol("postgres", p));
  CHECK(p == Protocol::kPostgres);
  CHECK(std::string(to_string(p)) == "postgresql");
  REQUIRE(parse_protocol("mariadb", p));
  CHECK(p == Protocol::kMysql);
  CHECK_FALSE(parse_protocol("smtp", p));
}
