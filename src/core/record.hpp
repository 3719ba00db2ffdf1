// The output model: one decoded exchange (or connection-level event), ready for
// any sink. Attributes use OpenTelemetry semantic-convention names; sinks that
// write JSON expand the dotted names into nested objects.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace odigos {

using AttrValue = std::variant<std::string, int64_t, double, bool>;

enum class RecordKind { kRequest, kConnection, kLoss };
enum class RecordSide { kServer, kClient, kUnknown };

const char* to_string(RecordKind k);
const char* to_string(RecordSide s);

struct Record {
  RecordKind kind = RecordKind::kRequest;
  uint64_t start_ns = 0;      // wall clock, ns since the epoch
  double duration_ms = 0;     // see docs: latency definitions
  double ttfb_ms = -1;        // time to first response byte; < 0 when unknown
  std::string protocol;       // "http", "http2", ...
  RecordSide side = RecordSide::kUnknown;
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string command;        // process.command (comm)
  bool complete = true;       // false: ended before its response completed
  // Attributes, OpenTelemetry names, in insertion order. A key is a view:
  // set() takes string literals (static storage, no allocation per record);
  // set_dynamic() copies a computed name (headers) into owned_keys.
  struct Attr {
    std::string_view key;
    AttrValue value;
  };
  std::vector<Attr> attrs;
  std::vector<std::unique_ptr<std::string>> owned_keys; // storage of dynamic keys
  bool dynamic_keys() const { return !owned_keys.empty(); }

  Record() = default;
  Record(Record&&) noexcept = default;
  Record& operator=(Record&&) noexcept = default;
  // A copy owns copies of the dynamic keys (views re-pointed at them).
  Record(const Record& o) { *this = o; }
  Record& operator=(const Record& o) {
    if (this == &o) return *this;
    kind = o.kind;
    start_ns = o.start_ns;
    duration_ms = o.duration_ms;
    ttfb_ms = o.ttfb_ms;
    protocol = o.protocol;
    side = o.side;
    pid = o.pid;
    tid = o.tid;
    command = o.command;
    complete = o.complete;
    attrs.clear();
    owned_keys.clear();
    for (auto& a : o.attrs) {
      bool owned = false;
      for (auto& k : o.owned_keys)
        if (a.key.data() == k->data()) owned = true;
      if (owned) set_dynamic(std::string(a.key), a.value);
      else attrs.push_back(a);
    }
    return *this;
  }

  template <size_t N>
  void set(const char (&key)[N], AttrValue v) {
    attrs.push_back(Attr{std::string_view(key, N - 1), std::move(v)});
  }
  void set_dynamic(std::string key, AttrValue v) {
    owned_keys.push_back(std::make_unique<std::string>(std::move(key)));
    attrs.push_back(Attr{*owned_keys.back(), std::move(v)});
  }
  // Back to an empty record; keeps the attribute vector's capacity (a reused
  // record costs no allocation once warm).
  void clear() {
    kind = RecordKind::kRequest;
    start_ns = 0;
    duration_ms = 0;
    ttfb_ms = -1;
    protocol.clear();
    side = RecordSide::kUnknown;
    pid = tid = 0;
    command.clear();
    complete = true;
    attrs.clear();
    owned_keys.clear();
  }
  const AttrValue* get(std::string_view key) const {
    for (auto& a : attrs)
      if (a.key == key) return &a.value;
    return nullptr;
  }
  std::string get_str(std::string_view key) const {
    auto* v = get(key);
    if (v && std::holds_alternative<std::string>(*v)) return std::get<std::string>(*v);
    return {};
  }
  int64_t get_int(std::string_view key, int64_t def = -1) const {
    auto* v = get(key);
    if (v && std::holds_alternative<int64_t>(*v)) return std::get<int64_t>(*v);
    return def;
  }
};

} // namespace odigos
