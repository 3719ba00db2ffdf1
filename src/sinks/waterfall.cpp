// --traces: each finished trace as an indented waterfall. Spans come from the
// linker root first, but a trace may still grow (a late child, a span left
// unlinked in another process): a trace is printed once it has been quiet for
// kQuietNs, and everything still held is printed at the end.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/clock.hpp"
#include "protocols/w3c/trace_context.hpp"
#include "sinks/sink.hpp"

namespace odigos {

namespace {

constexpr uint64_t kQuietNs = 500'000'000;
constexpr size_t kMaxHeldTraces = 10'000;
constexpr int kBarWidth = 32;
constexpr size_t kLabelWidth = 58;

struct Span {
  std::array<uint8_t, 8> id{}, parent{};
  uint64_t start = 0, end = 0;
  std::string label; // "GET /path", "SELECT ..."
  std::string where; // "nginx[473] server"
  bool client = false;
  bool error = false;
  bool incomplete = false;
};

struct Trace {
  std::array<uint8_t, 16> id{};
  std::vector<Span> spans;
  uint64_t last_seen = 0; // monotonic, when the latest span came
  uint64_t first_seen = 0;
};

std::string clip(std::string s, size_t n) {
  for (auto& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (s.size() > n) {
    s.resize(n > 3 ? n - 3 : n);
    s += "...";
  }
  return s;
}

std::string label_of(const Record& r) {
  std::string target = r.get_str("url.path");
  if (target.empty()) target = r.get_str("db.query.text");
  std::string name = r.span_name.empty() ? r.protocol : r.span_name;
  if (r.protocol == "http" && !target.empty()) return name + " " + target;
  if (!target.empty()) return target;
  return name;
}

class WaterfallSink final : public Sink {
 public:
  WaterfallSink(FILE* out, bool color) : out_(out), color_(color) {}
  ~WaterfallSink() override {
    print_ready(true);
    flush_file();
  }

  void write(const Record& r) override {
    if (!ok()) return;
    const uint64_t now = WallClock::monotonic_now_ns();
    if (r.kind == RecordKind::kLoss) {
      line(fmt::format("{}! {} events lost (ring buffer full){}\n", on("\033[1;31m"),
                       r.get_int("odigos.lost_events", 0), off()));
      return;
    }
    if (r.kind != RecordKind::kRequest || !r.span.valid()) return; // notes: see --json
    auto key = w3c::to_hex(r.span.trace_id.data(), r.span.trace_id.size());
    auto [it, fresh] = traces_.try_emplace(key);
    Trace& t = it->second;
    if (fresh) {
      t.id = r.span.trace_id;
      t.first_seen = now;
      order_.push_back(key);
    }
    t.last_seen = now;
    Span s;
    s.id = r.span.span_id;
    s.parent = r.span.parent_span_id;
    s.start = r.start_ns;
    s.end = std::max(r.end_ns(), r.start_ns);
    s.label = clip(label_of(r), 80);
    s.where = fmt::format("{}[{}] {}", r.command, r.pid, to_string(r.side));
    s.client = r.side == RecordSide::kClient;
    s.error = r.status == SpanStatus::kError;
    s.incomplete = !r.complete;
    t.spans.push_back(std::move(s));
    if (traces_.size() > kMaxHeldTraces) print_oldest();
  }

  void flush() override {
    print_ready(false);
    flush_file();
  }

 private:
  const char* on(const char* code) const { return color_ ? code : ""; }
  const char* off() const { return color_ ? "\033[0m" : ""; }

  void line(const std::string& s) {
    if (fwrite(s.data(), 1, s.size(), out_) != s.size()) fail(errno, "writing standard output");
  }
  void flush_file() {
    if (ok() && fflush(out_) != 0) fail(errno, "writing standard output");
  }

  void print_oldest() {
    while (!order_.empty()) {
      auto it = traces_.find(order_.front());
      order_.erase(order_.begin());
      if (it == traces_.end()) continue;
      print(it->second);
      traces_.erase(it);
      return;
    }
  }

  void print_ready(bool all) {
    const uint64_t now = WallClock::monotonic_now_ns();
    size_t keep = 0;
    for (size_t i = 0; i < order_.size(); i++) {
      auto it = traces_.find(order_[i]);
      if (it == traces_.end()) continue;
      if (all || it->second.last_seen + kQuietNs <= now) {
        print(it->second);
        traces_.erase(it);
      } else {
        order_[keep++] = order_[i];
      }
    }
    order_.resize(keep);
  }

  void print(const Trace& t) {
    if (!ok()) return;
    const auto& sp = t.spans;
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (auto& s : sp) {
      t0 = std::min(t0, s.start);
      t1 = std::max(t1, s.end);
    }
    const uint64_t range = std::max<uint64_t>(t1 - t0, 1);
    // Tree: children by parent id, in start order; a span whose parent is
    // not in this trace is a root here (the header's caller, or unlinked).
    std::map<std::array<uint8_t, 8>, size_t> by_id;
    for (size_t i = 0; i < sp.size(); i++) by_id[sp[i].id] = i;
    std::vector<std::vector<size_t>> kids(sp.size());
    std::vector<size_t> roots;
    for (size_t i = 0; i < sp.size(); i++) {
      auto p = by_id.find(sp[i].parent);
      bool has_parent = std::any_of(sp[i].parent.begin(), sp[i].parent.end(), [](uint8_t b) { return b; });
      if (has_parent && p != by_id.end() && p->second != i) kids[p->second].push_back(i);
      else roots.push_back(i);
    }
    auto by_start = [&](size_t a, size_t b) { return sp[a].start < sp[b].start; };
    std::sort(roots.begin(), roots.end(), by_start);
    for (auto& k : kids) std::sort(k.begin(), k.end(), by_start);
    std::string out = fmt::format("{}trace {}{}  {:.3f} ms, {} span{}\n", on("\033[1m"),
                                  w3c::to_hex(t.id.data(), t.id.size()), off(),
                                  double(t1 - t0) / 1e6, sp.size(), sp.size() == 1 ? "" : "s");
    std::vector<bool> seen(sp.size(), false);
    std::vector<std::pair<size_t, int>> stack;
    for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.push_back({*it, 0});
    while (!stack.empty()) {
      auto [i, depth] = stack.back();
      stack.pop_back();
      if (seen[i]) continue; // (ids are unique; guards against a cycle)
      seen[i] = true;
      const Span& s = sp[i];
      std::string left = std::string(2 + 2 * size_t(std::min(depth, 12)), ' ') + s.label;
      std::string where = "  " + s.where;
      if (left.size() + where.size() > kLabelWidth) left = clip(left, kLabelWidth - std::min(where.size(), kLabelWidth / 2));
      left += where;
      if (left.size() < kLabelWidth) left.append(kLabelWidth - left.size(), ' ');
      int from = int(double(s.start - t0) / double(range) * kBarWidth);
      int len = std::max(1, int(double(s.end - s.start) / double(range) * kBarWidth + 0.5));
      from = std::min(from, kBarWidth - 1);
      len = std::min(len, kBarWidth - from);
      std::string bar(size_t(from), ' ');
      for (int k = 0; k < len; k++) bar += "\u2588";
      bar.append(size_t(kBarWidth - from - len), ' ');
      const char* colour = s.error ? "\033[31m" : s.client ? "\033[33m" : "\033[36m";
      out += fmt::format("{} {}|{}|{} {:>10.3f} ms{}\n", left, on(colour), bar, off(),
                         double(s.end - s.start) / 1e6, s.incomplete ? " (incomplete)" : "");
      for (auto k = kids[i].rbegin(); k != kids[i].rend(); ++k) stack.push_back({*k, depth + 1});
    }
    line(out);
  }

  FILE* out_;
  bool color_;
  std::unordered_map<std::string, Trace> traces_;
  std::vector<std::string> order_; // trace ids, first seen first
};

} // namespace

std::unique_ptr<Sink> make_waterfall_sink(FILE* out, bool color) {
  return std::make_unique<WaterfallSink>(out, color);
}

} // namespace odigos
