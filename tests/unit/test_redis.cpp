// Redis decoder (RESP2/RESP3): framing, pairing, pub/sub, MULTI, CLIENT
// REPLY, inline commands, capture limits, loss and detection, on byte
// fixtures fed as kernel-style segments. Fixtures are written out by hand
// (from the RESP2/RESP3 specifications and redis-server transcripts).
#include <catch2/catch.hpp>

#include "segments.hpp"
#include "protocols/redis/redis.hpp"

#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

using namespace odigos::redis;
using namespace odigos::test;

namespace {

// A command as clients send it: an array of bulk strings.
std::string cmd(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view a : args)
    out += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
  return out;
}

std::string bulk(std::string_view v) {
  return "$" + std::to_string(v.size()) + "\r\n" + std::string(v) + "\r\n";
}

std::string describe(const Exchange& x) {
  std::ostringstream o;
  o << "CMD";
  for (const std::string& a : x.command.args) o << " [" << a << "]";
  o << " argc=" << x.command.argc << " inline=" << x.command.inline_command
    << " trunc=" << x.command.truncated << " complete=" << x.command.complete
    << " bytes=" << x.command.bytes << "\n";
  if (x.reply) {
    const Reply& r = *x.reply;
    o << "REPLY " << (r.type ? r.type : '0') << " err=" << r.error << " null=" << r.null << " ["
      << r.error_prefix << "|" << r.error_message << "] value=[" << r.value << "] int="
      << r.integer << " elems=" << r.elements << " msgs=" << r.messages
      << " trunc=" << r.truncated << " complete=" << r.complete << " bytes=" << r.bytes << "\n";
  } else {
    o << "NO REPLY\n";
  }
  o << "ERR " << x.error_type << " suppressed=" << x.reply_suppressed << "\n";
  return o.str();
}

std::string describe(const std::vector<Exchange>& xs) {
  std::string out;
  for (const Exchange& x : xs) out += describe(x);
  return out;
}

// Server side: all commands in one segment at ts 1, all replies in one at ts 2.
std::vector<Exchange> run(std::string_view cmds, std::string_view replies) {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmds, 1));
  s.on_data(kOut, seg(replies, 2));
  return s.take_exchanges();
}

} // namespace

TEST_CASE("redis server: one command, one reply", "[redis]") {
  Session s(Side::kServer);
  CHECK(s.verdict() == Verdict::kUndecided);
  s.on_data(kIn, seg("*1\r\n$4\r\nPING\r\n", 100));
  CHECK(s.verdict() == Verdict::kRedis);
  CHECK(s.take_exchanges().empty());
  s.on_data(kOut, seg("+PONG\r\n", 250));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  const Exchange& x = xs[0];
  REQUIRE(x.command.args.size() == 1);
  CHECK(x.command.args[0] == "PING");
  CHECK(x.command.argc == 1);
  CHECK_FALSE(x.command.inline_command);
  CHECK(x.command.complete);
  CHECK_FALSE(x.command.truncated);
  CHECK(x.command.first_ts_ns == 100);
  CHECK(x.command.last_ts_ns == 100);
  CHECK(x.command.bytes == 14);
  REQUIRE(x.reply);
  CHECK(x.reply->type == '+');
  CHECK(x.reply->value == "PONG");
  CHECK_FALSE(x.reply->error);
  CHECK(x.reply->complete);
  CHECK(x.reply->messages == 1);
  CHECK(x.reply->first_ts_ns == 250);
  CHECK(x.reply->last_ts_ns == 250);
  CHECK(x.reply->bytes == 7);
  CHECK(x.error_type.empty());
  CHECK(s.desyncs() == 0);
  CHECK(s.pushes() == 0);
  CHECK(s.unpaired() == 0);
  CHECK_FALSE(s.done());
  CHECK(s.side() == Side::kServer);
}

TEST_CASE("redis client: commands written, replies read", "[redis]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", 1));
  s.on_data(kIn, seg("+OK\r\n", 2));
  s.on_data(kOut, seg("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", 3));
  s.on_data(kIn, seg("$5\r\nvalue\r\n", 4));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.args == std::vector<std::string>{"SET", "key", "value"});
  CHECK(xs[0].reply->value == "OK");
  CHECK(xs[1].command.args == std::vector<std::string>{"GET", "key"});
  CHECK(xs[1].reply->type == '$');
  CHECK(xs[1].reply->value == "value");
  CHECK(xs[1].reply->bytes == 11);
  CHECK(s.side() == Side::kClient);
}

TEST_CASE("redis timing spans the segments carrying first and last byte", "[redis]") {
  Session s(Side::kClient);
  const std::string c = cmd({"SET", "k", "0123456789"});
  s.on_data(kOut, seg(std::string_view(c).substr(0, 5), 10));
  s.on_data(kOut, seg(std::string_view(c).substr(5, 20), 11));
  s.on_data(kOut, seg(std::string_view(c).substr(25), 12));
  s.on_data(kIn, seg("$3\r\nab", 20));
  s.on_data(kIn, seg("c\r", 21));
  CHECK(s.take_exchanges().empty());
  s.on_data(kIn, seg("\n", 22));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.first_ts_ns == 10);
  CHECK(xs[0].command.last_ts_ns == 12);
  CHECK(xs[0].command.bytes == c.size());
  CHECK(xs[0].reply->first_ts_ns == 20);
  CHECK(xs[0].reply->last_ts_ns == 22);
  CHECK(xs[0].reply->value == "abc");
}

TEST_CASE("redis pipelining: 16 commands in one write, replies pair in order", "[redis]") {
  std::string cmds, replies;
  for (int i = 0; i < 16; ++i) {
    cmds += cmd({"GET", "key:" + std::to_string(i)});
    replies += bulk("value-" + std::to_string(i));
  }
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmds, 1));
  CHECK(s.take_exchanges().empty());
  s.on_data(kOut, seg(replies, 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 16);
  for (int i = 0; i < 16; ++i) {
    INFO(i);
    CHECK(xs[i].command.args[1] == "key:" + std::to_string(i));
    CHECK(xs[i].reply->value == "value-" + std::to_string(i));
  }
}

