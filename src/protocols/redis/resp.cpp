// RESP scanners for protocol detection and resynchronisation, and the table
// of known command names (inline commands and Side::kUnknown detection need
// one: "GET /x HTTP/1.1" and "USER bob" are lines too).
#include "session_impl.hpp"

#include <algorithm>
#include <iterator>
#include <cstring>

namespace odigos::redis {
namespace detail {

namespace {

// Top-level command names (Redis 7.4 / Valkey 8), lower case, sorted.
constexpr std::string_view kCommands[] = {
    "acl", "append", "asking", "auth", "bf.add", "bgrewriteaof", "bgsave", "bitcount",
    "bitfield", "bitfield_ro", "bitop", "bitpos", "blmove", "blmpop", "blpop", "brpop",
    "brpoplpush", "bzmpop", "bzpopmax", "bzpopmin", "client", "cluster", "command", "config",
    "copy", "dbsize", "debug", "decr", "decrby", "del", "discard", "dump", "echo", "eval",
    "eval_ro", "evalsha", "evalsha_ro", "exec", "exists", "expire", "expireat", "expiretime",
    "failover", "fcall", "fcall_ro", "flushall", "flushdb", "ft.search", "function", "geoadd",
    "geodist", "geohash", "geopos", "georadius", "georadius_ro", "georadiusbymember",
    "georadiusbymember_ro", "geosearch", "geosearchstore", "get", "getbit", "getdel", "getex",
    "getrange", "getset", "hdel", "hello", "hexists", "hexpire", "hexpireat", "hexpiretime",
    "hget", "hgetall", "hgetdel", "hgetex", "hincrby", "hincrbyfloat", "hkeys", "hlen", "hmget",
    "hmset", "hpersist", "hpexpire", "hpexpireat", "hpexpiretime", "hpttl", "hrandfield",
    "hscan", "hset", "hsetex", "hsetnx", "hstrlen", "httl", "hvals", "incr", "incrby",
    "incrbyfloat", "info", "json.get", "json.set", "keys", "lastsave", "latency", "lcs",
    "lindex", "linsert", "llen", "lmove", "lmpop", "lolwut", "lpop", "lpos", "lpush", "lpushx",
    "lrange", "lrem", "lset", "ltrim", "memory", "mget", "migrate", "module", "monitor", "move",
    "mset", "msetnx", "multi", "object", "persist", "pexpire", "pexpireat", "pexpiretime",
    "pfadd", "pfcount", "pfdebug", "pfmerge", "pfselftest", "ping", "psetex", "psubscribe",
    "psync", "pttl", "publish", "pubsub", "punsubscribe", "quit", "randomkey", "readonly",
    "readwrite", "rename", "renamenx", "replconf", "replicaof", "reset", "restore",
    "restore-asking", "role", "rpop", "rpoplpush", "rpush", "rpushx", "sadd", "save", "scan",
    "scard", "script", "sdiff", "sdiffstore", "select", "set", "setbit", "setex", "setnx",
    "setrange", "shutdown", "sinter", "sintercard", "sinterstore", "sismember", "slaveof",
    "slowlog", "smembers", "smismember", "smove", "sort", "sort_ro", "spop", "spublish",
    "srandmember", "srem", "sscan", "ssubscribe", "strlen", "subscribe", "substr", "sunion",
    "sunionstore", "sunsubscribe", "swapdb", "sync", "time", "touch", "ttl", "type", "unlink",
    "unsubscribe", "unwatch", "wait", "waitaof", "watch", "xack", "xadd", "xautoclaim",
    "xclaim", "xdel", "xgroup", "xinfo", "xlen", "xpending", "xrange", "xread", "xreadgroup",
    "xrevrange", "xsetid", "xtrim", "zadd", "zcard", "zcount", "zdiff", "zdiffstore", "zincrby",
    "zinter", "zintercard", "zinterstore", "zlexcount", "zmpop", "zmscore", "zpopmax",
    "zpopmin", "zrandmember", "zrange", "zrangebylex", "zrangebyscore", "zrangestore", "zrank",
    "zrem", "zremrangebylex", "zremrangebyrank", "zremrangebyscore", "zrevrange",
    "zrevrangebylex", "zrevrangebyscore", "zrevrank", "zscan", "zscore", "zunion",
    "zunionstore",
};

constexpr bool table_sorted() {
  for (size_t i = 1; i < std::size(kCommands); ++i)
    if (!(kCommands[i - 1] < kCommands[i])) return false;
  return true;
}
static_assert(table_sorted(), "kCommands must be sorted for binary search");

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_name_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '|';
}
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// "<int>\r\n" at s[i..]: on kYes, v holds the value and i is past the LF.
Scan scan_number_line(std::string_view s, size_t& i, int64_t& v) {
  const size_t start = i;
  size_t j = i;
  if (j < s.size() && s[j] == '-') ++j;
  while (j < s.size() && is_digit(s[j])) {
    if (j - start >= 20) return Scan::kNo;
    ++j;
  }
  if (j == s.size()) return Scan::kMore;
  if (s[j] != '\r') return Scan::kNo;
  if (!parse_i64(s.substr(start, j - start), v)) return Scan::kNo;
  if (j + 1 == s.size()) return Scan::kMore;
  if (s[j + 1] != '\n') return Scan::kNo;
  i = j + 2;
  return Scan::kYes;
}

// A text line ("+OK\r\n") at s[i..]: printable bytes up to CRLF.
Scan scan_text_line(std::string_view s, size_t& i) {
  for (size_t j = i; j < s.size(); ++j) {
    const unsigned char c = static_cast<unsigned char>(s[j]);
    if (c == '\r') {
      if (j + 1 == s.size()) return Scan::kMore;
      if (s[j + 1] != '\n') return Scan::kNo;
      i = j + 2;
      return Scan::kYes;
    }
    if (c == '\n') return Scan::kNo;
  }
  return Scan::kMore;
}

} // namespace

bool is_type_byte(char c) {
  switch (c) {
    case '+': case '-': case ':': case '$': case '*': case '%': case '~': case '_':
    case ',': case '#': case '(': case '=': case '!': case '>': case '|':
      return true;
    default:
      return false;
  }
}

bool parse_i64(std::string_view s, int64_t& out) {
  bool neg = false;
  if (!s.empty() && s[0] == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  // 19 digits fit in uint64_t; int64_t ranges up to 9223372036854775807.
  if (v > static_cast<uint64_t>(INT64_MAX) + (neg ? 1 : 0)) return false;
  out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

bool ieq(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower_b[i]) return false;
  return true;
}

Scan scan_command_start(std::string_view s, bool known_name) {
  if (s.empty()) return Scan::kMore;
  if (s[0] == '*') {
    size_t i = 1;
    int64_t n = 0, m = 0;
    Scan r = scan_number_line(s, i, n);
    if (r != Scan::kYes) return r;
    if (n < 1 || static_cast<uint64_t>(n) > session_detail::kMaxArgc) return Scan::kNo;
    if (i == s.size()) return Scan::kMore;
    if (s[i++] != '$') return Scan::kNo;
    r = scan_number_line(s, i, m);
    if (r != Scan::kYes) return r;
    if (m < 1 || m > 64) return Scan::kNo; // a command name
    const size_t avail = std::min<size_t>(s.size() - i, static_cast<size_t>(m));
    for (size_t k = 0; k < avail; ++k)
      if (!is_name_char(s[i + k]) || (k == 0 && !is_alpha(s[i]))) return Scan::kNo;
    if (avail == 0) return Scan::kMore;
    if (!known_name) return Scan::kYes;
    if (avail < static_cast<size_t>(m)) return Scan::kMore;
    const std::string_view name = s.substr(i, static_cast<size_t>(m));
    return is_command_name(name) || name.find('.') != std::string_view::npos ? Scan::kYes
                                                                             : Scan::kNo;
  }
  // Inline: a known command word, then the rest of a printable line.
  size_t i = 0;
  while (i < s.size() && is_name_char(s[i])) ++i;
  if (i == 0 || !is_alpha(s[0]) || i > 32) return Scan::kNo;
  if (i == s.size()) return Scan::kMore;
  const char sep = s[i];
  if (sep != ' ' && sep != '\t' && sep != '\r' && sep != '\n') return Scan::kNo;
  if (!is_command_name(s.substr(0, i))) return Scan::kNo;
  const size_t nl = s.find('\n', i);
  const std::string_view line = s.substr(0, nl == std::string_view::npos ? s.size() : nl);
  for (size_t k = i; k < line.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(line[k]);
    if ((c < 0x20 && c != '\t' && c != '\r') || c >= 0x7f) return Scan::kNo;
  }
  if (line.find(" HTTP/") != std::string_view::npos) return Scan::kNo;
  return nl == std::string_view::npos ? Scan::kMore : Scan::kYes;
}

Scan scan_reply_start(std::string_view s) {
  if (s.empty()) return Scan::kMore;
  const char t = s[0];
  size_t i = 1;
  int64_t n = 0;
  switch (t) {
    case '+': case '-':
      return scan_text_line(s, i);
    case ':': case '(':
      return scan_number_line(s, i, n);
    case ',': {
      const Scan r = scan_text_line(s, i);
      if (r != Scan::kYes) return r;
      for (size_t k = 1; k + 2 < i; ++k)
        if (!std::strchr("0123456789.eE+-infa", s[k])) return Scan::kNo;
      return i > 3 ? Scan::kYes : Scan::kNo;
    }
    case '_': {
      constexpr std::string_view kNull = "_\r\n";
      const size_t k = std::min(s.size(), kNull.size());
      if (s.substr(0, k) != kNull.substr(0, k)) return Scan::kNo;
      return k == kNull.size() ? Scan::kYes : Scan::kMore;
    }
    case '#':
      if (s.size() < 4) return Scan::kMore;
      return (s[1] == 't' || s[1] == 'f') && s.substr(2, 2) == "\r\n" ? Scan::kYes : Scan::kNo;
    case '$': case '!': case '=': {
      const Scan r = scan_number_line(s, i, n);
      if (r != Scan::kYes) return r;
      return n >= 0 || (n == -1 && t == '$') ? Scan::kYes : Scan::kNo;
    }
    case '*': case '%': case '~': case '>': case '|': {
      const Scan r = scan_number_line(s, i, n);
      if (r != Scan::kYes) return r;
      if (n < -1 || (n == -1 && t != '*')) return Scan::kNo;
      // The first element, when present, must start like a value too.
      if (n > 0 && i < s.size() && !is_type_byte(s[i])) return Scan::kNo;
      return Scan::kYes;
    }
    default:
      return Scan::kNo;
  }
}

} // namespace detail

bool is_command_name(std::string_view name) {
  char buf[32];
  if (name.empty() || name.size() > sizeof buf) return false;
  for (size_t i = 0; i < name.size(); ++i) buf[i] = detail::lower(name[i]);
  const std::string_view key(buf, name.size());
  return std::binary_search(std::begin(detail::kCommands), std::end(detail::kCommands), key);
}

bool looks_like_redis_command(std::string_view first_bytes) {
  return detail::scan_command_start(first_bytes, false) == detail::Scan::kYes;
}

} // namespace odigos::redis
