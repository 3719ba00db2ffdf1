// Private to the redis module: Session::Impl, shared by framing.cpp (RESP
// bytes of one direction), session.cpp (pairing, pub/sub, loss) and resp.cpp
// (scanners used for detection and resynchronisation).
#pragma once

#include "redis.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace odigos::redis {
namespace detail {

enum class Scan : uint8_t { kYes, kMore, kNo };

// A command at the start of s: "*N\r\n$M\r\n<name>" (N >= 1) or an inline
// line whose first word is a known command and that is not an HTTP request
// line. `known_name`: a RESP array's first argument must also be a known
// command (or a module command, with a '.').
Scan scan_command_start(std::string_view s, bool known_name);
// A RESP value's first line at the start of s (for replies).
Scan scan_reply_start(std::string_view s);
// Optional '-' and 1..19 decimal digits, no overflow.
bool parse_i64(std::string_view s, int64_t& out);
// One of the RESP2/RESP3 type bytes.
bool is_type_byte(char c);
// Case-insensitive equality with an all-lowercase literal.
bool ieq(std::string_view a, std::string_view lower);

} // namespace detail

namespace session_detail {

enum class St : uint8_t {
  kBoundary, // between messages
  kLine,     // a type line (type byte + text + CRLF); Dir::lt is 0 before the type byte
  kBulk,     // Dir::bleft bytes of bulk payload left
  kBulkCrlf, // the CRLF after a bulk payload
  kInline,   // an inline command line, up to LF
  kSkip,     // framing lost: wait for a segment that starts a message
  kProbe,    // Side::kUnknown: role not known yet
  kDead,     // nothing more to decode in this direction
};

enum class Role : uint8_t { kCandidate, kCommand, kReply };

// (Un)subscribe family of a command, and the confirmation kind of a reply.
enum class Fam : uint8_t {
  kNone, kSubscribe, kUnsubscribe, kPsubscribe, kPunsubscribe, kSsubscribe, kSunsubscribe
};
// Commands whose reply changes how later replies are read.
enum class Kind : uint8_t { kOther, kHello, kMonitor, kReset, kSync };
enum class ReplyMode : uint8_t { kOn, kOff, kSkipNext };
// Where the bytes of the bulk string being read go.
// kNewArg: a command argument not created yet (built from its first bytes,
// which saves a growth step for arguments longer than the SSO buffer).
enum class Dst : uint8_t { kNone, kNewArg, kArg, kValue, kError, kName };

inline constexpr uint32_t kOpen = UINT32_MAX; // replies until a non-confirmation (arg-less UNSUBSCRIBE)
inline constexpr uint64_t kNoSeq = UINT64_MAX;
inline constexpr int kTop = -1;       // Dir::cur: the message's top value
inline constexpr int kUntracked = -2; // Dir::cur: nested deeper, or inside an attribute
// Side::kUnknown: segments that start neither a command nor a reply before
// the connection is written off as not Redis.
inline constexpr unsigned kUnknownGiveUp = 16;
// First inline line of a connection whose verdict is open: longer is not Redis.
inline constexpr size_t kFreshInlineMax = 256;
inline constexpr size_t kNameKeep = 16;       // first element of a reply array (pub/sub kind)
inline constexpr uint64_t kMaxArgc = INT32_MAX;
inline constexpr uint64_t kMaxRemaining = 1ull << 50;
inline constexpr size_t kNumLineMax = 32;     // lengths, integers, booleans...
inline constexpr std::string_view kDesync = "desync";

struct Dir {
  bool ingress = false;
  Role role = Role::kCandidate;
  St st = St::kProbe;
  bool fresh = true;    // no message completed yet: a failure means "not Redis"
  bool in_msg = false;
  // Stream positions (bytes, captured or not) for message sizes.
  uint64_t pos = 0;            // offset of the current segment's first byte
  uint64_t seg_end = 0;        // offset just past the current segment
  const char* seg_begin = nullptr;
  uint64_t last_ts = 0;        // ts of the latest segment
  // Message in progress.
  uint64_t msg_start = 0;
  uint64_t first_ts = 0;
  uint64_t remaining = 0;      // values of the message not started yet
  uint64_t seq = kNoSeq;       // command direction: exchange being filled
  bool top_seen = false;
  bool flat = false;           // the top is an aggregate of scalars only (so far)
  char top_type = 0;
  uint32_t elem = 0;           // next depth-1 element
  int cur = kUntracked;        // value being read: kTop, depth-1 index or kUntracked
  // Type line.
  char lt = 0;
  bool lcr = false;            // last byte of the buffered line is CR
  size_t llen = 0;             // line bytes so far (type byte and LF excluded)
  std::string lbuf;            // kept prefix of a line split across segments
  // Bulk string.
  uint64_t bleft = 0;
  uint64_t bulk_end_ts = 0;    // ts of the segment with the payload's last byte
  uint8_t crlf_need = 0;
  Dst dst = Dst::kNone;
  size_t keep = 0;             // payload bytes still to keep
  // Inline command tokenizer (a subset of the server's sdssplitargs).
  bool in_arg = false;
  char quote = 0;
  uint8_t esc = 0;             // 1 after '\', 2 after "\x", 3 after "\xH"
  char hex1 = 0;
  // Reply in progress and what pub/sub needs from it.
  Reply rep;
  char name[kNameKeep] = {};   // element 0, lower-cased
  uint8_t name_len = 0;
  bool name_over = false;
  bool second_null = false;    // element 1 is null (UNSUBSCRIBE with no channel)
  bool third_int = false;      // element 2 is an integer
  int64_t sub_count = 0;       // ... and its value
};

struct Entry {
  Exchange ex;
  uint64_t seq = 0;
  uint32_t expect = 1;  // replies expected (0: suppressed; kOpen)
  uint32_t got = 0;
  Fam fam = Fam::kNone;
  Kind kind = Kind::kOther;
  bool cmd_done = false;
  bool resp_done = false;
};

} // namespace session_detail

