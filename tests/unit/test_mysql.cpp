// MySQL Session: connection phase, commands, result sets, prepared
// statements, capability inference, splits, losses and detection, on
// packets built here byte by byte from the protocol's layouts.
#include <catch2/catch.hpp>

#include "segments.hpp"
#include "protocols/mysql/mysql.hpp"
#include "protocols/mysql/packets.hpp"

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

using namespace odigos::mysql;
using namespace odigos::test;
using namespace std::string_literals; // "..."s keeps embedded NULs
using Kind = Exchange::Kind;

namespace {

// ---- wire builders ---------------------------------------------------------

std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string lenenc(uint64_t v) {
  if (v < 0xfb) return le(v, 1);
  if (v <= 0xffff) return "\xfc" + le(v, 2);
  if (v <= 0xffffff) return "\xfd" + le(v, 3);
  return "\xfe" + le(v, 8);
}

std::string lstr(std::string_view s) { return lenenc(s.size()) + std::string(s); }

std::string packet(uint8_t seq, std::string_view payload) {
  return le(payload.size(), 3) + static_cast<char>(seq) + std::string(payload);
}

constexpr uint32_t kTransactions = 0x2000, kMultiStatements = 0x10000, kMultiResults = 0x20000,
                   kLongPassword = 0x1, kLocalFiles = 0x80;
constexpr uint32_t kBaseCaps = kLongPassword | kClientConnectWithDb | kLocalFiles | kClientProtocol41 |
                               kTransactions | kClientSecureConnection | kMultiStatements | kMultiResults |
                               kClientPluginAuth | kClientPluginAuthLenencData;

std::string greeting(uint32_t caps, std::string_view version = "8.0.36",
                     std::string_view plugin = "caching_sha2_password") {
  std::string p = "\x0a" + std::string(version) + std::string(1, '\0');
  p += le(42, 4);                        // connection id
  p += "abcdefgh";                       // auth data part 1
  p += std::string(1, '\0');             // filler
  p += le(caps & 0xffff, 2);
  p += "\xff";                           // character set
  p += le(2, 2);                         // status: autocommit
  p += le(caps >> 16, 2);
  p += static_cast<char>(21);            // auth data length
  p += std::string(10, '\0');            // reserved
  p += "ijklmnopqrst" + std::string(1, '\0'); // auth data part 2 (13)
  p += std::string(plugin) + std::string(1, '\0');
  return p;
}

std::string handshake_response(uint32_t caps, std::string_view user, std::string_view db) {
  std::string p = le(caps, 4) + le(16777216, 4) + "\xff" + std::string(23, '\0');
  p += std::string(user) + std::string(1, '\0');
  p += lstr(std::string(20, 'A'));       // auth response (lenenc: PLUGIN_AUTH_LENENC_CLIENT_DATA)
  if (caps & kClientConnectWithDb) p += std::string(db) + std::string(1, '\0');
  if (caps & kClientPluginAuth) p += std::string("caching_sha2_password") + std::string(1, '\0');
  if (caps & kClientConnectAttrs) {
    const std::string kv = lstr("_client_name") + lstr("libmysql");
    p += lstr(kv);
  }
  return p;
}

std::string ssl_request(uint32_t caps) {
  return le(caps | kClientSsl, 4) + le(16777216, 4) + "\xff" + std::string(23, '\0');
}

std::string ok(uint64_t affected = 0, uint64_t insert_id = 0, uint16_t status = 2, uint16_t warnings = 0,
               char header = '\x00') {
  return std::string(1, header) + lenenc(affected) + lenenc(insert_id) + le(status, 2) + le(warnings, 2);
}

std::string err(uint16_t code, std::string_view state, std::string_view msg) {
  return "\xff" + le(code, 2) + "#" + std::string(state) + std::string(msg);
}

std::string eof(uint16_t status = 2) { return "\xfe" + le(0, 2) + le(status, 2); }

std::string coldef(std::string_view name, uint8_t type = 0xfd) {
  std::string p = lstr("def") + lstr("shop") + lstr("t") + lstr("t") + lstr(name) + lstr(name);
  p += lenenc(0x0c) + le(0xff, 2) + le(1020, 4) + static_cast<char>(type) + le(0, 2) + std::string(1, '\0') +
       std::string(2, '\0');
  return p;
}

std::string text_row(const std::vector<std::string>& vals) {
  std::string p;
  for (const auto& v : vals) p += v == "NULL" ? std::string("\xfb") : lstr(v);
  return p;
}

std::string binary_row_longlong(uint64_t v) {
  return std::string(1, '\0') + std::string(1, '\0') + le(v, 8); // header, null bitmap (1 col), value
}

std::string prepare_ok(uint32_t id, uint16_t cols, uint16_t params) {
  return std::string(1, '\0') + le(id, 4) + le(cols, 2) + le(params, 2) + std::string(1, '\0') + le(0, 2);
}

std::string com(uint8_t c, std::string_view body = {}) { return std::string(1, static_cast<char>(c)) + std::string(body); }

std::string execute(uint32_t id, uint8_t flags = 0) {
  return com(kComStmtExecute, le(id, 4) + static_cast<char>(flags) + le(1, 4));
}

// ---- scripts: packets with sequence ids, grouped into writes ---------------

struct Msg {
  bool client;
  std::string bytes;
};

class Script {
 public:
  // A new command (sequence id 0).
  Script& cmd(std::string payload) {
    seq_ = 0;
    return add(true, payload);
  }
  Script& c(std::string payload) { return add(true, payload); }
  Script& s(std::string payload) { return add(false, payload); }
  Script& greet(std::string payload) {
    seq_ = 0;
    return add(false, payload);
  }
  const std::vector<Msg>& msgs() const { return msgs_; }

 private:
  Script& add(bool client, const std::string& payload) {
    const std::string b = packet(seq_++, payload);
    // Consecutive packets of one end form one write.
    if (!msgs_.empty() && msgs_.back().client == client) msgs_.back().bytes += b;
    else msgs_.push_back({client, b});
    return *this;
  }
  std::vector<Msg> msgs_;
  uint8_t seq_ = 0;
};

// Which direction a client write is, for the traced process on `side`.
bool client_ingress(Side side) { return side != Side::kClient; }

// Feeds every write as one segment (ts = 100 * index), or split: each write
// cut at `cut` bytes (when longer) into two segments with the same ts.
void play(Session& s, const Script& sc, Side perspective, size_t cut = 0, uint64_t ts0 = 0) {
  uint64_t ts = ts0;
  for (const Msg& m : sc.msgs()) {
    ts += 100;
    const bool ingress = m.client == client_ingress(perspective);
    if (cut && cut < m.bytes.size()) {
      s.on_data(ingress, seg(std::string_view(m.bytes).substr(0, cut), ts));
      s.on_data(ingress, seg(std::string_view(m.bytes).substr(cut), ts));
    } else {
      s.on_data(ingress, seg(m.bytes, ts));
    }
  }
}

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::kHandshake: return "handshake";
    case Kind::kQuery: return "query";
    case Kind::kPrepare: return "prepare";
    case Kind::kExecute: return "execute";
    case Kind::kClose: return "close";
    case Kind::kPing: return "ping";
    case Kind::kQuit: return "quit";
    case Kind::kInitDb: return "initdb";
    case Kind::kOther: return "other";
  }
  return "?";
}

