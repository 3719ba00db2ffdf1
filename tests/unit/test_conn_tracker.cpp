// ConnTracker on synthetic kernel events and a fake clock: no BPF, no root.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "conn/conn_tracker.hpp"
#include "odigos/abi.hpp"

using namespace odigos;

namespace {

struct Harness {
  WallClock clock;
  std::vector<Record> records;
  std::vector<uint64_t> ignored;
  ConnTracker tracker{TrackerOptions{}, clock, [this](const Record& r) { records.push_back(r); },
                      [this](uint64_t c) { ignored.push_back(c); }, nullptr};
  std::vector<uint8_t> buf;
  uint64_t pos[2] = {0, 0};

  void open(uint64_t cookie, uint8_t role, uint32_t tgid = 100) {
    ot_conn_event e{};
    e.hdr.type = OT_EV_CONN_OPEN;
    e.hdr.tgid = tgid;
    e.hdr.tid = tgid;
    e.hdr.ts_ns = 1;
    e.cookie = cookie;
    e.role = role;
    e.local.family = e.remote.family = 2;
    e.local.addr[0] = e.remote.addr[0] = 127;
    e.local.addr[3] = e.remote.addr[3] = 1;
    e.local.port = role == OT_ROLE_SERVER ? 8080 : 40000;
    e.remote.port = role == OT_ROLE_SERVER ? 40000 : 8080;
    memcpy(e.comm, "app", 4);
    REQUIRE(tracker.handle(&e, sizeof(e)));
  }

  // A socket call moving `len` bytes of which `data` (a prefix) was captured.
  void data(uint64_t cookie, uint8_t dir, uint64_t ts, const std::string& data, uint32_t len = 0,
            uint64_t skip = 0, uint64_t arrival = 0, uint32_t flags = 0, uint16_t call = 0) {
    if (len == 0) len = uint32_t(data.size());
    ot_data_event ev{};
    ev.flags = flags;
    ev.syscall = call;
    ev.hdr.type = OT_EV_DATA;
    ev.hdr.tgid = 100;
    ev.hdr.tid = 101;
    ev.hdr.ts_ns = ts;
    ev.cookie = cookie;
    pos[dir] += skip; // bytes lost before this event
    ev.pos = pos[dir];
    pos[dir] += len;
    ev.len = len;
    ev.cap = uint32_t(data.size());
    ev.dir = dir;
    ev.wire_ns = arrival;
    buf.resize(sizeof(ev) + data.size());
    memcpy(buf.data(), &ev, sizeof(ev));
    memcpy(buf.data() + sizeof(ev), data.data(), data.size());
    REQUIRE(tracker.handle(buf.data(), buf.size()));
  }

  // Plaintext returned by an OpenSSL call (bpf/tls.bpf.c).
  void tls(uint64_t cookie, uint8_t dir, uint64_t ts, const std::string& d, uint64_t arrival = 0) {
    data(cookie, dir, ts, d, 0, 0, arrival, OT_DATA_TLS, OT_SYSCALL_TLS_BASE + OT_TLS_OPENSSL);
  }

  void close(uint64_t cookie, uint64_t ts) {
    ot_conn_event e{};
    e.hdr.type = OT_EV_CONN_CLOSE;
    e.hdr.ts_ns = ts;
    e.hdr.tgid = 100;
    e.cookie = cookie;
    REQUIRE(tracker.handle(&e, sizeof(e)));
  }
};

const std::string kReq = "GET /items?id=1 HTTP/1.1\r\nHost: example:8080\r\nUser-Agent: t/1\r\n\r\n";
const std::string kResp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

} // namespace

TEST_CASE("server-side exchange: timing, identity and attributes", "[tracker]") {
  Harness h;
  h.open(7, OT_ROLE_SERVER);
  h.data(7, OT_DIR_INGRESS, 1'000'000, kReq);
  h.data(7, OT_DIR_EGRESS, 3'000'000, kResp.substr(0, 20));
  h.data(7, OT_DIR_EGRESS, 4'000'000, kResp.substr(20));
  REQUIRE(h.records.size() == 1);
  const Record& r = h.records[0];
  CHECK(r.side == RecordSide::kServer);
  CHECK(r.pid == 100);
  CHECK(r.tid == 101);
  CHECK(r.command == "app");
  CHECK(r.duration_ms == Approx(3.0));
  CHECK(r.ttfb_ms == Approx(2.0));
  CHECK(r.get_str("url.path") == "/items");
  CHECK(r.get_int("http.response.status_code") == 200);
  CHECK(r.get_int("http.response.body.size") == 5);
  CHECK(r.get_str("client.address") == "127.0.0.1");
  CHECK(r.get_int("client.port") == 40000);
  CHECK(r.get_int("server.port") == 8080);
}

