// PostgreSQL decoder: detection, startup, simple and extended query, COPY,
// pairing, loss handling, on byte fixtures fed as kernel-style segments.
// Messages are built from the protocol's message formats (postgresql.org,
// "Message Formats"); a few are also spelled out byte by byte.
#include <catch2/catch.hpp>

#include "segments.hpp"
#include "protocols/postgres/postgres.hpp"

#include <sstream>
#include <string>
#include <vector>

using namespace odigos::pg;
using namespace odigos::test;
using Kind = Exchange::Kind;

namespace {

// ---- message builders ----------------------------------------------------------

std::string i32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}
std::string i16(uint16_t v) { return {char(v >> 8), char(v)}; }
std::string z(std::string_view s) { return std::string(s) + '\0'; }
std::string msg(char type, const std::string& payload) {
  return type + i32(uint32_t(payload.size() + 4)) + payload;
}

// Frontend.
std::string startup(std::vector<std::pair<std::string, std::string>> params) {
  std::string body = i32(196608);
  for (auto& [k, v] : params) body += z(k) + z(v);
  body += '\0';
  return i32(uint32_t(body.size() + 4)) + body;
}
const std::string kSslRequest("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8); // 80877103
const std::string kGssRequest("\x00\x00\x00\x08\x04\xd2\x16\x30", 8); // 80877104
std::string cancel(uint32_t pid, uint32_t key) { return i32(16) + i32(80877102) + i32(pid) + i32(key); }
std::string query(std::string_view q) { return msg('Q', z(q)); }
std::string parse(std::string_view name, std::string_view q) { return msg('P', z(name) + z(q) + i16(0)); }
std::string bind(std::string_view portal, std::string_view stmt, std::vector<std::string> params = {}) {
  std::string b = z(portal) + z(stmt) + i16(0) + i16(uint16_t(params.size()));
  for (auto& p : params) b += i32(uint32_t(p.size())) + p;
  return msg('B', b + i16(0));
}
std::string describe(char what, std::string_view name) { return msg('D', std::string(1, what) + z(name)); }
std::string execute(std::string_view portal, uint32_t max_rows = 0) { return msg('E', z(portal) + i32(max_rows)); }
std::string close_msg(char what, std::string_view name) { return msg('C', std::string(1, what) + z(name)); }
const std::string kSync = msg('S', "");
const std::string kFlush = msg('H', "");
const std::string kTerminate = msg('X', "");
std::string copy_data(std::string_view d) { return msg('d', std::string(d)); }
const std::string kCopyDone = msg('c', "");
std::string copy_fail(std::string_view why) { return msg('f', z(why)); }
std::string password(std::string_view p) { return msg('p', z(p)); }
std::string function_call(uint32_t oid, std::vector<std::string> args) {
  std::string b = i32(oid) + i16(0) + i16(uint16_t(args.size()));
  for (auto& a : args) b += i32(uint32_t(a.size())) + a;
  return msg('F', b + i16(0));
}

// Backend.
std::string auth(uint32_t code, std::string extra = "") { return msg('R', i32(code) + extra); }
const std::string kAuthOk = msg('R', i32(0));
std::string param_status(std::string_view k, std::string_view v) { return msg('S', z(k) + z(v)); }
std::string key_data(uint32_t pid, uint32_t key) { return msg('K', i32(pid) + i32(key)); }
std::string ready(char status = 'I') { return msg('Z', std::string(1, status)); }
std::string row_desc(std::vector<std::string> cols) {
  std::string b = i16(uint16_t(cols.size()));
  for (auto& c : cols) b += z(c) + i32(0) + i16(0) + i32(23) + i16(4) + i32(0xFFFFFFFF) + i16(0);
  return msg('T', b);
}
std::string data_row(std::vector<std::string> vals) {
  std::string b = i16(uint16_t(vals.size()));
  for (auto& v : vals) b += i32(uint32_t(v.size())) + v;
  return msg('D', b);
}
std::string complete_tag(std::string_view tag) { return msg('C', z(tag)); }
std::string error(std::string_view sqlstate, std::string_view message, std::string_view sev = "ERROR") {
  return msg('E', "S" + z(sev) + "V" + z(sev) + "C" + z(sqlstate) + "M" + z(message) + "Fpostgres.c" +
                      std::string(1, '\0') + "L123" + std::string(1, '\0') + '\0');
}
std::string notice(std::string_view message) {
  return msg('N', "SNOTICE" + std::string(1, '\0') + "C00000" + std::string(1, '\0') + "M" + z(message) + '\0');
}
std::string notification(uint32_t pid, std::string_view channel, std::string_view payload) {
  return msg('A', i32(pid) + z(channel) + z(payload));
}
const std::string kParseComplete = msg('1', "");
const std::string kBindComplete = msg('2', "");
const std::string kCloseComplete = msg('3', "");
const std::string kNoData = msg('n', "");
const std::string kPortalSuspended = msg('s', "");
const std::string kEmptyQuery = msg('I', "");
std::string param_desc(std::vector<uint32_t> oids) {
  std::string b = i16(uint16_t(oids.size()));
  for (uint32_t o : oids) b += i32(o);
  return msg('t', b);
}
std::string copy_response(char type, uint16_t ncols) {
  std::string b = std::string(1, '\0') + i16(ncols);
  for (uint16_t i = 0; i < ncols; ++i) b += i16(0);
  return msg(type, b);
}
std::string function_result(std::string_view v) { return msg('V', i32(uint32_t(v.size())) + std::string(v)); }

// A typical response to "SELECT ... " returning n rows of one column.
std::string select_rows(int n) {
  std::string r = row_desc({"x"});
  for (int i = 0; i < n; ++i) r += data_row({std::to_string(i)});
  return r + complete_tag("SELECT " + std::to_string(n)) + ready();
}

// ---- feeding ---------------------------------------------------------------------

// Feeds frontend ("c") and backend ("s") bytes with the direction the traced
// side sees: on the server side the frontend's bytes are ingress.
struct Conn {
  Session s;
  bool frontend_ingress;
  uint64_t ts = 1000;
  std::vector<Exchange> out;

  explicit Conn(Side side, Limits lim = {})
      : s(side, lim), frontend_ingress(side != Side::kClient) {}
  Conn& c(std::string_view b) { return feed(frontend_ingress, b); }
  Conn& b(std::string_view b) { return feed(!frontend_ingress, b); }
  Conn& feed(bool ingress, std::string_view data, uint64_t len = 0, bool gap = false) {
    ts += 10;
    s.on_data(ingress, seg(data, ts, len, gap));
    return drain();
  }
  Conn& drain() {
    for (auto& x : s.take_exchanges()) out.push_back(std::move(x));
    return *this;
  }
  Conn& close(std::string_view why = "incomplete") {
    s.on_close(ts, why);
    return drain();
  }
};

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::kStartup: return "startup";
    case Kind::kSslRequest: return "ssl";
    case Kind::kGssEncRequest: return "gss";
    case Kind::kCancel: return "cancel";
    case Kind::kQuery: return "query";
    case Kind::kExecute: return "execute";
    case Kind::kPrepare: return "prepare";
    case Kind::kCopy: return "copy";
    case Kind::kFunctionCall: return "function";
  }
  return "?";
}