std::string describe(const std::vector<Exchange>& xs) {
  std::ostringstream o;
  for (const Exchange& x : xs) {
    o << kind_name(x.kind) << " cmd=" << int(x.command) << " text=[" << x.text << "] known=" << x.text_known
      << " trunc=" << x.text_truncated << " id=" << x.statement_id << " rows=" << x.rows
      << " affected=" << x.affected_rows << " sets=" << x.result_sets << " err=" << x.error_code << '/'
      << x.sql_state << '/' << x.error_message << " db=" << x.database << " user=" << x.user
      << " ver=" << x.server_version << " ssl=" << x.ssl_requested << " rtrunc=" << x.truncated
      << " ts=" << x.first_ts_ns << '-' << x.last_ts_ns << " bytes=" << x.request_bytes << '/'
      << x.response_bytes << " complete=" << x.complete << " et=" << x.error_type << "\n";
  }
  return o.str();
}

// Greeting, handshake response, OK.
Script login(uint32_t caps, std::string_view db = "shop") {
  Script sc;
  sc.greet(greeting(caps)).c(handshake_response(caps, "app", db)).s(ok());
  return sc;
}

std::vector<Exchange> run(const Script& sc, Side side = Side::kServer, size_t cut = 0) {
  Session s(side);
  play(s, sc, side, cut);
  s.on_close(1000000, "connection_closed");
  return s.take_exchanges();
}

} // namespace

// ---- connection phase --------------------------------------------------------

TEST_CASE("mysql: handshake, then a text result set (EOF packets)", "[mysql]") {
  Script sc = login(kBaseCaps);
  sc.cmd(com(kComQuery, "SELECT id, name FROM users"))
      .s(lenenc(2))
      .s(coldef("id", 8))
      .s(coldef("name"))
      .s(eof())
      .s(text_row({"1", "alice"}))
      .s(text_row({"2", "NULL"}))
      .s(eof());
  Session s(Side::kServer);
  play(s, sc, Side::kServer);
  CHECK(s.verdict() == Verdict::kMysql);
  CHECK(s.side() == Side::kServer);
  CHECK_FALSE(s.done());
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  const Exchange& h = xs[0];
  CHECK(h.kind == Kind::kHandshake);
  CHECK(h.server_version == "8.0.36");
  CHECK(h.user == "app");
  CHECK(h.database == "shop");
  CHECK(h.complete);
  CHECK_FALSE(h.ssl_requested);
  CHECK(h.error_code == 0);
  CHECK(h.first_ts_ns == 100); // greeting
  CHECK(h.last_ts_ns == 300);  // OK
  CHECK(h.request_bytes == 4 + handshake_response(kBaseCaps, "app", "shop").size());
  CHECK(h.response_bytes == sc.msgs()[0].bytes.size() + sc.msgs()[2].bytes.size());
  const Exchange& q = xs[1];
  CHECK(q.kind == Kind::kQuery);
  CHECK(q.command == kComQuery);
  CHECK(q.text == "SELECT id, name FROM users");
  CHECK(q.text_known);
  CHECK_FALSE(q.text_truncated);
  CHECK(q.rows == 2);
  CHECK(q.result_sets == 1);
  CHECK(q.affected_rows == -1);
  CHECK(q.database == "shop");
  CHECK(q.complete);
  CHECK(q.error_type.empty());
  CHECK(q.first_ts_ns == 400);
  CHECK(q.last_ts_ns == 500);
  CHECK(q.request_bytes == 4 + 1 + 26);
  CHECK(q.response_bytes == sc.msgs()[4].bytes.size());
}

TEST_CASE("mysql: DEPRECATE_EOF result sets end with an OK packet (0xfe header)", "[mysql]") {
  const uint32_t caps = kBaseCaps | kClientDeprecateEof;
  Script sc = login(caps);
  sc.cmd(com(kComQuery, "SELECT a FROM t"))
      .s(lenenc(1))
      .s(coldef("a"))
      .s(text_row({"x"}))
      .s(text_row({"y"}))
      .s(text_row({"z"}))
      .s(ok(0, 0, 2, 0, '\xfe'));
  // Zero rows: the terminator directly follows the definitions.
  sc.cmd(com(kComQuery, "SELECT a FROM t WHERE 0")).s(lenenc(1)).s(coldef("a")).s(ok(0, 0, 2, 0, '\xfe'));
  sc.cmd(com(kComPing)).s(ok());
  const auto xs = run(sc);
  REQUIRE(xs.size() == 4);
  CHECK(xs[1].rows == 3);
  CHECK(xs[1].complete);
  CHECK(xs[2].rows == 0);
  CHECK(xs[2].result_sets == 1);
  CHECK(xs[2].complete);
  CHECK(xs[3].kind == Kind::kPing);
  CHECK(xs[3].complete);
}

TEST_CASE("mysql: OK and ERR answers", "[mysql]") {
  Script sc = login(kBaseCaps);
  sc.cmd(com(kComQuery, "UPDATE t SET a = 1")).s(ok(3, 0, 2, 1));
  sc.cmd(com(kComQuery, "INSERT INTO t VALUES (1)")).s(ok(1, 77));
  sc.cmd(com(kComQuery, "SELEC 1")).s(err(1064, "42000", "You have an error in your SQL syntax"));
  const auto xs = run(sc);
  REQUIRE(xs.size() == 4);
  CHECK(xs[1].rows == 3);
  CHECK(xs[1].affected_rows == 3);
  CHECK(xs[1].result_sets == 0);
  CHECK(xs[2].affected_rows == 1);
  CHECK(xs[3].error_code == 1064);
  CHECK(xs[3].sql_state == "42000");
  CHECK(xs[3].error_message == "You have an error in your SQL syntax");
  CHECK(xs[3].rows == -1);
  CHECK(xs[3].complete); // an ERR answer is a complete exchange
  CHECK(xs[3].error_type.empty());
}

TEST_CASE("mysql: multiple result sets belong to one exchange", "[mysql]") {
  constexpr uint16_t kMore = kServerMoreResultsExists | 2;
  for (bool deprecate : {false, true}) {
    const uint32_t caps = kBaseCaps | (deprecate ? kClientDeprecateEof : 0);
    Script sc = login(caps);
    sc.cmd(com(kComQuery, "CALL report()")).s(lenenc(1)).s(coldef("a"));
    if (!deprecate) sc.s(eof());
    sc.s(text_row({"1"})).s(text_row({"2"}));
    sc.s(deprecate ? ok(0, 0, kMore, 0, '\xfe') : eof(kMore));
    sc.s(lenenc(2)).s(coldef("b")).s(coldef("c"));
    if (!deprecate) sc.s(eof(kMore));
    sc.s(text_row({"3", "4"}));
    sc.s(deprecate ? ok(0, 0, kMore, 0, '\xfe') : eof(kMore));
    sc.s(ok(5, 0, 2)); // the CALL's own status
    sc.cmd(com(kComQuery, "SELECT 1; DELETE FROM t"))
        .s(lenenc(1))
        .s(coldef("1"));
    if (!deprecate) sc.s(eof());
    sc.s(text_row({"1"}));
    sc.s(deprecate ? ok(0, 0, kMore, 0, '\xfe') : eof(kMore));
    sc.s(ok(4, 0, 2));
    sc.cmd(com(kComPing)).s(ok());
    INFO("deprecate_eof=" << deprecate);
    const auto xs = run(sc);
    REQUIRE(xs.size() == 4);
    CHECK(xs[1].result_sets == 2);
    CHECK(xs[1].rows == 3);
    CHECK(xs[1].affected_rows == 5);
    CHECK(xs[1].complete);
    CHECK(xs[2].result_sets == 1);
    CHECK(xs[2].rows == 1);
    CHECK(xs[2].affected_rows == 4);
    CHECK(xs[3].kind == Kind::kPing);
  }
}

