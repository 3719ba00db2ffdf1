// RESP bytes of one direction. A message is one top-level value (a command is
// an array of bulk strings, or an inline line). Framing needs no stack: the
// number of values not yet started (Dir::remaining) is 1 at the start, each
// value takes one and an aggregate adds its children, and the message ends
// when it reaches 0. Lines are parsed in place; only a line split across
// segments is copied (its first bytes); bulk payloads are counted, and their
// first bytes kept where a command argument or reply value needs them.
#include "session_impl.hpp"

#include <cstring>

namespace odigos::redis {

using namespace session_detail;
using detail::Scan;

namespace {

bool is_aggregate(char t) { return t == '*' || t == '%' || t == '~' || t == '>' || t == '|'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0'; }
bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_val(char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
// Types whose line is a number or a word, not free text.
bool short_line(char t) { return t != '+' && t != '-' && t != '(' && t != ','; }

// Fast paths: up to 18 digits then CRLF at s. Returns the byte after the LF,
// or nullptr (anything else, including what the general path accepts, such
// as a sign or 19 digits, is left to the general path).
inline const char* read_len(const char* s, const char* end, uint64_t& v) {
  const char* const start = s;
  uint64_t x = 0;
  while (s < end && *s >= '0' && *s <= '9') {
    x = x * 10 + static_cast<uint64_t>(*s - '0');
    if (++s - start > 18) return nullptr;
  }
  if (s == start || end - s < 2 || s[0] != '\r' || s[1] != '\n') return nullptr;
  v = x;
  return s + 2;
}

} // namespace

// A failure to parse: at the start of an undecided connection it is not
// Redis; later the framing is lost. Returns false (stop this segment).
bool Session::Impl::fail(Dir& d) {
  if (verdict == Verdict::kUndecided && d.fresh) not_redis();
  else lose_sync(d, false, d.last_ts);
  return false;
}

// Side::kUnknown: the first bytes of a segment decide which direction
// carries commands. Replies are only trusted when their type byte cannot
// also start a command-like array ('*') or be the middle of one ('$').
bool Session::Impl::probe(Dir& d, std::string_view data) {
  if (detail::scan_command_start(data, true) == Scan::kYes) {
    decide(d, true);
    return true;
  }
  if (data[0] != '*' && data[0] != '$' && detail::scan_reply_start(data) == Scan::kYes) {
    decide(d, false);
    return true;
  }
  if (++unknown_skipped >= kUnknownGiveUp) not_redis();
  return false;
}

// `data` is a whole segment's captured bytes.
bool Session::Impl::try_resync(Dir& d, std::string_view data) {
  const Scan s = d.role == Role::kCommand ? detail::scan_command_start(data, false)
                                          : detail::scan_reply_start(data);
  if (s != Scan::kYes) return false;
  d.st = St::kBoundary;
  return true;
}

// A whole command array in p, decoded at once (the common case). False,
// consuming nothing, when it is not all here or not plain; the general path
// then decodes it, with the same result.
bool Session::Impl::fast_command(Dir& d, std::string_view& p, uint64_t ts) {
  const char* const s = p.data();
  const char* const end = s + p.size();
  uint64_t n = 0, len = 0;
  const char* const args = read_len(s + 1, end, n);
  if (!args || n == 0 || n > 4096) return false;
  const char* r = args;
  for (uint64_t i = 0; i < n; ++i) {
    if (r == end || *r != '$') return false;
    r = read_len(r + 1, end, len);
    if (!r || len > lim.max_bulk_len || static_cast<uint64_t>(end - r) < len + 2 ||
        r[len] != '\r' || r[len + 1] != '\n')
      return false;
    r += len + 2;
  }
  d.first_ts = ts;
  d.msg_start = pos_of(d, p);
  open_command(d, n, false);
  if (Entry* e = entry(d.seq)) {
    Command& c = e->ex.command;
    const char* a = args;
    for (uint64_t i = 0; i < n; ++i) {
      a = read_len(a + 1, end, len);
      if (i < lim.max_args) {
        c.args.emplace_back(a, static_cast<size_t>(std::min<uint64_t>(len, lim.max_arg_bytes)));
        if (len > lim.max_arg_bytes) c.truncated = true;
      }
      a += len + 2;
    }
  }
  p.remove_prefix(static_cast<size_t>(r - s));
  d.fresh = false;
  finish_command(d, static_cast<uint64_t>(r - s), ts);
  return true;
}

void Session::Impl::reset_reply(Dir& d) {
  // In place: the previous reply's strings were moved out or are reused.
  Reply& r = d.rep;
  r.type = 0;
  r.error = r.null = r.truncated = r.complete = false;
  r.error_prefix.clear();
  r.error_message.clear();
  r.value.clear();
  r.integer = r.elements = 0;
  r.messages = 0;
  r.first_ts_ns = r.last_ts_ns = r.bytes = 0;
  d.name_len = 0;
  d.name_over = false;
  d.second_null = false;
  d.third_int = false;
  d.sub_count = 0;
}

// A whole scalar reply (+ - : $) in p, decoded at once; see fast_command.
bool Session::Impl::fast_reply(Dir& d, std::string_view& p, uint64_t ts) {
  const char t = p.front();
  const char* const s = p.data();
  const char* const end = s + p.size();
  const char* r = nullptr;
  std::string_view text;
  int64_t num = 0;
  bool null = false;
  uint64_t len = 0;
  if (t == '$') {
    if (p.substr(0, 5) == "$-1\r\n") {
      null = true;
      r = s + 5;
    } else {
      r = read_len(s + 1, end, len);
      if (!r || len > lim.max_bulk_len || static_cast<uint64_t>(end - r) < len + 2 ||
          r[len] != '\r' || r[len + 1] != '\n')
        return false;
      text = std::string_view(r, static_cast<size_t>(len));
      r += len + 2;
    }
  } else if (t == '+' || t == '-' || t == ':') {
    const char* nl = static_cast<const char*>(std::memchr(s + 1, '\n', p.size() - 1));
    if (!nl || nl - s < 2 || nl[-1] != '\r') return false;
    text = std::string_view(s + 1, static_cast<size_t>(nl - 1 - (s + 1)));
    if (text.size() > (t == ':' ? kNumLineMax : lim.max_line)) return false;
    if (t == ':' && !detail::parse_i64(text, num)) return false;
    r = nl + 1;
  } else {
    return false;
  }
  reset_reply(d);
  d.first_ts = ts;
  d.msg_start = pos_of(d, p);
  d.top_seen = true;
  d.top_type = t;
  d.flat = false;
  d.cur = kTop;
  d.remaining = 0;
  d.rep.type = t;
  if (t == '$' && !null) {
    d.rep.value.assign(text.data(), std::min<size_t>(text.size(), lim.max_arg_bytes));
    d.rep.truncated = text.size() > lim.max_arg_bytes;
  } else {
    reply_scalar(d, t, text, false, num, null);
  }
  const uint64_t bytes = static_cast<uint64_t>(r - s);
  p.remove_prefix(static_cast<size_t>(bytes));
  d.fresh = false;
  finish_reply(d, bytes, ts);
  return true;
}

bool Session::Impl::begin_message(Dir& d, std::string_view& p, uint64_t ts) {
  if (d.role == Role::kCommand) {
    // Empty lines between commands are ignored, as the server does.
    while (!p.empty() && (p.front() == '\r' || p.front() == '\n')) p.remove_prefix(1);
    if (p.empty()) return true;
    if (p.front() == '*' && fast_command(d, p, ts)) return true;
  } else if (fast_reply(d, p, ts)) {
    return true;
  }
  d.in_msg = true;
  d.first_ts = ts;
  d.msg_start = pos_of(d, p);
  d.remaining = 1;
  d.top_seen = false;
  d.flat = false;
  d.top_type = 0;
  d.elem = 0;
  d.cur = kUntracked;
  d.seq = kNoSeq;
  d.lt = 0;
  if (d.role == Role::kCommand) {
    if (p.front() != '*') { // anything else is an inline command, for the server too
      d.st = St::kInline;
      d.llen = 0;
      d.in_arg = false;
      d.quote = 0;
      d.esc = 0;
      return true;
    }
  } else {
    reset_reply(d);
  }
  d.st = St::kLine;
  return true;
}

bool Session::Impl::step_line(Dir& d, std::string_view& p, uint64_t ts) {
  if (d.lt == 0) {
    const char t = p.front();
    p.remove_prefix(1);
    // Commands are arrays of bulk strings; replies any RESP2/RESP3 type.
    const bool ok = d.role == Role::kCommand
                        ? t == (d.top_seen ? '$' : '*')
                        : detail::is_type_byte(t);
    if (!ok) return fail(d);
    d.lt = t;
    d.llen = 0;
    d.lcr = false;
    d.lbuf.clear();
    if (p.empty()) return true;
  }
  const size_t max_len = short_line(d.lt) ? kNumLineMax : lim.max_line;
  const char* nl = static_cast<const char*>(std::memchr(p.data(), '\n', p.size()));
  if (nl && d.llen == 0) { // the whole line is here: parse in place
    const size_t n = static_cast<size_t>(nl - p.data());
    if (n == 0 || p[n - 1] != '\r' || n - 1 > max_len) return fail(d);
    const std::string_view text = p.substr(0, n - 1);
    p.remove_prefix(n + 1);
    if (!on_line(d, text, false, pos_of(d, p), ts)) return false;
    // A bulk string whose payload and CRLF are here too: take it at once.
    if (d.st == St::kBulk || d.st == St::kBulkCrlf) return take_bulk(d, p, ts);
    return true;
  }
  const size_t n = nl ? static_cast<size_t>(nl - p.data()) : p.size();
  if (d.llen + n > max_len + 1) return fail(d);
  const size_t keep = std::max<size_t>(lim.max_arg_bytes, kNumLineMax) + 1;
  if (d.lbuf.size() < keep) d.lbuf.append(p.data(), std::min(n, keep - d.lbuf.size()));
  if (n) d.lcr = p[n - 1] == '\r';
  d.llen += n;
  if (!nl) {
    p = {};
    return true;
  }
  p.remove_prefix(n + 1);
  if (d.llen == 0 || !d.lcr) return fail(d);
  const size_t text_len = d.llen - 1;
  const std::string_view text(d.lbuf.data(), std::min(d.lbuf.size(), text_len));
  return on_line(d, text, text.size() < text_len, pos_of(d, p), ts);
}

// A complete type line (type byte d.lt, CRLF removed). `cut`: only a prefix
// of the text was kept.
bool Session::Impl::on_line(Dir& d, std::string_view text, bool cut, uint64_t end_pos,
                            uint64_t ts) {
  const char t = d.lt;
  d.lt = 0;
  int64_t n = 0;
  if (d.role == Role::kCommand) {
    if (cut || !detail::parse_i64(text, n)) return fail(d);
    if (!d.top_seen) {
      if (n <= 0) { // an empty multibulk is ignored by the server
        d.in_msg = false;
        d.st = St::kBoundary;
        return true;
      }
      if (static_cast<uint64_t>(n) > kMaxArgc || !value_begin(d, t, static_cast<uint64_t>(n)))
        return fail(d);
      open_command(d, static_cast<uint64_t>(n), false);
      return true;
    }
    if (n < 0 || static_cast<uint64_t>(n) > lim.max_bulk_len || !value_begin(d, t, 0))
      return fail(d);
    begin_bulk(d, static_cast<uint64_t>(n));
    return true;
  }
  switch (t) {
    case '$': case '!': case '=': {
      if (cut || !detail::parse_i64(text, n)) return fail(d);
      if (n == -1 && t == '$') {
        if (!value_begin(d, t, 0)) return fail(d);
        reply_scalar(d, t, {}, false, 0, true);
        value_end(d, end_pos, ts);
        return true;
      }
      if (n < 0 || static_cast<uint64_t>(n) > lim.max_bulk_len || !value_begin(d, t, 0))
        return fail(d);
      begin_bulk(d, static_cast<uint64_t>(n));
      return true;
    }
    case '*': case '%': case '~': case '>': case '|': {
      if (cut || !detail::parse_i64(text, n)) return fail(d);
      const bool null = n == -1 && t == '*';
      if ((n < 0 && !null) || static_cast<uint64_t>(std::max<int64_t>(n, 0)) > lim.max_aggregate)
        return fail(d);
      uint64_t kids = null ? 0 : static_cast<uint64_t>(n);
      if (t == '%' || t == '|') kids *= 2;
      if (t == '|') kids += 1; // the value the attribute describes
      if (!value_begin(d, t, kids)) return fail(d);
      if (d.cur == kTop) {
        d.rep.elements = null ? -1 : n;
        d.rep.null = null;
      }
      value_end(d, end_pos, ts);
      return true;
    }
    case ':':
      if (cut || !detail::parse_i64(text, n)) return fail(d);
      break;
    case '_':
      if (!text.empty()) return fail(d);
      break;
    case '#':
      if (text != "t" && text != "f") return fail(d);
      n = text == "t";
      break;
    case '(': {
      const std::string_view digits = !text.empty() && text[0] == '-' ? text.substr(1) : text;
      if (digits.empty()) return fail(d);
      for (char c : digits)
        if (c < '0' || c > '9') return fail(d);
      if (!cut && !detail::parse_i64(text, n)) n = 0; // beyond 64 bits: text only
      break;
    }
    default: // '+', '-', ','
      break;
  }
  if (!value_begin(d, t, 0)) return fail(d);
  reply_scalar(d, t, text, cut, n, t == '_');
  value_end(d, end_pos, ts);
  return true;
}

// A value of type t starts; `children` values follow it. Tracks where the
// value sits: the top value (after any attribute), an element of a flat top
// aggregate, or deeper.
bool Session::Impl::value_begin(Dir& d, char t, uint64_t children) {
  if (children > kMaxRemaining - d.remaining) return false;
  // With one value left to start and no top yet, this is the top (unless it
  // is an attribute, which describes the value after it).
  if (!d.top_seen && d.remaining == 1 && t != '|') {
    d.top_seen = true;
    d.top_type = t;
    d.flat = is_aggregate(t);
    d.cur = kTop;
    if (d.role == Role::kReply) d.rep.type = t;
  } else if (d.top_seen && d.flat && !is_aggregate(t)) {
    d.cur = static_cast<int>(std::min<uint32_t>(d.elem, INT32_MAX));
    ++d.elem;
  } else {
    d.flat = false;
    d.cur = kUntracked;
  }
  if (d.role == Role::kReply && !resp3 && t != '+' && t != '-' && t != ':' && t != '$' && t != '*')
    resp3 = true; // a RESP3-only type
  --d.remaining;
  d.remaining += children;
  return true;
}

void Session::Impl::value_end(Dir& d, uint64_t end_pos, uint64_t ts) {
  if (d.remaining == 0) end_message(d, end_pos, ts);
}

void Session::Impl::end_message(Dir& d, uint64_t end_pos, uint64_t ts) {
  d.in_msg = false;
  d.st = St::kBoundary;
  d.fresh = false;
  const uint64_t bytes = end_pos - d.msg_start;
  if (d.role == Role::kCommand) finish_command(d, bytes, ts);
  else finish_reply(d, bytes, ts);
}

void Session::Impl::reply_scalar(Dir& d, char t, std::string_view text, bool cut, int64_t num,
                                 bool null) {
  if (d.cur == kTop) {
    Reply& r = d.rep;
    if (null) {
      r.null = true;
      r.elements = -1;
      return;
    }
    std::string& dst = t == '-' ? r.error_message : r.value;
    dst.assign(text.data(), std::min(text.size(), lim.max_arg_bytes));
    r.truncated = cut || text.size() > lim.max_arg_bytes;
    r.error = t == '-';
    if (t == ':' || t == '#' || t == '(') r.integer = num;
  } else if (d.cur == 0) {
    if (t == '+') {
      d.name_over = text.size() > kNameKeep;
      d.name_len = 0;
      for (size_t i = 0; i < std::min(text.size(), kNameKeep); ++i)
        d.name[d.name_len++] = static_cast<char>(text[i] | 0x20);
    }
  } else if (d.cur == 1) {
    d.second_null = null;
  } else if (d.cur == 2 && t == ':') {
    d.third_int = true;
    d.sub_count = num;
  }
}

void Session::Impl::begin_bulk(Dir& d, uint64_t len) {
  d.bleft = len;
  d.bulk_end_ts = d.last_ts;
  d.crlf_need = 2;
  d.st = len ? St::kBulk : St::kBulkCrlf;
  d.dst = Dst::kNone;
  d.keep = 0;
  if (d.role == Role::kCommand) {
    Entry* e = entry(d.seq);
    if (!e) return;
    Command& c = e->ex.command;
    if (d.cur >= 0 && static_cast<size_t>(d.cur) < lim.max_args) {
      d.dst = Dst::kNewArg;
      d.keep = static_cast<size_t>(std::min<uint64_t>(len, lim.max_arg_bytes));
      if (len > lim.max_arg_bytes) c.truncated = true;
    } else {
      c.truncated = true;
    }
    return;
  }
  if (d.cur == kTop) {
    const char t = d.top_type;
    d.dst = t == '!' ? Dst::kError : Dst::kValue;
    d.rep.error = t == '!';
    // Verbatim strings start with a 3-byte format and ':' ("txt:"), dropped later.
    const size_t want = lim.max_arg_bytes + (t == '=' ? 4 : 0);
    d.keep = static_cast<size_t>(std::min<uint64_t>(len, want));
    if (len > want) d.rep.truncated = true;
  } else if (d.cur == 0) {
    d.dst = Dst::kName;
    d.name_len = 0;
    d.name_over = len > kNameKeep;
    d.keep = static_cast<size_t>(std::min<uint64_t>(len, kNameKeep));
  }
}

void Session::Impl::keep_bytes(Dir& d, std::string_view b) {
  switch (d.dst) {
    case Dst::kNewArg:
      if (Entry* e = entry(d.seq)) e->ex.command.args.emplace_back(b.data(), b.size());
      d.dst = Dst::kArg;
      break;
    case Dst::kArg:
      if (Entry* e = entry(d.seq)) e->ex.command.args.back().append(b.data(), b.size());
      break;
    case Dst::kValue:
      d.rep.value.append(b.data(), b.size());
      break;
    case Dst::kError:
      d.rep.error_message.append(b.data(), b.size());
      break;
    case Dst::kName:
      for (char c : b) d.name[d.name_len++] = static_cast<char>(c | 0x20);
      break;
    case Dst::kNone:
      break;
  }
}

void Session::Impl::step_bulk(Dir& d, std::string_view& p, uint64_t ts) {
  const size_t take = static_cast<size_t>(std::min<uint64_t>(d.bleft, p.size()));
  if (d.keep) {
    const size_t k = std::min(take, d.keep);
    keep_bytes(d, p.substr(0, k));
    d.keep -= k;
  }
  d.bleft -= take;
  p.remove_prefix(take);
  if (d.bleft == 0) {
    d.st = St::kBulkCrlf;
    d.bulk_end_ts = ts;
  }
}

bool Session::Impl::take_bulk(Dir& d, std::string_view& p, uint64_t ts) {
  if (p.size() < 2 || d.bleft > p.size() - 2) return true; // the slow path will do
  const size_t n = static_cast<size_t>(d.bleft);
  if (p[n] != '\r' || p[n + 1] != '\n') {
    if (!sync_payload(d)) return fail(d);
    if (d.keep) keep_bytes(d, p.substr(0, std::min(n, d.keep)));
    p.remove_prefix(n);
    end_bulk(d, pos_of(d, p), ts);
    return false; // replication: nothing more to decode
  }
  if (d.keep) keep_bytes(d, p.substr(0, std::min(n, d.keep)));
  d.keep = 0;
  d.bleft = 0;
  d.crlf_need = 0;
  p.remove_prefix(n + 2);
  end_bulk(d, pos_of(d, p), ts);
  return true;
}

void Session::Impl::end_bulk(Dir& d, uint64_t end_pos, uint64_t ts) {
  if (d.dst == Dst::kNewArg) { // nothing of it was kept: an empty argument
    if (Entry* e = entry(d.seq)) e->ex.command.args.emplace_back();
  }
  d.dst = Dst::kNone;
  d.st = St::kLine;
  d.lt = 0;
  value_end(d, end_pos, ts);
}

bool Session::Impl::step_crlf(Dir& d, std::string_view& p, uint64_t ts) {
  while (d.crlf_need && !p.empty()) {
    if (p.front() != (d.crlf_need == 2 ? '\r' : '\n')) {
      if (d.crlf_need != 2 || !sync_payload(d)) return fail(d);
      end_bulk(d, pos_of(d, p), d.bulk_end_ts);
      return false; // replication: nothing more to decode
    }
    p.remove_prefix(1);
    --d.crlf_need;
  }
  if (d.crlf_need) return true;
  end_bulk(d, pos_of(d, p), ts);
  return true;
}

// Inline commands: one line up to LF, split into arguments like the
// server's sdssplitargs (spaces, "double quotes" with \n \r \t \b \a \xHH
// escapes, 'single quotes' with \').
bool Session::Impl::step_inline(Dir& d, std::string_view& p, uint64_t ts) {
  const char* nl = static_cast<const char*>(std::memchr(p.data(), '\n', p.size()));
  const size_t n = nl ? static_cast<size_t>(nl - p.data()) : p.size();
  const size_t cap = d.fresh && verdict == Verdict::kUndecided ? kFreshInlineMax : lim.max_line;
  if (d.llen + n > cap) return fail(d);
  d.llen += n;
  if (!tokenize(d, p.substr(0, n))) return fail(d);
  if (!nl) {
    p = {};
    return true;
  }
  p.remove_prefix(n + 1);
  return end_inline(d, pos_of(d, p), ts);
}

void Session::Impl::inline_add(Dir& d, char c) {
  Entry* e = entry(d.seq);
  if (!e) return;
  Command& cmd = e->ex.command;
  if (cmd.argc > lim.max_args) return; // not kept (already marked truncated)
  std::string& a = cmd.args.back();
  if (a.size() < lim.max_arg_bytes) a.push_back(c);
  else cmd.truncated = true;
}

bool Session::Impl::tokenize(Dir& d, std::string_view chunk) {
  const bool check = d.fresh && verdict == Verdict::kUndecided;
  for (size_t i = 0; i < chunk.size(); ++i) {
    const char c = chunk[i];
    if (check) {
      const unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t' && c != '\r') || u >= 0x7f) return false;
    }
    if (!d.in_arg) {
      if (is_space(c)) continue;
      if (d.seq == kNoSeq) open_command(d, 0, true);
      Entry* e = entry(d.seq);
      if (e) {
        Command& cmd = e->ex.command;
        if (++cmd.argc <= lim.max_args) cmd.args.emplace_back();
        else cmd.truncated = true;
      }
      d.in_arg = true;
      d.quote = 0;
      d.esc = 0;
    }
    if (d.quote == 0) {
      if (is_space(c)) d.in_arg = false;
      else if (c == '"' || c == '\'') d.quote = c;
      else inline_add(d, c);
      continue;
    }
    if (d.quote == '"') {
      if (d.esc == 1) {
        d.esc = 0;
        switch (c) {
          case 'n': inline_add(d, '\n'); break;
          case 'r': inline_add(d, '\r'); break;
          case 't': inline_add(d, '\t'); break;
          case 'b': inline_add(d, '\b'); break;
          case 'a': inline_add(d, '\a'); break;
          case 'x': d.esc = 2; break;
          default: inline_add(d, c); break;
        }
        continue;
      }
      if (d.esc == 2 || d.esc == 3) {
        if (is_hex(c)) {
          if (d.esc == 2) {
            d.hex1 = c;
            d.esc = 3;
          } else {
            inline_add(d, static_cast<char>(hex_val(d.hex1) * 16 + hex_val(c)));
            d.esc = 0;
          }
          continue;
        }
        // "\x" not followed by two hex digits: the 'x' is literal.
        inline_add(d, 'x');
        if (d.esc == 3) inline_add(d, d.hex1);
        d.esc = 0;
      }
      if (c == '\\') d.esc = 1;
      else if (c == '"') { d.quote = 0; d.in_arg = false; }
      else inline_add(d, c);
      continue;
    }
    // Single quotes: only \' is an escape.
    if (d.esc == 1) {
      d.esc = 0;
      if (c == '\'') {
        inline_add(d, '\'');
        continue;
      }
      inline_add(d, '\\');
    }
    if (c == '\\') d.esc = 1;
    else if (c == '\'') { d.quote = 0; d.in_arg = false; }
    else inline_add(d, c);
  }
  return true;
}

bool Session::Impl::end_inline(Dir& d, uint64_t end_pos, uint64_t ts) {
  d.in_arg = false;
  Entry* e = entry(d.seq);
  if (!e) { // a blank line: no command
    d.in_msg = false;
    d.st = St::kBoundary;
    return true;
  }
  if (d.fresh && verdict == Verdict::kUndecided) {
    const auto& a = e->ex.command.args;
    if (a.empty() || !is_command_name(a[0])) return fail(d);
    for (const std::string& s : a)
      if (s.compare(0, 5, "HTTP/") == 0) return fail(d);
  }
  end_message(d, end_pos, ts);
  return true;
}

// Bytes [data.size(), len) of a segment were not captured: skip them by
// count inside a bulk payload; anywhere else the framing is lost.
void Session::Impl::on_missing(Dir& d, uint64_t missing, uint64_t ts) {
  uint64_t left = missing;
  uint64_t at = d.pos; // d.pos already covers the captured bytes
  while (left && !finished()) {
    if (d.st == St::kBulk) {
      const uint64_t take = std::min(left, d.bleft);
      d.bleft -= take;
      left -= take;
      at += take;
      d.keep = 0; // later captured bytes are not contiguous with the kept ones
      if (d.role == Role::kCommand) {
        if (Entry* e = entry(d.seq)) e->ex.command.truncated = true;
      } else {
        d.rep.truncated = true;
      }
      if (d.bleft == 0) {
        d.st = St::kBulkCrlf;
        d.bulk_end_ts = ts;
      }
    } else if (d.st == St::kBulkCrlf) {
      const uint64_t take = std::min<uint64_t>(left, d.crlf_need);
      d.crlf_need = static_cast<uint8_t>(d.crlf_need - take);
      left -= take;
      at += take;
      if (d.crlf_need == 0) end_bulk(d, at, ts);
    } else if (d.st == St::kSkip || d.st == St::kProbe || d.st == St::kDead) {
      break;
    } else {
      // A line, an inline command or the next message is unseen. Not
      // evidence against Redis: lose sync even on a fresh connection.
      lose_sync(d, true, ts);
      break;
    }
  }
  d.pos += missing;
}

void Session::Impl::feed(Dir& d, const Segment& seg) {
  if (finished() || d.st == St::kDead) return;
  const uint64_t missing = seg.len > seg.data.size() ? seg.len - seg.data.size() : 0;
  const uint64_t ts = seg.ts_ns;
  // Before the new segment's position and time: a message cut by the loss
  // ended with the previous segment.
  if (seg.gap_before && d.st != St::kProbe) lose_sync(d, true, ts);
  d.seg_begin = seg.data.data();
  d.seg_end = d.pos + seg.data.size() + missing;
  d.last_ts = ts;
  std::string_view p = seg.data;
  bool go = true;
  while (go && !p.empty()) {
    switch (d.st) {
      case St::kProbe: go = p.data() == d.seg_begin && probe(d, p); break;
      case St::kSkip: go = p.data() == d.seg_begin && try_resync(d, p); break;
      case St::kBoundary: go = begin_message(d, p, ts); break;
      case St::kLine: go = step_line(d, p, ts); break;
      case St::kBulk: step_bulk(d, p, ts); break;
      case St::kBulkCrlf: go = step_crlf(d, p, ts); break;
      case St::kInline: go = step_inline(d, p, ts); break;
      case St::kDead: go = false; break;
    }
    if (finished()) return;
  }
  d.pos += seg.data.size();
  if (!missing) return;
  if (go) on_missing(d, missing, ts);
  else d.pos += missing;
}

} // namespace odigos::redis
