// Private to the postgres module: Session::Impl, shared by framing.cpp (bytes
// of one direction → messages, loss and resynchronisation) and session.cpp
// (messages → exchanges: pairing, prepared statements, connection events).
#pragma once

#include "postgres.hpp"
#include "wire.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace odigos::pg {
namespace session_detail {

inline constexpr uint64_t kNoSeq = UINT64_MAX;
inline constexpr std::string_view kDesync = "desync";
inline constexpr std::string_view kSkipped = "skipped";
inline constexpr std::string_view kClosed = "connection_closed";
// Side::kUnknown: segments that fit both directions before giving up.
inline constexpr unsigned kAmbiguousGiveUp = 64;
// Segments with no PostgreSQL message in them, before anything was recognised.
inline constexpr unsigned kBadGiveUp = 2;
inline constexpr size_t kNameKeep = 1024;     // statement/portal name bytes kept
inline constexpr size_t kMaxNamedPortals = 64;

enum class St : uint8_t {
  kFresh,    // first bytes of this direction: check them, then frame
  kSkip,     // framing lost: look for a strong message boundary in each segment
  kBoundary, // between messages
  kHeader,   // part of a header is in Dir::hdr
  kBody,     // Dir::body_left bytes of the current message to go
  kDead,     // nothing more to decode in this direction
};

// A frontend message that the backend will answer.
enum class It : uint8_t {
  kStartup, kSsl, kGss, kQuery, kFunc, kParse, kBind, kDescribe, kExecute, kClose, kSync,
};
// Answered by ReadyForQuery.
inline bool ends_batch(It t) {
  return t == It::kSync || t == It::kQuery || t == It::kFunc || t == It::kStartup;
}

struct Item {
  uint64_t seq;      // exchange it belongs to (kNoSeq: none)
  uint64_t ts;       // first byte of the message
  It type;
};

struct Dir {
  bool ingress = false;
  bool client = false;        // carries frontend messages (valid once the side is known)
  St state = St::kFresh;
  bool startup_phase = false; // client: the next packet is untyped (StartupMessage...)
  bool soft = false;          // kSkip because bytes were not captured (nothing lost)
  bool body_lost = false;     // bytes of the current message were not captured
  uint8_t probation = 0;      // whole messages still to validate after (re)synchronising
  char type = 0;              // current message type; 0 = untyped startup packet
  uint8_t hdr_got = 0;
  uint8_t hdr_need = 5;
  char hdr[5] = {};
  uint32_t len = 0;           // length field of the current message
  uint64_t body_left = 0;
  size_t keep = 0;            // body bytes of the current message to keep in buf
  uint64_t msg_ts = 0;        // segment that carried its first byte
  int ncols = -1;             // backend: columns of the current RowDescription
  std::string buf;
};

struct Entry {
  Exchange ex;
  uint32_t open_items = 0; // frontend messages of it still awaiting their answer
  int64_t tag_rows = -1;
  uint64_t data_rows = 0;
  bool group_open = false; // extended protocol: more messages may join it
  bool has_parse = false;
  bool has_execute = false;
  bool emit = true;
  bool done = false;
  bool skipped = false;    // some of its messages were skipped by the server
};

struct Stmt {
  std::string text;
  bool truncated = false;
};

struct Portal {
  std::string name;
  std::string stmt;
  std::string text;
  bool text_known = false;
  bool truncated = false;
};

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

} // namespace session_detail

struct Session::Impl {
  using Dir = session_detail::Dir;
  using Entry = session_detail::Entry;
  using Item = session_detail::Item;
  using It = session_detail::It;
  using St = session_detail::St;

  Side side;
  Limits lim;
  Verdict verdict = Verdict::kUndecided;
  bool closed = false;
  bool terminated = false;   // Terminate seen
  bool cancel_only = false;  // a CancelRequest connection
  bool server_skipping = false; // after an extended-protocol error, until the next Sync
  bool cur_lost = false;        // the message being dispatched lost uncaptured bytes
  unsigned bad_segments = 0;
  unsigned ambiguous = 0;
  uint64_t desyncs = 0;
  uint64_t resyncs = 0;
  Dir dirs[2]; // [0] egress, [1] ingress

  // Open exchanges, oldest first, in a ring (power-of-two size).
  std::vector<Entry> ring;
  size_t ring_head = 0;
  size_t count = 0;
  uint64_t front_seq = 0;
  // Frontend messages awaiting an answer, oldest first, in a ring.
  std::vector<Item> items;
  size_t item_head = 0;
  size_t item_count = 0;