TEST_CASE("mysql: LOAD DATA LOCAL INFILE does not desync", "[mysql]") {
  Script sc = login(kBaseCaps);
  const std::string load = "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t";
  sc.cmd(com(kComQuery, load))
      .s("\xfb/tmp/x.csv")
      .c("1,a\n2,b\n")
      .c("")          // end of file
      .s(ok(2, 0, 2));
  sc.cmd(com(kComQuery, "SELECT 1")).s(lenenc(1)).s(coldef("1")).s(eof()).s(text_row({"1"})).s(eof());
  Session s(Side::kServer);
  play(s, sc, Side::kServer);
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 3);
  CHECK(xs[1].complete);
  CHECK(xs[1].affected_rows == 2);
  CHECK(xs[1].request_bytes == (4 + 1 + load.size()) + (4 + 8) + 4);
  CHECK(xs[2].rows == 1);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("mysql: prepared statements", "[mysql]") {
  for (bool deprecate : {false, true}) {
    INFO("deprecate_eof=" << deprecate);
    const uint32_t caps = kBaseCaps | (deprecate ? kClientDeprecateEof : 0);
    Script sc = login(caps);
    sc.cmd(com(kComStmtPrepare, "SELECT name FROM users WHERE id = ? AND org = ?"))
        .s(prepare_ok(7, 1, 2))
        .s(coldef("?"))
        .s(coldef("?"));
    if (!deprecate) sc.s(eof());
    sc.s(coldef("name"));
    if (!deprecate) sc.s(eof());
    // Execute: binary result set with two rows.
    // null bitmap, new-params-bound flag, two LONGLONG types, two values
    sc.cmd(execute(7) + "\x00\x01\x08\x00\x08\x00"s + le(1, 8) + le(2, 8))
        .s(lenenc(1))
        .s(coldef("name", 8));
    if (!deprecate) sc.s(eof());
    sc.s(binary_row_longlong(10)).s(binary_row_longlong(11));
    sc.s(deprecate ? ok(0, 0, 2, 0, '\xfe') : eof());
    // A statement with no parameters and no result columns.
    sc.cmd(com(kComStmtPrepare, "DELETE FROM t")).s(prepare_ok(8, 0, 0));
    sc.cmd(execute(8)).s(ok(6));
    sc.cmd(com(kComStmtReset, le(7, 4))).s(ok());
    sc.cmd(com(kComStmtClose, le(7, 4)));
    sc.cmd(execute(7)).s(err(1243, "HY000", "Unknown prepared statement handler"));
    sc.cmd(com(kComStmtPrepare, "SELEC")).s(err(1064, "42000", "syntax"));
    const auto xs = run(sc);
    REQUIRE(xs.size() == 9);
    CHECK(xs[1].kind == Kind::kPrepare);
    CHECK(xs[1].statement_id == 7);
    CHECK(xs[1].text == "SELECT name FROM users WHERE id = ? AND org = ?");
    CHECK(xs[1].complete);
    CHECK(xs[1].rows == -1);
    CHECK(xs[2].kind == Kind::kExecute);
    CHECK(xs[2].statement_id == 7);
    CHECK(xs[2].text == "SELECT name FROM users WHERE id = ? AND org = ?");
    CHECK(xs[2].text_known);
    CHECK(xs[2].rows == 2);
    CHECK(xs[2].complete);
    CHECK(xs[3].statement_id == 8);
    CHECK(xs[4].text == "DELETE FROM t");
    CHECK(xs[4].rows == 6);
    CHECK(xs[5].kind == Kind::kOther);
    CHECK(xs[5].command == kComStmtReset);
    CHECK(xs[5].complete);
    CHECK(xs[6].kind == Kind::kClose);
    CHECK(xs[6].statement_id == 7);
    CHECK(xs[6].complete);
    CHECK(xs[6].response_bytes == 0);
    CHECK(xs[6].last_ts_ns == xs[6].first_ts_ns);
    // Closed: an execute of the same id no longer knows the text.
    CHECK(xs[7].statement_id == 7);
    CHECK_FALSE(xs[7].text_known);
    CHECK(xs[7].text.empty());
    CHECK(xs[7].error_code == 1243);
    CHECK(xs[8].error_code == 1064);
  }
}

TEST_CASE("mysql: cursor execute and fetch", "[mysql]") {
  Script sc = login(kBaseCaps);
  sc.cmd(com(kComStmtPrepare, "SELECT a FROM t")).s(prepare_ok(3, 1, 0)).s(coldef("a")).s(eof());
  sc.cmd(execute(3, 1)).s(lenenc(1)).s(coldef("a", 8)).s(eof(2 | kServerStatusCursorExists));
  sc.cmd(com(kComStmtFetch, le(3, 4) + le(2, 4)))
      .s(binary_row_longlong(1))
      .s(binary_row_longlong(2))
      .s(eof(2 | kServerStatusCursorExists));
  sc.cmd(com(kComPing)).s(ok());
  const auto xs = run(sc);
  REQUIRE(xs.size() == 5);
  CHECK(xs[2].kind == Kind::kExecute);
  CHECK(xs[2].complete);
  CHECK(xs[2].rows == 0);
  CHECK(xs[3].command == kComStmtFetch);
  CHECK(xs[3].text == "SELECT a FROM t");
  CHECK(xs[3].rows == 2);
  CHECK(xs[3].complete);
  CHECK(xs[4].kind == Kind::kPing);
}

TEST_CASE("mysql: ping, init_db, quit and the current database", "[mysql]") {
  Script sc = login(kBaseCaps, "");
  sc.cmd(com(kComPing)).s(ok());
  sc.cmd(com(kComInitDb, "inventory")).s(ok());
  sc.cmd(com(kComQuery, "SELECT 1")).s(ok());
  sc.cmd(com(kComInitDb, "nope")).s(err(1049, "42000", "Unknown database 'nope'"));
  sc.cmd(com(kComQuery, "SELECT 2")).s(ok());
  sc.cmd(com(kComQuit));
  Session s(Side::kServer);
  play(s, sc, Side::kServer);
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 7);
  CHECK(xs[0].database.empty());
  CHECK(xs[1].kind == Kind::kPing);
  CHECK(xs[1].complete);
  CHECK(xs[2].kind == Kind::kInitDb);
  CHECK(xs[2].database == "inventory");
  CHECK(xs[3].database == "inventory");
  CHECK(xs[4].error_code == 1049);
  CHECK(xs[5].database == "inventory"); // a failed INIT_DB changes nothing
  CHECK(xs[6].kind == Kind::kQuit);
  CHECK(xs[6].complete); // no response expected
  s.on_close(9999, "connection_closed");
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("mysql: session tracking reports a schema change", "[mysql]") {
  const uint32_t caps = kBaseCaps | kClientSessionTrack;
  Script sc = login(caps);
  // OK: affected, insert id, status (SESSION_STATE_CHANGED), warnings, info, state.
  const std::string state = std::string(1, '\x01') + lstr(lstr("reports"));
  sc.cmd(com(kComQuery, "USE reports"))
      .s(std::string(1, '\0') + lenenc(0) + lenenc(0) + le(2 | kServerSessionStateChanged, 2) + le(0, 2) +
         lstr("") + lstr(state));
  sc.cmd(com(kComQuery, "SELECT 1")).s(ok());
  const auto xs = run(sc);
  REQUIRE(xs.size() == 3);
  CHECK(xs[1].database == "shop");
  CHECK(xs[2].database == "reports");
}