struct Session::Impl {
  using Dir = session_detail::Dir;
  using Entry = session_detail::Entry;
  using Fam = session_detail::Fam;

  Side side;
  Limits lim;
  Verdict verdict = Verdict::kUndecided;
  bool closed = false;
  bool replication = false; // after SYNC/PSYNC: a replication stream, not decoded
  Dir dirs[2]; // [0] egress, [1] ingress
  // Open exchanges, oldest first, in a ring (power-of-two size).
  std::vector<Entry> ring;
  size_t ring_head = 0;
  size_t count = 0;
  uint64_t front_seq = 0;
  uint64_t reply_seq = 0;       // no exchange before this one awaits replies
  // First exchange after lost bytes: a reply that began before its command
  // answers a lost command, not this one.
  uint64_t resync_seq = session_detail::kNoSeq;
  uint64_t skip_replies = 0;    // replies of exchanges evicted by max_pending
  unsigned unknown_skipped = 0;
  // Connection state that changes how replies are read.
  bool resp3 = false;
  bool in_multi = false;
  bool monitor = false;
  session_detail::ReplyMode reply_mode = session_detail::ReplyMode::kOn;
  // Subscriptions, from the counts in (un)subscribe confirmations:
  // sub_classic = channels + patterns, sub_shard = shard channels.
  int64_t sub_classic = 0, sub_shard = 0;
  int64_t n_channels = 0, n_patterns = 0;
  bool classic_known = true;    // n_channels/n_patterns exact (seen from the start)
  bool shard_known = true;
  bool maybe_subscribed = false; // RESP2 messages seen without knowing the subscriptions
  uint64_t desyncs = 0, pushes = 0, unpaired = 0;
  std::vector<Exchange> ready;

  Impl(Side s, Limits l);