TEST_CASE("redis replies are emitted as each one completes", "[redis]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmd({"INCR", "a"}) + cmd({"INCR", "b"}), 1));
  s.on_data(kOut, seg(":1\r\n", 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->type == ':');
  CHECK(xs[0].reply->integer == 1);
  s.on_data(kOut, seg(":-7\r\n", 3));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.args[1] == "b");
  CHECK(xs[0].reply->integer == -7);
}

TEST_CASE("redis error replies carry their prefix", "[redis]") {
  const std::string cmds = cmd({"FOO"}) + cmd({"LPUSH", "str", "x"}) + cmd({"GET", "a", "b"}) +
                           cmd({"GET", "x"});
  const std::string replies =
      "-ERR unknown command 'FOO', with args beginning with: \r\n"
      "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
      "!21\r\nSYNTAX invalid syntax\r\n"
      "-MOVED 3999 127.0.0.1:6381\r\n";
  auto xs = run(cmds, replies);
  REQUIRE(xs.size() == 4);
  CHECK(xs[0].reply->error);
  CHECK(xs[0].reply->type == '-');
  CHECK(xs[0].reply->error_prefix == "ERR");
  CHECK(xs[0].reply->error_message == "ERR unknown command 'FOO', with args beginning with: ");
  CHECK(xs[1].reply->error_prefix == "WRONGTYPE");
  CHECK(xs[2].reply->error);
  CHECK(xs[2].reply->type == '!');
  CHECK(xs[2].reply->error_prefix == "SYNTAX");
  CHECK(xs[2].reply->error_message == "SYNTAX invalid syntax");
  CHECK(xs[3].reply->error_prefix == "MOVED");
  for (const auto& x : xs) CHECK(x.error_type.empty()); // an error reply is still a reply
}

TEST_CASE("redis MULTI/EXEC: each queued command gets QUEUED, EXEC the array", "[redis]") {
  const std::string cmds = cmd({"MULTI"}) + cmd({"SET", "a", "1"}) + cmd({"INCR", "a"}) +
                           cmd({"EXEC"});
  const std::string replies = "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n";
  auto xs = run(cmds, replies);
  REQUIRE(xs.size() == 4);
  CHECK(xs[0].reply->value == "OK");
  CHECK(xs[1].command.args[0] == "SET");
  CHECK(xs[1].reply->value == "QUEUED");
  CHECK(xs[2].reply->value == "QUEUED");
  CHECK(xs[3].command.args[0] == "EXEC");
  CHECK(xs[3].reply->type == '*');
  CHECK(xs[3].reply->elements == 2);
  CHECK(xs[3].reply->bytes == 13); // *2 +OK :2

  SECTION("a failed EXEC (EXECABORT) and a WATCH-aborted one (null)") {
    const std::string c2 = cmd({"MULTI"}) + cmd({"NOPE"}) + cmd({"EXEC"}) + cmd({"WATCH", "k"}) +
                           cmd({"MULTI"}) + cmd({"EXEC"});
    const std::string r2 =
        "+OK\r\n-ERR unknown command 'NOPE'\r\n"
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
        "+OK\r\n+OK\r\n*-1\r\n";
    auto ys = run(c2, r2);
    REQUIRE(ys.size() == 6);
    CHECK(ys[1].reply->error_prefix == "ERR");
    CHECK(ys[2].reply->error_prefix == "EXECABORT");
    CHECK(ys[5].reply->type == '*');
    CHECK(ys[5].reply->null);
    CHECK(ys[5].reply->elements == -1);
  }
}

TEST_CASE("redis RESP2 pub/sub: confirmations pair, messages are pushes", "[redis][pubsub]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(cmd({"SUBSCRIBE", "a", "b"}), 1));
  s.on_data(kIn, seg("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", 2));
  CHECK(s.take_exchanges().empty()); // one more confirmation to come
  s.on_data(kIn, seg("*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n", 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.args[0] == "SUBSCRIBE");
  CHECK(xs[0].reply->messages == 2);
  CHECK(xs[0].reply->integer == 2);
  CHECK(xs[0].reply->first_ts_ns == 2);
  CHECK(xs[0].reply->last_ts_ns == 3);
  CHECK(xs[0].reply->bytes == 2 * 30);
  CHECK(xs[0].error_type.empty());

  // Messages arrive at any time and answer nothing.
  s.on_data(kIn, seg("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n", 4));
  s.on_data(kOut, seg(cmd({"PING"}), 5));
  s.on_data(kIn, seg("*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$5\r\nworld\r\n", 6));
  CHECK(s.take_exchanges().empty());
  CHECK(s.pushes() == 2);
  // PING in subscribed mode answers ["pong", ""].
  s.on_data(kIn, seg("*2\r\n$4\r\npong\r\n$0\r\n\r\n", 7));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.args[0] == "PING");
  CHECK(xs[0].reply->elements == 2);
  CHECK(xs[0].reply->first_ts_ns == 7);

  // UNSUBSCRIBE without arguments: one confirmation per subscribed channel.
  s.on_data(kOut, seg(cmd({"UNSUBSCRIBE"}), 8));
  s.on_data(kIn, seg("*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n", 9));
  CHECK(s.take_exchanges().empty());
  s.on_data(kIn, seg("*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n", 10));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->messages == 2);
  CHECK(xs[0].reply->integer == 0);

  // Not subscribed any more: an array that looks like a message is a reply.
  s.on_data(kOut, seg(cmd({"LRANGE", "l", "0", "-1"}), 11));
  s.on_data(kIn, seg("*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n", 12));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.args[0] == "LRANGE");
  CHECK(xs[0].reply->elements == 3);
  CHECK(s.pushes() == 2);
  CHECK(s.unpaired() == 0);
}