TEST_CASE("mysql: SSLRequest means encrypted", "[mysql]") {
  Script sc;
  sc.greet(greeting(kBaseCaps | kClientSsl)).c(ssl_request(kBaseCaps));
  Session s(Side::kClient);
  play(s, sc, Side::kClient);
  CHECK(s.verdict() == Verdict::kEncrypted);
  CHECK(s.done());
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].kind == Kind::kHandshake);
  CHECK(xs[0].ssl_requested);
  CHECK(xs[0].server_version == "8.0.36");
  // TLS records afterwards are ignored.
  const std::string tls = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s;
  s.on_data(false, seg(tls, 900));
  s.on_close(1000, "connection_closed");
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("mysql: authentication exchanges until OK or ERR", "[mysql]") {
  SECTION("auth switch to mysql_native_password") {
    Script sc;
    sc.greet(greeting(kBaseCaps))
        .c(handshake_response(kBaseCaps, "app", "shop"))
        .s("\xfe" + std::string("mysql_native_password") + std::string(1, '\0') + std::string(20, 'n') +
           std::string(1, '\0'))
        .c(std::string(20, 'r'))
        .s(ok());
    sc.cmd(com(kComPing)).s(ok());
    const auto xs = run(sc);
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].complete);
    CHECK(xs[0].error_code == 0);
    CHECK(xs[0].last_ts_ns == 500);
    CHECK(xs[0].request_bytes == 4 + handshake_response(kBaseCaps, "app", "shop").size() + 4 + 20);
    CHECK(xs[1].kind == Kind::kPing);
  }
  SECTION("caching_sha2_password full authentication with the server's public key") {
    Script sc;
    sc.greet(greeting(kBaseCaps))
        .c(handshake_response(kBaseCaps, "app", "shop"))
        .s("\x01\x04")                   // perform full authentication
        .c("\x02")                       // request public key
        .s("\x01-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
        .c(std::string(256, 'e'))        // encrypted password
        .s(ok());
    sc.cmd(com(kComQuery, "SELECT 1")).s(ok());
    const auto xs = run(sc);
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].complete);
    CHECK(xs[1].text == "SELECT 1");
  }
  SECTION("caching_sha2_password fast path") {
    Script sc;
    sc.greet(greeting(kBaseCaps)).c(handshake_response(kBaseCaps, "app", "shop")).s("\x01\x03").s(ok());
    sc.cmd(com(kComPing)).s(ok());
    const auto xs = run(sc);
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].complete);
    CHECK(xs[1].complete);
  }
  SECTION("MariaDB ed25519 switch") {
    Script sc;
    sc.greet(greeting(kBaseCaps, "5.5.5-10.11.6-MariaDB", "mysql_native_password"))
        .c(handshake_response(kBaseCaps, "app", "shop"))
        .s("\xfe" + std::string("client_ed25519") + std::string(1, '\0') + std::string(32, 'k'))
        .c(std::string(64, 's'))
        .s(ok());
    sc.cmd(com(kComPing)).s(ok());
    const auto xs = run(sc);
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].server_version == "5.5.5-10.11.6-MariaDB");
    CHECK(xs[0].complete);
  }
  SECTION("access denied") {
    Script sc;
    sc.greet(greeting(kBaseCaps))
        .c(handshake_response(kBaseCaps, "app", "shop"))
        .s(err(1045, "28000", "Access denied for user 'app'@'localhost' (using password: YES)"));
    const auto xs = run(sc);
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].error_code == 1045);
    CHECK(xs[0].sql_state == "28000");
    CHECK(xs[0].complete);
  }
  SECTION("refused before the greeting") {
    Session s(Side::kClient);
    const std::string e = packet(0, "\xff" + le(1040, 2) + "Too many connections");
    s.on_data(true, seg(e, 10));
    CHECK(s.verdict() == Verdict::kMysql);
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].kind == Kind::kHandshake);
    CHECK(xs[0].error_code == 1040);
    CHECK(xs[0].sql_state.empty());
    CHECK(xs[0].error_message == "Too many connections");
  }
}

TEST_CASE("mysql: compression negotiated: decoding stops after the handshake", "[mysql]") {
  const uint32_t caps = kBaseCaps | kClientCompress;
  Script sc = login(caps);
  Session s(Side::kServer);
  play(s, sc, Side::kServer);
  CHECK(s.done());
  CHECK(s.verdict() == Verdict::kMysql);
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].complete);
}

TEST_CASE("mysql: which side is which, from the bytes", "[mysql]") {
  Script sc = login(kBaseCaps);
  sc.cmd(com(kComQuery, "SELECT 1")).s(ok());
  for (Side real : {Side::kServer, Side::kClient}) {
    Session s(Side::kUnknown);
    play(s, sc, real);
    CHECK(s.side() == real);
    CHECK(s.verdict() == Verdict::kMysql);
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[1].text == "SELECT 1");
    CHECK(xs[1].complete);
  }
}

TEST_CASE("mysql: connection already open when tracing started", "[mysql]") {
  // The server is finishing a result set (rows, terminator) nobody asked us about.
  const std::string tail = packet(7, text_row({"old", "row"})) + packet(8, ok(0, 0, 2, 0, '\xfe'));
  SECTION("side unknown: the tail is skipped, the next command decides") {
    Session s(Side::kUnknown);
    s.on_data(false, seg(tail, 10));
    CHECK(s.verdict() == Verdict::kUndecided);
    CHECK_FALSE(s.done());
    Script sc;
    sc.cmd(com(kComQuery, "SELECT a FROM t")).s(lenenc(1)).s(coldef("a")).s(text_row({"1"}))
        .s(ok(0, 0, 2, 0, '\xfe'));
    // Capabilities unknown: DEPRECATE_EOF is inferred from the row after the definitions.
    sc.cmd(com(kComQuery, "SELECT b FROM t")).s(lenenc(1)).s(coldef("b")).s(ok(0, 0, 2, 0, '\xfe'));
    play(s, sc, Side::kServer, 0, 1000);
    CHECK(s.side() == Side::kServer);
    CHECK(s.verdict() == Verdict::kMysql);
    CHECK(s.desyncs() == 0);
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].text == "SELECT a FROM t");
    CHECK(xs[0].rows == 1);
    CHECK(xs[0].complete);
    CHECK(xs[1].rows == 0);
    CHECK(xs[1].complete);
    // Learnt from the row after the definitions: DEPRECATE_EOF, so a PREPARE
    // ends at its last definition without waiting for a possible EOF.
    s.on_data(true, seg(packet(0, com(kComStmtPrepare, "DELETE FROM t WHERE id = ?")), 5000));
    s.on_data(false, seg(packet(1, prepare_ok(4, 0, 1)) + packet(2, coldef("?")), 5100));
    const auto ps = s.take_exchanges();
    REQUIRE(ps.size() == 1);
    CHECK(ps[0].statement_id == 4);
    CHECK(ps[0].last_ts_ns == 5100);
  }
  SECTION("EOF-style result sets are recognised too") {
    Session s(Side::kUnknown);
    Script sc;
    sc.cmd(com(kComQuery, "SELECT a FROM t")).s(lenenc(1)).s(coldef("a")).s(eof()).s(text_row({"1"}))
        .s(text_row({"2"})).s(eof());
    sc.cmd(com(kComQuery, "SELECT b FROM t")).s(lenenc(1)).s(coldef("b")).s(eof()).s(eof());
    play(s, sc, Side::kClient);
    CHECK(s.side() == Side::kClient);
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].rows == 2);
    CHECK(xs[1].rows == 0);
    CHECK(xs[1].complete);
  }
  SECTION("servers that read the 4-byte header and the payload separately") {
    Session s(Side::kUnknown);
    const std::string q = packet(0, com(kComQuery, "SELECT 1"));
    s.on_data(true, seg(q.substr(0, 4), 10));
    s.on_data(true, seg(q.substr(4), 11));
    s.on_data(false, seg(packet(1, ok()), 20));
    CHECK(s.side() == Side::kServer);
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].text == "SELECT 1");
    CHECK(xs[0].first_ts_ns == 10);
    CHECK(xs[0].complete);
  }
}

