// Trace context parsing (W3C), span naming/status and the span linker: pure
// logic driven by synthetic records and connection events.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <set>

#include "conn/http1_records.hpp"
#include "core/clock.hpp"
#include "protocols/w3c/trace_context.hpp"
#include "trace/linker.hpp"
#include "trace/naming.hpp"
#include "sinks/sink.hpp"

using namespace odigos;

namespace {
constexpr const char* kTp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string hex(const uint8_t* p, size_t n) { return w3c::to_hex(p, n); }
} // namespace

TEST_CASE("traceparent: a valid version 00 header", "[trace][w3c]") {
  auto tp = w3c::parse_traceparent(kTp);
  REQUIRE(tp);
  CHECK(hex(tp->trace_id.data(), 16) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(hex(tp->parent_id.data(), 8) == "00f067aa0ba902b7");
  CHECK(tp->flags == 1);
  CHECK(tp->sampled());
  CHECK(w3c::parse_traceparent(std::string(" \t") + kTp + " ")); // OWS around the value
  CHECK(w3c::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->flags == 0);
}

TEST_CASE("traceparent: every validity rule", "[trace][w3c]") {
  auto bad = [](const std::string& v) { return !w3c::parse_traceparent(v).has_value(); };
  // Upper-case hex anywhere.
  CHECK(bad("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"));
  CHECK(bad("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  // All-zero ids.
  CHECK(bad("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  // Version ff is forbidden; version 00 has exactly four fields.
  CHECK(bad("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
  // A later version may carry more fields after a '-', and only then.
  CHECK_FALSE(bad("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever"));
  CHECK(bad("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01whatever"));
  // Lengths, separators, non-hex.
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"));
  CHECK(bad("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
  CHECK(bad("00-4bf92f3577b34da6a3ce929d0e0e47z6-00f067aa0ba902b7-01"));
  CHECK(bad(""));
  // The same header twice: invalid, even when both are valid.
  CHECK_FALSE(w3c::traceparent_of({kTp, kTp}).has_value());
  CHECK(w3c::traceparent_of({kTp}).has_value());
}

TEST_CASE("tracestate: combined, validated, discarded whole when invalid", "[trace][w3c]") {
  CHECK(w3c::tracestate_of({"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}) ==
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  // Split over two fields, empty members and OWS dropped.
  CHECK(w3c::tracestate_of({"rojo=1, ,", " congo=2"}) == "rojo=1,congo=2");
  CHECK(w3c::tracestate_of({"acme@vendor=x"}) == "acme@vendor=x");
  CHECK(w3c::tracestate_of({"0tenant@sys=x"}) == "0tenant@sys=x");
  CHECK_FALSE(w3c::tracestate_of({"Rojo=1"}));         // upper-case key
  CHECK_FALSE(w3c::tracestate_of({"1abc=1"}));         // key must start lcalpha (no tenant)
  CHECK_FALSE(w3c::tracestate_of({"a@0sys=1"}));       // system must start lcalpha
  CHECK_FALSE(w3c::tracestate_of({"a@abcdefghijklmno=1"})); // system > 14 chars
  CHECK_FALSE(w3c::tracestate_of({"rojo=1,rojo=2"}));  // duplicate key
  CHECK_FALSE(w3c::tracestate_of({"rojo=a=b"}));       // '=' in value
  CHECK(w3c::tracestate_of({"rojo=a b"}) == "rojo=a b"); // inner space allowed
  CHECK_FALSE(w3c::tracestate_of({"rojo"}));           // no '='
  CHECK_FALSE(w3c::tracestate_of({"rojo="}));          // empty value
  CHECK_FALSE(w3c::tracestate_of({std::string("k=") + std::string(257, 'v')}));
  std::string many;
  for (int i = 0; i < 33; i++) many += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  CHECK_FALSE(w3c::tracestate_of({many}));
  CHECK_FALSE(w3c::tracestate_of({}));
}

TEST_CASE("a traceparent decides a server span's trace and parent, a client span's own id",
          "[trace][records]") {
  WallClock clock;
  ConnIdentity id;
  id.pid = 7;
  http1::Exchange ex;
  ex.request.method = "GET";
  ex.request.target = "/x";
  ex.request.headers = {{"traceparent", kTp}, {"tracestate", "rojo=1"}};
  ex.request.first_ts_ns = ex.request.last_ts_ns = 10;
  http1::Message resp;
  resp.status = 200;
  resp.complete = true;
  resp.first_ts_ns = resp.last_ts_ns = 20;
  ex.response = resp;
  RecordOptions opt;
  Record s = http1_record(ex, http1::Side::kServer, id, clock, opt, 0);
  REQUIRE(s.span_from_header);
  CHECK(hex(s.span.trace_id.data(), 16) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(hex(s.span.parent_span_id.data(), 8) == "00f067aa0ba902b7");
  CHECK(s.trace_state == "rojo=1");
  Record c = http1_record(ex, http1::Side::kClient, id, clock, opt, 0);
  REQUIRE(c.span_from_header);
  CHECK(hex(c.span.span_id.data(), 8) == "00f067aa0ba902b7");
  CHECK_FALSE(c.span.has_parent());
  // Invalid: ignored, and said so.
  ex.request.headers = {{"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}};
  Record bad = http1_record(ex, http1::Side::kServer, id, clock, opt, 0);
  CHECK_FALSE(bad.span_from_header);
  CHECK_FALSE(bad.span.valid());
  CHECK(bad.get("odigos.trace.invalid_traceparent"));
}

TEST_CASE("span names and status follow the semantic conventions", "[trace]") {
  Record r;
  r.protocol = "http";
  r.side = RecordSide::kServer;
  r.set("http.request.method", std::string("GET"));
  r.set("http.response.status_code", int64_t(404));
  trace::name_span(r);
  CHECK(r.span_name == "GET");
  CHECK(r.status == SpanStatus::kUnset); // 4xx is not a server error
  r.side = RecordSide::kClient;
  trace::name_span(r);
  CHECK(r.status == SpanStatus::kError);
  Record odd;
  odd.protocol = "http";
  odd.side = RecordSide::kServer;
  odd.set("http.request.method", std::string("FOO"));
  odd.set("http.response.status_code", int64_t(503));
  trace::name_span(odd);
  CHECK(odd.span_name == "HTTP");
  CHECK(odd.status == SpanStatus::kError);
  Record db;
  db.protocol = "postgresql";
  db.side = RecordSide::kClient;
  db.set("db.system.name", std::string("postgresql"));
  db.set("db.operation.name", std::string("SELECT"));
  db.set("db.namespace", std::string("shop"));
  trace::name_span(db);
  CHECK(db.span_name == "SELECT shop");
  CHECK(db.status == SpanStatus::kUnset);
  db.set("error.type", std::string("42P01"));
  trace::name_span(db);
  CHECK(db.status == SpanStatus::kError);
  Record redis;
  redis.protocol = "redis";
  redis.set("db.system.name", std::string("redis"));
  trace::name_span(redis);
  CHECK(redis.span_name == "redis");
}

namespace {

ot_addr v4(const char* ip, uint16_t port) {
  ot_addr a{};
  a.family = AF_INET;
  a.port = port;
  inet_pton(AF_INET, ip, a.addr);
  return a;
}

ot_addr v4mapped(const char* ip, uint16_t port) {
  ot_addr a{};
  a.family = AF_INET6;
  a.port = port;
  a.addr[10] = a.addr[11] = 0xff;
  inet_pton(AF_INET, ip, a.addr + 12);
  return a;
}

Record http(RecordSide side, uint32_t pid, uint32_t tid, uint64_t cookie, uint64_t start,
            uint64_t end, const char* path, const char* method = "GET") {
  Record r;
  r.kind = RecordKind::kRequest;
  r.protocol = "http";
  r.side = side;
  r.pid = pid;
  r.tid = tid;
  r.conn_cookie = cookie;
  r.start_mono_ns = start;
  r.end_mono_ns = end;
  r.set("http.request.method", std::string(method));
  r.set("url.path", std::string(path));
  r.set("http.response.status_code", int64_t(200));
  return r;
}

struct Harness {
  std::vector<Record> out;
  std::set<uint32_t> go_pids;
  trace::Linker linker;
  explicit Harness(trace::LinkerOptions o = {})
      : linker(
            [&] {
              o.seed = 42;
              return o;
            }(),
            [this](const Record& r) { out.push_back(r); },
            [this](uint32_t pid) { return go_pids.count(pid) > 0; }) {}
  const Record* find(RecordSide side, uint32_t pid, const char* path = nullptr) const {
    for (auto& r : out)
      if (r.side == side && r.pid == pid && (!path || r.get_str("url.path") == path)) return &r;
    return nullptr;
  }
};

// The record as the HTTP/1 decoder makes it when the request carries kTp.
Record with_header(Record r) {
  auto tp = *w3c::parse_traceparent(kTp);
  r.span.trace_id = tp.trace_id;
  if (r.side == RecordSide::kServer) r.span.parent_span_id = tp.parent_id;
  else r.span.span_id = tp.parent_id;
  r.span_from_header = true;
  return r;
}

// A client call of Go process pid made on goroutine g (thread pid * 10 + 1).
Record go_call(uint32_t pid, uint64_t cookie, uint64_t g, uint64_t start, uint64_t end, const char* path) {
  Record r = http(RecordSide::kClient, pid, pid * 10 + 1, cookie, start, end, path);
  r.exec_ctx = g;
  return r;
}

bool parent_of(const Record& child, const Record& parent) {
  return child.span.parent_span_id == parent.span.span_id &&
         child.span.trace_id == parent.span.trace_id;
}

} // namespace

TEST_CASE("linker: the server span of a traced peer is the child of its client span",
          "[trace][linker]") {
  Harness h;
  // A (pid 1) connects 127.0.0.1:5000 -> :80; B (pid 2) accepted it (its
  // address seen as IPv4-mapped IPv6: a dual-stack listener).
  h.linker.conn_open(11, 1, v4("127.0.0.1", 5000), v4("127.0.0.1", 80));
  h.linker.conn_open(22, 2, v4mapped("127.0.0.1", 80), v4mapped("127.0.0.1", 5000));
  // The server finishes first: it waits for the client's record.
  h.linker.add(http(RecordSide::kServer, 2, 200, 22, 110, 190, "/a"));
  CHECK(h.out.empty());
  CHECK(h.linker.pending() == 1);
  h.linker.add(http(RecordSide::kClient, 1, 100, 11, 100, 200, "/a"));
  REQUIRE(h.out.size() == 2);
  CHECK(h.out[0].side == RecordSide::kClient); // the root first
  CHECK_FALSE(h.out[0].span.has_parent());
  CHECK(parent_of(h.out[1], h.out[0]));
  CHECK(h.linker.stats().cross_process == 1);
  // The second exchange on the same connection pairs with the second.
  h.linker.add(http(RecordSide::kClient, 1, 100, 11, 300, 400, "/b"));
  h.linker.add(http(RecordSide::kServer, 2, 200, 22, 310, 390, "/b"));
  REQUIRE(h.out.size() == 4);
  CHECK(parent_of(h.out[3], h.out[2]));
  CHECK(h.out[3].span.trace_id != h.out[0].span.trace_id);
}

TEST_CASE("linker: a peer exchange that does not match is not a parent", "[trace][linker]") {
  Harness h;
  h.linker.conn_open(11, 1, v4("10.0.0.1", 5000), v4("10.0.0.2", 80));
  h.linker.conn_open(22, 2, v4("10.0.0.2", 80), v4("10.0.0.1", 5000));
  // Different paths (one side missed an exchange): refused.
  h.linker.add(http(RecordSide::kServer, 2, 200, 22, 110, 190, "/other"));
  h.linker.add(http(RecordSide::kClient, 1, 100, 11, 100, 200, "/a"));
  REQUIRE(h.out.size() == 2);
  auto* s = h.find(RecordSide::kServer, 2);
  REQUIRE(s);
  CHECK_FALSE(s->span.has_parent());
  CHECK(s->get_str("odigos.trace.unlinked") == "peer_mismatch");
  // Same path, but not inside the client's time: refused too.
  h.linker.add(http(RecordSide::kServer, 2, 200, 22, 510, 690, "/c"));
  h.linker.add(http(RecordSide::kClient, 1, 100, 11, 500, 600, "/c"));
  REQUIRE(h.out.size() == 4);
  CHECK_FALSE(h.find(RecordSide::kServer, 2, "/c")->span.has_parent());
  CHECK(h.linker.stats().unlinked_mismatch == 2);
  CHECK(h.linker.stats().cross_process == 0);
}

TEST_CASE("linker: a client call is the child of the one request its thread handles",
          "[trace][linker]") {
  Harness h;
  // Server connection 5 of pid 3 read a request on thread 30 at t=100.
  h.linker.server_request_bytes(5, 3, 30, 0, 100);
  // Thread 30 calls a database meanwhile; its record arrives first and waits.
  Record call = http(RecordSide::kClient, 3, 30, 6, 120, 150, "/db");
  h.linker.add(call);
  CHECK(h.out.empty());
  // Another thread's call is not its child.
  h.linker.add(http(RecordSide::kClient, 3, 31, 7, 130, 140, "/elsewhere"));
  REQUIRE(h.out.size() == 1);
  CHECK_FALSE(h.out[0].span.has_parent());
  h.linker.add(http(RecordSide::kServer, 3, 30, 5, 100, 200, "/front"));
  REQUIRE(h.out.size() == 3);
  auto* s = h.find(RecordSide::kServer, 3);
  auto* c = h.find(RecordSide::kClient, 3, "/db");
  REQUIRE(s);
  REQUIRE(c);
  CHECK(parent_of(*c, *s));
  CHECK(h.linker.stats().in_process == 1);
}

TEST_CASE("linker: in Go the goroutine, not the thread, is the unit", "[trace][linker]") {
  Harness h;
  h.go_pids.insert(4);
  h.linker.server_request_bytes(5, 4, 40, 0xc000001000, 100);
  h.linker.server_request_bytes(8, 4, 40, 0xc000002000, 105);
  Record call = http(RecordSide::kClient, 4, 41, 6, 120, 150, "/db");
  call.exec_ctx = 0xc000002000;
  h.linker.add(call);
  CHECK(h.out.empty());
  h.linker.add(http(RecordSide::kServer, 4, 40, 8, 105, 210, "/second"));
  REQUIRE(h.out.size() == 2);
  CHECK(parent_of(*h.find(RecordSide::kClient, 4), *h.find(RecordSide::kServer, 4, "/second")));
  h.linker.add(http(RecordSide::kServer, 4, 40, 5, 100, 200, "/first"));
  CHECK(h.out.size() == 3);
}

TEST_CASE("linker: goroutines a Go handler starts work for its request while it lasts",
          "[trace][linker]") {
  Harness h;
  h.go_pids.insert(4);
  const uint64_t handler = 0xc000001000, other = 0xc000002000;
  const uint64_t child = 0xc000010000, grandchild = 0xc000020000, idle_child = 0xc000030000;
  const uint64_t lingering = 0xc000040000;
  // Two requests on two goroutines; the first handler starts a goroutine,
  // which starts another, both ending before the request does; and one that
  // lives on. A goroutine with no request starts one too.
  h.linker.server_request_bytes(5, 4, 40, handler, 100);
  h.linker.server_request_bytes(8, 4, 40, other, 105);
  h.linker.go_spawn(4, handler, child, 110);
  h.linker.go_spawn(4, child, grandchild, 112);
  h.linker.go_spawn(4, 0xc000099000, idle_child, 114);
  h.linker.go_spawn(4, handler, lingering, 116);
  h.linker.add(go_call(4, 6, child, 120, 130, "/from-child"));
  h.linker.add(go_call(4, 7, grandchild, 125, 140, "/from-grandchild"));
  h.linker.add(go_call(4, 9, idle_child, 126, 141, "/from-idle"));
  h.linker.add(go_call(4, 11, lingering, 127, 142, "/from-lingering"));
  REQUIRE(h.out.size() == 1); // the idle goroutine's call: nothing to wait for
  CHECK_FALSE(h.out[0].span.has_parent());
  CHECK(h.out[0].get("odigos.trace.unlinked") == nullptr);
  h.linker.go_exit(4, grandchild, 145);
  h.linker.add(http(RecordSide::kServer, 4, 40, 8, 105, 210, "/second"));
  h.linker.add(http(RecordSide::kServer, 4, 40, 5, 100, 200, "/first"));
  // The servers are out; the child's and the grandchild's calls wait for the
  // child's exit, which comes just after the response (its WaitGroup.Done
  // woke the handler).
  REQUIRE(h.out.size() == 3);
  CHECK(h.linker.pending() == 3); // the child's, the grandchild's and the lingering goroutine's
  h.linker.go_exit(4, child, 205);
  REQUIRE(h.out.size() == 5);
  CHECK(h.linker.pending() == 1);
  auto* first = h.find(RecordSide::kServer, 4, "/first");
  REQUIRE(first);
  CHECK(parent_of(*h.find(RecordSide::kClient, 4, "/from-child"), *first));
  CHECK(parent_of(*h.find(RecordSide::kClient, 4, "/from-grandchild"), *first));
  CHECK(h.linker.stats().in_process_spawned == 2);
  // The goroutine that had not ended when its request did may be a worker
  // serving other requests: its call is not linked (once the wait is over).
  h.linker.tick(1'000'000'000);
  REQUIRE(h.out.size() == 6);
  auto* ling = h.find(RecordSide::kClient, 4, "/from-lingering");
  REQUIRE(ling);
  CHECK_FALSE(ling->span.has_parent());
  CHECK(ling->get_str("odigos.trace.unlinked") == "outlived");
  CHECK(h.linker.stats().unlinked_outlived == 1);
  // The request is over: a call it makes now is not linked either (its
  // request's span is already out), and it says why.
  h.linker.add(go_call(4, 6, lingering, 300, 310, "/late"));
  REQUIRE(h.out.size() == 7);
  CHECK_FALSE(h.out[6].span.has_parent());
  CHECK(h.out[6].get_str("odigos.trace.unlinked") == "parent_ended");
  CHECK(h.linker.stats().unlinked_ended == 1);
  // A goroutine started after the request ended inherits nothing, and a g
  // struct reused by a goroutine of an idle parent forgets its old request.
  h.linker.server_request_bytes(10, 4, 40, handler, 400);
  h.linker.go_spawn(4, handler, child, 405);
  h.linker.go_spawn(4, 0xc000099000, child, 410); // child exited; its g serves a new goroutine
  h.linker.add(go_call(4, 6, child, 420, 430, "/reused"));
  REQUIRE(h.out.size() == 8);
  CHECK_FALSE(h.out[7].span.has_parent());
  CHECK(h.out[7].get("odigos.trace.unlinked") == nullptr);
  // The same with a creator that is not a user goroutine (parent 0).
  h.linker.go_spawn(4, handler, child, 440);
  h.linker.go_spawn(4, 0, child, 445);
  h.linker.add(go_call(4, 6, child, 450, 460, "/from-scheduler"));
  REQUIRE(h.out.size() == 9);
  CHECK_FALSE(h.out[8].span.has_parent());
}

TEST_CASE("linker: a worker a request happens to start is not taken for that request's",
          "[trace][linker]") {
  Harness h;
  h.go_pids.insert(4);
  const uint64_t a = 0xc000001000, b = 0xc000002000, worker = 0xc000010000, job = 0xc000020000;
  // Request A starts the worker (sync.Once); while A still runs, the worker
  // makes B's call, and starts a short-lived goroutine for another of B's.
  h.linker.server_request_bytes(5, 4, 40, a, 100);
  h.linker.go_spawn(4, a, worker, 101);
  h.linker.server_request_bytes(8, 4, 40, b, 110);
  h.linker.add(go_call(4, 6, worker, 120, 130, "/for-b"));
  h.linker.go_spawn(4, worker, job, 131);
  h.linker.add(go_call(4, 7, job, 132, 140, "/for-b-too"));
  h.linker.go_exit(4, job, 141);
  h.linker.add(http(RecordSide::kServer, 4, 40, 8, 110, 190, "/b"));
  h.linker.add(http(RecordSide::kServer, 4, 40, 5, 100, 200, "/a"));
  h.linker.go_exit(4, worker, 200 + 60'000'000); // much later: not with the request
  h.linker.tick(1'000'000'000);
  REQUIRE(h.out.size() == 4);
  for (const char* path : {"/for-b", "/for-b-too"}) {
    auto* c = h.find(RecordSide::kClient, 4, path);
    REQUIRE(c);
    CHECK_FALSE(c->span.has_parent());
    CHECK(c->get_str("odigos.trace.unlinked") == "outlived");
  }
  CHECK(h.linker.stats().in_process == 0);
}

TEST_CASE("linker: a goroutine's call is judged by the goroutine that made it, not a later one on its g",
          "[trace][linker]") {
  Harness h;
  h.go_pids.insert(4);
  const uint64_t a_handler = 0xc000001000, b_handler = 0xc000002000, g = 0xc000010000;
  // Request A's goroutine makes a call (120..130) and exits; its g is reused
  // at 140 by a goroutine of request B before the call's record is decoded.
  h.linker.server_request_bytes(5, 4, 40, a_handler, 100);
  h.linker.server_request_bytes(8, 4, 40, b_handler, 105);
  h.linker.go_spawn(4, a_handler, g, 110);
  h.linker.go_spawn(4, b_handler, g, 140);
  h.linker.add(go_call(4, 6, g, 120, 130, "/made-for-a"));
  REQUIRE(h.out.size() == 1); // not under B; A is not known any more: a root
  CHECK_FALSE(h.out[0].span.has_parent());
  CHECK(h.out[0].get("odigos.trace.unlinked") == nullptr);
  // A g that had a request of its own (a server goroutine) and is reused by
  // an idle creator's goroutine: that request is not the new goroutine's.
  h.linker.server_request_bytes(9, 4, 40, 0xc000003000, 150);
  h.linker.go_spawn(4, 0xc000099000, 0xc000003000, 160);
  h.linker.add(go_call(4, 7, 0xc000003000, 170, 180, "/stale-own"));
  REQUIRE(h.out.size() == 2);
  CHECK_FALSE(h.out[1].span.has_parent());
  // A call carrying its own traceparent of another trace: trace_conflict, and
  // the spawned link is not counted.
  h.linker.go_spawn(4, b_handler, 0xc000020000, 190);
  Record r = with_header(go_call(4, 12, 0xc000020000, 200, 210, "/own-trace"));
  h.linker.add(r);
  h.linker.go_exit(4, 0xc000020000, 220);
  h.linker.add(http(RecordSide::kServer, 4, 40, 8, 105, 300, "/b"));
  auto* own = h.find(RecordSide::kClient, 4, "/own-trace");
  REQUIRE(own);
  CHECK(own->get_str("odigos.trace.unlinked") == "trace_conflict");
  CHECK(h.linker.stats().in_process_spawned == 0);
  CHECK(h.linker.stats().in_process == 0);
}

TEST_CASE("linker: asks for goroutine creations once per Go process, when a call has no request",
          "[trace][linker]") {
  Harness h;
  h.go_pids = {4, 5};
  std::vector<uint32_t> asked;
  h.linker.on_need_spawns([&](uint32_t pid, const Record&) { asked.push_back(pid); });
  auto call = [](uint32_t pid, uint64_t cookie, uint64_t g, uint64_t start, const char* path) {
    return go_call(pid, cookie, g, start, start + 10, path);
  };
  // Go process 5: calls from its handler goroutine have their request.
  h.linker.server_request_bytes(50, 5, 50, 0xc000001000, 100);
  h.linker.add(call(5, 51, 0xc000001000, 110, "/handler"));
  h.linker.add(http(RecordSide::kServer, 5, 50, 50, 100, 200, "/front"));
  // Not Go (pid 3): threads, nothing to ask.
  h.linker.add(call(3, 31, 0, 110, "/thread"));
  CHECK(asked.empty());
  // Go process 6 only makes calls (it serves nothing): following its
  // goroutines could not link anything.
  h.go_pids.insert(6);
  h.linker.add(call(6, 61, 0xc000007000, 115, "/client-only"));
  CHECK(asked.empty());
  // Go process 4 serves, and a goroutine with no request makes calls: asked once.
  h.linker.server_request_bytes(40, 4, 40, 0xc000009000, 50);
  h.linker.add(call(4, 41, 0xc000002000, 120, "/orphan"));
  h.linker.add(call(4, 42, 0xc000003000, 130, "/orphan2"));
  CHECK(asked == std::vector<uint32_t>{4});
  CHECK(parent_of(*h.find(RecordSide::kClient, 5, "/handler"), *h.find(RecordSide::kServer, 5)));
  // Process 4 exec'd another Go program: that one is asked for once it serves.
  h.linker.process_changed(4);
  h.linker.add(call(4, 43, 0xc000004000, 140, "/orphan3"));
  CHECK(asked.size() == 1); // not known to serve yet
  h.linker.server_request_bytes(44, 4, 40, 0xc000009000, 150);
  h.linker.add(call(4, 45, 0xc000005000, 160, "/orphan4"));
  CHECK(asked == std::vector<uint32_t>{4, 4});
}

TEST_CASE("linker: a goroutine's parent must have exactly one request, and losses forget ancestry",
          "[trace][linker]") {
  Harness h;
  h.go_pids.insert(4);
  const uint64_t loop = 0xc000001000, child = 0xc000010000, child2 = 0xc000020000;
  // A goroutine with two requests active at once (it multiplexes) starts one:
  // whose work it does is unknown.
  h.linker.server_request_bytes(5, 4, 40, loop, 100);
  h.linker.server_request_bytes(8, 4, 40, loop, 101);
  h.linker.go_spawn(4, loop, child, 110);
  Record r = http(RecordSide::kClient, 4, 41, 6, 120, 130, "/x");
  r.exec_ctx = child;
  h.linker.add(r);
  REQUIRE(h.out.size() == 1);
  CHECK_FALSE(h.out[0].span.has_parent());
  // One request; the creation is known, then events are lost: the g may have
  // been reused by a creation that was among them.
  h.linker.server_request_bytes(11, 4, 40, 0xc000005000, 200);
  h.linker.go_spawn(4, 0xc000005000, child2, 205);
  h.linker.events_lost();
  Record r2 = http(RecordSide::kClient, 4, 41, 12, 220, 230, "/y");
  r2.exec_ctx = child2;
  h.linker.add(r2);
  REQUIRE(h.out.size() == 2);
  CHECK_FALSE(h.out[1].span.has_parent());
  CHECK(h.linker.stats().in_process_spawned == 0);
  // The kernel side's count of creations it could not report moves: the same,
  // in-band (before the periodic loss check).
  uint64_t lost = 0;
  h.linker.set_spawn_lost_counter([&] { return lost; });
  h.linker.server_request_bytes(13, 4, 40, 0xc000006000, 300);
  h.linker.go_spawn(4, 0xc000006000, 0xc000030000, 305);
  lost = 1;
  Record r3 = http(RecordSide::kClient, 4, 41, 14, 320, 330, "/z");
  r3.exec_ctx = 0xc000030000;
  h.linker.add(r3);
  REQUIRE(h.out.size() == 3);
  CHECK_FALSE(h.out[2].span.has_parent());
  // ... and what is learnt afterwards is trusted again.
  h.linker.go_spawn(4, 0xc000006000, 0xc000040000, 340);
  Record r4 = http(RecordSide::kClient, 4, 41, 15, 350, 360, "/w");
  r4.exec_ctx = 0xc000040000;
  h.linker.add(r4);
  h.linker.go_exit(4, 0xc000040000, 370);
  h.linker.add(http(RecordSide::kServer, 4, 40, 13, 300, 400, "/front"));
  REQUIRE(h.out.size() == 5);
  CHECK(parent_of(*h.find(RecordSide::kClient, 4, "/w"), *h.find(RecordSide::kServer, 4, "/front")));
}

TEST_CASE("linker: an event loop's call needs the forwarded request to name its parent",
          "[trace][linker]") {
  Harness h;
  // nginx-like: one thread, two requests in flight.
  h.linker.server_request_bytes(1, 9, 90, 0, 100);
  h.linker.server_request_bytes(2, 9, 90, 0, 101);
  h.linker.add(http(RecordSide::kClient, 9, 90, 3, 110, 150, "/api/b")); // forwards /api/b
  h.linker.add(http(RecordSide::kClient, 9, 90, 4, 111, 151, "/cache")); // matches neither
  CHECK(h.out.empty());
  h.linker.add(http(RecordSide::kServer, 9, 90, 1, 100, 160, "/api/a"));
  CHECK(h.out.size() == 1);
  h.linker.add(http(RecordSide::kServer, 9, 90, 2, 101, 170, "/api/b"));
  REQUIRE(h.out.size() == 4);
  CHECK(parent_of(*h.find(RecordSide::kClient, 9, "/api/b"), *h.find(RecordSide::kServer, 9, "/api/b")));
  auto* lone = h.find(RecordSide::kClient, 9, "/cache");
  CHECK_FALSE(lone->span.has_parent());
  CHECK(lone->get_str("odigos.trace.unlinked") == "ambiguous");
  // Later, a single request active on that thread: still an event loop, and
  // the call forwards something else: not guessed.
  h.linker.server_request_bytes(1, 9, 90, 0, 300);
  h.linker.add(http(RecordSide::kClient, 9, 90, 3, 310, 350, "/unrelated"));
  h.linker.add(http(RecordSide::kServer, 9, 90, 1, 300, 400, "/api/c"));
  CHECK_FALSE(h.find(RecordSide::kClient, 9, "/unrelated")->span.has_parent());
  CHECK(h.linker.stats().unlinked_ambiguous == 2);
  CHECK(h.linker.stats().in_process == 1);
}

TEST_CASE("linker: headers take precedence over socket matching", "[trace][linker]") {
  Harness h;
  h.linker.conn_open(11, 1, v4("127.0.0.1", 5000), v4("127.0.0.1", 80));
  h.linker.conn_open(22, 2, v4("127.0.0.1", 80), v4("127.0.0.1", 5000));
  // The application propagates: its client span is the header's parent-id,
  // the server span sees the same header.
  Record c = with_header(http(RecordSide::kClient, 1, 100, 11, 100, 200, "/a"));
  Record s = with_header(http(RecordSide::kServer, 2, 200, 22, 110, 190, "/a"));
  h.linker.add(s);
  CHECK(h.out.empty()); // its peer is traced: waits for it
  h.linker.add(c);
  REQUIRE(h.out.size() == 2);
  CHECK(parent_of(h.out[1], h.out[0]));
  CHECK(hex(h.out[0].span.span_id.data(), 8) == "00f067aa0ba902b7"); // the app's own id
  CHECK(hex(h.out[1].span.parent_span_id.data(), 8) == "00f067aa0ba902b7");
  // Without a traced peer the header alone decides, at once.
  h.linker.add(with_header(http(RecordSide::kServer, 2, 200, 99, 500, 600, "/b")));
  REQUIRE(h.out.size() == 3);
  CHECK(hex(h.out[2].span.parent_span_id.data(), 8) == "00f067aa0ba902b7");
  CHECK(h.linker.stats().from_header == 1);
}

TEST_CASE("linker: a client header naming another trace wins over the thread's request",
          "[trace][linker]") {
  Harness h;
  h.linker.server_request_bytes(5, 3, 30, 0, 100);
  h.linker.add(with_header(http(RecordSide::kClient, 3, 30, 6, 120, 150, "/db")));
  h.linker.add(http(RecordSide::kServer, 3, 30, 5, 100, 200, "/front"));
  REQUIRE(h.out.size() == 2);
  auto* c = h.find(RecordSide::kClient, 3);
  CHECK_FALSE(c->span.has_parent());
  CHECK(hex(c->span.trace_id.data(), 16) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(c->get_str("odigos.trace.unlinked") == "trace_conflict");
}

TEST_CASE("linker: waits are bounded and the end flushes everything", "[trace][linker]") {
  trace::LinkerOptions o;
  o.max_wait_ns = 1'000'000'000;
  Harness h(o);
  h.linker.server_request_bytes(5, 3, 30, 0, 100);
  h.linker.add(http(RecordSide::kClient, 3, 30, 6, 120, 150, "/db"));
  CHECK(h.out.empty());
  h.linker.tick(500'000'000);
  CHECK(h.out.empty());
  h.linker.tick(2'000'000'000);
  REQUIRE(h.out.size() == 1);
  CHECK(h.out[0].get_str("odigos.trace.unlinked") == "timeout");
  CHECK(h.linker.stats().unlinked_timeout == 1);
  // A connection that ends without the awaited record: decided at once.
  h.linker.server_request_bytes(7, 3, 31, 0, 3'000'000'000);
  h.linker.add(http(RecordSide::kClient, 3, 31, 8, 3'000'000'100, 3'000'000'200, "/db2"));
  CHECK(h.out.size() == 1);
  h.linker.conn_end(7);
  REQUIRE(h.out.size() == 2);
  CHECK(h.out[1].get_str("odigos.trace.unlinked") == "parent_missing");
  // finish(): nothing stays behind.
  h.linker.server_request_bytes(9, 3, 32, 0, 4'000'000'000);
  h.linker.add(http(RecordSide::kClient, 3, 32, 10, 4'000'000'100, 4'000'000'200, "/db3"));
  CHECK(h.linker.pending() == 1);
  h.linker.finish();
  CHECK(h.out.size() == 3);
  CHECK(h.linker.pending() == 0);
}

TEST_CASE("linker: records that are not requests pass straight through", "[trace][linker]") {
  Harness h;
  Record note;
  note.kind = RecordKind::kConnection;
  h.linker.add(note);
  REQUIRE(h.out.size() == 1);
  CHECK_FALSE(h.out[0].span.valid());
}

TEST_CASE("linker: a three-process chain resolves root first, one trace", "[trace][linker]") {
  Harness h;
  // front (pid 1) <- untraced client; front -> mid (pid 2) over 11/22;
  // mid -> db (pid 3) over 33/44.
  h.linker.conn_open(11, 1, v4("127.0.0.1", 5001), v4("127.0.0.1", 81));
  h.linker.conn_open(22, 2, v4("127.0.0.1", 81), v4("127.0.0.1", 5001));
  h.linker.conn_open(33, 2, v4("127.0.0.1", 5002), v4("127.0.0.1", 6379));
  h.linker.conn_open(44, 3, v4("127.0.0.1", 6379), v4("127.0.0.1", 5002));
  h.linker.server_request_bytes(10, 1, 1, 0, 100); // front's own request
  h.linker.server_request_bytes(22, 2, 2, 0, 120);
  h.linker.server_request_bytes(44, 3, 3, 0, 140);
  // Bottom-up arrival.
  h.linker.add(http(RecordSide::kServer, 3, 3, 44, 140, 150, "/k"));
  h.linker.add(http(RecordSide::kClient, 2, 2, 33, 130, 160, "/k"));
  h.linker.add(http(RecordSide::kServer, 2, 2, 22, 120, 170, "/m"));
  h.linker.add(http(RecordSide::kClient, 1, 1, 11, 110, 180, "/m"));
  CHECK(h.out.empty());
  h.linker.add(http(RecordSide::kServer, 1, 1, 10, 100, 190, "/front"));
  REQUIRE(h.out.size() == 5);
  CHECK(h.out[0].get_str("url.path") == "/front");
  for (auto& r : h.out) CHECK(r.span.trace_id == h.out[0].span.trace_id);
  CHECK(parent_of(*h.find(RecordSide::kClient, 1), *h.find(RecordSide::kServer, 1)));
  CHECK(parent_of(*h.find(RecordSide::kServer, 2), *h.find(RecordSide::kClient, 1)));
  CHECK(parent_of(*h.find(RecordSide::kClient, 2), *h.find(RecordSide::kServer, 2)));
  CHECK(parent_of(*h.find(RecordSide::kServer, 3), *h.find(RecordSide::kClient, 2)));
  CHECK(h.linker.stats().unlinked() == 0);
}

TEST_CASE("linker: a proxy forwarding a traceparent does not take its caller's span id",
          "[trace][linker]") {
  Harness h;
  // curl (untraced) -> proxy (pid 1) -> app (pid 2), the header forwarded as is.
  h.linker.conn_open(11, 1, v4("127.0.0.1", 5000), v4("127.0.0.1", 80));
  h.linker.conn_open(22, 2, v4("127.0.0.1", 80), v4("127.0.0.1", 5000));
  h.linker.server_request_bytes(10, 1, 1, 0, 100);
  h.linker.server_request_bytes(22, 2, 2, 0, 120);
  auto tp = *w3c::parse_traceparent(kTp);
  h.linker.add(with_header(http(RecordSide::kServer, 2, 2, 22, 120, 170, "/a")));
  h.linker.add(with_header(http(RecordSide::kClient, 1, 1, 11, 110, 180, "/a")));
  CHECK(h.out.empty());
  h.linker.add(with_header(http(RecordSide::kServer, 1, 1, 10, 100, 190, "/a")));
  REQUIRE(h.out.size() == 3);
  auto* front = h.find(RecordSide::kServer, 1);
  auto* call = h.find(RecordSide::kClient, 1);
  auto* app = h.find(RecordSide::kServer, 2);
  CHECK(hex(front->span.parent_span_id.data(), 8) == "00f067aa0ba902b7"); // the header decides
  CHECK(hex(front->span.trace_id.data(), 16) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(call->span.span_id != tp.parent_id); // not curl's id: no cycle
  CHECK(parent_of(*call, *front));
  CHECK(parent_of(*app, *call));
  CHECK(h.linker.stats().from_header == 1);
  CHECK(h.linker.stats().cross_process == 1);
  CHECK(h.linker.stats().in_process == 1);
}

TEST_CASE("waterfall: each trace as an indented tree with duration bars (--traces)", "[trace][waterfall]") {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  REQUIRE(f);
  {
    auto sink = make_waterfall_sink(f, false);
    Harness h;
    h.linker.conn_open(11, 1, v4("127.0.0.1", 5000), v4("127.0.0.1", 80));
    h.linker.conn_open(22, 2, v4("127.0.0.1", 80), v4("127.0.0.1", 5000));
    h.linker.server_request_bytes(10, 1, 1, 0, 100);
    Record up = http(RecordSide::kServer, 2, 2, 22, 3'000'000, 7'000'000, "/api");
    up.command = "app";
    Record call = http(RecordSide::kClient, 1, 1, 11, 2'000'000, 8'000'000, "/api");
    call.command = "proxy";
    Record front = http(RecordSide::kServer, 1, 1, 10, 1'000'000, 9'000'000, "/api");
    front.command = "proxy";
    for (Record* r : {&up, &call, &front}) {
      r->start_ns = 1'700'000'000'000'000'000ull + r->start_mono_ns;
      h.linker.add(*r);
    }
    REQUIRE(h.out.size() == 3);
    for (auto& r : h.out) sink->write(r);
  } // the end prints what is held
  fclose(f);
  std::string text(buf, len);
  free(buf);
  INFO(text);
  auto line_with = [&](const std::string& needle) {
    auto p = text.find(needle);
    REQUIRE(p != std::string::npos);
    auto b = text.rfind('\n', p);
    return text.substr(b == std::string::npos ? 0 : b + 1, text.find('\n', p) - (b + 1));
  };
  CHECK(text.rfind("trace ", 0) == 0);
  CHECK(text.find("8.000 ms, 3 spans") != std::string::npos);
  // Indentation follows the tree: proxy server, its client call, the app.
  CHECK(line_with("proxy[1] server").rfind("  GET /api", 0) == 0);
  CHECK(line_with("proxy[1] client").rfind("    GET /api", 0) == 0);
  CHECK(line_with("app[2] server").rfind("      GET /api", 0) == 0);
  CHECK(text.find("proxy[1] server") < text.find("proxy[1] client"));
  CHECK(text.find("proxy[1] client") < text.find("app[2] server"));
  CHECK(line_with("app[2] server").find("4.000 ms") != std::string::npos);
  CHECK(text.find("\033[") == std::string::npos); // no colour when not asked
}