TEST_CASE("redis RESP2 pub/sub: patterns, shard channels, nothing to unsubscribe",
          "[redis][pubsub]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmd({"UNSUBSCRIBE"}), 1));
  s.on_data(kOut, seg("*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1); // no subscription: one confirmation, null channel
  CHECK(xs[0].reply->messages == 1);

  s.on_data(kIn, seg(cmd({"PSUBSCRIBE", "news.*"}) + cmd({"SSUBSCRIBE", "s1"}), 3));
  s.on_data(kOut, seg("*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n"
                      "*3\r\n$10\r\nssubscribe\r\n$2\r\ns1\r\n:1\r\n",
                      4));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.args[0] == "PSUBSCRIBE");
  CHECK(xs[1].command.args[0] == "SSUBSCRIBE");
  s.on_data(kOut, seg("*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$8\r\nnews.art\r\n$2\r\nhi\r\n"
                      "*3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$2\r\nyo\r\n",
                      5));
  CHECK(s.pushes() == 2);
  // PUNSUBSCRIBE with no pattern: one confirmation per pattern (one here),
  // so the exchange is complete at once although a shard channel remains.
  s.on_data(kIn, seg(cmd({"PUNSUBSCRIBE"}), 6));
  s.on_data(kOut, seg("*3\r\n$12\r\npunsubscribe\r\n$6\r\nnews.*\r\n:0\r\n", 7));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->messages == 1);
  // Still subscribed to a shard channel: messages are still pushes.
  s.on_data(kOut, seg("*3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$2\r\nyo\r\n", 8));
  CHECK(s.pushes() == 3);
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("redis RESP2 pub/sub: arg-less UNSUBSCRIBE with unknown subscriptions", "[redis][pubsub]") {
  // Joined mid-stream: how many channels the client has is unknown, so the
  // UNSUBSCRIBE takes confirmations until one reports no subscription left.
  Session s(Side::kUnknown);
  s.on_data(kOut, seg(cmd({"UNSUBSCRIBE"}), 10));
  CHECK(s.side() == Side::kClient);
  s.on_data(kIn, seg("*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:2\r\n", 11));
  s.on_data(kIn, seg("*3\r\n$11\r\nunsubscribe\r\n$1\r\ny\r\n:1\r\n", 12));
  CHECK(s.take_exchanges().empty());
  s.on_data(kIn, seg("*3\r\n$11\r\nunsubscribe\r\n$1\r\nz\r\n:0\r\n", 13));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->messages == 3);
  CHECK(xs[0].reply->last_ts_ns == 13);
}

TEST_CASE("redis RESP3: HELLO 3, pushes interleave with replies", "[redis][resp3]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(cmd({"HELLO", "3"}), 1));
  s.on_data(kIn, seg("%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n", 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->type == '%');
  CHECK(xs[0].reply->elements == 2);

  // RESP3 subscribe confirmations are pushes, and pair with the command.
  s.on_data(kOut, seg(cmd({"SUBSCRIBE", "ch"}), 3));
  s.on_data(kIn, seg(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", 4));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->type == '>');
  CHECK(xs[0].reply->integer == 1);
  CHECK(s.pushes() == 0);

  // In RESP3 a subscribed client runs any command; a message push arrives
  // between a command and its reply.
  s.on_data(kOut, seg(cmd({"GET", "k"}) + cmd({"LRANGE", "l", "0", "-1"}), 5));
  s.on_data(kIn, seg(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhey\r\n$1\r\nv\r\n", 6));
  // And an array shaped like a message is a reply in RESP3.
  s.on_data(kIn, seg("*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n", 7));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.args[0] == "GET");
  CHECK(xs[0].reply->type == '$');
  CHECK(xs[0].reply->value == "v");
  CHECK(xs[0].reply->first_ts_ns == 6);
  CHECK(xs[1].command.args[0] == "LRANGE");
  CHECK(xs[1].reply->elements == 3);
  CHECK(s.pushes() == 1);

  // Client-side caching invalidation pushes (nested) between pipelined replies.
  s.on_data(kOut, seg(cmd({"INCR", "a"}) + cmd({"INCR", "b"}), 8));
  s.on_data(kIn, seg(":1\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n:5\r\n", 9));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].reply->integer == 1);
  CHECK(xs[1].reply->integer == 5);
  CHECK(s.pushes() == 2);
}

TEST_CASE("redis RESP3 types", "[redis][resp3]") {
  const std::string replies =
      "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"         // map
      "~3\r\n+a\r\n+b\r\n+c\r\n"                         // set
      "_\r\n"                                           // null
      ",3.14159\r\n"                                    // double
      "#t\r\n"                                          // boolean
      "(3492890328409238509324850943850943825024385\r\n" // big number
      "=15\r\ntxt:Some string\r\n"                      // verbatim string
      // attribute, then the value it describes
      "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
      "*2\r\n:2039123\r\n:9543892\r\n"
      "#f\r\n"
      ",-inf\r\n"
      "(-12\r\n";
  std::string cmds;
  for (int i = 0; i < 11; ++i) cmds += cmd({"CMD" + std::to_string(i)});
  auto xs = run(cmds, replies);
  REQUIRE(xs.size() == 11);
  CHECK(xs[0].reply->type == '%');
  CHECK(xs[0].reply->elements == 2);
  CHECK(xs[0].reply->bytes == 29);
  CHECK(xs[1].reply->type == '~');
  CHECK(xs[1].reply->elements == 3);
  CHECK(xs[2].reply->type == '_');
  CHECK(xs[2].reply->null);
  CHECK(xs[3].reply->type == ',');
  CHECK(xs[3].reply->value == "3.14159");
  CHECK(xs[4].reply->type == '#');
  CHECK(xs[4].reply->integer == 1);
  CHECK(xs[5].reply->type == '(');
  CHECK(xs[5].reply->value == "3492890328409238509324850943850943825024385");
  CHECK(xs[6].reply->type == '=');
  CHECK(xs[6].reply->value == "Some string");
  CHECK(xs[7].reply->type == '*');
  CHECK(xs[7].reply->elements == 2);
  CHECK(xs[7].reply->bytes == 81); // attribute (57) and array (24)
  CHECK(xs[8].reply->integer == 0);
  CHECK(xs[8].reply->value == "f");
  CHECK(xs[9].reply->value == "-inf");
  CHECK(xs[10].reply->integer == -12);
  for (const auto& x : xs) CHECK(x.reply->complete);
}

TEST_CASE("redis nested aggregates and nulls", "[redis]") {
  const std::string replies =
      "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*1\r\n+deep\r\n"
      "$-1\r\n"
      "*0\r\n"
      "$0\r\n\r\n"
      "*3\r\n$1\r\na\r\n$-1\r\n*-1\r\n";
  auto xs = run(cmd({"A"}) + cmd({"B"}) + cmd({"C"}) + cmd({"D"}) + cmd({"E"}), replies);
  REQUIRE(xs.size() == 5);
  CHECK(xs[0].reply->elements == 2);
  CHECK(xs[0].reply->bytes == 31);
  CHECK(xs[1].reply->null);
  CHECK(xs[1].reply->type == '$');
  CHECK(xs[2].reply->elements == 0);
  CHECK_FALSE(xs[2].reply->null);
  CHECK(xs[3].reply->value.empty());
  CHECK_FALSE(xs[3].reply->null);
  CHECK(xs[4].reply->elements == 3);
}

TEST_CASE("redis inline commands", "[redis]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg("PING\r\n", 1));
  CHECK(s.verdict() == Verdict::kRedis);
  s.on_data(kOut, seg("+PONG\r\n", 2));
  s.on_data(kIn, seg("\r\nSET a b\r\nset  k  \"hello world\\n\\x41\"\r\nGET 'it''s'\n", 3));
  s.on_data(kOut, seg("+OK\r\n+OK\r\n$-1\r\n", 4));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 4);
  CHECK(xs[0].command.inline_command);
  CHECK(xs[0].command.args == std::vector<std::string>{"PING"});
  CHECK(xs[0].command.bytes == 6);
  CHECK(xs[0].reply->value == "PONG");
  CHECK(xs[1].command.args == std::vector<std::string>{"SET", "a", "b"});
  CHECK(xs[1].command.argc == 3);
  CHECK(xs[2].command.args == std::vector<std::string>{"set", "k", "hello world\nA"});
  CHECK(xs[3].command.args == std::vector<std::string>{"GET", "it", "s"});
  CHECK(xs[3].reply->null);
}

TEST_CASE("redis blocking command: the reply is timed when it arrives", "[redis]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmd({"BLPOP", "queue", "0.2"}), 1000));
  s.on_data(kOut, seg("*-1\r\n", 201000));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.first_ts_ns == 1000);
  CHECK(xs[0].reply->first_ts_ns == 201000);
  CHECK(xs[0].reply->last_ts_ns == 201000);
  CHECK(xs[0].reply->null);
}