TEST_CASE("server side starts at the kernel's arrival time when it is known", "[tracker]") {
  Harness h;
  h.open(7, OT_ROLE_SERVER);
  h.data(7, OT_DIR_INGRESS, 5'000'000, kReq, 0, 0, /*arrival=*/2'000'000);
  h.data(7, OT_DIR_EGRESS, 6'000'000, kResp);
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].duration_ms == Approx(4.0));
  // An arrival older than the previous read belongs to bytes already read.
  h.data(7, OT_DIR_INGRESS, 9'000'000, kReq, 0, 0, /*arrival=*/4'000'000);
  h.data(7, OT_DIR_EGRESS, 10'000'000, kResp);
  REQUIRE(h.records.size() == 2);
  CHECK(h.records[1].duration_ms == Approx(1.0));
}

TEST_CASE("client side: first byte written to last byte read", "[tracker]") {
  Harness h;
  h.open(9, OT_ROLE_CLIENT);
  h.data(9, OT_DIR_EGRESS, 1'000'000, kReq);
  h.data(9, OT_DIR_INGRESS, 2'500'000, kResp, 0, 0, /*arrival ignored client side*/ 1'500'000);
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].side == RecordSide::kClient);
  CHECK(h.records[0].duration_ms == Approx(1.5));
  CHECK(h.records[0].get_str("server.address") == "example"); // from Host
}

TEST_CASE("a body larger than the capture is counted, not parsed", "[tracker]") {
  Harness h;
  h.open(3, OT_ROLE_SERVER);
  h.data(3, OT_DIR_INGRESS, 1000, kReq);
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
  // One write of head + 100000 body bytes of which only 4096 were captured.
  std::string captured = head + std::string(4096 - head.size(), 'x');
  h.data(3, OT_DIR_EGRESS, 2000, captured, uint32_t(head.size() + 100000));
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].get_int("http.response.body.size") == 100000);
}