TEST_CASE("mysql: a short segment that was not a packet start does not hide the next one", "[mysql]") {
  Session s(Side::kUnknown);
  // The last 2 bytes of some earlier client packet: too short to judge, kept...
  s.on_data(true, seg("\x05\x00"s, 10));
  // ...and dropped when the next segment is a command on its own.
  s.on_data(true, seg(packet(0, com(kComQuery, "SELECT 1")), 20));
  s.on_data(false, seg(packet(1, ok()), 30));
  CHECK(s.side() == Side::kServer);
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].text == "SELECT 1");
  CHECK(xs[0].first_ts_ns == 20);
}

TEST_CASE("mysql: a prepared statement longer than max_text keeps its prefix", "[mysql]") {
  Limits lim;
  lim.max_text = 10;
  Session s(Side::kServer, lim);
  Script sc = login(kBaseCaps | kClientDeprecateEof);
  sc.cmd(com(kComStmtPrepare, "SELECT a, b, c FROM t WHERE id = ?")).s(prepare_ok(2, 0, 1)).s(coldef("?"));
  sc.cmd(execute(2) + "\x00\x01\x08\x00"s + le(1, 8)).s(ok());
  play(s, sc, Side::kServer);
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 3);
  CHECK(xs[1].text == "SELECT a, ");
  CHECK(xs[1].text_truncated);
  CHECK(xs[2].kind == Kind::kExecute);
  CHECK(xs[2].text == "SELECT a, ");
  CHECK(xs[2].text_known);
  CHECK(xs[2].text_truncated);
}

TEST_CASE("mysql: PREPARE with unknown capabilities waits to see if an EOF follows", "[mysql]") {
  // One parameter, no columns: is the definition followed by an EOF?
  const std::string prep = packet(0, com(kComStmtPrepare, "DELETE FROM t WHERE id = ?"));
  const std::string answer = packet(1, prepare_ok(5, 0, 1)) + packet(2, coldef("?"));
  SECTION("an EOF with the next sequence id belongs to it") {
    Session s(Side::kUnknown);
    s.on_data(true, seg(prep, 10));
    s.on_data(false, seg(answer, 20));
    CHECK(s.take_exchanges().empty()); // held
    s.on_data(false, seg(packet(3, eof()), 30));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].statement_id == 5);
    CHECK(xs[0].last_ts_ns == 30);
    CHECK(xs[0].complete);
    // Learnt: no DEPRECATE_EOF, so the next PREPARE ends at its EOF at once.
    s.on_data(true, seg(packet(0, com(kComStmtPrepare, "DELETE FROM u WHERE id = ?")), 40));
    s.on_data(false, seg(packet(1, prepare_ok(6, 0, 1)) + packet(2, coldef("?")) + packet(3, eof()), 50));
    xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].statement_id == 6);
  }
  SECTION("the next command ends it") {
    Session s(Side::kUnknown);
    s.on_data(true, seg(prep, 10));
    s.on_data(false, seg(answer, 20));
    s.on_data(true, seg(packet(0, execute(5) + "\x00\x01\x08\x00"s + le(9, 8)), 40));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].kind == Kind::kPrepare);
    CHECK(xs[0].last_ts_ns == 20);
    s.on_data(false, seg(packet(1, ok(1)), 50));
    xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].kind == Kind::kExecute);
    CHECK(xs[0].text == "DELETE FROM t WHERE id = ?");
    CHECK(xs[0].rows == 1);
  }
  SECTION("the connection closing ends it") {
    Session s(Side::kUnknown);
    s.on_data(true, seg(prep, 10));
    s.on_data(false, seg(answer, 20));
    s.on_close(30, "connection_closed");
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].complete);
    CHECK(xs[0].error_type.empty());
  }
}

TEST_CASE("mysql: query attributes", "[mysql]") {
  const uint32_t caps = kBaseCaps | kClientQueryAttributes;
  Script sc = login(caps);
  sc.cmd(com(kComQuery, std::string(1, '\0') + "\x01" + "SELECT 1")).s(ok());
  // One attribute "traceparent" (VAR_STRING) = "00-ab".
  sc.cmd(com(kComQuery, std::string("\x01\x01") + std::string(1, '\0') + "\x01" + "\xfd" + std::string(1, '\0') +
                            lstr("traceparent") + lstr("00-ab") + "SELECT 2"))
      .s(ok());
  const auto xs = run(sc);
  REQUIRE(xs.size() == 3);
  CHECK(xs[1].text == "SELECT 1");
  CHECK(xs[2].text == "SELECT 2");
  // Unknown capabilities: the control byte after COM_QUERY gives it away.
  Session s(Side::kUnknown);
  s.on_data(true, seg(packet(0, com(kComQuery, std::string(1, '\0') + "\x01" + "SELECT 3")), 10));
  s.on_data(false, seg(packet(1, ok()), 20));
  const auto ys = s.take_exchanges();
  REQUIRE(ys.size() == 1);
  CHECK(ys[0].text == "SELECT 3");
}

TEST_CASE("mysql: optional result-set metadata", "[mysql]") {
  const uint32_t caps = kBaseCaps | kClientOptionalResultsetMetadata | kClientDeprecateEof;
  Script sc = login(caps);
  // Column count 2, metadata_follows = 0: rows follow directly.
  sc.cmd(com(kComQuery, "SELECT a, b FROM t")).s(lenenc(2) + std::string(1, '\0')).s(text_row({"1", "2"}))
      .s(ok(0, 0, 2, 0, '\xfe'));
  sc.cmd(com(kComQuery, "SELECT c FROM t")).s(lenenc(1) + "\x01").s(coldef("c")).s(text_row({"3"}))
      .s(ok(0, 0, 2, 0, '\xfe'));
  const auto xs = run(sc);
  REQUIRE(xs.size() == 3);
  CHECK(xs[1].rows == 1);
  CHECK(xs[2].rows == 1);
  CHECK(xs[2].complete);
}