TEST_CASE("redis CLIENT REPLY OFF/ON/SKIP", "[redis]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(cmd({"CLIENT", "REPLY", "OFF"}) + cmd({"SET", "a", "1"}) +
                          cmd({"client", "reply", "on"}) + cmd({"GET", "a"}),
                      1));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2); // no reply is coming for these two
  CHECK(xs[0].reply_suppressed);
  CHECK_FALSE(xs[0].reply);
  CHECK(xs[0].error_type.empty());
  CHECK(xs[1].command.args[0] == "SET");
  CHECK(xs[1].reply_suppressed);
  s.on_data(kIn, seg("+OK\r\n$1\r\n1\r\n", 2));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.args[2] == "on");
  CHECK(xs[0].reply->value == "OK");
  CHECK(xs[1].reply->value == "1");

  // SKIP: no reply to itself nor to the next command.
  s.on_data(kOut, seg(cmd({"CLIENT", "REPLY", "SKIP"}) + cmd({"INCR", "n"}) + cmd({"INCR", "m"}), 3));
  s.on_data(kIn, seg(":7\r\n", 4));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 3);
  CHECK_FALSE(xs[0].reply);
  CHECK_FALSE(xs[1].reply);
  CHECK(xs[1].reply_suppressed);
  CHECK(xs[2].command.args[1] == "m");
  CHECK(xs[2].reply->integer == 7);
  CHECK(s.unpaired() == 0);
}

TEST_CASE("redis MONITOR: the stream after +OK is out of band", "[redis]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(cmd({"MONITOR"}), 1));
  s.on_data(kIn, seg("+OK\r\n", 2));
  REQUIRE(s.take_exchanges().size() == 1);
  s.on_data(kIn, seg("+1339518083.107412 [0 127.0.0.1:60866] \"keys\" \"*\"\r\n"
                     "+1339518087.877697 [0 127.0.0.1:60866] \"dbsize\"\r\n",
                     3));
  s.on_data(kOut, seg(cmd({"QUIT"}), 4));
  s.on_data(kIn, seg("+1339518088.000001 [0 127.0.0.1:60866] \"get\" \"a\"\r\n+OK\r\n", 5));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.args[0] == "QUIT");
  CHECK(xs[0].reply->value == "OK");
  CHECK(s.pushes() == 3);
}

TEST_CASE("redis replication: after PSYNC/SYNC the stream is not request/response",
          "[redis]") {
  SECTION("PSYNC on the master") {
    Session s(Side::kServer);
    s.on_data(kIn, seg(cmd({"REPLCONF", "capa", "psync2"}) + cmd({"PSYNC", "?", "-1"}), 1));
    s.on_data(kOut, seg("+OK\r\n+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n", 2));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[1].command.args[0] == "PSYNC");
    CHECK(xs[1].reply->value.rfind("FULLRESYNC", 0) == 0);
    CHECK(s.done());
    CHECK(s.verdict() == Verdict::kRedis);
    // The RDB and the propagated commands, and the replica's acks: ignored.
    s.on_data(kOut, seg("$5\r\nREDIS*1\r\n$4\r\nPING\r\n", 3));
    s.on_data(kIn, seg(cmd({"REPLCONF", "ACK", "0"}), 4));
    s.on_close(5, "connection_closed");
    CHECK(s.take_exchanges().empty());
  }
  SECTION("SYNC: the reply is the RDB, without a final CRLF") {
    Session s(Side::kClient);
    s.on_data(kOut, seg(cmd({"SYNC"}), 1));
    s.on_data(kIn, seg("$9\r\nREDIS0011", 2));
    s.on_data(kIn, seg("*1\r\n$4\r\nPING\r\n", 3));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].reply->type == '$');
    CHECK(xs[0].reply->value == "REDIS0011");
    CHECK(xs[0].reply->last_ts_ns == 2);
    CHECK(s.done());
  }
  SECTION("a refused PSYNC is an ordinary error reply") {
    Session s(Side::kClient);
    s.on_data(kOut, seg(cmd({"PSYNC", "?", "-1"}), 1));
    s.on_data(kIn, seg("-NOMASTERLINK Can't SYNC while not connected with my master\r\n", 2));
    REQUIRE(s.take_exchanges().size() == 1);
    CHECK_FALSE(s.done());
  }
}

