// Database records through the whole user-space path (events → tracker → decoder →
// record): attribute names, sanitisation by default and --no-redact.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "conn/conn_tracker.hpp"
#include "odigos/abi.hpp"

using namespace odigos;

namespace {

struct Tracker {
  WallClock clock;
  std::vector<Record> records;
  ConnTracker t;
  uint64_t pos[2] = {0, 0};
  std::vector<uint8_t> buf;
  explicit Tracker(bool redact)
      : t(options(redact), clock, [this](const Record& r) { records.push_back(r); }, nullptr,
          nullptr) {}
  static TrackerOptions options(bool redact) {
    TrackerOptions o;
    o.record.redact = redact;
    return o;
  }
  void open(uint64_t cookie, uint16_t local_port) {
    ot_conn_event e{};
    e.hdr.type = OT_EV_CONN_OPEN;
    e.hdr.tgid = 7;
    e.cookie = cookie;
    e.role = OT_ROLE_SERVER;
    e.local.family = e.remote.family = 2;
    e.local.port = local_port;
    e.remote.port = 50000;
    REQUIRE(t.handle(&e, sizeof(e)));
  }
  void data(uint64_t cookie, uint8_t dir, uint64_t ts, const std::string& bytes) {
    ot_data_event ev{};
    ev.hdr.type = OT_EV_DATA;
    ev.hdr.tgid = 7;
    ev.hdr.ts_ns = ts;
    ev.cookie = cookie;
    ev.dir = dir;
    ev.role = OT_ROLE_SERVER;
    ev.pos = pos[dir];
    pos[dir] += bytes.size();
    ev.len = ev.cap = uint32_t(bytes.size());
    buf.resize(sizeof(ev) + bytes.size());
    memcpy(buf.data(), &ev, sizeof(ev));
    memcpy(buf.data() + sizeof(ev), bytes.data(), bytes.size());
    REQUIRE(t.handle(buf.data(), buf.size()));
  }
};

std::string be32(uint32_t v) {
  std::string s;
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(char((v >> sh) & 0xff));
  return s;
}
std::string pg_msg(char type, const std::string& body) {
  return std::string(1, type) + be32(uint32_t(body.size() + 4)) + body;
}
std::string pg_startup() {
  std::string body = be32(196608) + std::string("user\0u\0database\0shop\0\0", 22);
  return be32(uint32_t(body.size() + 4)) + body;
}
const std::string kQuery = "SELECT * FROM users WHERE email = 'a@b.c' AND id = 42";

void pg_conversation(Tracker& tr) {
  tr.open(1, 5432);
  tr.data(1, OT_DIR_INGRESS, 1000, pg_startup());
  tr.data(1, OT_DIR_EGRESS, 2000,
          pg_msg('R', be32(0)) + pg_msg('Z', "I"));
  tr.data(1, OT_DIR_INGRESS, 10'000'000, pg_msg('Q', kQuery + std::string(1, '\0')));
  std::string cols = std::string("\x00\x01", 2) + "id" + std::string(1, '\0') +
                     std::string(18, '\0');
  tr.data(1, OT_DIR_EGRESS, 13'000'000,
          pg_msg('T', cols) + pg_msg('D', std::string("\x00\x01\x00\x00\x00\x02", 6) + "42") +
              pg_msg('C', std::string("SELECT 1") + '\0') + pg_msg('Z', "I"));
}

} // namespace

TEST_CASE("PostgreSQL records: attributes, sanitised text by default", "[dbrecords]") {
  Tracker tr(true);
  pg_conversation(tr);
  REQUIRE(tr.records.size() == 1);
  const Record& r = tr.records[0];
  CHECK(r.protocol == "postgresql");
  CHECK(r.side == RecordSide::kServer);
  CHECK(r.get_str("db.system.name") == "postgresql");
  CHECK(r.get_str("db.namespace") == "shop");
  CHECK(r.get_str("db.operation.name") == "SELECT");
  CHECK(r.get_str("db.query.text") == "SELECT * FROM users WHERE email = ? AND id = ?");
  CHECK(r.get_int("db.response.returned_rows") == 1);
  CHECK(r.duration_ms == Approx(3.0));
  CHECK(r.get("error.type") == nullptr);
}

TEST_CASE("PostgreSQL records: --no-redact keeps literals", "[dbrecords]") {
  Tracker tr(false);
  pg_conversation(tr);
  REQUIRE(tr.records.size() == 1);
  CHECK(tr.records[0].get_str("db.query.text") == kQuery);
}

TEST_CASE("Redis records: key kept, values redacted; AUTH never shown", "[dbrecords]") {
  for (bool redact : {true, false}) {
    Tracker tr(redact);
    tr.open(2, 6379);
    tr.data(2, OT_DIR_INGRESS, 1000, "*3\r\n$3\r\nSET\r\n$4\r\nuser\r\n$6\r\nsecret\r\n");
    tr.data(2, OT_DIR_EGRESS, 2000, "+OK\r\n");
    tr.data(2, OT_DIR_INGRESS, 3000, "*2\r\n$4\r\nAUTH\r\n$8\r\nhunter22\r\n");
    tr.data(2, OT_DIR_EGRESS, 4000, "-WRONGPASS invalid username-password pair\r\n");
    REQUIRE(tr.records.size() == 2);
    CHECK(tr.records[0].get_str("db.operation.name") == "SET");
    CHECK(tr.records[0].get_str("db.query.text") ==
          (redact ? "SET user ?" : "SET user secret"));
    CHECK(tr.records[1].get_str("db.query.text") == (redact ? "AUTH ?" : "AUTH hunter22"));
    CHECK(tr.records[1].get_str("error.type") == "WRONGPASS");
    CHECK(tr.records[1].get_str("db.response.status_code") == "WRONGPASS");
  }
}