std::string describe(const Exchange& x, bool with_ts = true) {
  std::ostringstream o;
  o << kind_name(x.kind) << " text=[" << x.text << "] known=" << x.text_known << " cut=" << x.text_truncated
    << " stmt=[" << x.statement_name << "] tag=[" << x.command_tag << "] op=" << x.operation
    << " rows=" << x.rows << " cmds=" << x.commands << " susp=" << x.portal_suspended
    << " copy=" << int(x.copy) << " oid=" << x.function_oid << " err=" << x.sqlstate << '/'
    << x.severity << '/' << x.error_message << " db=" << x.database << " user=" << x.user
    << " app=" << x.application_name << " pid=" << x.backend_pid << " ssl=" << x.ssl_accepted
    << " trunc=" << x.truncated << " req=" << x.request_bytes << " resp=" << x.response_bytes
    << " complete=" << x.complete << " etype=" << x.error_type;
  if (with_ts) o << " ts=" << x.first_ts_ns << '/' << x.first_response_ts_ns << '/' << x.last_ts_ns;
  return o.str();
}

std::string describe(const std::vector<Exchange>& xs, bool with_ts = true) {
  std::string s;
  for (auto& x : xs) s += describe(x, with_ts) + "\n";
  return s;
}

const std::string kStartupMsg =
    startup({{"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}});
const std::string kStartupResp = auth(0) + param_status("server_version", "16.2") +
                                 param_status("application_name", "psql") + key_data(4242, 99) + ready();

} // namespace

// ---- detection ---------------------------------------------------------------------

TEST_CASE("looks_like_pg_startup recognises the four startup packets", "[postgres]") {
  // Spelled out: length 8, 1234<<16 | 5679 (SSLRequest).
  CHECK(looks_like_pg_startup(std::string("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8)));
  CHECK(looks_like_pg_startup(kGssRequest));
  CHECK(looks_like_pg_startup(cancel(77, 88)));
  // StartupMessage 3.0: length 30, 00 03 00 00, "user\0bob\0database\0db\0\0".
  const std::string sm("\x00\x00\x00\x1e\x00\x03\x00\x00user\0bob\0database\0db\0\0", 0x1e);
  CHECK(looks_like_pg_startup(sm));
  CHECK(looks_like_pg_startup(sm.substr(0, 12))); // only a prefix captured
  CHECK(looks_like_pg_startup(kStartupMsg));
  CHECK_FALSE(looks_like_pg_startup(sm.substr(0, 6)));              // too short to tell
  CHECK_FALSE(looks_like_pg_startup("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK_FALSE(looks_like_pg_startup(i32(8) + i32(131072)));          // protocol 2.0
  CHECK_FALSE(looks_like_pg_startup(i32(12) + i32(80877103) + i32(0))); // SSLRequest of a wrong length
  CHECK_FALSE(looks_like_pg_startup(i32(200000) + i32(196608)));     // absurd length
  CHECK_FALSE(looks_like_pg_startup(query("SELECT 1")));
  std::string bad_param = sm;
  bad_param[9] = '\x01'; // unprintable parameter name
  CHECK_FALSE(looks_like_pg_startup(bad_param));
}

TEST_CASE("looks_like_pg_midstream checks type, length, content and the next message", "[postgres]") {
  // 'Q', length 14, "select 1;" NUL: spelled out.
  const std::string q("Q\x00\x00\x00\x0eselect 1;\x00", 15);
  CHECK(looks_like_pg_midstream(q, true));
  CHECK(looks_like_pg_midstream(bind("", "s1") + execute("") + kSync, true));
  CHECK(looks_like_pg_midstream(q.substr(0, 9), true)); // partial Query: header and visible text fit
  CHECK(looks_like_pg_midstream(select_rows(2), false));
  CHECK(looks_like_pg_midstream(kParseComplete + kBindComplete + data_row({"1"}), false));
  CHECK_FALSE(looks_like_pg_midstream(q, false));            // 'Q' is not a backend message
  CHECK_FALSE(looks_like_pg_midstream(ready(), true));       // nor 'Z' a frontend one
  CHECK_FALSE(looks_like_pg_midstream(msg('Z', "X"), false)); // unknown transaction status
  CHECK_FALSE(looks_like_pg_midstream(q + "GET / HTTP/1.1\r\n", true)); // next message invalid
  CHECK_FALSE(looks_like_pg_midstream("HTTP/1.1 200 OK\r\n\r\n", false));
  CHECK_FALSE(looks_like_pg_midstream("GET / HTTP/1.1\r\n\r\n", true));
  CHECK_FALSE(looks_like_pg_midstream(msg('S', "x"), true)); // Sync has no body
  CHECK_FALSE(looks_like_pg_midstream(std::string("Q\x00\x00\x00\x07" "a\0b", 8), true)); // NUL inside the text
  CHECK_FALSE(looks_like_pg_midstream("Q\x00\x00", true)); // too short
}

// ---- startup -------------------------------------------------------------------------

TEST_CASE("startup: parameters, SCRAM exchange, ParameterStatus, BackendKeyData", "[postgres]") {
  for (Side side : {Side::kServer, Side::kClient, Side::kUnknown}) {
    CAPTURE(int(side));
    Conn c(side);
    c.c(kStartupMsg);
    CHECK(c.s.verdict() == Verdict::kPostgres);
    c.b(auth(10, z("SCRAM-SHA-256") + '\0'))
        .c(password("n,,n=,r=abc"))
        .b(auth(11, "r=abcdef,s=salt,i=4096"))
        .c(password("c=biws,r=abcdef,p=proof"))
        .b(auth(12, "v=sig"));
    CHECK(c.out.empty()); // the startup exchange ends at ReadyForQuery
    c.b(kStartupResp);
    REQUIRE(c.out.size() == 1);
    const Exchange& x = c.out[0];
    CHECK(x.kind == Kind::kStartup);
    CHECK(x.user == "alice");
    CHECK(x.database == "shop");
    CHECK(x.application_name == "psql");
    CHECK(x.backend_pid == 4242);
    CHECK(x.complete);
    CHECK(x.error_type.empty());
    CHECK(x.first_ts_ns == 1010);
    CHECK(x.last_ts_ns == 1070);
    CHECK(x.first_response_ts_ns == 1020);
    CHECK(x.request_bytes == kStartupMsg.size() + password("n,,n=,r=abc").size() +
                                 password("c=biws,r=abcdef,p=proof").size());
    CHECK(x.response_bytes > kStartupResp.size());
    CHECK(c.s.database() == "shop");
    CHECK(c.s.user() == "alice");
    CHECK(c.s.backend_pid() == 4242);
    if (side == Side::kUnknown) CHECK(c.s.side() == Side::kServer);
    // Later exchanges carry the session's parameters.
    c.c(query("SELECT 1")).b(select_rows(1));
    REQUIRE(c.out.size() == 2);
    CHECK(c.out[1].database == "shop");
    CHECK(c.out[1].user == "alice");
    CHECK(c.out[1].application_name == "psql");
    CHECK(c.out[1].backend_pid == 4242);
  }
}

TEST_CASE("startup without database defaults to the user; bad password ends it with the error", "[postgres]") {
  Conn c(Side::kServer);
  c.c(startup({{"user", "bob"}})).b(auth(5, "salt")).c(password("md5deadbeef"));
  c.b(error("28P01", "password authentication failed for user \"bob\"", "FATAL"));
  REQUIRE(c.out.size() == 1);
  const Exchange& x = c.out[0];
  CHECK(x.kind == Kind::kStartup);
  CHECK(x.database == "bob");
  CHECK(x.sqlstate == "28P01");
  CHECK(x.severity == "FATAL");
  CHECK(x.error_message == "password authentication failed for user \"bob\"");
  CHECK(x.complete);
  c.s.on_eof(false, c.ts); // the server closes: nothing else pending
  c.close();
  CHECK(c.out.size() == 1);
}

TEST_CASE("SSLRequest answered S: encrypted, nothing more decoded", "[postgres]") {
  for (Side side : {Side::kServer, Side::kClient}) {
    Conn c(side);
    c.c(kSslRequest);
    CHECK(c.out.empty());
    c.b("S");
    REQUIRE(c.out.size() == 1);
    CHECK(c.out[0].kind == Kind::kSslRequest);
    CHECK(c.out[0].ssl_accepted);
    CHECK(c.out[0].complete);
    CHECK(c.out[0].request_bytes == 8);
    CHECK(c.out[0].response_bytes == 1);
    CHECK(c.s.verdict() == Verdict::kEncrypted);
    CHECK(c.s.done());
    c.c("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").b("\x16\x03\x03\x00\x7a\x02"); // TLS
    c.close();
    CHECK(c.out.size() == 1);
    CHECK(c.s.verdict() == Verdict::kEncrypted);
  }
}

TEST_CASE("SSLRequest answered N, GSSENCRequest answered N: the StartupMessage follows", "[postgres]") {
  Conn c(Side::kServer);
  c.c(kGssRequest).b("N").c(kSslRequest).b("N");
  CHECK(c.out.empty());
  CHECK_FALSE(c.s.done());
  c.c(kStartupMsg).b(kStartupResp);
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kStartup);
  CHECK(c.out[0].user == "alice");
  c.c(query("SELECT 1")).b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].rows == 1);
}

TEST_CASE("GSSENCRequest answered G: encrypted", "[postgres]") {
  Conn c(Side::kClient);
  c.c(kGssRequest).b("G");
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kGssEncRequest);
  CHECK(c.out[0].ssl_accepted);
  CHECK(c.s.verdict() == Verdict::kEncrypted);
}

TEST_CASE("direct SSL (ClientHello with ALPN postgresql): encrypted", "[postgres]") {
  // TLS record header, ClientHello, ..., ALPN extension (type 16) listing "postgresql".
  std::string hello("\x16\x03\x01\x00\x60\x01\x00\x00\x5c\x03\x03", 11);
  hello += std::string(32, 'r') + std::string("\x00\x00\x02\x13\x01\x01\x00\x00\x11", 9);
  hello += std::string("\x00\x10\x00\x0d\x00\x0b\x0apostgresql", 17);
  for (Side side : {Side::kServer, Side::kUnknown}) {
    Conn c(side);
    c.c(hello);
    CHECK(c.s.verdict() == Verdict::kEncrypted);
    REQUIRE(c.out.size() == 1);
    CHECK(c.out[0].kind == Kind::kSslRequest);
    CHECK(c.out[0].ssl_accepted);
    CHECK(c.out[0].request_bytes == hello.size());
  }
  // The same ClientHello offering another protocol is not PostgreSQL.
  std::string h2 = hello;
  h2.replace(h2.size() - 10, 10, "h2xxxxxxxx");
  Conn c(Side::kServer);
  c.c(h2);
  CHECK(c.s.verdict() == Verdict::kNotPostgres);
}

TEST_CASE("CancelRequest: one exchange naming the backend, then done", "[postgres]") {
  Conn c(Side::kServer);
  c.c(cancel(31337, 5));
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kCancel);
  CHECK(c.out[0].backend_pid == 31337);
  CHECK(c.out[0].complete);
  CHECK(c.s.done());
}

// ---- simple query ----------------------------------------------------------------------

TEST_CASE("simple query: rows, tag, operation, timing and sizes", "[postgres]") {
  Conn c(Side::kServer);
  c.c(kStartupMsg).b(kStartupResp);
  c.out.clear();
  const std::string q = query("select * from items where id < 4");
  const std::string r1 = row_desc({"id", "name"}) + data_row({"1", "a"});
  const std::string r2 = data_row({"2", "b"}) + data_row({"3", "c"}) + complete_tag("SELECT 3") + ready();
  c.c(q);   // ts 1030
  c.b(r1);  // ts 1040
  CHECK(c.out.empty());
  c.b(r2);  // ts 1050
  REQUIRE(c.out.size() == 1);
  const Exchange& x = c.out[0];
  CHECK(x.kind == Kind::kQuery);
  CHECK(x.text == "select * from items where id < 4");
  CHECK(x.text_known);
  CHECK(x.command_tag == "SELECT 3");
  CHECK(x.operation == "SELECT");
  CHECK(x.rows == 3);
  CHECK(x.commands == 1);
  CHECK(x.first_ts_ns == 1030);
  CHECK(x.first_response_ts_ns == 1040);
  CHECK(x.last_ts_ns == 1050);
  CHECK(x.request_bytes == q.size());
  CHECK(x.response_bytes == r1.size() + r2.size());
  CHECK(x.complete);
  CHECK(x.error_type.empty());
  CHECK(x.sqlstate.empty());
}

TEST_CASE("simple query with several statements: rows summed, last tag, first operation", "[postgres]") {
  Conn c(Side::kClient);
  c.c(query("INSERT INTO t VALUES (1),(2); UPDATE t SET v = 0; SELECT v FROM t"));
  c.b(complete_tag("INSERT 0 2") + complete_tag("UPDATE 5") + row_desc({"v"}) + data_row({"0"}) +
      complete_tag("SELECT 1") + ready('I'));
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].rows == 8);
  CHECK(c.out[0].command_tag == "SELECT 1");
  CHECK(c.out[0].operation == "INSERT");
  CHECK(c.out[0].commands == 3);
}

