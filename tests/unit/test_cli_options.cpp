#include <catch2/catch.hpp>

#include "cli/options.hpp"

using namespace odigos;

TEST_CASE("durations parse with units", "[cli]") {
  CHECK(parse_duration("30s").value() == Approx(30));
  CHECK(parse_duration("10").value() == Approx(10));
  CHECK(parse_duration("250ms").value() == Approx(0.25));
  CHECK(parse_duration("5m").value() == Approx(300));
  CHECK(parse_duration("1h").value() == Approx(3600));
  CHECK(parse_duration("1.5s").value() == Approx(1.5));
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("abc"));
  CHECK_FALSE(parse_duration("10x"));
  CHECK_FALSE(parse_duration("-3s"));
}

TEST_CASE("sizes parse with binary units", "[cli]") {
  CHECK(parse_size("4096").value() == 4096);
  CHECK(parse_size("4K").value() == 4096);
  CHECK(parse_size("16M").value() == 16u << 20);
  CHECK(parse_size("1G").value() == 1ull << 30);
  CHECK_FALSE(parse_size("12Q"));
  CHECK_FALSE(parse_size("M"));
}

TEST_CASE("show option accepts headers and a body size", "[cli]") {
  bool h = false;
  size_t b = 0;
  std::string err;
  REQUIRE(parse_show("headers,body=64", &h, &b, &err));
  CHECK(h);
  CHECK(b == 64);
  h = false;
  b = 0;
  REQUIRE(parse_show("body", &h, &b, &err));
  CHECK_FALSE(h);
  CHECK(b == 256);
  CHECK_FALSE(parse_show("bodies", &h, &b, &err));
  CHECK(err.find("bodies") != std::string::npos);
  CHECK_FALSE(parse_show("body=0", &h, &b, &err));
}

static ParseOutcome parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "odigos-trace";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(int(argv.size()), argv.data());
}

TEST_CASE("targets and the command after --", "[cli]") {
  auto o = parse({"--pid", "12", "--pid", "13", "--port", "80", "-o", "f.ndjson", "--duration", "2s"});
  REQUIRE(o.options);
  CHECK(o.options->pids == std::vector<uint32_t>{12, 13});
  CHECK(o.options->ports == std::vector<uint16_t>{80});
  CHECK(o.options->output == "f.ndjson");
  CHECK(o.options->duration_s == Approx(2));

  auto l = parse({"-q", "--", "curl", "-s", "--pid", "x"});
  REQUIRE(l.options);
  CHECK(l.options->command == std::vector<std::string>{"curl", "-s", "--pid", "x"});
  CHECK(l.options->quiet);
}

TEST_CASE("bad flags fail with the tool's error code", "[cli]") {
  CHECK(parse({}).exit_code == kExitError);                       // nothing to trace
  CHECK(parse({"--pid", "abc"}).exit_code == kExitError);
  CHECK(parse({"--pid", "1", "--duration", "soon"}).exit_code == kExitError);
  CHECK(parse({"--pid", "1", "--capture-size", "99999"}).exit_code == kExitError);
  CHECK(parse({"--pid", "1", "--ringbuf-size", "3000000"}).exit_code == kExitError);
  CHECK(parse({"--all", "--pid", "1"}).exit_code == kExitError);
  CHECK(parse({"--pid", "1", "-u", "nobody"}).exit_code == kExitError); // -u needs a command
  CHECK(parse({"--"}).exit_code == kExitError);
  CHECK(parse({"--bogus"}).exit_code == kExitError);
  CHECK_FALSE(parse({"--help"}).options);
  CHECK(parse({"--help"}).exit_code == 0);
}

TEST_CASE("max-connections takes a count within bounds", "[cli]") {
  auto d = parse({"--pid", "1"});
  REQUIRE(d.options);
  CHECK(d.options->max_connections == 65536);
  auto o = parse({"--pid", "1", "--max-connections", "1000"});
  REQUIRE(o.options);
  CHECK(o.options->max_connections == 1000);
  auto one = parse({"--pid", "1", "--max-connections", "1"});
  REQUIRE(one.options);
  CHECK(one.options->max_connections == 1);
  auto top = parse({"--pid", "1", "--max-connections", std::to_string(kMaxConnectionsLimit)});
  REQUIRE(top.options);
  CHECK(top.options->max_connections == kMaxConnectionsLimit);
  for (const char* bad : {"0", "-5", "abc", "10k", "1e3", " 12", "12 ", "",
                          "16777217", "99999999999999999999"}) {
    INFO("--max-connections '" << bad << "'");
    auto r = parse({"--pid", "1", "--max-connections", bad});
    CHECK_FALSE(r.options);
    CHECK(r.exit_code == kExitError);
  }
}

TEST_CASE("demo subcommand", "[cli]") {
  auto o = parse({"demo", "--duration", "3s"});
  REQUIRE(o.options);
  CHECK(o.options->demo);
  CHECK(o.options->demo_seconds == Approx(3));
}

TEST_CASE("protocol options: --protocol, --protocols and --port N=PROTO", "[cli]") {
  auto o = parse({"--port", "6379=redis", "--port", "5432", "--protocols", "redis,pg"});
  REQUIRE(o.options);
  CHECK(o.options->ports == std::vector<uint16_t>{6379, 5432});
  REQUIRE(o.options->detect.port_hints.size() == 1);
  CHECK(o.options->detect.port_hints[0].first == 6379);
  CHECK(o.options->detect.port_hints[0].second == Protocol::kRedis);
  CHECK(o.options->detect.enabled ==
        ((1u << unsigned(Protocol::kRedis)) | (1u << unsigned(Protocol::kPostgres))));
  auto f = parse({"--pid", "1", "--protocol", "mysql"});
  REQUIRE(f.options);
  CHECK(f.options->detect.forced == Protocol::kMysql);
  CHECK(parse({"--port", "6379=memcached"}).exit_code == kExitError);
  CHECK(parse({"--port", "70000"}).exit_code == kExitError);
  CHECK(parse({"--port", "x=redis"}).exit_code == kExitError);
  CHECK(parse({"--pid", "1", "--protocol", "ftp"}).exit_code == kExitError);
  CHECK(parse({"--pid", "1", "--protocols", "http,gopher"}).exit_code == kExitError);
}
