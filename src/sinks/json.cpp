#include "sinks/json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "core/utf8.hpp"
#include "protocols/w3c/trace_context.hpp"

namespace odigos {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHigh = 0x8080808080808080ull;
inline uint64_t has_zero(uint64_t x) { return (x - kOnes) & ~x & kHigh; }

// Nonzero when one of the eight bytes needs more than a copy: a control
// byte, a byte >= 0x80 (UTF-8 to validate), '"' or '\\'.
inline uint64_t needs_escape(uint64_t w) {
  return ((w - kOnes * 0x20) & ~w & kHigh) | (w & kHigh) | has_zero(w ^ (kOnes * '"')) |
         has_zero(w ^ (kOnes * '\\'));
}

// Bytes copied as they are (printable ASCII but '"' and '\\').
constexpr std::array<bool, 256> make_plain() {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; c++) t[size_t(c)] = c != '"' && c != '\\';
  return t;
}
constexpr std::array<bool, 256> kPlain = make_plain();

// Worst case of put_json_string: every byte as \u00XX, plus the quotes.
constexpr size_t string_bound(size_t n) { return 6 * n + 2; }

// Writes s as a JSON string at p; returns the end. Invalid UTF-8 becomes
// U+FFFD. Plain ASCII goes eight bytes at a time.
char* put_json_string(char* p, std::string_view s) {
  const char* d = s.data();
  const size_t n = s.size();
  *p++ = '"';
  size_t i = 0;
  if (n < 8) { // most values are short (methods, ports' hosts, names): one table check a byte
    while (i < n && kPlain[static_cast<unsigned char>(d[i])]) *p++ = d[i++];
    if (i == n) {
      *p++ = '"';
      return p;
    }
  }
  while (i < n) {
    uint64_t w;
    while (i + 8 <= n) {
      std::memcpy(&w, d + i, 8);
      if (needs_escape(w)) break;
      std::memcpy(p, &w, 8);
      p += 8;
      i += 8;
    }
    if (i >= n) break;
    if (n >= 8 && n - i < 8) {
      // The last eight bytes, overlapping what was written: one check and
      // one copy for the whole tail when it is plain.
      std::memcpy(&w, d + n - 8, 8);
      if (!needs_escape(w)) {
        std::memcpy(p + (n - i) - 8, &w, 8);
        p += n - i;
        break;
      }
    }
    const auto c = static_cast<unsigned char>(d[i]);
    if (kPlain[c]) {
      *p++ = char(c);
      i++;
    } else if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = char(c);
      i++;
    } else if (c < 0x20) {
      *p++ = '\\';
      switch (c) {
      case '\n': *p++ = 'n'; break;
      case '\r': *p++ = 'r'; break;
      case '\t': *p++ = 't'; break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char esc[5] = {'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        std::memcpy(p, esc, 5);
        p += 5;
      }
      }
      i++;
    } else if (size_t len = utf8_seq(s, i)) {
      std::memcpy(p, d + i, len);
      p += len;
      i += len;
    } else {
      std::memcpy(p, "\\ufffd", 6);
      p += 6;
      i++;
    }
  }
  *p++ = '"';
  return p;
}

char* put_uint(char* p, uint64_t v) { return std::to_chars(p, p + 24, v).ptr; }
char* put_int(char* p, int64_t v) { return std::to_chars(p, p + 24, v).ptr; }

// Room for any double put_ms writes (fixed notation of 1.8e308 has 309 digits).
constexpr size_t kDoubleBound = 330;

// Milliseconds with three decimals (µs resolution).
char* put_ms(char* p, double v) {
  if (!std::isfinite(v)) v = 0;
  if (v > -1e12 && v < 1e12) { // integer arithmetic: exact to the µs, and fast
    if (v < 0) {
      *p++ = '-';
      v = -v;
    }
    const uint64_t us = uint64_t(v * 1000 + 0.5);
    p = put_uint(p, us / 1000);
    const unsigned frac = unsigned(us % 1000);
    p[0] = '.';
    p[1] = char('0' + frac / 100);
    p[2] = char('0' + frac / 10 % 10);
    p[3] = char('0' + frac % 10);
    return p + 4;
  }
  return std::to_chars(p, p + kDoubleBound, v, std::chars_format::fixed, 3).ptr;
}

char* put(char* p, std::string_view lit) {
  std::memcpy(p, lit.data(), lit.size());
  return p + lit.size();
}

