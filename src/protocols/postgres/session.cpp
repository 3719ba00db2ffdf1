// Messages → exchanges. Frontend messages that the backend answers are queued
// as Items in order; each backend message answers the oldest one (responses
// come in order, also when pipelined). Exchanges live in a ring in frontend
// order and are emitted once finished, oldest first.
#include "session_impl.hpp"

#include <algorithm>

namespace odigos::pg {

using namespace session_detail;
using wire::be16;
using wire::be32;

namespace {

constexpr size_t npos = std::string_view::npos;
constexpr size_t kMaxOperation = 32;

// The NUL-terminated string at the start of `s` (all of `s` when the NUL is
// missing: a truncated body); `s` moves past it.
std::string_view take_cstr(std::string_view& s, bool* terminated = nullptr) {
  const size_t z = s.find('\0');
  const std::string_view out = s.substr(0, z);
  if (terminated) *terminated = z != npos;
  s.remove_prefix(z == npos ? s.size() : z + 1);
  return out;
}

// First keyword of SQL text, upper-cased; skips blanks, comments and '('.
std::string keyword(std::string_view t) {
  size_t i = 0;
  while (i < t.size()) {
    const char c = t[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(') {
      ++i;
    } else if (c == '-' && i + 1 < t.size() && t[i + 1] == '-') {
      const size_t nl = t.find('\n', i);
      if (nl == npos) return {};
      i = nl + 1;
    } else if (c == '/' && i + 1 < t.size() && t[i + 1] == '*') {
      const size_t end = t.find("*/", i + 2);
      if (end == npos) return {};
      i = end + 2;
    } else {
      break;
    }
  }
  std::string w;
  for (; i < t.size() && w.size() < kMaxOperation; ++i) {
    const char c = t[i];
    if (c >= 'a' && c <= 'z') w += static_cast<char>(c - 'a' + 'A');
    else if ((c >= 'A' && c <= 'Z') || c == '_') w += c;
    else break;
  }
  return w;
}

// Rows in a CommandComplete tag: its last word when numeric ("INSERT 0 5").
int64_t tag_rows(std::string_view tag) {
  const size_t sp = tag.rfind(' ');
  if (sp == npos) return -1;
  const std::string_view n = tag.substr(sp + 1);
  if (n.empty() || n.size() > 18) return -1;
  int64_t v = 0;
  for (char c : n) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

void record_tag(Entry& e, std::string_view tag) {
  e.ex.command_tag.assign(tag);
  if (++e.ex.commands == 1) e.ex.operation.assign(tag.substr(0, std::min<size_t>(tag.find(' '), kMaxOperation)));
  const int64_t n = tag_rows(tag);
  if (n >= 0) e.tag_rows = (e.tag_rows < 0 ? 0 : e.tag_rows) + n;
}

// The first ErrorResponse of an exchange wins.
void record_error(Exchange& ex, std::string_view body, size_t max_message) {
  if (!ex.sqlstate.empty() || !ex.error_message.empty()) return;
  bool have_v = false;
  while (!body.empty() && body[0] != '\0') {
    const char code = body[0];
    body.remove_prefix(1);
    const std::string_view v = take_cstr(body);
    switch (code) {
      case 'S': if (!have_v) ex.severity.assign(v); break;
      case 'V': ex.severity.assign(v); have_v = true; break;
      case 'C': ex.sqlstate.assign(v); break;
      case 'M': ex.error_message.assign(v.substr(0, max_message)); break;
      default: break;
    }
  }
}

// Slots are reused: the previous Exchange was moved out (or never filled), so
// clearing is enough and much cheaper than assigning a fresh Entry. Every
// field of Exchange and Entry must be reset here.
void reset(Entry& e) {
  Exchange& x = e.ex;
  x.kind = Exchange::Kind::kQuery;
  x.text.clear();
  x.text_known = x.text_truncated = false;
  x.statement_name.clear();
  x.command_tag.clear();
  x.operation.clear();
  x.rows = -1;
  x.commands = 0;
  x.portal_suspended = false;
  x.copy = Exchange::Copy::kNone;
  x.function_oid = 0;
  x.sqlstate.clear();
  x.error_message.clear();
  x.severity.clear();
  x.backend_pid = 0;
  x.ssl_accepted = x.truncated = x.complete = false;
  x.first_ts_ns = x.first_response_ts_ns = x.last_ts_ns = 0;
  x.request_bytes = x.response_bytes = 0;
  x.error_type.clear();
  // database, user, application_name: assigned by new_entry.
  e.open_items = 0;
  e.tag_rows = -1;
  e.data_rows = 0;
  e.group_open = e.has_parse = e.has_execute = e.skipped = e.done = false;
  e.emit = true;
}

} // namespace

Session::Impl::Impl(Side s, Limits l) : side(s), lim(l) {
  lim.max_pending = std::max<size_t>(lim.max_pending, 1);
  lim.max_statements = std::max<size_t>(lim.max_statements, 1);
  dirs[0].ingress = false;
  dirs[1].ingress = true;
  if (s != Side::kUnknown) set_side(s);
}

void Session::Impl::set_side(Side s) {
  side = s;
  client_dir().client = true;
  server_dir().client = false;
  for (Dir& d : dirs) d.state = St::kFresh;
}

// Side::kUnknown: a direction carrying a startup packet, or messages only a
// frontend (backend) sends, decides the side.
bool Session::Impl::decide(Dir& d, const Segment& seg) {
  const std::string_view p = seg.data;
  if (p.empty()) return false;
  int role = -1; // 1: frontend, 0: backend
  if (p.size() < 8) { // too little to tell either way
    if (++ambiguous >= kAmbiguousGiveUp) not_postgres();
    return false;
  }
  if (p[0] == 0 || wire::direct_tls(p)) {
    if (p[0] != 0 || looks_like_pg_startup(p)) role = 1;
  } else {
    const wire::Chain c = wire::check_chain(p, true, -1, 4);
    const wire::Chain s = wire::check_chain(p, false, -1, 4);
    const bool cok = !c.bad && (c.good || c.partial);
    const bool sok = !s.bad && (s.good || s.partial);
    if (cok && sok) {
      if (++ambiguous >= kAmbiguousGiveUp) not_postgres();
      return false;
    }
    role = cok ? 1 : sok ? 0 : -1;
  }
  if (role < 0) {
    if (++bad_segments >= kBadGiveUp) not_postgres();
    return false;
  }
  set_side((role == 1) == d.ingress ? Side::kServer : Side::kClient);
  return true;
}

// ---- exchanges -------------------------------------------------------------

uint64_t Session::Impl::new_entry(Exchange::Kind kind, uint64_t ts) {
  if (count >= 4 * lim.max_pending + 8) { // cannot happen with a sane peer
    ++desyncs;
    drop_pending(kDesync);
  }
  if (count == ring.size()) {
    std::vector<Entry> bigger(std::max<size_t>(8, ring.size() * 2));
    for (size_t k = 0; k < count; ++k) bigger[k] = std::move(slot(k));
    ring.swap(bigger);
    ring_head = 0;
  }
  Entry& e = slot(count++);
  reset(e);
  e.ex.kind = kind;
  e.ex.first_ts_ns = e.ex.last_ts_ns = ts;
  e.ex.database = database;
  e.ex.user = user;
  e.ex.application_name = app;
  e.ex.backend_pid = backend_pid;
  return front_seq + count - 1;
}

void Session::Impl::finish(Entry& e, std::string_view error_type, bool complete) {
  e.done = true;
  e.group_open = false;
  if (!error_type.empty() && e.ex.error_type.empty()) e.ex.error_type = error_type;
  e.ex.complete = complete;
  if (e.ex.kind == Exchange::Kind::kExecute && !e.has_execute) {
    // An extended-protocol group without Execute: a prepare, or nothing worth a record.
    if (e.has_parse) e.ex.kind = Exchange::Kind::kPrepare;
    else e.emit = false;
  }
  e.ex.rows = e.tag_rows >= 0 ? e.tag_rows : e.data_rows ? static_cast<int64_t>(e.data_rows) : -1;
  if (e.ex.operation.empty() && e.ex.text_known) e.ex.operation = keyword(e.ex.text);
}

void Session::Impl::maybe_finish(Entry& e) {
  if (e.done || e.group_open || e.open_items) return;
  if (e.skipped && e.ex.sqlstate.empty() && e.ex.error_type.empty()) e.ex.error_type = kSkipped;
  finish(e, {}, e.ex.error_type.empty() || e.ex.error_type == kSkipped);
  try_emit();
}

void Session::Impl::try_emit() {
  while (count && slot(0).done) {
    Entry& e = slot(0);
    if (e.emit) ready.push_back(std::move(e.ex));
    ring_head = (ring_head + 1) & (ring.size() - 1);
    --count;
    ++front_seq;
  }
}

// Everything open ends now with `error_type`.
void Session::Impl::drop_pending(std::string_view error_type) {
  for (size_t k = 0; k < count; ++k) {
    Entry& e = slot(k);
    if (!e.done) finish(e, error_type, false);
  }
  item_head = item_count = 0;
  open_group = last_group = copy_in = startup_seq = kNoSeq;
  server_skipping = false;
  try_emit();
}

// ---- items -----------------------------------------------------------------

void Session::Impl::push_item(It type, uint64_t seq, uint64_t ts) {
  if (item_count >= lim.max_pending) { // a peer that never answers
    ++desyncs;
    drop_pending(kDesync);
  }
  if (item_count == items.size()) {
    std::vector<Item> bigger(std::max<size_t>(16, items.size() * 2));
    for (size_t k = 0; k < item_count; ++k) bigger[k] = item_at(k);
    items.swap(bigger);
    item_head = 0;
  }
  item_at(item_count++) = Item{seq, ts, type};
  if (Entry* e = live(seq)) ++e->open_items;
}

void Session::Impl::pop_item(Pop how) {
  const Item it = items[item_head];
  item_head = (item_head + 1) & (items.size() - 1);
  --item_count;
  Entry* e = live(it.seq);
  if (!e) return;
  if (e->open_items) --e->open_items;
  if (how == Pop::kSkipped) e->skipped = true;
  else if (how == Pop::kDesync && e->ex.error_type.empty()) e->ex.error_type = kDesync;
  maybe_finish(*e);
}

// ---- frontend ----------------------------------------------------------------

void Session::Impl::message(Dir& d, std::string_view body, uint64_t t0, uint64_t t1) {
  cur_lost = d.body_lost;
  d.body_lost = false;
  if (d.type == 0) {
    startup_packet(d, body, t0, t1);
  } else {
    const bool whole = body.size() == d.len - 4;
    if (d.probation) {
      if (whole && wire::check_content(d.type, d.client, body, true, d.client ? -1 : d.ncols) ==
                       wire::Check::kBad) {
        bad_framing(d);
        return;
      }
      --d.probation;
    }
    if (d.client) client_msg(d, body, whole, t0, t1);
    else server_msg(d, body, whole, t0, t1);
  }
  if (verdict == Verdict::kUndecided) verdict = Verdict::kPostgres;
}

void Session::Impl::startup_packet(Dir& d, std::string_view body, uint64_t t0, uint64_t t1) {
  if (body.size() < 4) {
    bad_framing(d);
    return;
  }
  const uint32_t code = be32(body.data());
  body.remove_prefix(4);
  if (code == wire::kSslCode || code == wire::kGssCode) {
    if (d.len != 8) {
      bad_framing(d);
      return;
    }
    const bool ssl = code == wire::kSslCode;
    const uint64_t seq = new_entry(ssl ? Exchange::Kind::kSslRequest : Exchange::Kind::kGssEncRequest, t0);
    live(seq)->emit = false; // only an accepted request is worth a record
    add_request(seq, d.len, t1);
    push_item(ssl ? It::kSsl : It::kGss, seq, t0);
    return; // the next packet is untyped too
  }
  if (code == wire::kCancelCode) {
    if (d.len < 16 || d.len > 12 + wire::kMaxCancelKey) {
      bad_framing(d);
      return;
    }
    const uint64_t seq = new_entry(Exchange::Kind::kCancel, t0);
    Entry& e = *live(seq);
    e.ex.backend_pid = body.size() >= 4 ? be32(body.data()) : 0;
    add_request(seq, d.len, t1);
    finish(e, {}, true);
    try_emit();
    cancel_only = true;
    d.startup_phase = false;
    d.state = St::kDead; // the server answers by closing the connection
    return;
  }
  if ((code >> 16) != 3) {
    bad_framing(d);
    return;
  }
  bool has_db = false;
  while (!body.empty()) {
    const std::string_view name = take_cstr(body);
    if (name.empty()) break;
    const std::string_view value = take_cstr(body);
    if (name == "user") {
      user.assign(value);
    } else if (name == "database") {
      database.assign(value);
      has_db = true;
    } else if (name == "application_name") {
      app.assign(value);
    }
  }
  if (!has_db) database = user; // the server's default
  d.startup_phase = false;
  const uint64_t seq = new_entry(Exchange::Kind::kStartup, t0);
  add_request(seq, d.len, t1);
  startup_seq = seq;
  push_item(It::kStartup, seq, t0);
}

void Session::Impl::set_text(Exchange& ex, std::string_view text, bool truncated) {
  ex.text_known = true;
  ex.text_truncated = truncated || text.size() > lim.max_text_keep;
  ex.text.assign(text.substr(0, lim.max_text_keep));
}

void Session::Impl::add_request(uint64_t seq, uint64_t bytes, uint64_t ts) {
  Entry* e = live(seq);
  if (!e) return;
  e->ex.request_bytes += bytes;
  e->ex.last_ts_ns = std::max(e->ex.last_ts_ns, ts);
  if (cur_lost) e->ex.truncated = true;
}

// The extended-protocol exchange that Parse/Bind/Describe/Close/Execute join.
uint64_t Session::Impl::group(uint64_t ts) {
  if (live(open_group)) return open_group;
  open_group = new_entry(Exchange::Kind::kExecute, ts);
  live(open_group)->group_open = true;
  return open_group;
}

void Session::Impl::close_group() {
  if (open_group == kNoSeq) return;
  Entry* e = live(open_group);
  last_group = open_group;
  open_group = kNoSeq;
  if (!e) return;
  e->group_open = false;
  maybe_finish(*e);
}

void Session::Impl::remember_stmt(std::string_view name, std::string_view text, bool truncated) {
  truncated = truncated || text.size() > lim.max_text_keep;
  text = text.substr(0, lim.max_text_keep);
  if (name.empty()) {
    unnamed_stmt.text.assign(text);
    unnamed_stmt.truncated = truncated;
    unnamed_stmt_known = true;
    return;
  }
  auto it = stmts.find(name);
  if (it == stmts.end()) {
    if (stmts.size() >= lim.max_statements) stmts.erase(stmts.begin());
    it = stmts.emplace(std::string(name), Stmt{}).first;
  }
  it->second.text.assign(text);
  it->second.truncated = truncated;
}

void Session::Impl::bind_portal(std::string_view portal, std::string_view stmt) {
  Portal* pt = nullptr;
  if (portal.empty()) {
    pt = &unnamed_portal;
    unnamed_portal_known = true;
  } else {
    for (Portal& x : portals)
      if (x.name == portal) pt = &x;
    if (!pt) {
      if (portals.size() >= kMaxNamedPortals) portals.erase(portals.begin());
      pt = &portals.emplace_back();
      pt->name.assign(portal);
    }
  }
  pt->stmt.assign(stmt);
  const Stmt* s = nullptr;
  if (stmt.empty()) {
    if (unnamed_stmt_known) s = &unnamed_stmt;
  } else if (auto it = stmts.find(stmt); it != stmts.end()) {
    s = &it->second;
  }
  pt->text_known = s != nullptr;
  pt->truncated = s && s->truncated;
  if (s) pt->text.assign(s->text);
  else pt->text.clear();
}

void Session::Impl::forget(char what, std::string_view name) {
  if (what == 'S') {
    if (name.empty()) unnamed_stmt_known = false;
    else if (auto it = stmts.find(name); it != stmts.end()) stmts.erase(it);
  } else if (what == 'P') {
    if (name.empty()) unnamed_portal_known = false;
    else
      portals.erase(std::remove_if(portals.begin(), portals.end(),
                                   [&](const Portal& x) { return x.name == name; }),
                    portals.end());
  }
}

// A simple Query while the backend's direction lost framing through
// uncaptured bytes: the older simple Queries (never pipelined by libpq) were
// answered in bytes we did not see.
void Session::Impl::abandon_queries() {
  if (!item_count || head()->type != It::kQuery) return;
  const Dir& rs = server_dir();
  if (rs.state != St::kSkip || !rs.soft) return;
  ++desyncs;
  while (item_count && head()->type == It::kQuery) pop_item(Pop::kDesync);
}

void Session::Impl::client_msg(Dir& d, std::string_view body, bool /*whole*/, uint64_t t0, uint64_t t1) {
  const uint64_t bytes = uint64_t(d.len) + 1;
  // Extended-protocol messages that the server discards after an error, up to the next Sync.
  auto queue = [&](It type, uint64_t seq) {
    if (!server_skipping) {
      push_item(type, seq, t0);
    } else if (Entry* e = live(seq)) {
      e->skipped = true;
    }
  };
  switch (d.type) {
    case 'Q': {
      abandon_queries();
      close_group();
      const uint64_t seq = new_entry(Exchange::Kind::kQuery, t0);
      bool terminated_text;
      const std::string_view text = take_cstr(body, &terminated_text);
      set_text(live(seq)->ex, text, !terminated_text);
      add_request(seq, bytes, t1);
      push_item(It::kQuery, seq, t0);
      return;
    }
    case 'P': {
      bool t_name, t_query;
      const std::string_view name = take_cstr(body, &t_name);
      const std::string_view query = take_cstr(body, &t_query);
      if (Entry* g = live(open_group); g && g->has_parse) close_group();
      const uint64_t seq = group(t0);
      Entry& e = *live(seq);
      e.has_parse = true;
      e.ex.statement_name.assign(name);
      set_text(e.ex, query, !t_query);
      if (t_name) remember_stmt(name, query, !t_query);
      add_request(seq, bytes, t1);
      queue(It::kParse, seq);
      return;
    }
    case 'B': {
      const std::string_view portal = take_cstr(body);
      const std::string_view stmt = take_cstr(body);
      // A Parse of another statement before it was a prepare of its own.
      if (Entry* g = live(open_group); g && g->has_parse && g->ex.statement_name != stmt) close_group();
      const uint64_t seq = group(t0);
      bind_portal(portal, stmt);
      add_request(seq, bytes, t1);
      queue(It::kBind, seq);
      return;
    }
    case 'E': {
      const std::string_view portal = take_cstr(body);
      const uint64_t seq = group(t0);
      Entry& e = *live(seq);
      e.has_execute = true;
      // (A copy answer already seen for this group keeps it a copy: bytes out
      // of step, but copy and kind must agree.)
      if (e.ex.kind != Exchange::Kind::kCopy) e.ex.kind = Exchange::Kind::kExecute;
      const Portal* pt = nullptr;
      if (portal.empty()) {
        if (unnamed_portal_known) pt = &unnamed_portal;
      } else {
        for (const Portal& x : portals)
          if (x.name == portal) pt = &x;
      }
      if (pt) { // else: bound before tracing started, or a Parse of this group tells
        e.ex.statement_name = pt->stmt;
        e.ex.text_known = pt->text_known;
        e.ex.text_truncated = pt->truncated;
        e.ex.text = pt->text;
      }
      add_request(seq, bytes, t1);
      queue(It::kExecute, seq);
      close_group();
      return;
    }
    case 'D':
    case 'C': {
      const char what = body.empty() ? 0 : body[0];
      if (!body.empty()) body.remove_prefix(1);
      const std::string_view name = take_cstr(body);
      if (d.type == 'C') forget(what, name);
      const uint64_t seq = group(t0);
      add_request(seq, bytes, t1);
      queue(d.type == 'C' ? It::kClose : It::kDescribe, seq);
      return;
    }
    case 'H':
      add_request(open_group, bytes, t1);
      return;
    case 'S': {
      server_skipping = false;
      if (live(open_group)) {
        add_request(open_group, bytes, t1);
        push_item(It::kSync, open_group, t0);
        close_group();
      } else {
        add_request(last_group, bytes, t1);
        push_item(It::kSync, kNoSeq, t0);
      }
      return;
    }
    case 'F': {
      close_group();
      const uint64_t seq = new_entry(Exchange::Kind::kFunctionCall, t0);
      live(seq)->ex.function_oid = body.size() >= 4 ? be32(body.data()) : 0;
      add_request(seq, bytes, t1);
      push_item(It::kFunc, seq, t0);
      return;
    }
    case 'd':
      add_request(copy_in, bytes, t1);
      return;
    case 'c':
    case 'f':
      add_request(copy_in, bytes, t1);
      copy_in = kNoSeq;
      return;
    case 'p':
      add_request(startup_seq, bytes, t1);
      return;
    case 'X':
      close_group();
      terminated = true;
      d.state = St::kDead;
      return;
    default:
      return;
  }
}

// ---- backend -----------------------------------------------------------------

void Session::Impl::attribute(Entry* e, uint64_t bytes, uint64_t t0, uint64_t t1) {
  if (!e) return;
  e->ex.response_bytes += bytes;
  if (!e->ex.first_response_ts_ns) e->ex.first_response_ts_ns = t0;
  e->ex.last_ts_ns = std::max(e->ex.last_ts_ns, t1);
  if (cur_lost) e->ex.truncated = true;
}

// The oldest message awaiting `type` in the current batch is answered; the
// ones before it were answered in bytes we did not see. Returns it, still
// queued (pop_item(kAnswered) once its entry is updated), or nullptr when
// nothing awaits this answer (then it is ignored).
Session::Impl::Item* Session::Impl::answer(It type, uint64_t bytes, uint64_t t0, uint64_t t1) {
  size_t k = 0;
  for (; k < item_count; ++k) {
    const It t = item_at(k).type;
    if (t == type) break;
    if (ends_batch(t)) return nullptr;
  }
  if (k == item_count) return nullptr;
  if (k) {
    ++desyncs;
    while (k--) pop_item(Pop::kDesync);
  }
  attribute(live(head()->seq), bytes, t0, t1);
  return head();
}

// PostgreSQL 17+ direct SSL: the connection starts with TLS.
void Session::Impl::direct_tls(uint64_t ts, uint64_t len) {
  const uint64_t seq = new_entry(Exchange::Kind::kSslRequest, ts);
  Entry& e = *live(seq);
  e.ex.ssl_accepted = true;
  e.ex.request_bytes = len;
  finish(e, {}, true);
  try_emit();
  verdict = Verdict::kEncrypted;
  for (Dir& d : dirs) d.state = St::kDead;
}

bool Session::Impl::ssl_answer(std::string_view& p, uint64_t ts) {
  const Item& h = items[item_head];
  const char yes = h.type == It::kGss ? 'G' : 'S';
  cur_lost = false;
  Entry* e = live(h.seq);
  if (p[0] == 'N') { // refused: the StartupMessage follows in plaintext
    attribute(e, 1, ts, ts);
    pop_item(Pop::kAnswered);
    p.remove_prefix(1);
    return true;
  }
  if (p[0] != yes) return false; // e.g. ErrorResponse from a server that predates SSL
  if (e) {
    attribute(e, 1, ts, ts);
    e->ex.ssl_accepted = true;
    e->emit = true;
  }
  pop_item(Pop::kAnswered);
  verdict = Verdict::kEncrypted;
  for (Dir& d : dirs) d.state = St::kDead;
  p = {};
  return true;
}

void Session::Impl::server_msg(Dir& d, std::string_view body, bool /*whole*/, uint64_t t0, uint64_t t1) {
  const uint64_t bytes = uint64_t(d.len) + 1;
  const char t = d.type;
  if (t == 'S') { // ParameterStatus: asynchronous, may update the session
    std::string_view b = body;
    const std::string_view name = take_cstr(b);
    if (name == "application_name") app.assign(take_cstr(b));
  } else if (t == 'K' && body.size() >= 4) {
    backend_pid = be32(body.data());
    if (Entry* s = live(startup_seq)) s->ex.backend_pid = backend_pid;
  }
  if (t == 'A') return; // NotificationResponse: asynchronous, nobody's answer
  Item* h = head();
  if (!h) return; // nothing awaits an answer (traced mid-stream, or after loss)
  // A message that began before the oldest awaiting frontend message was sent
  // cannot answer it: it answers one we did not see (lost, or before tracing).
  if (t0 < h->ts) return;
  switch (t) {
    case 'S': case 'N': case 'K': case 'R': case 'v': case 't': case 'V': case 'd': case 'c':
      attribute(live(h->seq), bytes, t0, t1);
      return;
    case 'D': {
      Entry* e = live(h->seq);
      attribute(e, bytes, t0, t1);
      if (e) ++e->data_rows;
      return;
    }
    case 'T':
      if (body.size() >= 2) d.ncols = be16(body.data());
      if (h->type == It::kDescribe) {
        answer(It::kDescribe, bytes, t0, t1);
        pop_item(Pop::kAnswered);
      } else {
        attribute(live(h->seq), bytes, t0, t1);
      }
      return;
    case 'Z': {
      size_t k = 0;
      while (k < item_count && !ends_batch(item_at(k).type)) ++k;
      if (k == item_count) return;
      if (k) {
        ++desyncs;
        while (k--) pop_item(Pop::kDesync);
      }
      attribute(live(head()->seq), bytes, t0, t1);
      pop_item(Pop::kAnswered);
      d.ncols = -1;
      return;
    }
    case 'C': {
      const std::string_view tag = take_cstr(body);
      d.ncols = -1;
      if (h->type == It::kQuery || h->type == It::kFunc) {
        Entry* e = live(h->seq);
        attribute(e, bytes, t0, t1);
        if (e) record_tag(*e, tag);
        if (copy_in == h->seq) copy_in = kNoSeq;
      } else if (Item* it = answer(It::kExecute, bytes, t0, t1)) {
        if (Entry* e = live(it->seq)) record_tag(*e, tag);
        if (copy_in == it->seq) copy_in = kNoSeq;
        pop_item(Pop::kAnswered);
      }
      return;
    }
    case 'I':
      if (h->type == It::kQuery) attribute(live(h->seq), bytes, t0, t1);
      else if (answer(It::kExecute, bytes, t0, t1)) pop_item(Pop::kAnswered);
      return;
    case 's':
      if (Item* it = answer(It::kExecute, bytes, t0, t1)) {
        if (Entry* e = live(it->seq)) e->ex.portal_suspended = true;
        pop_item(Pop::kAnswered);
      }
      return;
    case '1':
    case '2':
    case '3':
    case 'n': {
      const It want = t == '1' ? It::kParse : t == '2' ? It::kBind : t == '3' ? It::kClose : It::kDescribe;
      if (answer(want, bytes, t0, t1)) pop_item(Pop::kAnswered);
      return;
    }
    case 'G':
    case 'H':
    case 'W': {
      Entry* e = live(h->seq);
      if (!e) return;
      // Only a query starts a copy: the answer to a startup, SSLRequest or
      // GSSENCRequest never does (bytes out of step: not this exchange's).
      if (h->type == It::kStartup || h->type == It::kSsl || h->type == It::kGss) {
        ++desyncs;
        return;
      }
      attribute(e, bytes, t0, t1);
      e->ex.kind = Exchange::Kind::kCopy;
      e->ex.copy = t == 'G' ? Exchange::Copy::kIn : t == 'H' ? Exchange::Copy::kOut : Exchange::Copy::kBoth;
      if (t == 'G') copy_in = h->seq;
      if (t == 'W') { // replication streams for hours: the exchange ends here
        finish(*e, {}, true);
        try_emit();
      }
      return;
    }
    case 'E': {
      Entry* e = live(h->seq);
      attribute(e, bytes, t0, t1);
      if (e) record_error(e->ex, body, lim.max_error_keep);
      if (copy_in == h->seq) copy_in = kNoSeq;
      switch (h->type) {
        case It::kStartup:
        case It::kSsl:
        case It::kGss: // connection refused; the server closes it
          if (e) e->emit = true;
          pop_item(Pop::kAnswered);
          return;
        case It::kQuery:
        case It::kFunc:
        case It::kSync: // ReadyForQuery follows
          return;
        default: // the server skips everything up to the next Sync
          pop_item(Pop::kAnswered);
          while (item_count && !ends_batch(head()->type)) pop_item(Pop::kSkipped);
          if (!item_count) server_skipping = true;
          return;
      }
    }
    default:
      return;
  }
}

// ---- connection events -------------------------------------------------------

void Session::Impl::on_eof(Dir& d) {
  if (stopped() || side == Side::kUnknown) return;
  if (!d.client) drop_pending(kClosed); // nothing more will be answered
  d.state = St::kDead;
}

void Session::Impl::on_close(std::string_view error_type) {
  if (closed) return;
  if (!stopped()) drop_pending(error_type);
  closed = true;
  for (Dir& d : dirs) {
    d.state = St::kDead;
    d.buf.clear();
  }
}

// ---- Session -----------------------------------------------------------------

Session::Session(Side side, Limits limits) : impl_(std::make_unique<Impl>(side, limits)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::on_data(bool ingress, const Segment& seg) { impl_->feed(impl_->dirs[ingress], seg); }
void Session::on_eof(bool ingress, uint64_t /*ts_ns*/) { impl_->on_eof(impl_->dirs[ingress]); }
void Session::on_close(uint64_t /*ts_ns*/, std::string_view error_type) { impl_->on_close(error_type); }

std::vector<Exchange> Session::take_exchanges() {
  std::vector<Exchange> out;
  take_exchanges(out);
  return out;
}

void Session::take_exchanges(std::vector<Exchange>& out) {
  out.clear();
  out.swap(impl_->ready);
}

Side Session::side() const { return impl_->side; }
Verdict Session::verdict() const { return impl_->verdict; }
bool Session::done() const {
  return impl_->stopped() || ((impl_->terminated || impl_->cancel_only) && impl_->count == 0);
}
std::string Session::database() const { return impl_->database; }
std::string Session::user() const { return impl_->user; }
std::string Session::application_name() const { return impl_->app; }
uint32_t Session::backend_pid() const { return impl_->backend_pid; }
uint64_t Session::desyncs() const { return impl_->desyncs; }
uint64_t Session::resyncs() const { return impl_->resyncs; }
size_t Session::buffered_bytes() const { return impl_->dirs[0].buf.size() + impl_->dirs[1].buf.size(); }

} // namespace odigos::pg
