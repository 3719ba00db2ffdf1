#include <catch2/catch.hpp>

#include "cli/options.hpp"

using namespace odigos;

namespace {
ParseOutcome parse_otlp(std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "odigos-trace";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(int(argv.size()), argv.data());
}
} // namespace

TEST_CASE("cli: --format chooses the -o file's format", "[cli][otlp]") {
  auto o = parse_otlp({"--pid", "1", "-o", "t.jsonl", "--format", "otlp"});
  REQUIRE(o.options);
  CHECK(o.options->otlp_file);
  CHECK(o.options->output == "t.jsonl");
  o = parse_otlp({"--pid", "1", "-o", "t.ndjson"});
  REQUIRE(o.options);
  CHECK_FALSE(o.options->otlp_file);
  o = parse_otlp({"--pid", "1", "-o", "t.ndjson", "--format", "ndjson"});
  REQUIRE(o.options);
  CHECK_FALSE(o.options->otlp_file);
  // Without -o: a clear error, not NDJSON on stdout.
  o = parse_otlp({"--pid", "1", "--format", "otlp"});
  CHECK_FALSE(o.options);
  CHECK(o.exit_code == kExitError);
  o = parse_otlp({"--pid", "1", "-o", "x", "--format", "xml"});
  CHECK_FALSE(o.options);
  CHECK(o.exit_code == kExitError);
}

TEST_CASE("cli: --otlp-endpoint takes an http(s) URL", "[cli][otlp]") {
  auto o = parse_otlp({"--pid", "1", "--otlp-endpoint", "http://localhost:4318"});
  REQUIRE(o.options);
  CHECK(o.options->otlp_endpoint == "http://localhost:4318");
  o = parse_otlp({"--all", "--otlp-endpoint", "https://otel.example/v1/traces", "-o", "f", "--format", "otlp"});
  REQUIRE(o.options);
  CHECK(o.options->otlp_endpoint == "https://otel.example/v1/traces");
  CHECK(o.options->otlp_file);
  o = parse_otlp({"--pid", "1"});
  REQUIRE(o.options);
  CHECK(o.options->otlp_endpoint.empty());
  o = parse_otlp({"--pid", "1", "--otlp-endpoint", "localhost:4317"});
  CHECK_FALSE(o.options);
  CHECK(o.exit_code == kExitError);
  o = parse_otlp({"--pid", "1", "--otlp-endpoint"});
  CHECK_FALSE(o.options);
}