TEST_CASE("mysql: field list, statistics, MariaDB progress reports", "[mysql]") {
  Script sc = login(kBaseCaps);
  sc.cmd(com(kComFieldList, std::string("users") + std::string(1, '\0'))).s(coldef("id")).s(coldef("name"))
      .s(eof());
  sc.cmd(com(kComStatistics)).s("Uptime: 5  Threads: 1  Questions: 9");
  sc.cmd(com(kComQuery, "ALTER TABLE t ADD COLUMN c INT"))
      .s("\xff\xff\xff\x01\x01\x00\x00\x00\x00\x00Stage"s) // progress report, not an answer
      .s(ok());
  const auto xs = run(sc);
  REQUIRE(xs.size() == 4);
  CHECK(xs[1].command == kComFieldList);
  CHECK(xs[1].text == "users");
  CHECK(xs[1].complete);
  CHECK(xs[2].command == kComStatistics);
  CHECK(xs[2].complete);
  CHECK(xs[3].complete);
  CHECK(xs[3].error_code == 0);
}

TEST_CASE("mysql: pipelined commands pair in order", "[mysql]") {
  Session s(Side::kServer);
  Script sc = login(kBaseCaps);
  play(s, sc, Side::kServer);
  const std::string cmds = packet(0, com(kComQuery, "SELECT 1")) + packet(0, com(kComQuery, "UPDATE t SET a=2")) +
                           packet(0, com(kComPing));
  const std::string resps = packet(1, lenenc(1)) + packet(2, coldef("1")) + packet(3, eof()) +
                            packet(4, text_row({"1"})) + packet(5, eof()) + packet(1, ok(9)) + packet(1, ok());
  s.on_data(true, seg(cmds, 1000));
  s.on_data(false, seg(resps, 2000));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 4);
  CHECK(xs[1].text == "SELECT 1");
  CHECK(xs[1].rows == 1);
  CHECK(xs[2].text == "UPDATE t SET a=2");
  CHECK(xs[2].rows == 9);
  CHECK(xs[3].kind == Kind::kPing);
  CHECK(xs[3].complete);
}

// ---- splits, uncaptured bytes, losses --------------------------------------

namespace {

Script big_conversation(bool deprecate) {
  const uint32_t caps = kBaseCaps | (deprecate ? kClientDeprecateEof : 0);
  Script sc = login(caps);
  sc.cmd(com(kComQuery, "SELECT id, name FROM users WHERE org = 'x'")).s(lenenc(2)).s(coldef("id")).s(coldef("name"));
  if (!deprecate) sc.s(eof());
  sc.s(text_row({"1", "a"})).s(text_row({"2", std::string(300, 'b')}));
  sc.s(deprecate ? ok(0, 0, 2, 0, '\xfe') : eof());
  sc.cmd(com(kComStmtPrepare, "INSERT INTO t VALUES (?)")).s(prepare_ok(1, 0, 1)).s(coldef("?"));
  if (!deprecate) sc.s(eof());
  sc.cmd(execute(1) + "\x00\x01\x08\x00"s + le(5, 8)).s(ok(1, 5));
  sc.cmd(com(kComQuery, "SELEC")).s(err(1064, "42000", "syntax error"));
  sc.cmd(com(kComInitDb, "other")).s(ok());
  sc.cmd(com(kComQuit));
  return sc;
}

} // namespace

TEST_CASE("mysql: a split at every byte decodes the same", "[mysql]") {
  for (bool deprecate : {false, true}) {
    const Script sc = big_conversation(deprecate);
    for (Side side : {Side::kServer, Side::kClient, Side::kUnknown}) {
      const std::string want = describe(run(sc, side));
      REQUIRE(want.find("complete=0") == std::string::npos);
      size_t longest = 0;
      for (const Msg& m : sc.msgs()) longest = std::max(longest, m.bytes.size());
      for (size_t cut = 1; cut < longest; ++cut) {
        INFO("deprecate=" << deprecate << " side=" << int(side) << " cut=" << cut);
        REQUIRE(describe(run(sc, side, cut)) == want);
      }
    }
  }
}

TEST_CASE("mysql: one byte per segment", "[mysql]") {
  const Script sc = big_conversation(false);
  const std::string want = describe(run(sc));
  Session s(Side::kServer);
  uint64_t ts = 0;
  for (const Msg& m : sc.msgs()) {
    ts += 100;
    for (char c : m.bytes) s.on_data(m.client, seg(std::string_view(&c, 1), ts));
  }
  s.on_close(1000000, "connection_closed");
  CHECK(describe(s.take_exchanges()) == want);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("mysql: uncaptured bytes inside a packet are skipped by length", "[mysql]") {
  Limits lim;
  lim.max_text = 64;
  Session s(Side::kServer, lim);
  play(s, login(kBaseCaps), Side::kServer);
  s.take_exchanges();
  // A 10000-byte query of which 100 bytes were captured.
  const std::string q = packet(0, com(kComQuery, "INSERT INTO t VALUES ('" + std::string(10000 - 25, 'v') + "')"));
  s.on_data(true, seg(std::string_view(q).substr(0, 100), 1000, q.size()));
  s.on_data(false, seg(packet(1, ok(1)), 2000));
  // A response row larger than the capture.
  s.on_data(true, seg(packet(0, com(kComQuery, "SELECT doc FROM t")), 3000));
  const std::string row = packet(4, text_row({std::string(5000, 'd')}));
  s.on_data(false, seg(packet(1, lenenc(1)) + packet(2, coldef("doc")) + packet(3, eof()), 4000));
  s.on_data(false, seg(std::string_view(row).substr(0, 50), 4001, row.size()));
  s.on_data(false, seg(packet(5, eof()), 4002));
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].text.size() == 64);
  CHECK(xs[0].text == std::string_view(q).substr(5, 64));
  CHECK(xs[0].text_truncated);
  CHECK(xs[0].request_bytes == q.size());
  CHECK(xs[0].rows == 1);
  CHECK(xs[0].complete);
  CHECK(xs[1].rows == 1);
  CHECK(xs[1].complete);
  CHECK_FALSE(xs[1].truncated);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("mysql: a result set beyond the capture size ends at the next command", "[mysql]") {
  Session s(Side::kClient);
  play(s, login(kBaseCaps), Side::kClient);
  s.take_exchanges();
  std::string rs = packet(1, lenenc(1)) + packet(2, coldef("v")) + packet(3, eof());
  uint8_t seq = 4;
  for (int i = 0; i < 100; ++i) rs += packet(seq++, text_row({std::string(100, 'r')}));
  rs += packet(seq, eof());
  s.on_data(false, seg(packet(0, com(kComQuery, "SELECT v FROM big")), 1000));
  // The client reads it in two calls; only the first 300 bytes of each were captured.
  const size_t half = rs.size() / 2;
  s.on_data(true, seg(std::string_view(rs).substr(0, 300), 2000, half));
  s.on_data(true, seg(std::string_view(rs).substr(half, 300), 2001, rs.size() - half));
  CHECK(s.take_exchanges().empty());
  s.on_data(false, seg(packet(0, com(kComQuery, "SELECT 1")), 3000));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].text == "SELECT v FROM big");
  CHECK(xs[0].truncated);
  CHECK(xs[0].rows == -1);
  CHECK(xs[0].complete);
  CHECK(xs[0].error_type.empty());
  CHECK(xs[0].last_ts_ns == 2001);
  CHECK(xs[0].response_bytes == rs.size());
  // The next response is found again.
  s.on_data(true, seg(packet(1, lenenc(1)) + packet(2, coldef("1")) + packet(3, eof()) +
                          packet(4, text_row({"1"})) + packet(5, eof()), 4000));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].text == "SELECT 1");
  CHECK(xs[0].rows == 1);
  CHECK_FALSE(xs[0].truncated);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("mysql: lost bytes (gap) desync, count, and resynchronise", "[mysql]") {
  SECTION("gap in the server direction mid-response") {
    Session s(Side::kServer);
    play(s, login(kBaseCaps), Side::kServer);
    s.take_exchanges();
    s.on_data(true, seg(packet(0, com(kComQuery, "SELECT a FROM t")), 1000));
    s.on_data(false, seg(packet(1, lenenc(1)) + packet(2, coldef("a")) + packet(3, eof()), 1100));
    // Rows and the terminator were lost; this segment is a later part of the stream.
    s.on_data(false, seg(packet(9, text_row({"zz"})), 1200, 0, true));
    CHECK(s.desyncs() == 1);
    s.on_data(true, seg(packet(0, com(kComQuery, "SELECT 2")), 2000));
    s.on_data(false, seg(packet(1, ok()), 2100));
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].text == "SELECT a FROM t");
    CHECK_FALSE(xs[0].complete);
    CHECK(xs[0].error_type == "desync");
    CHECK(xs[1].text == "SELECT 2");
    CHECK(xs[1].complete);
    CHECK(s.desyncs() == 1);
  }
  SECTION("gap in the client direction") {
    Session s(Side::kServer);
    play(s, login(kBaseCaps), Side::kServer);
    s.take_exchanges();
    s.on_data(true, seg(packet(0, com(kComQuery, "SELECT 1")), 1000));
    // The rest of a command, then lost bytes, then a new command.
    s.on_data(true, seg("garbage in the middle", 1100, 0, true));
    CHECK(s.desyncs() == 1);
    s.on_data(true, seg(packet(0, com(kComPing)), 1200));
    s.on_data(false, seg(packet(1, ok()), 1300));
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].error_type == "desync");
    CHECK(xs[1].kind == Kind::kPing);
    CHECK(xs[1].complete);
  }
  SECTION("a packet that breaks the protocol") {
    Session s(Side::kServer);
    play(s, login(kBaseCaps), Side::kServer);
    s.take_exchanges();
    s.on_data(true, seg(packet(0, com(kComQuery, "SELECT 1")), 1000));
    s.on_data(false, seg(packet(5, ok()), 1100)); // wrong sequence id
    CHECK(s.desyncs() == 1);
    s.on_data(true, seg(packet(0, com(kComPing)), 1200));
    s.on_data(false, seg(packet(1, ok()), 1300));
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].error_type == "desync");
    CHECK(xs[1].complete);
  }
}