TEST_CASE("simple query: empty query, errors, notices, tags without a count", "[postgres]") {
  Conn c(Side::kServer);
  c.c(query("")).b(kEmptyQuery + ready());
  c.c(query("/* c */ -- x\n (SELEC 1)")).b(error("42601", "syntax error at or near \"SELEC\"") + ready());
  c.c(query("  /* hi */ -- x\n (drop table if exists t)"))
      .b(notice("table \"t\" does not exist, skipping") + complete_tag("DROP TABLE") + ready());
  c.c(query("SHOW search_path")).b(row_desc({"search_path"}) + data_row({"public"}) + complete_tag("SHOW") + ready());
  c.c(query("BEGIN")).b(complete_tag("BEGIN") + ready('T'));
  REQUIRE(c.out.size() == 5);
  CHECK(c.out[0].command_tag.empty());
  CHECK(c.out[0].rows == -1);
  CHECK(c.out[0].operation.empty());
  CHECK(c.out[0].complete);
  CHECK(c.out[1].sqlstate == "42601");
  CHECK(c.out[1].severity == "ERROR");
  CHECK(c.out[1].error_message == "syntax error at or near \"SELEC\"");
  CHECK(c.out[1].operation == "SELEC"); // no tag: first word of the text
  CHECK(c.out[1].complete);             // every response arrived
  CHECK(c.out[1].error_type.empty());
  CHECK(c.out[2].operation == "DROP");
  CHECK(c.out[2].sqlstate.empty()); // a notice is not an error
  CHECK(c.out[2].rows == -1);
  CHECK(c.out[3].rows == 1); // no count in the tag: the DataRows
  CHECK(c.out[4].operation == "BEGIN");
}