TEST_CASE("redis values larger than the capture are skipped by count", "[redis][capture]") {
  const std::string big(100000, 'v');
  const std::string full = cmd({"SET", "big", big});
  const size_t head = full.size() - big.size() - 2; // up to the value
  SECTION("client: one write, 4096 bytes captured") {
    Session s(Side::kClient);
    s.on_data(kOut, seg(std::string_view(full).substr(0, 4096), 1, full.size()));
    s.on_data(kOut, seg(cmd({"GET", "big"}), 2));
    s.on_data(kIn, seg("+OK\r\n", 3));
    const std::string reply = bulk(big);
    s.on_data(kIn, seg(std::string_view(reply).substr(0, 100), 4, reply.size()));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 2);
    CHECK(xs[0].command.complete);
    CHECK(xs[0].command.truncated);
    CHECK(xs[0].command.argc == 3);
    CHECK(xs[0].command.args[2] == std::string(128, 'v'));
    CHECK(xs[0].command.bytes == full.size());
    CHECK(xs[0].reply->value == "OK");
    CHECK(xs[1].reply->complete);
    CHECK(xs[1].reply->truncated);
    CHECK(xs[1].reply->bytes == reply.size());
    CHECK(xs[1].reply->value.size() == 91); // 100 captured, 9 of them "$100000\r\n"
    CHECK(s.desyncs() == 0);
  }
  SECTION("server: 16 KiB reads, 256 bytes of each captured") {
    Session s(Side::kServer);
    uint64_t ts = 1;
    for (size_t off = 0; off < full.size(); off += 16384) {
      const size_t len = std::min<size_t>(16384, full.size() - off);
      s.on_data(kIn, seg(std::string_view(full).substr(off, std::min<size_t>(256, len)), ts++, len));
    }
    s.on_data(kOut, seg("+OK\r\n", ts));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].command.complete);
    CHECK(xs[0].command.bytes == full.size());
    CHECK(xs[0].command.last_ts_ns == ts - 1);
    CHECK(xs[0].reply->value == "OK");
    CHECK(s.desyncs() == 0);
  }
  SECTION("the next command starts in uncaptured bytes: desync, then resync") {
    Session s(Side::kServer);
    const std::string two = full + cmd({"GET", "x"});
    s.on_data(kIn, seg(std::string_view(two).substr(0, head + 10), 1, two.size()));
    CHECK(s.desyncs() == 1);
    s.on_data(kIn, seg(cmd({"GET", "y"}), 5));
    s.on_data(kOut, seg("+OK\r\n", 6));      // SET
    s.on_data(kOut, seg("$1\r\nX\r\n", 7)); // GET x: its command was not captured
    s.on_data(kOut, seg("$1\r\nY\r\n", 8));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 3);
    CHECK(xs[0].command.args[0] == "SET");
    CHECK(xs[0].command.complete);
    CHECK(xs[0].reply->value == "OK");
    // Some command began in the uncaptured bytes: the next reply is its own.
    CHECK(xs[1].command.args.empty());
    CHECK_FALSE(xs[1].command.complete);
    CHECK(xs[1].error_type == "desync");
    CHECK(xs[1].reply->value == "X");
    CHECK(xs[2].command.args[1] == "y");
    CHECK(xs[2].reply->value == "Y");
  }
}

TEST_CASE("redis loss in the command direction: resync at the next command", "[redis][loss]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmd({"GET", "a"}) + "*2\r\n$3\r\nGET\r\n$1", 10));
  // Bytes lost: the rest of GET b and a whole GET c. Then a new command.
  s.on_data(kIn, seg(cmd({"GET", "d"}), 40, 0, true));
  CHECK(s.desyncs() == 1);
  // Replies: a, b, c (c's command was never seen: it began before GET d),
  // then d.
  s.on_data(kOut, seg("$1\r\nA\r\n", 20));
  s.on_data(kOut, seg("$1\r\nB\r\n", 30));
  s.on_data(kOut, seg("$1\r\nC\r\n", 35));
  s.on_data(kOut, seg("$1\r\nD\r\n", 50));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].command.args[1] == "a");
  CHECK(xs[0].reply->value == "A");
  CHECK(xs[1].command.args[0] == "GET"); // the cut command still gets its reply
  CHECK_FALSE(xs[1].command.complete);
  CHECK(xs[1].reply->value == "B");
  CHECK(xs[2].command.args[1] == "d");
  CHECK(xs[2].reply->value == "D");
  CHECK(s.unpaired() == 1);
}

TEST_CASE("redis loss at a command boundary: the first lost command keeps its reply",
          "[redis][loss]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(cmd({"GET", "a"}), 10));
  s.on_data(kIn, seg("$1\r\nA\r\n", 11));
  // GET b (written at 20) was lost; GET c follows the loss at 30. B is read
  // only at 40, after GET c was written (pipelining): it still answers the
  // lost command, which is the next one the server answered.
  s.on_data(kOut, seg(cmd({"GET", "c"}), 30, 0, true));
  s.on_data(kIn, seg("$1\r\nB\r\n", 40));
  s.on_data(kIn, seg("$1\r\nC\r\n", 41));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 3);
  CHECK(xs[0].reply->value == "A");
  CHECK(xs[1].command.args.empty());
  CHECK(xs[1].error_type == "desync");
  CHECK(xs[1].reply->value == "B");
  CHECK(xs[2].command.args[1] == "c");
  CHECK(xs[2].reply->value == "C");
  CHECK(s.desyncs() == 1);
}

TEST_CASE("redis server closing after QUIT", "[redis]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmd({"QUIT"}), 1));
  s.on_data(kOut, seg("+OK\r\n", 2));
  s.on_eof(kIn, 3);
  s.on_close(4, "connection_closed");
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].reply->value == "OK");
  CHECK(xs[0].error_type.empty());
}

TEST_CASE("redis commands queued in MULTI get one reply each, SUBSCRIBE included", "[redis]") {
  auto xs = run(cmd({"MULTI"}) + cmd({"SUBSCRIBE", "a", "b"}) + cmd({"DISCARD"}) + cmd({"GET", "k"}),
                "+OK\r\n+QUEUED\r\n+OK\r\n$1\r\nv\r\n");
  REQUIRE(xs.size() == 4);
  CHECK(xs[1].reply->value == "QUEUED");
  CHECK(xs[1].reply->messages == 1);
  CHECK(xs[2].command.args[0] == "DISCARD");
  CHECK(xs[3].reply->value == "v");
}