TEST_CASE("mysql: payloads of 16 MiB and more span packets", "[mysql]") {
  Limits lim;
  lim.max_text = 100;
  Session s(Side::kServer, lim);
  play(s, login(kBaseCaps), Side::kServer);
  s.take_exchanges();
  // A 20 MiB query: 0xffffff bytes (seq 0), then the rest (seq 1).
  const size_t total = 20u << 20;
  std::string body = com(kComQuery, "INSERT INTO blobs VALUES ('") + std::string(total - 30, 'x') + "')";
  REQUIRE(body.size() == total);
  std::string wire = le(0xffffff, 3) + std::string(1, '\0') + body.substr(0, 0xffffff);
  wire += le(body.size() - 0xffffff, 3) + "\x01" + body.substr(0xffffff);
  // Fed in 64 KiB reads.
  for (size_t off = 0; off < wire.size(); off += 65536)
    s.on_data(true, seg(std::string_view(wire).substr(off, 65536), 1000));
  s.on_data(false, seg(packet(2, ok(1)), 2000)); // the response follows the last client seq
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].text == body.substr(1, 100));
  CHECK(xs[0].text_truncated);
  CHECK(xs[0].request_bytes == wire.size());
  CHECK(xs[0].rows == 1);
  CHECK(s.desyncs() == 0);
}

TEST_CASE("mysql: close and EOF finish what is open", "[mysql]") {
  Session s(Side::kServer);
  play(s, login(kBaseCaps), Side::kServer);
  s.take_exchanges();
  s.on_data(true, seg(packet(0, com(kComQuery, "SELECT SLEEP(100)")), 1000));
  s.on_data(false, seg(packet(1, lenenc(1)) + packet(2, coldef("s")), 1100));
  s.on_close(5000, "connection_reset");
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK_FALSE(xs[0].complete);
  CHECK(xs[0].error_type == "connection_reset");
  CHECK(xs[0].result_sets == 1);
  CHECK(xs[0].last_ts_ns == 1100);
  CHECK(s.done());
  // A handshake that never finished.
  Session h(Side::kClient);
  h.on_data(true, seg(packet(0, greeting(kBaseCaps)), 10));
  h.on_close(20, "incomplete");
  const auto hs = h.take_exchanges();
  REQUIRE(hs.size() == 1);
  CHECK(hs[0].kind == Kind::kHandshake);
  CHECK(hs[0].error_type == "incomplete");
  CHECK_FALSE(hs[0].complete);
}

TEST_CASE("mysql: replication streams are not decoded", "[mysql]") {
  Session s(Side::kServer);
  play(s, login(kBaseCaps), Side::kServer);
  s.take_exchanges();
  s.on_data(true, seg(packet(0, com(kComBinlogDump, le(4, 4) + le(0, 2) + le(1, 4) + "binlog.000001")), 100));
  CHECK(s.done());
  const auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].error_type == "not_decoded");
}

// ---- detection ---------------------------------------------------------------