TEST_CASE("asynchronous messages are never taken as responses", "[postgres]") {
  Conn c(Side::kClient);
  c.c(kStartupMsg).b(kStartupResp);
  // Between exchanges, nothing pending.
  c.b(notification(7, "jobs", "42") + param_status("application_name", "worker") + notice("hello"));
  c.c(query("LISTEN jobs"));
  // In the middle of a response.
  c.b(notification(7, "jobs", "43") + complete_tag("LISTEN"));
  c.b(param_status("TimeZone", "UTC") + ready());
  c.c(query("SELECT 2")).b(select_rows(2));
  REQUIRE(c.out.size() == 3);
  CHECK(c.out[1].command_tag == "LISTEN");
  CHECK(c.out[1].complete);
  CHECK(c.out[1].application_name == "worker"); // ParameterStatus updated the session
  CHECK(c.out[2].rows == 2);
  CHECK(c.out[2].command_tag == "SELECT 2");
  CHECK(c.s.application_name() == "worker");
  CHECK(c.s.desyncs() == 0);
}

// ---- extended query --------------------------------------------------------------------

TEST_CASE("extended query: unnamed statement, one Execute per exchange", "[postgres]") {
  for (Side side : {Side::kServer, Side::kClient}) {
    Conn c(side);
    const std::string batch = parse("", "SELECT name FROM users WHERE id = $1") + bind("", "", {"7"}) +
                              describe('P', "") + execute("") + kSync;
    c.c(batch);
    c.b(kParseComplete + kBindComplete + row_desc({"name"}) + data_row({"ann"}) + complete_tag("SELECT 1") + ready());
    REQUIRE(c.out.size() == 1);
    const Exchange& x = c.out[0];
    CHECK(x.kind == Kind::kExecute);
    CHECK(x.text == "SELECT name FROM users WHERE id = $1");
    CHECK(x.text_known);
    CHECK(x.statement_name.empty());
    CHECK(x.rows == 1);
    CHECK(x.operation == "SELECT");
    CHECK(x.request_bytes == batch.size());
    CHECK(x.complete);
  }
}

TEST_CASE("extended query: pgbench -M prepared reuses statements parsed earlier", "[postgres]") {
  Conn c(Side::kServer);
  c.c(kStartupMsg).b(kStartupResp);
  c.out.clear();
  // Prepared once per name, in a batch of its own...
  c.c(parse("P0_1", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2") +
      parse("P0_2", "SELECT abalance FROM pgbench_accounts WHERE aid = $1") + kSync);
  c.b(kParseComplete + kParseComplete + ready());
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[0].kind == Kind::kPrepare);
  CHECK(c.out[0].statement_name == "P0_1");
  CHECK(c.out[0].operation == "UPDATE");
  CHECK(c.out[1].kind == Kind::kPrepare);
  CHECK(c.out[1].statement_name == "P0_2");
  CHECK(c.out[1].rows == -1);
  c.out.clear();
  // ...then executed by name, many times.
  for (int i = 0; i < 3; ++i) {
    c.c(bind("", "P0_1", {"5", "17"}) + execute("") + kSync);
    c.b(kBindComplete + complete_tag("UPDATE 1") + ready('I'));
    c.c(bind("", "P0_2", {"17"}) + execute("") + kSync);
    c.b(kBindComplete + data_row({"5"}) + complete_tag("SELECT 1") + ready('I'));
  }
  REQUIRE(c.out.size() == 6);
  for (int i = 0; i < 3; ++i) {
    CHECK(c.out[2 * i].text == "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2");
    CHECK(c.out[2 * i].statement_name == "P0_1");
    CHECK(c.out[2 * i].command_tag == "UPDATE 1");
    CHECK(c.out[2 * i + 1].text == "SELECT abalance FROM pgbench_accounts WHERE aid = $1");
    CHECK(c.out[2 * i + 1].rows == 1);
    CHECK(c.out[2 * i + 1].kind == Kind::kExecute);
    CHECK(c.out[2 * i + 1].complete);
  }
}

TEST_CASE("extended query: statement parsed before tracing started", "[postgres]") {
  Conn c(Side::kServer); // traced mid-stream: no startup, no Parse
  c.c(bind("", "S_12", {"1"}) + execute("") + kSync);
  c.b(kBindComplete + data_row({"x"}) + complete_tag("SELECT 1") + ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kExecute);
  CHECK_FALSE(c.out[0].text_known);
  CHECK(c.out[0].text.empty());
  CHECK(c.out[0].statement_name == "S_12");
  CHECK(c.out[0].operation == "SELECT");
  CHECK(c.out[0].rows == 1);
  CHECK(c.s.verdict() == Verdict::kPostgres);
}

TEST_CASE("extended query: the unnamed statement is overwritten by each Parse; Close forgets", "[postgres]") {
  Conn c(Side::kClient);
  c.c(parse("", "SELECT 1") + bind("", "") + execute("") + kSync);
  c.b(kParseComplete + kBindComplete + data_row({"1"}) + complete_tag("SELECT 1") + ready());
  c.c(parse("", "SELECT 2") + kSync).b(kParseComplete + ready());
  c.c(bind("", "") + execute("") + kSync).b(kBindComplete + data_row({"2"}) + complete_tag("SELECT 1") + ready());
  c.c(parse("s", "DELETE FROM t") + kSync).b(kParseComplete + ready());
  c.c(close_msg('S', "s") + kSync).b(kCloseComplete + ready());
  c.c(bind("", "s") + execute("") + kSync).b(error("26000", "prepared statement \"s\" does not exist") + ready());
  REQUIRE(c.out.size() == 5); // the Close-only batch makes no exchange
  CHECK(c.out[0].text == "SELECT 1");
  CHECK(c.out[1].kind == Kind::kPrepare);
  CHECK(c.out[1].text == "SELECT 2");
  CHECK(c.out[2].text == "SELECT 2");
  CHECK(c.out[2].kind == Kind::kExecute);
  CHECK(c.out[3].kind == Kind::kPrepare);
  CHECK(c.out[4].statement_name == "s");
  CHECK_FALSE(c.out[4].text_known); // closed: its text is no longer known
  CHECK(c.out[4].sqlstate == "26000");
  CHECK(c.out[4].complete);
}