  uint64_t open_group = session_detail::kNoSeq; // extended-protocol exchange being built
  uint64_t last_group = session_detail::kNoSeq;
  uint64_t copy_in = session_detail::kNoSeq;    // exchange receiving CopyData from the frontend
  uint64_t startup_seq = session_detail::kNoSeq;

  std::unordered_map<std::string, session_detail::Stmt, session_detail::SvHash, std::equal_to<>> stmts;
  session_detail::Stmt unnamed_stmt;
  bool unnamed_stmt_known = false;
  session_detail::Portal unnamed_portal;
  bool unnamed_portal_known = false;
  std::vector<session_detail::Portal> portals;

  std::string database, user, app;
  uint32_t backend_pid = 0;
  std::vector<Exchange> ready;

  Impl(Side s, Limits l);

  bool stopped() const {
    return closed || verdict == Verdict::kNotPostgres || verdict == Verdict::kEncrypted;
  }
  Dir& client_dir() { return dirs[side == Side::kServer]; }
  Dir& server_dir() { return dirs[side != Side::kServer]; }

  // Entries.
  Entry& slot(size_t k) { return ring[(ring_head + k) & (ring.size() - 1)]; }
  Entry* live(uint64_t seq) {
    if (seq == session_detail::kNoSeq || seq < front_seq || seq >= front_seq + count) return nullptr;
    Entry& e = slot(static_cast<size_t>(seq - front_seq));
    return e.done ? nullptr : &e;
  }
  uint64_t new_entry(Exchange::Kind kind, uint64_t ts);
  void finish(Entry& e, std::string_view error_type, bool complete);
  void maybe_finish(Entry& e);
  void try_emit();
  void drop_pending(std::string_view error_type);

  // Items.
  Item* head() { return item_count ? &items[item_head] : nullptr; }
  Item& item_at(size_t k) { return items[(item_head + k) & (items.size() - 1)]; }
  void push_item(It type, uint64_t seq, uint64_t ts);
  enum class Pop : uint8_t { kAnswered, kSkipped, kDesync };
  void pop_item(Pop how);

  // session.cpp: messages → exchanges.
  void set_side(Side s);
  bool decide(Dir& d, const Segment& seg);
  void message(Dir& d, std::string_view body, uint64_t t0, uint64_t t1);
  void startup_packet(Dir& d, std::string_view body, uint64_t t0, uint64_t t1);
  void client_msg(Dir& d, std::string_view body, bool whole, uint64_t t0, uint64_t t1);
  void server_msg(Dir& d, std::string_view body, bool whole, uint64_t t0, uint64_t t1);
  bool ssl_answer(std::string_view& p, uint64_t ts);
  uint64_t group(uint64_t ts);
  void close_group();
  void add_request(uint64_t seq, uint64_t bytes, uint64_t ts);
  void attribute(Entry* e, uint64_t bytes, uint64_t t0, uint64_t t1);
  Item* answer(It type, uint64_t bytes, uint64_t t0, uint64_t t1);
  void remember_stmt(std::string_view name, std::string_view text, bool truncated);
  void bind_portal(std::string_view portal, std::string_view stmt);
  void forget(char what, std::string_view name);
  void set_text(Exchange& ex, std::string_view text, bool truncated);
  void abandon_queries();
  void on_eof(Dir& d);
  void on_close(std::string_view error_type);

  // framing.cpp: bytes of one direction.
  void feed(Dir& d, const Segment& seg);
  void fresh(Dir& d, std::string_view& p, uint64_t ts, uint64_t len);
  void direct_tls(uint64_t ts, uint64_t len);
  void skip(Dir& d, std::string_view& p, bool fully_captured, uint64_t ts);
  void count_unframed(Dir& d, uint64_t n, uint64_t ts);
  void boundary(Dir& d, std::string_view& p, uint64_t ts);
  void header(Dir& d, std::string_view& p, uint64_t ts);
  bool start_message(Dir& d, const char* hdr);
  void after_header(Dir& d, std::string_view& p, uint64_t ts);
  void body(Dir& d, std::string_view& p, uint64_t ts);
  void on_missing(Dir& d, uint64_t missing, uint64_t ts);
  void on_gap(Dir& d);
  void soft_loss(Dir& d);
  void bad_framing(Dir& d);
  void lose_framing(Dir& d);
  void not_postgres();
  size_t keep_for(const Dir& d) const;
  bool ssl_pending() const {
    return item_count && (items[item_head].type == It::kSsl || items[item_head].type == It::kGss);
  }
};

} // namespace odigos::pg