TEST_CASE("lost bytes (a jump in the stream offset) resynchronise at the next request", "[tracker]") {
  Harness h;
  h.open(4, OT_ROLE_SERVER);
  h.data(4, OT_DIR_INGRESS, 1000, kReq.substr(0, 10));
  // The rest of the head was lost (ring buffer overflow): the offset jumps.
  h.data(4, OT_DIR_INGRESS, 2000, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n", 0, kReq.size() - 10);
  h.data(4, OT_DIR_EGRESS, 3000, kResp);
  h.close(4, 4000);
  h.tracker.tick(4000 + ConnTracker::kCloseGraceNs);
  // No garbage record: the lost request is never reported as HTTP with a made-up path.
  for (auto& r : h.records) CHECK(r.get_str("url.path") != "/items");
  CHECK(h.tracker.stats().gaps == 1);
  bool next = false;
  for (auto& r : h.records)
    if (r.get_str("url.path") == "/next" && r.get_int("http.response.status_code") == 200) next = true;
  CHECK(next);
}

TEST_CASE("connections of no decoded protocol are ignored in the kernel", "[tracker]") {
  Harness h;
  h.open(5, OT_ROLE_CLIENT);
  h.data(5, OT_DIR_EGRESS, 1000, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  CHECK(h.records.empty());
  REQUIRE(h.ignored == std::vector<uint64_t>{5});
  CHECK(h.tracker.stats().not_decoded == 1);
  // Later bytes cost nothing and produce nothing.
  h.data(5, OT_DIR_INGRESS, 2000, "SSH-2.0-OpenSSH_9.2p1\r\n");
  CHECK(h.records.empty());
}

TEST_CASE("an HTTP/2 preface is reported, not decoded", "[tracker]") {
  Harness h;
  h.open(6, OT_ROLE_CLIENT);
  h.data(6, OT_DIR_EGRESS, 1000, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].kind == RecordKind::kConnection);
  CHECK(h.records[0].protocol == "http2");
  CHECK(h.ignored == std::vector<uint64_t>{6});
}

TEST_CASE("failed connects, resets and pending requests are records", "[tracker]") {
  Harness h;
  ot_conn_event fail{};
  fail.hdr.type = OT_EV_CONN_FAIL;
  fail.hdr.tgid = 100;
  fail.cookie = 11;
  fail.err = 111; // ECONNREFUSED
  fail.remote.family = 2;
  fail.remote.port = 9;
  REQUIRE(h.tracker.handle(&fail, sizeof(fail)));
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].get_str("error.type") == "connection_refused");
  CHECK(h.records[0].get_int("server.port") == 9);

  h.open(12, OT_ROLE_CLIENT);
  h.data(12, OT_DIR_EGRESS, 1000, kReq);
  ot_conn_event rst{};
  rst.hdr.type = OT_EV_CONN_RESET;
  rst.hdr.ts_ns = 5000;
  rst.cookie = 12;
  REQUIRE(h.tracker.handle(&rst, sizeof(rst)));
  // Finalised only after the grace period: late bytes may still come.
  h.tracker.tick(5000 + ConnTracker::kCloseGraceNs - 1);
  REQUIRE(h.records.size() == 1);
  h.tracker.tick(5000 + ConnTracker::kCloseGraceNs);
  REQUIRE(h.records.size() == 2);
  CHECK(h.records[1].get_str("error.type") == "connection_reset");
  CHECK_FALSE(h.records[1].complete);

  h.open(13, OT_ROLE_SERVER);
  h.data(13, OT_DIR_INGRESS, 1000, kReq);
  h.tracker.finish(9000, "incomplete");
  REQUIRE(h.records.size() == 3);
  CHECK(h.records[2].get_str("error.type") == "incomplete");
  CHECK_FALSE(h.records[2].complete);
  CHECK(h.tracker.open_connections() == 0);
}

TEST_CASE("bytes after a reset still belong to their exchange", "[tracker]") {
  // On loopback a peer's RST can be processed inside the server's send: the
  // reset event comes before the response's data event.
  Harness h;
  h.open(21, OT_ROLE_SERVER);
  h.data(21, OT_DIR_INGRESS, 1000, kReq);
  ot_conn_event rst{};
  rst.hdr.type = OT_EV_CONN_RESET;
  rst.hdr.ts_ns = 2000;
  rst.cookie = 21;
  REQUIRE(h.tracker.handle(&rst, sizeof(rst)));
  h.data(21, OT_DIR_EGRESS, 3000, kResp);
  h.tracker.tick(2000 + ConnTracker::kCloseGraceNs);
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].get_int("http.response.status_code") == 200);
  CHECK(h.tracker.stats().connections == 1); // not counted twice
  CHECK(h.tracker.open_connections() == 0);
}

TEST_CASE("malformed events are counted, not trusted", "[tracker]") {
  Harness h;
  uint8_t tiny[8] = {};
  CHECK_FALSE(h.tracker.handle(tiny, sizeof(tiny)));
  ot_data_event ev{};
  ev.hdr.type = OT_EV_DATA;
  ev.cap = 100; // claims more payload than the record holds
  ev.len = 100;
  CHECK_FALSE(h.tracker.handle(&ev, sizeof(ev)));
  ot_event_hdr unknown{};
  unknown.type = 999;
  CHECK_FALSE(h.tracker.handle(&unknown, sizeof(unknown)));
  CHECK(h.tracker.stats().malformed == 3);
  CHECK(h.records.empty());
}

namespace {
// A TLS 1.2/1.3 ClientHello record header and the start of its body.
const std::string kClientHello = std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) +
                                 std::string(32, 'r');
const std::string kServerHello = std::string("\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03", 11) +
                                 std::string(32, 's');
std::string app_data(size_t n) { return std::string("\x17\x03\x03\x40\x00", 5) + std::string(n, 'x'); }
} // namespace