TEST_CASE("extended query: pipelined Executes pair with CommandCompletes in order", "[postgres]") {
  Conn c(Side::kServer);
  c.c(parse("a", "INSERT INTO t VALUES ($1)") + parse("b", "UPDATE t SET v = 1") + parse("c", "SELECT v FROM t") +
      bind("", "a", {"1"}) + execute("") + bind("", "b") + execute("") + bind("", "c") + execute("") + kSync);
  // Responses arrive a few messages at a time.
  c.b(kParseComplete + kParseComplete + kParseComplete + kBindComplete);
  c.b(complete_tag("INSERT 0 1") + kBindComplete);
  c.b(complete_tag("UPDATE 2") + kBindComplete + data_row({"1"}) + data_row({"1"}));
  c.b(complete_tag("SELECT 2") + ready());
  REQUIRE(c.out.size() == 6);
  // Parses not followed by an Execute of their statement are prepares.
  for (int i = 0; i < 3; ++i) {
    CHECK(c.out[i].kind == Kind::kPrepare);
    CHECK(c.out[i].statement_name == std::string(1, char('a' + i)));
    CHECK(c.out[i].complete);
  }
  CHECK(c.out[3].kind == Kind::kExecute);
  CHECK(c.out[3].text == "INSERT INTO t VALUES ($1)");
  CHECK(c.out[3].command_tag == "INSERT 0 1");
  CHECK(c.out[4].text == "UPDATE t SET v = 1");
  CHECK(c.out[4].rows == 2);
  CHECK(c.out[5].text == "SELECT v FROM t");
  CHECK(c.out[5].rows == 2);
  CHECK(c.out[5].statement_name == "c");
  // Each Execute ends at its own CommandComplete.
  CHECK(c.out[3].last_ts_ns < c.out[4].last_ts_ns);
  CHECK(c.out[4].last_ts_ns < c.out[5].last_ts_ns);
}

TEST_CASE("extended query: after an error the rest of the batch is skipped", "[postgres]") {
  Conn c(Side::kClient);
  c.c(bind("", "s1") + execute("") + bind("", "s2") + execute("") + bind("", "s3") + execute("") + kSync);
  c.b(kBindComplete + complete_tag("INSERT 0 1") + kBindComplete +
      error("23505", "duplicate key value violates unique constraint \"t_pkey\"") + ready('I'));
  REQUIRE(c.out.size() == 3);
  CHECK(c.out[0].command_tag == "INSERT 0 1");
  CHECK(c.out[0].error_type.empty());
  CHECK(c.out[1].sqlstate == "23505");
  CHECK(c.out[1].complete);
  CHECK(c.out[2].statement_name == "s3");
  CHECK(c.out[2].error_type == "skipped");
  CHECK(c.out[2].sqlstate.empty());
  // The next batch pairs normally.
  c.c(bind("", "s1") + execute("") + kSync).b(kBindComplete + complete_tag("INSERT 0 1") + ready());
  REQUIRE(c.out.size() == 4);
  CHECK(c.out[3].command_tag == "INSERT 0 1");
  CHECK(c.out[3].error_type.empty());
  CHECK(c.s.desyncs() == 0);
}

TEST_CASE("extended query: error at Parse with Flush, messages until Sync are discarded", "[postgres]") {
  Conn c(Side::kServer);
  c.c(parse("q", "SELEC 1") + describe('S', "q") + kFlush);
  c.b(error("42601", "syntax error"));
  CHECK(c.out.empty()); // the group is still open: the driver may go on
  c.c(bind("", "q") + execute("") + kSync);
  c.b(ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kExecute);
  CHECK(c.out[0].text == "SELEC 1");
  CHECK(c.out[0].sqlstate == "42601");
  CHECK(c.out[0].error_type.empty());
  c.c(parse("", "SELECT 1") + describe('S', "") + kSync);
  c.b(kParseComplete + param_desc({}) + row_desc({"?column?"}) + ready());
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].kind == Kind::kPrepare);
  CHECK(c.out[1].complete);
  CHECK(c.s.desyncs() == 0);
}

TEST_CASE("extended query: Describe/Flush then Execute, PortalSuspended, named portals", "[postgres]") {
  Conn c(Side::kServer);
  c.c(parse("", "SELECT * FROM big") + describe('S', "") + kFlush);
  c.b(kParseComplete + param_desc({23}) + row_desc({"a"}));
  c.c(bind("cur", "") + execute("cur", 2) + kFlush);
  c.b(kBindComplete + data_row({"1"}) + data_row({"2"}) + kPortalSuspended);
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kExecute);
  CHECK(c.out[0].portal_suspended);
  CHECK(c.out[0].rows == 2);
  CHECK(c.out[0].text == "SELECT * FROM big");
  c.c(execute("cur", 2) + kSync);
  c.b(data_row({"3"}) + complete_tag("SELECT 1") + ready('T'));
  REQUIRE(c.out.size() == 2);
  CHECK_FALSE(c.out[1].portal_suspended);
  CHECK(c.out[1].text == "SELECT * FROM big");
  CHECK(c.out[1].command_tag == "SELECT 1");
}

TEST_CASE("psql \\parse: a Parse with a Sync is one prepare", "[postgres]") {
  Conn c(Side::kClient);
  c.c(parse("stmt1", "select $1::int") + kSync).b(kParseComplete + ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kPrepare);
  CHECK(c.out[0].statement_name == "stmt1");
  CHECK(c.out[0].text == "select $1::int");
  CHECK(c.out[0].operation == "SELECT");
  CHECK(c.out[0].complete);
}

TEST_CASE("function call", "[postgres]") {
  Conn c(Side::kServer);
  c.c(function_call(954, {std::string("\0\0\0\1", 4)})).b(function_result("abc") + ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kFunctionCall);
  CHECK(c.out[0].function_oid == 954);
  CHECK(c.out[0].complete);
}

// ---- COPY ------------------------------------------------------------------------------

TEST_CASE("COPY FROM STDIN: data from the client, row count from the tag", "[postgres]") {
  Conn c(Side::kServer);
  const std::string d1 = copy_data("1\ta\n"), d2 = copy_data("2\tb\n");
  const std::string q = query("COPY t FROM STDIN");
  c.c(q).b(copy_response('G', 2)).c(d1 + d2).c(kCopyDone);
  c.b(complete_tag("COPY 2") + ready());
  c.c(query("SELECT 1")).b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[0].kind == Kind::kCopy);
  CHECK(c.out[0].copy == Exchange::Copy::kIn);
  CHECK(c.out[0].rows == 2);
  CHECK(c.out[0].operation == "COPY");
  CHECK(c.out[0].text == "COPY t FROM STDIN");
  CHECK(c.out[0].request_bytes == q.size() + d1.size() + d2.size() + kCopyDone.size());
  CHECK(c.out[1].rows == 1);
  CHECK(c.s.desyncs() == 0);
}

TEST_CASE("COPY TO STDOUT and CopyFail", "[postgres]") {
  Conn c(Side::kClient);
  c.c(query("COPY t TO STDOUT"));
  c.b(copy_response('H', 1) + copy_data("1\n") + copy_data("2\n"));
  c.b(copy_data("3\n") + kCopyDone + complete_tag("COPY 3") + ready());
  c.c(query("COPY t FROM STDIN")).b(copy_response('G', 1)).c(copy_data("x\n") + copy_fail("aborted by user"));
  c.b(error("57014", "COPY from stdin failed: aborted by user") + ready());
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[0].copy == Exchange::Copy::kOut);
  CHECK(c.out[0].rows == 3);
  CHECK(c.out[0].complete);
  CHECK(c.out[1].kind == Kind::kCopy);
  CHECK(c.out[1].sqlstate == "57014");
  CHECK(c.s.desyncs() == 0);
}