  bool finished() const { return closed || replication || verdict == Verdict::kNotRedis; }
  uint64_t next_seq() const { return front_seq + count; }
  Entry& at(size_t k) { return ring[(ring_head + k) & (ring.size() - 1)]; }
  Entry* entry(uint64_t seq) {
    if (seq == session_detail::kNoSeq || seq < front_seq || seq >= next_seq()) return nullptr;
    return &at(static_cast<size_t>(seq - front_seq));
  }
  Dir& command_dir() { return dirs[side == Side::kServer]; }
  Dir& reply_dir() { return dirs[side != Side::kServer]; }
  static uint64_t pos_of(const Dir& d, std::string_view p) {
    return d.pos + static_cast<uint64_t>(p.data() - d.seg_begin);
  }
  bool subscribed_resp2() const {
    return !resp3 && (sub_classic > 0 || sub_shard > 0 || (!classic_known && maybe_subscribed));
  }

  // session.cpp: exchanges, pairing, connection state, loss.
  Entry& push_entry();
  void pop_front();
  void try_emit();
  Entry* awaiting();
  void open_command(Dir& d, uint64_t argc, bool is_inline);
  void evict_front();
  void classify(Entry& e);
  void finish_command(Dir& d, uint64_t bytes, uint64_t ts);
  void finish_reply(Dir& d, uint64_t bytes, uint64_t ts);
  void finish_text(Reply& r);
  void deliver(Dir& d);
  void add_reply(Entry& e, Reply& r);
  void attach_cut_reply(Dir& d, Entry& e, uint64_t end);
  void confirm(Entry& e, Dir& d, Fam f);
  void answer(Entry& e, Dir& d);
  void push(Dir& d, Fam f);
  void track_subs(Fam f, int64_t count);
  void drop_alignment();
  void lose_sync(Dir& d, bool lost_bytes, uint64_t ts);
  void not_redis();
  void start_replication();
  bool sync_payload(const Dir& d);
  void decide(Dir& d, bool carries_commands);
  void on_close(std::string_view error_type);

  // framing.cpp: bytes of one direction.
  void feed(Dir& d, const Segment& seg);
  bool fail(Dir& d);
  bool probe(Dir& d, std::string_view data);
  bool try_resync(Dir& d, std::string_view data);
  bool begin_message(Dir& d, std::string_view& p, uint64_t ts);
  bool fast_command(Dir& d, std::string_view& p, uint64_t ts);
  bool fast_reply(Dir& d, std::string_view& p, uint64_t ts);
  void reset_reply(Dir& d);
  bool step_line(Dir& d, std::string_view& p, uint64_t ts);
  bool on_line(Dir& d, std::string_view text, bool cut, uint64_t end_pos, uint64_t ts);
  bool value_begin(Dir& d, char type, uint64_t children);
  void value_end(Dir& d, uint64_t end_pos, uint64_t ts);
  void end_message(Dir& d, uint64_t end_pos, uint64_t ts);
  void reply_scalar(Dir& d, char type, std::string_view text, bool cut, int64_t num, bool null);
  void begin_bulk(Dir& d, uint64_t len);
  void keep_bytes(Dir& d, std::string_view bytes);
  void step_bulk(Dir& d, std::string_view& p, uint64_t ts);
  bool take_bulk(Dir& d, std::string_view& p, uint64_t ts);
  void end_bulk(Dir& d, uint64_t end_pos, uint64_t ts);
  bool step_crlf(Dir& d, std::string_view& p, uint64_t ts);
  bool step_inline(Dir& d, std::string_view& p, uint64_t ts);
  bool tokenize(Dir& d, std::string_view chunk);
  void inline_add(Dir& d, char c);
  bool end_inline(Dir& d, uint64_t end_pos, uint64_t ts);
  void on_missing(Dir& d, uint64_t missing, uint64_t ts);
};

} // namespace odigos::redis