TEST_CASE("mysql: not MySQL is recognised quickly", "[mysql]") {
  SECTION("HTTP on a known side") {
    Session s(Side::kServer);
    s.on_data(true, seg("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 10));
    CHECK(s.verdict() == Verdict::kNotMysql);
    CHECK(s.done());
  }
  SECTION("a server that does not greet") {
    Session s(Side::kClient);
    s.on_data(true, seg("SSH-2.0-OpenSSH_9.2\r\n", 10));
    CHECK(s.verdict() == Verdict::kNotMysql);
  }
  SECTION("TLS client hello") {
    Session s(Side::kServer);
    s.on_data(true, seg(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 10));
    CHECK(s.verdict() == Verdict::kNotMysql);
  }
  SECTION("side unknown: a few exchanges of anything else") {
    Session s(Side::kUnknown);
    for (int i = 0; i < 2; ++i) {
      s.on_data(true, seg("GET / HTTP/1.1\r\n\r\n", 10 + i));
      s.on_data(false, seg("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20 + i));
    }
    CHECK(s.verdict() == Verdict::kNotMysql);
    CHECK(s.done());
  }
  SECTION("side unknown: a command-like first packet that nothing answers") {
    Session s(Side::kUnknown);
    s.on_data(true, seg(packet(0, com(kComQuery, "SELECT 1")), 10));
    CHECK(s.verdict() == Verdict::kUndecided);
    for (int i = 0; i < 8; ++i) s.on_data(false, seg("some other protocol's bytes", 20 + i));
    CHECK(s.verdict() == Verdict::kNotMysql);
    CHECK(s.done());
  }
  SECTION("a first packet that cannot be a command") {
    Session s(Side::kServer);
    s.on_data(true, seg(packet(0, "\x03\x01\x02\x03garbage"), 10));
    CHECK(s.verdict() == Verdict::kNotMysql);
  }
}

TEST_CASE("mysql: looks_like_mysql_handshake / looks_like_mysql_command", "[mysql]") {
  const std::string g = packet(0, greeting(kBaseCaps));
  CHECK(looks_like_mysql_handshake(g));
  CHECK(looks_like_mysql_handshake(g.substr(0, 20))); // version visible: enough
  CHECK_FALSE(looks_like_mysql_handshake(g.substr(0, 8)));
  CHECK(looks_like_mysql_handshake(packet(0, greeting(kBaseCaps, "5.5.5-10.6.12-MariaDB-1:10.6.12+maria~ubu2004"))));
  CHECK_FALSE(looks_like_mysql_handshake(packet(1, greeting(kBaseCaps))));              // seq 1
  CHECK_FALSE(looks_like_mysql_handshake(packet(0, "\x09" + greeting(kBaseCaps).substr(1)))); // protocol 9
  CHECK_FALSE(looks_like_mysql_handshake("HTTP/1.1 200 OK\r\n"));
  CHECK_FALSE(looks_like_mysql_handshake(""));

  CHECK(looks_like_mysql_command(packet(0, com(kComQuery, "SELECT 1"))));
  CHECK(looks_like_mysql_command(packet(0, com(kComQuery, "\n  select 1"))));
  CHECK(looks_like_mysql_command(packet(0, com(kComPing))));
  CHECK(looks_like_mysql_command(packet(0, com(kComQuit))));
  CHECK(looks_like_mysql_command(packet(0, execute(3))));
  CHECK(looks_like_mysql_command(packet(0, com(kComStmtClose, le(3, 4)))));
  CHECK(looks_like_mysql_command(packet(0, com(kComInitDb, "shop"))));
  CHECK(looks_like_mysql_command(packet(0, com(kComQuery, std::string(1, '\0') + "\x01SELECT 1"))));
  // Truncated capture of a long query still counts.
  CHECK(looks_like_mysql_command(packet(0, com(kComQuery, "SELECT " + std::string(5000, 'x'))).substr(0, 30)));
  CHECK_FALSE(looks_like_mysql_command(packet(1, com(kComQuery, "SELECT 1"))));    // seq 1
  CHECK_FALSE(looks_like_mysql_command(packet(0, com(kComPing, "x"))));            // ping has no body
  CHECK_FALSE(looks_like_mysql_command(packet(0, com(0x42, "whatever"))));         // unknown command
  CHECK_FALSE(looks_like_mysql_command(packet(0, com(kComQuery, "\x01\x02\x03")))); // not text
  // iteration count 7: executes always say 1
  CHECK_FALSE(looks_like_mysql_command(packet(0, com(kComStmtExecute, le(3, 4) + "\x00"s + le(7, 4)))));
  CHECK_FALSE(looks_like_mysql_command("GET / HTTP/1.1\r\n"));
  CHECK_FALSE(looks_like_mysql_command(std::string(4, '\0')));
}

TEST_CASE("mysql wire: packet readers", "[mysql]") {
  using namespace odigos::mysql::wire;
  // Results point into the payload: keep it alive.
  Greeting g;
  const std::string gp = greeting(kBaseCaps | kClientDeprecateEof | kClientSsl);
  REQUIRE(parse_greeting(gp, g));
  CHECK(g.server_version == "8.0.36");
  CHECK(g.connection_id == 42);
  CHECK(g.caps == (kBaseCaps | kClientDeprecateEof | kClientSsl));
  CHECK(g.status == 2);
  CHECK(g.auth_plugin == "caching_sha2_password");

  HandshakeResponse r;
  const uint32_t caps = kBaseCaps | kClientConnectAttrs;
  const std::string hr = handshake_response(caps, "root", "db1");
  REQUIRE(parse_handshake_response(hr, hr.size(), r));
  CHECK(r.caps == caps);
  CHECK(r.user == "root");
  CHECK(r.database == "db1");
  CHECK(r.auth_plugin == "caching_sha2_password");
  CHECK_FALSE(r.ssl_request);
  HandshakeResponse ssl;
  const std::string sr = ssl_request(kBaseCaps);
  REQUIRE(parse_handshake_response(sr, sr.size(), ssl));
  CHECK(ssl.ssl_request);

  Ok o;
  REQUIRE(parse_ok(ok(300, 70000, 0x22, 3), kBaseCaps, true, o));
  CHECK(o.affected_rows == 300);
  CHECK(o.last_insert_id == 70000);
  CHECK(o.status == 0x22);
  CHECK(o.warnings == 3);

  Err e;
  const std::string ep = err(1146, "42S02", "Table 'x.y' doesn't exist");
  REQUIRE(parse_err(ep, e));
  CHECK(e.code == 1146);
  CHECK(e.sql_state == "42S02");
  CHECK(e.message == "Table 'x.y' doesn't exist");

  PrepareOk p;
  const std::string po = prepare_ok(0x01020304, 3, 2);
  REQUIRE(parse_prepare_ok(po, po.size(), p));
  CHECK(p.statement_id == 0x01020304);
  CHECK(p.columns == 3);
  CHECK(p.params == 2);

  uint64_t count = 0;
  bool meta = false;
  REQUIRE(parse_column_count(lenenc(300), 3, count, meta));
  CHECK(count == 300);
  CHECK(meta);
  CHECK_FALSE(parse_column_count(lenenc(3), 2 + 5, count, meta)); // longer than a count packet
  CHECK_FALSE(parse_column_count(std::string(1, '\0'), 1, count, meta));

  std::string_view text;
  size_t off = 0;
  const std::string qp = com(kComQuery, "SELECT 1");
  REQUIRE(query_text(qp, 0, text, off));
  CHECK(text == "SELECT 1");
  CHECK(off == 1);
}

TEST_CASE("mysql: random splits, gaps and truncation never break invariants", "[mysql]") {
  // A fixed-seed generator: each run feeds the big conversation with random
  // cut points, uncaptured tails and gaps, then checks what every consumer
  // relies on.
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto rnd = [&state](uint64_t n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state % n;
  };
  const Script sc = big_conversation(true);
  for (int iter = 0; iter < 300; ++iter) {
    Limits lim;
    lim.max_text = 1 + rnd(80);
    const Side side = Side(rnd(3));
    Session s(side, lim);
    uint64_t ts = 0;
    for (const Msg& m : sc.msgs()) {
      ts += 10;
      std::string_view rest = m.bytes;
      while (!rest.empty()) {
        const size_t n = 1 + rnd(rest.size());
        const bool drop_tail = rnd(8) == 0;
        const size_t cap = drop_tail ? rnd(n + 1) : n;
        s.on_data(m.client == client_ingress(side), seg(rest.substr(0, cap), ts, n, rnd(40) == 0));
        rest.remove_prefix(n);
      }
    }
    s.on_close(ts + 1, "connection_closed");
    for (const Exchange& x : s.take_exchanges()) {
      REQUIRE(x.last_ts_ns >= x.first_ts_ns);
      REQUIRE(x.text.size() <= lim.max_text);
      REQUIRE(x.rows >= -1);
      REQUIRE(x.error_message.size() <= 512);
      REQUIRE((x.complete || !x.error_type.empty()));
    }
  }
}