size_t value_bound(const AttrValue& v) {
  switch (v.index()) {
  case 0: return string_bound(std::get<std::string>(v).size());
  case 2: return kDoubleBound;
  default: return 24;
  }
}

char* put_value(char* p, const AttrValue& v) {
  switch (v.index()) {
  case 0: return put_json_string(p, std::get<std::string>(v));
  case 1: return put_int(p, std::get<int64_t>(v));
  case 2: return put_ms(p, std::get<double>(v));
  default: return put(p, std::get<bool>(v) ? "true" : "false");
  }
}

// Splits "a.b.c" into its segments without allocating.
size_t split(std::string_view key, std::array<std::string_view, 8>& parts) {
  size_t n = 0, start = 0;
  while (n < parts.size()) {
    size_t dot = key.find('.', start);
    if (dot == std::string_view::npos || n == parts.size() - 1) {
      parts[n++] = key.substr(start);
      break;
    }
    parts[n++] = key.substr(start, dot - start);
    start = dot + 1;
  }
  return n;
}

} // namespace

void append_json_string(std::string_view s, std::string& out) {
  const size_t base = out.size();
  out.resize(base + string_bound(s.size()));
  char* end = put_json_string(out.data() + base, s);
  out.resize(size_t(end - out.data()));
}

namespace {

// How one set of attribute names is written: the attributes sorted by name
// (members of one object adjacent), each preceded by the literal text that
// closes and opens objects as the dotted prefixes change. Records of one kind
// carry the same names in the same order, so the plan is computed once per
// name sequence and cached; only the values are written per record.
struct Plan {
  std::vector<std::string_view> keys; // the name sequence this plan is for
  struct Step {
    uint16_t attr;      // index into Record::attrs
    std::string prefix; // ",\"http\":{\"request\":{\"method\":" and the like
  };
  std::vector<Step> steps;
  std::string suffix;      // closing braces
  size_t text_bytes = 0;   // all prefixes and the suffix
};

Plan build_plan(const Record& r) {
  Plan plan;
  plan.keys.reserve(r.attrs.size());
  for (auto& a : r.attrs) plan.keys.push_back(a.key);
  size_t n = std::min<size_t>(r.attrs.size(), 1024);
  std::vector<uint16_t> order(n);
  for (size_t i = 0; i < n; i++) order[i] = uint16_t(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint16_t a, uint16_t b) { return r.attrs[a].key < r.attrs[b].key; });
  std::array<std::string_view, 8> open{}, parts{};
  size_t depth = 0;
  std::string_view prev_leaf_path;
  bool first = false; // the fixed fields precede the attributes
  std::string text;
  for (size_t k = 0; k < n; k++) {
    std::string_view key = r.attrs[order[k]].key;
    if (key == prev_leaf_path) continue; // duplicate name: the first wins
    size_t m = split(key, parts);
    // Common prefix of object path with what is open.
    size_t common = 0;
    while (common < depth && common + 1 < m && open[common] == parts[common]) common++;
    // A leaf whose name is also an object prefix cannot be represented: skip.
    bool conflict = common < depth && common + 1 == m && open[common] == parts[common];
    if (conflict) continue;
    for (; depth > common; depth--) {
      text.push_back('}');
      first = false;
    }
    for (; depth + 1 < m; depth++) {
      if (!first) text.push_back(',');
      append_json_string(parts[depth], text);
      text += ":{";
      open[depth] = parts[depth];
      first = true;
    }
    if (!first) text.push_back(',');
    first = false;
    append_json_string(parts[m - 1], text);
    text.push_back(':');
    plan.steps.push_back(Plan::Step{order[k], std::move(text)});
    text.clear();
    prev_leaf_path = key;
  }
  for (; depth > 0; depth--) text.push_back('}');
  plan.suffix = std::move(text);
  plan.text_bytes = plan.suffix.size();
  for (auto& st : plan.steps) plan.text_bytes += st.prefix.size();
  return plan;
}

// Plans by name sequence. Keys of records without dynamic names are string
// literals, so the sequence of their addresses identifies the names.
class PlanCache {
 public:
  const Plan* find_or_build(const Record& r, Plan& scratch) {
    if (r.dynamic_keys()) { // header names vary per record: not worth caching
      scratch = build_plan(r);
      return &scratch;
    }
    // Consecutive records mostly share their names (one protocol, one side).
    if (last_ && same_keys(*last_, r)) return last_;
    uint64_t h = 1469598103934665603ull;
    for (auto& a : r.attrs) {
      h ^= reinterpret_cast<uintptr_t>(a.key.data()) ^ (a.key.size() << 48);
      h *= 1099511628211ull;
    }
    auto it = plans_.find(h);
    if (it != plans_.end()) {
      if (same_keys(it->second, r)) return last_ = &it->second;
      scratch = build_plan(r); // hash collision: keep the cached plan, use this one once
      return &scratch;
    }
    if (plans_.size() >= kMaxPlans) plans_.clear();
    return last_ = &plans_.emplace(h, build_plan(r)).first->second; // nodes: stable addresses
  }