TEST_CASE("COPY via the extended protocol", "[postgres]") {
  Conn c(Side::kServer);
  c.c(parse("", "COPY t FROM STDIN") + bind("", "") + execute("") + kFlush);
  c.b(kParseComplete + kBindComplete + copy_response('G', 1));
  c.c(copy_data("7\n") + kCopyDone + kSync);
  c.b(complete_tag("COPY 1") + ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kCopy);
  CHECK(c.out[0].rows == 1);
  CHECK(c.out[0].text == "COPY t FROM STDIN");
}

TEST_CASE("CopyBoth (replication): the exchange ends at CopyBothResponse", "[postgres]") {
  Conn c(Side::kClient);
  c.c(query("START_REPLICATION SLOT s LOGICAL 0/0"));
  c.b(copy_response('W', 0));
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].kind == Kind::kCopy);
  CHECK(c.out[0].copy == Exchange::Copy::kBoth);
  CHECK(c.out[0].complete);
  for (int i = 0; i < 5; ++i) c.b(copy_data("w" + std::string(40, 'x'))).c(copy_data("r" + std::string(33, 'y')));
  c.c(kCopyDone).b(kCopyDone + complete_tag("START_REPLICATION") + ready());
  c.c(query("SELECT 1")).b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].command_tag == "SELECT 1");
  CHECK(c.s.desyncs() == 0);
}

// ---- connection end ------------------------------------------------------------------------

TEST_CASE("Terminate: no exchange, done", "[postgres]") {
  Conn c(Side::kServer);
  c.c(kStartupMsg).b(kStartupResp).c(kTerminate);
  CHECK(c.out.size() == 1);
  CHECK(c.s.done());
  c.close();
  CHECK(c.out.size() == 1);
}

TEST_CASE("close and EOF end pending exchanges", "[postgres]") {
  {
    Conn c(Side::kServer);
    c.c(query("SELECT pg_sleep(10)")).b(row_desc({"pg_sleep"}));
    c.close("connection_reset");
    REQUIRE(c.out.size() == 1);
    CHECK_FALSE(c.out[0].complete);
    CHECK(c.out[0].error_type == "connection_reset");
    CHECK(c.out[0].text == "SELECT pg_sleep(10)");
    CHECK(c.out[0].first_response_ts_ns > 0);
  }
  {
    Conn c(Side::kClient);
    c.c(query("SELECT 1"));
    c.s.on_eof(true, c.ts); // the server closed (client side: the backend's bytes are ingress)
    c.drain();
    REQUIRE(c.out.size() == 1);
    CHECK(c.out[0].error_type == "connection_closed");
    CHECK_FALSE(c.out[0].complete);
  }
  {
    Conn c(Side::kServer);
    c.c(query("SELECT 1"));
    c.s.on_eof(true, c.ts); // the client closed its side: the server may still answer
    c.drain();
    CHECK(c.out.empty());
    c.b(select_rows(1));
    REQUIRE(c.out.size() == 1);
    CHECK(c.out[0].complete);
  }
}

// ---- framing -------------------------------------------------------------------------------

namespace {

struct Turn {
  bool frontend;
  std::string bytes;
};

// A conversation with most message types.
std::vector<Turn> conversation() {
  return {
      {true, kSslRequest},
      {false, "N"},
      {true, kStartupMsg},
      {false, auth(5, "salt")},
      {true, password("md5abc")},
      {false, kStartupResp},
      {true, query("SELECT a, b FROM t")},
      {false, row_desc({"a", "b"}) + data_row({"1", "x"}) + data_row({"2", ""}) + complete_tag("SELECT 2") + ready()},
      {true, parse("p1", "UPDATE t SET a = $1") + kSync},
      {false, kParseComplete + ready()},
      {true, bind("", "p1", {"5"}) + execute("") + bind("", "p1", {"6"}) + execute("") + kSync},
      {false, kBindComplete + complete_tag("UPDATE 3") + kBindComplete + notice("n") + complete_tag("UPDATE 4") + ready()},
      {true, query("COPY t FROM STDIN")},
      {false, copy_response('G', 2)},
      {true, copy_data("1\tx\n") + copy_data("2\ty\n") + kCopyDone},
      {false, complete_tag("COPY 2") + ready()},
      {true, query("BAD")},
      {false, error("42601", "syntax error") + ready()},
      {true, kTerminate},
  };
}

std::vector<Exchange> run(const std::vector<Turn>& turns, Side side, size_t split_turn = SIZE_MAX,
                          size_t split_at = 0, bool bytewise = false) {
  Session s(side);
  const bool fe_in = side != Side::kClient;
  uint64_t ts = 100;
  for (size_t t = 0; t < turns.size(); ++t) {
    const std::string& b = turns[t].bytes;
    const bool in = turns[t].frontend == fe_in;
    ts += 10;
    if (bytewise) {
      for (size_t i = 0; i < b.size(); ++i) s.on_data(in, seg(std::string_view(b).substr(i, 1), ts));
    } else if (t == split_turn) {
      s.on_data(in, seg(std::string_view(b).substr(0, split_at), ts));
      s.on_data(in, seg(std::string_view(b).substr(split_at), ts));
    } else {
      s.on_data(in, seg(b, ts));
    }
  }
  s.on_close(ts, "incomplete");
  return s.take_exchanges();
}

} // namespace

TEST_CASE("split at every byte position gives the same exchanges", "[postgres]") {
  const auto turns = conversation();
  for (Side side : {Side::kServer, Side::kClient}) {
    const auto base = run(turns, side);
    REQUIRE(base.size() == 7); // startup, query, prepare, 2 executes, copy, error
    CHECK(base[0].kind == Kind::kStartup);
    CHECK(base[3].rows == 3);
    CHECK(base[4].rows == 4);
    CHECK(base[5].rows == 2);
    CHECK(base[6].sqlstate == "42601");
    const std::string want = describe(base);
    for (size_t t = 0; t < turns.size(); ++t)
      for (size_t k = 1; k < turns[t].bytes.size(); ++k) {
        const std::string got = describe(run(turns, side, t, k));
        if (got != want) FAIL("turn " << t << " split at " << k << "\n" << got << "want\n" << want);
      }
    CHECK(describe(run(turns, side, SIZE_MAX, 0, true)) == want);
  }
}