TEST_CASE("TLS: the handshake is held, the library's plaintext is decoded", "[tracker][tls]") {
  Harness h;
  h.open(9, OT_ROLE_SERVER);
  h.data(9, OT_DIR_INGRESS, 1'000, kClientHello);
  h.data(9, OT_DIR_EGRESS, 2'000, kServerHello);
  CHECK(h.records.empty());
  CHECK(h.ignored.empty()); // the kernel keeps reporting: plaintext may come
  // The request arrived with the client's Finished, before the handshake's last read (3 ms).
  h.data(9, OT_DIR_INGRESS, 4'500'000, app_data(40));
  h.tls(9, OT_DIR_INGRESS, 5'000'000, kReq, 4'000'000);
  h.tls(9, OT_DIR_EGRESS, 6'000'000, kResp);
  REQUIRE(h.records.size() == 1);
  const Record& r = h.records[0];
  CHECK(r.get_str("url.path") == "/items");
  CHECK(r.get_str("url.scheme") == "https");
  CHECK(r.get_str("odigos.tls.library") == "openssl");
  REQUIRE(r.get("tls.established"));
  CHECK(std::get<bool>(*r.get("tls.established")));
  CHECK(r.duration_ms == Approx(2.0)); // from the ciphertext's arrival (wire time of the call)
  CHECK(h.tracker.stats().tls_connections == 1);
  CHECK(h.tracker.stats().not_decoded == 0);
  CHECK(h.tracker.stats().gaps == 0); // plaintext positions are a new stream
  // Ciphertext racing the switch is dropped, not decoded.
  h.data(9, OT_DIR_INGRESS, 7'000'000, app_data(100));
  h.tls(9, OT_DIR_INGRESS, 8'000'000, kReq);
  h.tls(9, OT_DIR_EGRESS, 9'000'000, kResp);
  CHECK(h.records.size() == 2);
}

TEST_CASE("TLS: a plain connection's records say nothing about TLS", "[tracker][tls]") {
  Harness h;
  h.open(3, OT_ROLE_SERVER);
  h.data(3, OT_DIR_INGRESS, 1'000, kReq);
  h.data(3, OT_DIR_EGRESS, 2'000, kResp);
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].get_str("url.scheme") == "http");
  CHECK(!h.records[0].get("tls.established"));
  CHECK(!h.records[0].get("odigos.tls.library"));
}

TEST_CASE("TLS: a connection never seen in plaintext gives one note at close", "[tracker][tls]") {
  Harness h;
  h.open(4, OT_ROLE_CLIENT);
  h.data(4, OT_DIR_EGRESS, 1'000, kClientHello);
  h.data(4, OT_DIR_INGRESS, 2'000, kServerHello);
  h.data(4, OT_DIR_EGRESS, 3'000, app_data(300));
  CHECK(h.records.empty());
  h.close(4, 10'000);
  h.tracker.tick(10'000 + ConnTracker::kCloseGraceNs);
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].kind == RecordKind::kConnection);
  CHECK(h.records[0].protocol == "tls");
  CHECK(h.records[0].get_str("odigos.note").find("encrypted (TLS), not decoded") == 0);
  CHECK(h.tracker.stats().tls_not_decoded == 1);
  CHECK(h.tracker.stats().not_decoded == 0);
}

TEST_CASE("TLS: much ciphertext without plaintext is given up on, plaintext later revives it",
          "[tracker][tls]") {
  Harness h;
  h.open(8, OT_ROLE_SERVER);
  h.data(8, OT_DIR_INGRESS, 1'000, kClientHello);
  h.data(8, OT_DIR_INGRESS, 2'000, app_data(64), 300 * 1024);
  REQUIRE(h.records.size() == 1);
  CHECK(h.records[0].get_str("odigos.note").find("no TLS library call seen") != std::string::npos);
  CHECK(h.ignored == std::vector<uint64_t>{8});
  // The process got its probes after all (the kernel resumes on the first TLS call).
  h.tls(8, OT_DIR_INGRESS, 3'000'000, kReq);
  h.tls(8, OT_DIR_EGRESS, 4'000'000, kResp);
  REQUIRE(h.records.size() == 2);
  CHECK(h.records[1].get_str("url.path") == "/items");
  // Closing now adds no second note.
  h.close(8, 5'000'000);
  h.tracker.tick(5'000'000 + ConnTracker::kCloseGraceNs);
  CHECK(h.records.size() == 2);
}