 private:
  static bool same_keys(const Plan& p, const Record& r) {
    if (p.keys.size() != r.attrs.size()) return false;
    for (size_t i = 0; i < p.keys.size(); i++)
      if (p.keys[i].data() != r.attrs[i].key.data() || p.keys[i].size() != r.attrs[i].key.size())
        return false;
    return true;
  }
  static constexpr size_t kMaxPlans = 512;
  std::unordered_map<uint64_t, Plan> plans_;
  const Plan* last_ = nullptr; // the plan found last (in plans_, cleared with it)
};

} // namespace

JsonLayout layout_record_json(const Record& r) {
  thread_local PlanCache cache;
  thread_local Plan scratch;
  const Plan* plan = cache.find_or_build(r, scratch);
  size_t bound = 768 + string_bound(r.protocol.size()) + string_bound(r.command.size()) +
                 3 * kDoubleBound + plan->text_bytes + string_bound(r.span_name.size()) +
                 string_bound(r.trace_state.size());
  for (auto& step : plan->steps) bound += value_bound(r.attrs[step.attr].value);
  return JsonLayout{plan, bound};
}

char* put_record_json(char* p, const Record& r, JsonLayout layout) {
  const Plan* plan = static_cast<const Plan*>(layout.plan);
  p = put(p, "{\"kind\":\"");
  p = put(p, to_string(r.kind));
  p = put(p, "\",\"schema_version\":");
  p = put_int(p, kSchemaVersion);
  p = put(p, ",\"time\":\"");
  p = put_rfc3339_ns(p, r.start_ns);
  p = put(p, "\",\"time_unix_nano\":");
  p = put_uint(p, r.start_ns);
  if (r.kind != RecordKind::kLoss) {
    p = put(p, ",\"duration_ms\":");
    p = put_ms(p, r.duration_ms);
    if (r.ttfb_ms >= 0) {
      p = put(p, ",\"ttfb_ms\":");
      p = put_ms(p, r.ttfb_ms);
    }
    if (!r.protocol.empty()) {
      p = put(p, ",\"protocol\":");
      p = put_json_string(p, r.protocol);
    }
    p = put(p, ",\"side\":\"");
    p = put(p, to_string(r.side));
    p = put(p, r.complete ? "\",\"complete\":true" : "\",\"complete\":false");
    p = put(p, ",\"process\":{\"pid\":");
    p = put_uint(p, r.pid);
    p = put(p, ",\"command\":");
    p = put_json_string(p, r.command);
    p = put(p, "},\"thread\":{\"id\":");
    p = put_uint(p, r.tid);
    *p++ = '}';
  }
  if (r.span.valid()) {
    p = put(p, ",\"trace_id\":\"");
    p = w3c::put_hex(p, r.span.trace_id.data(), r.span.trace_id.size());
    p = put(p, "\",\"span_id\":\"");
    p = w3c::put_hex(p, r.span.span_id.data(), r.span.span_id.size());
    if (r.span.has_parent()) {
      p = put(p, "\",\"parent_span_id\":\"");
      p = w3c::put_hex(p, r.span.parent_span_id.data(), r.span.parent_span_id.size());
    }
    p = put(p, "\",\"span_name\":");
    p = put_json_string(p, r.span_name);
    if (r.status == SpanStatus::kError) p = put(p, ",\"span_status\":\"error\"");
    if (!r.trace_state.empty()) {
      p = put(p, ",\"trace_state\":");
      p = put_json_string(p, r.trace_state);
    }
  }
  for (auto& step : plan->steps) {
    p = put(p, step.prefix);
    p = put_value(p, r.attrs[step.attr].value);
  }
  p = put(p, plan->suffix);
  *p++ = '}';
  return p;
}

void append_record_json(const Record& r, std::string& out) {
  JsonLayout layout = layout_record_json(r);
  const size_t base = out.size();
  out.resize(base + layout.bound);
  char* end = put_record_json(out.data() + base, r, layout);
  out.resize(size_t(end - out.data()));
}

} // namespace odigos