TEST_CASE("uncaptured tail inside a message is skipped by length", "[postgres]") {
  Conn c(Side::kServer);
  // A DataRow of 100000 bytes; only 4096 bytes of the write are captured.
  const std::string big = data_row({std::string(100000, 'v')});
  const std::string resp = row_desc({"blob"}) + big + complete_tag("SELECT 1") + ready();
  c.c(query("SELECT blob FROM files"));
  const size_t head = row_desc({"blob"}).size() + big.size(); // the write ends with the DataRow
  c.feed(false, std::string_view(resp).substr(0, 4096), head);
  c.feed(false, std::string_view(resp).substr(head));
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].rows == 1);
  CHECK(c.out[0].command_tag == "SELECT 1");
  CHECK(c.out[0].truncated);
  CHECK(c.out[0].complete);
  CHECK(c.out[0].response_bytes == resp.size());
  CHECK(c.s.desyncs() == 0);
  // A long query whose text is partly not captured.
  const std::string q = query("SELECT '" + std::string(20000, 'q') + "'");
  c.feed(true, std::string_view(q).substr(0, 4096), q.size());
  c.b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].text_truncated);
  CHECK(c.out[1].text.size() <= 4096);
  CHECK(c.out[1].text.rfind("SELECT 'qqq", 0) == 0);
  CHECK(c.out[1].request_bytes == q.size());
}

TEST_CASE("response larger than the capture: framing found again, exchange still right", "[postgres]") {
  // 2000 rows written in 8 KiB writes of which 4 KiB are captured, as the
  // backend flushes its output buffer without regard to message boundaries.
  Conn c(Side::kClient);
  c.c(query("SELECT * FROM generate_series(1, 2000)"));
  std::string resp = row_desc({"generate_series"});
  for (int i = 1; i <= 2000; ++i) resp += data_row({std::to_string(i)});
  resp += complete_tag("SELECT 2000") + ready();
  // The last write (the rest, ending with ReadyForQuery) is small enough to be captured.
  const size_t body = resp.size() - 1000;
  for (size_t off = 0; off < body; off += 8192) {
    const size_t n = std::min<size_t>(8192, body - off);
    c.feed(true, std::string_view(resp).substr(off, std::min<size_t>(n, 4096)), n); // client side: backend ingress
  }
  c.feed(true, std::string_view(resp).substr(body));
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].rows == 2000);
  CHECK(c.out[0].command_tag == "SELECT 2000");
  CHECK(c.out[0].complete);
  CHECK(c.out[0].truncated);
  CHECK(c.out[0].response_bytes == resp.size());
  CHECK(c.s.desyncs() == 0);
  CHECK(c.s.resyncs() > 0);
  c.c(query("SELECT 1")).b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].rows == 1);
}

TEST_CASE("COPY data larger than the capture keeps the exchange", "[postgres]") {
  Conn c(Side::kServer);
  c.c(query("COPY t FROM STDIN")).b(copy_response('G', 1));
  std::string data;
  for (int i = 0; i < 3000; ++i) data += copy_data(std::to_string(i * 7919) + "\n");
  for (size_t off = 0; off < data.size(); off += 8192) {
    const size_t n = std::min<size_t>(8192, data.size() - off);
    c.feed(true, std::string_view(data).substr(off, std::min<size_t>(n, 4096)), n);
  }
  c.c(kCopyDone).b(complete_tag("COPY 3000") + ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].rows == 3000);
  CHECK(c.out[0].truncated);
  CHECK(c.out[0].request_bytes == query("COPY t FROM STDIN").size() + data.size() + kCopyDone.size());
  CHECK(c.out[0].complete);
  CHECK(c.s.desyncs() == 0);
  c.c(query("SELECT 1")).b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].text == "SELECT 1");
}

TEST_CASE("pipelined batch larger than the capture: visible Executes paired, hidden ones ignored", "[postgres]") {
  Conn c(Side::kClient);
  std::string batch;
  size_t whole_in_capture = 0; // Bind+Execute pairs entirely within the first 4096 bytes
  for (int i = 0; i < 300; ++i) {
    batch += bind("", "upd", {std::to_string(i)}) + execute("");
    if (batch.size() <= 4096) ++whole_in_capture;
  }
  batch += kSync;
  c.feed(false, std::string_view(batch).substr(0, 4096), batch.size()); // one write, 4 KiB captured
  std::string resp;
  for (int i = 0; i < 300; ++i) resp += kBindComplete + complete_tag("UPDATE " + std::to_string(i));
  resp += ready();
  for (size_t off = 0; off < resp.size(); off += 4000) c.feed(true, std::string_view(resp).substr(off, 4000));
  REQUIRE(c.out.size() == whole_in_capture);
  for (size_t i = 0; i < c.out.size(); ++i) {
    CHECK(c.out[i].command_tag == "UPDATE " + std::to_string(i));
    CHECK(c.out[i].complete);
  }
  // The next batch pairs normally.
  c.c(bind("", "upd", {"1"}) + execute("") + kSync).b(kBindComplete + complete_tag("UPDATE 77") + ready());
  REQUIRE(c.out.size() == whole_in_capture + 1);
  CHECK(c.out.back().command_tag == "UPDATE 77");
  CHECK(c.out.back().complete);
  CHECK(c.s.desyncs() == 0);
}

TEST_CASE("ErrorResponse at Sync (deferred constraint at commit) does not disturb pairing", "[postgres]") {
  Conn c(Side::kServer);
  c.c(parse("", "INSERT INTO t VALUES (1)") + bind("", "") + execute("") + kSync);
  c.b(kParseComplete + kBindComplete + complete_tag("INSERT 0 1"));
  REQUIRE(c.out.size() == 1); // the Execute ended at its CommandComplete
  CHECK(c.out[0].command_tag == "INSERT 0 1");
  c.b(error("23503", "insert or update violates foreign key constraint") + ready());
  c.c(query("SELECT 1")).b(select_rows(1));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].rows == 1);
  CHECK(c.out[1].sqlstate.empty());
  CHECK(c.s.desyncs() == 0);
}

TEST_CASE("response tail lost with its ReadyForQuery: the next query is not misattributed", "[postgres]") {
  Conn c(Side::kServer);
  c.c(query("SELECT * FROM big"));
  std::string resp = row_desc({"x"});
  for (int i = 0; i < 500; ++i) resp += data_row({"value-" + std::to_string(i)});
  resp += complete_tag("SELECT 500") + ready();
  // One write, only its start captured: the CommandComplete and ReadyForQuery are unseen.
  c.feed(false, std::string_view(resp).substr(0, 4096), resp.size());
  c.c(query("SELECT 2"));
  c.b(select_rows(2));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[0].text == "SELECT * FROM big");
  CHECK_FALSE(c.out[0].complete);
  CHECK(c.out[0].error_type == "desync");
  CHECK(c.out[1].text == "SELECT 2");
  CHECK(c.out[1].rows == 2);
  CHECK(c.out[1].complete);
}