TEST_CASE("redis loss in the reply direction: waiting commands desync", "[redis][loss]") {
  Session s(Side::kClient);
  s.on_data(kOut, seg(cmd({"GET", "a"}) + cmd({"GET", "b"}), 10));
  s.on_data(kIn, seg("$5\r\nAA", 20));
  // Lost: the rest of A and maybe B. Then B's tail arrives, then a reply to
  // an unseen-but-lost one, then the new command and its reply.
  s.on_data(kIn, seg("A\r\n$1\r\nB\r\n", 30, 0, true));
  CHECK(s.desyncs() == 1);
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].error_type == "desync");
  CHECK(xs[0].reply->value == "AA"); // cut where the loss began
  CHECK_FALSE(xs[0].reply->complete);
  CHECK(xs[1].error_type == "desync");
  CHECK_FALSE(xs[1].reply);
  s.on_data(kIn, seg("$1\r\nB\r\n", 35)); // a late reply to GET b: before GET c began
  s.on_data(kOut, seg(cmd({"GET", "c"}), 40));
  s.on_data(kIn, seg("$1\r\nC\r\n", 50));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].command.args[1] == "c");
  CHECK(xs[0].reply->value == "C");
  CHECK(s.unpaired() == 1);
}

TEST_CASE("redis garbage is not Redis, quickly and without buffering", "[redis][detect]") {
  SECTION("binary") {
    Session s(Side::kServer);
    s.on_data(kIn, seg(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 1));
    CHECK(s.verdict() == Verdict::kNotRedis);
    CHECK(s.done());
  }
  SECTION("HTTP request") {
    Session s(Side::kServer);
    s.on_data(kIn, seg("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1));
    CHECK(s.verdict() == Verdict::kNotRedis);
  }
  SECTION("a long line without an end") {
    Session s(Side::kServer);
    s.on_data(kIn, seg("PING " + std::string(300, 'a'), 1));
    CHECK(s.verdict() == Verdict::kNotRedis);
  }
  SECTION("a server that speaks first (SMTP) on the client side") {
    Session s(Side::kClient);
    s.on_data(kIn, seg("220 mail.example.com ESMTP\r\n", 1));
    CHECK(s.verdict() == Verdict::kNotRedis);
  }
  SECTION("an array of something else than bulk strings") {
    Session s(Side::kServer);
    s.on_data(kIn, seg("*1\r\n:1\r\n", 1));
    CHECK(s.verdict() == Verdict::kNotRedis);
  }
  SECTION("unknown side: neither commands nor replies") {
    Session s(Side::kUnknown);
    for (int i = 0; i < 40 && !s.done(); ++i) s.on_data(i % 2, seg("xyzzy plugh\r\n", i + 1));
    CHECK(s.verdict() == Verdict::kNotRedis);
  }
  SECTION("after Redis, garbage is a desync, not a verdict change") {
    Session s(Side::kServer);
    s.on_data(kIn, seg(cmd({"GET", "a"}), 1));
    s.on_data(kOut, seg("?what\r\n", 2));
    CHECK(s.verdict() == Verdict::kRedis);
    CHECK(s.desyncs() == 1);
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].error_type == "desync");
    s.on_data(kIn, seg(cmd({"GET", "b"}), 3));
    s.on_data(kOut, seg("$1\r\nb\r\n", 4));
    xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].reply->value == "b");
  }
}

TEST_CASE("redis limits: lines, bulk lengths and aggregate sizes are bounded", "[redis][detect]") {
  Limits lim;
  lim.max_line = 1024;
  Session s(Side::kServer, lim);
  s.on_data(kIn, seg(cmd({"GET", "a"}), 1));
  // A simple string longer than max_line, in small pieces.
  s.on_data(kOut, seg("+", 2));
  for (int i = 0; i < 20; ++i) s.on_data(kOut, seg(std::string(100, 'x'), 3 + i));
  CHECK(s.desyncs() == 1);
  // A bulk length over 512 MB and an absurd aggregate are refused.
  Session t(Side::kServer);
  t.on_data(kIn, seg("*1\r\n$536870913\r\n", 1));
  CHECK(t.verdict() == Verdict::kNotRedis);
  Session u(Side::kServer);
  u.on_data(kIn, seg(cmd({"GET", "a"}), 1));
  u.on_data(kOut, seg("*99999999999\r\n", 2));
  CHECK(u.desyncs() == 1);
}

TEST_CASE("redis limits: arguments kept and cut", "[redis]") {
  Limits lim;
  lim.max_args = 3;
  lim.max_arg_bytes = 20;
  Session s(Side::kServer, lim);
  s.on_data(kIn, seg(cmd({"MSET", "k1", std::string(50, 'a'), "k2", "b"}), 1));
  s.on_data(kIn, seg("RPUSH list a b c d\r\n", 2));
  s.on_data(kOut, seg("+OK\r\n:4\r\n", 3));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.argc == 5);
  CHECK(xs[0].command.args == std::vector<std::string>{"MSET", "k1", std::string(20, 'a')});
  CHECK(xs[0].command.truncated);
  CHECK(xs[1].command.argc == 6);
  CHECK(xs[1].command.args == std::vector<std::string>{"RPUSH", "list", "a"});
  CHECK(xs[1].command.truncated);
}

TEST_CASE("redis max_pending: the oldest commands go without replies, pairing holds", "[redis]") {
  Limits lim;
  lim.max_pending = 4;
  Session s(Side::kServer, lim);
  std::string cmds, replies;
  for (int i = 0; i < 6; ++i) {
    cmds += cmd({"GET", "k" + std::to_string(i)});
    replies += bulk("v" + std::to_string(i));
  }
  s.on_data(kIn, seg(cmds, 1));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.args[1] == "k0");
  CHECK(xs[0].error_type == "desync");
  CHECK_FALSE(xs[0].reply);
  s.on_data(kOut, seg(replies, 2));
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(xs[i].command.args[1] == "k" + std::to_string(i + 2));
    CHECK(xs[i].reply->value == "v" + std::to_string(i + 2));
  }
  CHECK(s.unpaired() == 2);
}