TEST_CASE("gap: pending exchanges dropped as desync, decoding resumes", "[postgres]") {
  SECTION("gap in the backend's direction") {
    Conn c(Side::kServer);
    c.c(query("SELECT 1"));
    c.b(row_desc({"x"}));
    c.feed(false, data_row({"1"}) + complete_tag("SELECT 1") + ready(), 0, true); // bytes lost before
    REQUIRE(c.out.size() == 1);
    CHECK(c.out[0].error_type == "desync");
    CHECK_FALSE(c.out[0].complete);
    CHECK(c.s.desyncs() == 1);
    c.c(query("SELECT 2")).b(select_rows(2));
    REQUIRE(c.out.size() == 2);
    CHECK(c.out[1].rows == 2);
    CHECK(c.out[1].complete);
  }
  SECTION("gap in the frontend's direction: answers to lost queries are not taken") {
    Session s(Side::kServer);
    s.on_data(true, seg(query("SELECT 1"), 100));
    s.on_data(false, seg(select_rows(1), 110));
    // Query 2 is lost; query 3 (after the gap) is processed before the answer
    // to query 2, which carries an earlier timestamp.
    const std::string q3 = query("SELECT 3"), r2 = select_rows(2), r3 = select_rows(3);
    s.on_data(true, seg(q3, 130, 0, true));
    s.on_data(false, seg(r2, 125));
    s.on_data(false, seg(r3, 140));
    const auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].rows == 1);
    CHECK(xs[1].text == "SELECT 3");
    CHECK(xs[1].rows == 3);
    CHECK(xs[1].complete);
    CHECK(xs[1].first_response_ts_ns == 140);
    CHECK(s.desyncs() == 1);
  }
  SECTION("gap in the middle of a message: resync at the next plausible boundary") {
    Conn c(Side::kServer);
    c.c(query("SELECT 1"));
    const std::string r = select_rows(5);
    c.b(r.substr(0, 20));
    // The rest of this response arrives after a loss, starting mid-message.
    c.feed(false, r.substr(33), 0, true);
    CHECK(c.s.desyncs() == 1);
    c.c(query("SELECT 2")).b(select_rows(2));
    REQUIRE(c.out.size() == 2);
    CHECK(c.out[0].error_type == "desync");
    CHECK(c.out[1].rows == 2);
  }
}

TEST_CASE("gap before the first bytes of the backend's direction", "[postgres]") {
  Conn c(Side::kClient);
  c.c(query("SELECT 1"));
  c.feed(true, select_rows(1), 0, true); // its answer may be partly lost
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].error_type == "desync");
  c.c(query("SELECT 2")).b(select_rows(2));
  REQUIRE(c.out.size() == 2);
  CHECK(c.out[1].rows == 2);
  CHECK(c.out[1].complete);
}

TEST_CASE("traced mid-stream: segments starting inside a message are skipped", "[postgres]") {
  Conn c(Side::kServer);
  c.c(query("SELECT 1")); // decides: PostgreSQL
  const std::string r = select_rows(3);
  c.b(r.substr(7)); // the first backend bytes we see start inside a message
  c.c(query("SELECT 2")).b(select_rows(2));
  REQUIRE(c.out.size() >= 1);
  CHECK(c.out.back().text == "SELECT 2");
  CHECK(c.out.back().rows == 2);
  CHECK(c.out.back().complete);
}

TEST_CASE("not PostgreSQL: decided at the first bytes", "[postgres]") {
  {
    Conn c(Side::kServer);
    c.c("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    CHECK(c.s.verdict() == Verdict::kNotPostgres);
    CHECK(c.s.done());
  }
  {
    Conn c(Side::kClient);
    c.b("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CHECK(c.s.verdict() == Verdict::kNotPostgres);
  }
  {
    Conn c(Side::kUnknown);
    c.c(std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11)); // TLS, no ALPN postgresql
    CHECK(c.s.verdict() == Verdict::kUndecided);
    c.b("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    CHECK(c.s.verdict() == Verdict::kNotPostgres);
    CHECK(c.s.done());
  }
  {
    // Byte by byte: still decided within one header.
    Conn c(Side::kServer);
    const std::string http = "POST /x HTTP/1.1\r\n";
    for (size_t i = 0; i < 5 && c.s.verdict() == Verdict::kUndecided; ++i) c.c(http.substr(i, 1));
    CHECK(c.s.verdict() == Verdict::kNotPostgres);
  }
  {
    // Once known to be PostgreSQL, garbage is a desync, not a verdict change.
    Conn c(Side::kServer);
    c.c(query("SELECT 1")).b(select_rows(1));
    c.c("garbage garbage garbage");
    CHECK(c.s.verdict() == Verdict::kPostgres);
    CHECK(c.s.desyncs() == 1);
    c.c(query("SELECT 2")).b(select_rows(2));
    REQUIRE(c.out.size() == 2);
    CHECK(c.out[1].rows == 2);
  }
}

TEST_CASE("Side::kUnknown decides from regular messages too", "[postgres]") {
  Conn c(Side::kUnknown);
  // Backend bytes seen first ('D' as a frontend Describe would need 'S' or 'P'):
  // the frontend is the other direction.
  c.b(data_row({"1"}) + complete_tag("SELECT 1"));
  c.c(query("SELECT 2")).b(select_rows(2));
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].rows == 2);
  CHECK(c.s.side() == Side::kServer);
  Conn d(Side::kUnknown);
  d.feed(false, query("SELECT 3")); // frontend bytes written: we are the client
  d.feed(true, select_rows(3));
  REQUIRE(d.out.size() == 1);
  CHECK(d.s.side() == Side::kClient);
  CHECK(d.out[0].rows == 3);
}

TEST_CASE("limits: buffered bytes, text kept, statements remembered, pending", "[postgres]") {
  Limits lim;
  lim.max_text_keep = 64;
  lim.max_statements = 2;
  lim.max_pending = 8;
  Conn c(Side::kServer, lim);
  // A 1 MB query arriving in 1000-byte pieces: only a prefix is kept.
  const std::string q = query(std::string(1 << 20, 'a'));
  size_t most = 0;
  for (size_t off = 0; off < q.size(); off += 1000) {
    c.c(q.substr(off, 1000));
    most = std::max(most, c.s.buffered_bytes());
  }
  CHECK(most > 0);
  CHECK(most <= 64 + 1);
  c.b(error("42601", "x") + ready());
  REQUIRE(c.out.size() == 1);
  CHECK(c.out[0].text.size() == 64);
  CHECK(c.out[0].text_truncated);
  CHECK(c.out[0].request_bytes == q.size());
  // Three named statements, only two remembered.
  c.c(parse("s1", "SELECT 1") + parse("s2", "SELECT 2") + parse("s3", "SELECT 3") + kSync);
  c.b(kParseComplete + kParseComplete + kParseComplete + ready());
  int known = 0;
  for (const char* n : {"s1", "s2", "s3"}) {
    c.c(bind("", n) + execute("") + kSync).b(kBindComplete + complete_tag("SELECT 1") + ready());
    known += c.out.back().text_known;
  }
  CHECK(known == 2);
  // More frontend messages without an answer than max_pending: old ones dropped.
  c.out.clear();
  for (int i = 0; i < 20; ++i) c.c(query("SELECT " + std::to_string(i)));
  CHECK(c.s.desyncs() >= 1);
  CHECK(c.out.size() >= 8);
  for (const auto& x : c.out) CHECK(x.error_type == "desync");
}

TEST_CASE("many exchanges on one session stay paired", "[postgres]") {
  Conn c(Side::kServer);
  for (int i = 0; i < 300; ++i) {
    c.c(query("SELECT " + std::to_string(i)));
    c.b(select_rows(i % 7));
  }
  REQUIRE(c.out.size() == 300);
  for (int i = 0; i < 300; ++i) {
    CHECK(c.out[i].text == "SELECT " + std::to_string(i));
    CHECK(c.out[i].rows == i % 7);
  }
}