TEST_CASE("redis close: pending commands and cut messages", "[redis]") {
  Session s(Side::kServer);
  s.on_data(kIn, seg(cmd({"GET", "a"}) + cmd({"GET", "b"}) + "*2\r\n$3\r\nGET\r\n$1\r", 1));
  s.on_data(kOut, seg("$1\r\nA\r\n$10\r\nBBB", 2));
  auto xs = s.take_exchanges();
  REQUIRE(xs.size() == 1);
  s.on_close(3, "connection_reset");
  xs = s.take_exchanges();
  REQUIRE(xs.size() == 2);
  CHECK(xs[0].command.args[1] == "b");
  CHECK(xs[0].reply->value == "BBB");
  CHECK_FALSE(xs[0].reply->complete);
  CHECK(xs[0].error_type == "connection_reset");
  CHECK_FALSE(xs[1].command.complete);
  CHECK(xs[1].command.args == std::vector<std::string>{"GET"});
  CHECK_FALSE(xs[1].reply);
  CHECK(xs[1].error_type == "connection_reset");
  // Nothing after close.
  s.on_data(kIn, seg(cmd({"GET", "c"}), 4));
  s.on_close(5, "connection_closed");
  CHECK(s.take_exchanges().empty());
}

TEST_CASE("redis unknown side: decided from the first bytes", "[redis][detect]") {
  SECTION("a command read: server") {
    Session s(Side::kUnknown);
    s.on_data(kIn, seg(cmd({"GET", "a"}), 1));
    CHECK(s.side() == Side::kServer);
    s.on_data(kOut, seg("$1\r\nA\r\n", 2));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].reply->value == "A");
  }
  SECTION("an inline command written: client") {
    Session s(Side::kUnknown);
    s.on_data(kOut, seg("PING\r\n", 1));
    CHECK(s.side() == Side::kClient);
  }
  SECTION("a reply read first (joined mid-stream): client; the stray reply is unpaired") {
    Session s(Side::kUnknown);
    s.on_data(kIn, seg("+OK\r\n", 1));
    CHECK(s.side() == Side::kClient);
    CHECK(s.unpaired() == 1);
    s.on_data(kOut, seg(cmd({"GET", "a"}), 2));
    s.on_data(kIn, seg("$1\r\nA\r\n", 3));
    auto xs = s.take_exchanges();
    REQUIRE(xs.size() == 1);
    CHECK(xs[0].reply->value == "A");
  }
  SECTION("an array of unknown words does not decide") {
    Session s(Side::kUnknown);
    s.on_data(kIn, seg("*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n", 1));
    CHECK(s.side() == Side::kUnknown);
    CHECK(s.verdict() == Verdict::kUndecided);
  }
}

TEST_CASE("redis protocol detection from first client bytes", "[redis][detect]") {
  CHECK(looks_like_redis_command("*1\r\n$4\r\nPING\r\n"));
  CHECK(looks_like_redis_command("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"));
  CHECK(looks_like_redis_command("*2\r\n$8\r\nJSON.GET\r\n"));
  CHECK(looks_like_redis_command("PING\r\n"));
  CHECK(looks_like_redis_command("set a b\r\n"));
  CHECK(looks_like_redis_command("HELLO 3 AUTH default secret\r\n"));
  CHECK_FALSE(looks_like_redis_command(""));
  CHECK_FALSE(looks_like_redis_command("*"));
  CHECK_FALSE(looks_like_redis_command("*0\r\n"));
  CHECK_FALSE(looks_like_redis_command("*1\r\n:1\r\n"));
  CHECK_FALSE(looks_like_redis_command("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK_FALSE(looks_like_redis_command("GET /index.html HTTP/1.0\r\n"));
  CHECK_FALSE(looks_like_redis_command("POST /x HTTP/1.1\r\n"));
  CHECK_FALSE(looks_like_redis_command("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  CHECK_FALSE(looks_like_redis_command("USER bob\r\n"));
  CHECK_FALSE(looks_like_redis_command("EHLO example.com\r\n"));
  // PostgreSQL StartupMessage and SSLRequest, MySQL HandshakeResponse, TLS.
  CHECK_FALSE(looks_like_redis_command(std::string("\0\0\0\x54\0\3\0\0user\0postgres\0", 21)));
  CHECK_FALSE(looks_like_redis_command(std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8)));
  CHECK_FALSE(looks_like_redis_command(std::string("\x55\0\0\x01\x85\xa6\xff\x01\0\0\0\x01", 12)));
  CHECK_FALSE(looks_like_redis_command(std::string("\x16\x03\x01\x02\x00\x01", 6)));
  CHECK(is_command_name("get"));
  CHECK(is_command_name("ZRANGEBYSCORE"));
  CHECK_FALSE(is_command_name("options"));
}

namespace {

struct Fixture {
  const char* name;
  std::string cmds;
  std::string replies;
  size_t exchanges;
  uint64_t pushes;
};

// Pipelined conversations touching most reply shapes, for sweeps: RESP2
// with pub/sub, and RESP3 with pushes, attributes and the new types.
const std::vector<Fixture>& fixtures() {
  static const std::vector<Fixture> f = {
      {"resp2",
       cmd({"SET", "k", "v"}) + "PING\r\n" + cmd({"SUBSCRIBE", "a", "b"}) + cmd({"PING"}) +
           cmd({"UNSUBSCRIBE"}) + cmd({"GET", "missing"}) + cmd({"LPUSH", "k", "x"}) +
           cmd({"EXEC"}),
       "+OK\r\n"
       "+PONG\r\n"
       "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
       "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
       "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\nhi!\r\n"
       "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
       "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
       "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
       "$-1\r\n"
       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
       "*2\r\n*1\r\n:1\r\n$-1\r\n",
       8, 1},
      {"resp3",
       cmd({"HELLO", "3"}) + "PING\r\n" + cmd({"HGETALL", "h"}) + cmd({"SUBSCRIBE", "a", "b"}) +
           cmd({"PING"}) + cmd({"UNSUBSCRIBE"}) + cmd({"GET", "missing"}) +
           cmd({"OBJECT", "FREQ", "k"}) + cmd({"EVAL", "x", "0"}),
       "%1\r\n$5\r\nproto\r\n:3\r\n"
       "+PONG\r\n"
       "%1\r\n$1\r\nf\r\n=8\r\ntxt:val1\r\n"
       ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
       ">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
       ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\nhi!\r\n"
       "+PONG\r\n"
       ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
       ">3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
       "_\r\n"
       "!17\r\nERR no such key\r\n\r\n"
       "|1\r\n+ttl\r\n:3600\r\n*2\r\n#t\r\n,1.5\r\n",
       9, 1},
  };
  return f;
}

std::vector<Exchange> whole(const Fixture& f) {
  Session s(Side::kServer);
  s.on_data(kIn, seg(f.cmds, 1));
  s.on_data(kOut, seg(f.replies, 2));
  return s.take_exchanges();
}

} // namespace

TEST_CASE("redis sweep fixtures decode as expected", "[redis][sweep]") {
  auto xs = whole(fixtures()[0]);
  REQUIRE(xs.size() == 8);
  CHECK(xs[0].reply->value == "OK");
  CHECK(xs[1].command.inline_command);
  CHECK(xs[1].reply->value == "PONG");
  CHECK(xs[2].reply->messages == 2);
  CHECK(xs[3].reply->elements == 2);
  CHECK(xs[4].reply->messages == 2);
  CHECK(xs[5].reply->null);
  CHECK(xs[6].reply->error_prefix == "WRONGTYPE");
  CHECK(xs[7].reply->elements == 2);
  for (const auto& x : xs) CHECK(x.error_type.empty());

  xs = whole(fixtures()[1]);
  REQUIRE(xs.size() == 9);
  CHECK(xs[0].reply->type == '%');
  CHECK(xs[2].reply->elements == 1);
  CHECK(xs[3].reply->type == '>');
  CHECK(xs[3].reply->messages == 2);
  CHECK(xs[4].reply->value == "PONG");
  CHECK(xs[5].reply->messages == 2);
  CHECK(xs[6].reply->null);
  CHECK(xs[7].reply->error_message == "ERR no such key\r\n");
  CHECK(xs[8].reply->type == '*');
  for (const auto& x : xs) CHECK(x.error_type.empty());
}

TEST_CASE("redis split sweep: every split point gives the same exchanges", "[redis][sweep]") {
  for (const Fixture& f : fixtures()) {
    INFO(f.name);
    const std::string want = describe(whole(f));
    for (size_t cut = 0; cut <= f.cmds.size(); ++cut) {
      Session s(Side::kServer);
      s.on_data(kIn, seg(std::string_view(f.cmds).substr(0, cut), 1));
      s.on_data(kIn, seg(std::string_view(f.cmds).substr(cut), 1));
      s.on_data(kOut, seg(f.replies, 2));
      INFO("command cut at " << cut);
      REQUIRE(describe(s.take_exchanges()) == want);
    }
    for (size_t cut = 0; cut <= f.replies.size(); ++cut) {
      Session s(Side::kServer);
      s.on_data(kIn, seg(f.cmds, 1));
      s.on_data(kOut, seg(std::string_view(f.replies).substr(0, cut), 2));
      s.on_data(kOut, seg(std::string_view(f.replies).substr(cut), 2));
      INFO("reply cut at " << cut);
      REQUIRE(describe(s.take_exchanges()) == want);
      CHECK(s.pushes() == f.pushes);
    }
    // One byte per segment.
    Session s(Side::kServer);
    for (size_t i = 0; i < f.cmds.size(); ++i)
      s.on_data(kIn, seg(std::string_view(f.cmds).substr(i, 1), 1));
    for (size_t i = 0; i < f.replies.size(); ++i)
      s.on_data(kOut, seg(std::string_view(f.replies).substr(i, 1), 2));
    CHECK(describe(s.take_exchanges()) == want);
    CHECK(s.desyncs() == 0);
  }
}

TEST_CASE("redis truncation sweep: a reply stream cut anywhere", "[redis][sweep]") {
  for (const Fixture& f : fixtures()) {
    INFO(f.name);
    const auto all = whole(f);
    for (size_t cut = 0; cut <= f.replies.size(); ++cut) {
      Session s(Side::kServer);
      s.on_data(kIn, seg(f.cmds, 1));
      s.on_data(kOut, seg(std::string_view(f.replies).substr(0, cut), 2));
      s.on_close(3, "connection_closed");
      auto xs = s.take_exchanges();
      INFO("cut at " << cut);
      REQUIRE(xs.size() == all.size());
      size_t done = 0;
      while (done < xs.size() && xs[done].error_type.empty()) {
        REQUIRE(describe(xs[done]) == describe(all[done]));
        ++done;
      }
      for (size_t k = done; k < xs.size(); ++k) {
        CHECK(xs[k].error_type == "connection_closed");
        if (k > done) CHECK_FALSE(xs[k].reply); // only the first may hold a cut reply
      }
      if (cut == f.replies.size()) CHECK(done == xs.size());
    }
  }
}

TEST_CASE("redis capture sweep: any capture size frames a big SET", "[redis][sweep]") {
  const std::string value(3000, 'z');
  const std::string c = cmd({"SET", "key", value}) ;
  const std::string next = cmd({"GET", "key"});
  for (size_t cap = 0; cap <= c.size(); cap += 7) {
    Session s(Side::kClient);
    s.on_data(kOut, seg(std::string_view(c).substr(0, cap), 1, c.size()));
    s.on_data(kOut, seg(next, 2));
    s.on_data(kIn, seg("+OK\r\n$3\r\nabc\r\n", 3));
    auto xs = s.take_exchanges();
    INFO("captured " << cap);
    const size_t value_at = c.size() - value.size() - 2;
    if (cap >= value_at) {
      // Only value bytes (and the final CRLF) are missing: framed by count.
      REQUIRE(xs.size() == 2);
      CHECK(xs[0].command.bytes == c.size());
      CHECK(xs[0].reply->value == "OK");
      CHECK(xs[1].reply->value == "abc");
      CHECK(s.desyncs() == 0);
    } else {
      // A length line was not captured: the SET is cut, GET is paired safely.
      CHECK(s.desyncs() == 1);
      REQUIRE(xs.size() == 2);
      CHECK_FALSE(xs[0].command.complete);
      CHECK(xs[0].reply->value == "OK");
      CHECK(xs[1].reply->value == "abc");
    }
  }
}
