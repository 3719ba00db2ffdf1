// The output model: one decoded exchange (or connection-level event), ready for
// any sink. Attributes use OpenTelemetry semantic-convention names; sinks that
// write JSON expand the dotted names into nested objects.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace odigos {

using AttrValue = std::variant<std::string, int64_t, double, bool>;

enum class RecordKind { kRequest, kConnection, kLoss };
enum class RecordSide { kServer, kClient, kUnknown };

const char* to_string(RecordKind k);
const char* to_string(RecordSide s);

// OpenTelemetry span status (the OTLP enum's values).
enum class SpanStatus : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

// A request record is also a span. Its identity is given by the trace linker
// (src/trace/) before any sink sees the record; an all-zero trace_id means
// "not a span" (connection notes, loss records).
struct SpanIds {
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> span_id{};
  std::array<uint8_t, 8> parent_span_id{}; // all zero: a root, or a span left unlinked
  bool valid() const {
    for (auto b : trace_id)
      if (b) return true;
    return false;
  }
  bool has_parent() const {
    for (auto b : parent_span_id)
      if (b) return true;
    return false;
  }
};

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
  // Span (see SpanIds): ids, OpenTelemetry span name and status, and the W3C
  // tracestate that came with a traceparent header.
  SpanIds span;
  std::string span_name;
  SpanStatus status = SpanStatus::kUnset;
  std::string trace_state;
  bool span_from_header = false; // a valid W3C traceparent set trace_id (and parent or own id)
  // What the linker matches on (not written by sinks): the connection's
  // socket cookie, the execution context that sent the request (client) or
  // read it (server) — a thread id, or a goroutine (g address) in Go
  // programs — and the exchange's start and end on the kernel clock.
  uint64_t conn_cookie = 0;
  uint64_t exec_ctx = 0;
  uint64_t start_mono_ns = 0;
  uint64_t end_mono_ns = 0;
  // Attributes, OpenTelemetry names, in insertion order. A key is a view:
  // set() takes string literals (static storage, no allocation per record);
  // set_dynamic() copies a computed name (headers) into owned_keys.
  struct Attr {
    std::string_view key;
    AttrValue value;
    Attr(std::string_view k, AttrValue v) : key(k), value(std::move(v)) {}
    // A string value built in place from what makes a std::string.
    template <class S>
    Attr(std::string_view k, std::in_place_index_t<0>, S&& s)
        : key(k), value(std::in_place_index<0>, std::forward<S>(s)) {}
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
    span = o.span;
    span_name = o.span_name;
    status = o.status;
    trace_state = o.trace_state;
    span_from_header = o.span_from_header;
    conn_cookie = o.conn_cookie;
    exec_ctx = o.exec_ctx;
    start_mono_ns = o.start_mono_ns;
    end_mono_ns = o.end_mono_ns;
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

  // Values are built in the attribute vector: a string from a view, a literal
  // or a std::string without a temporary AttrValue (a record sets ~20).
  template <size_t N, class T>
  void set(const char (&key)[N], T&& v) {
    using D = std::remove_cv_t<std::remove_reference_t<T>>;
    const std::string_view k(key, N - 1);
    if constexpr (!std::is_same_v<D, AttrValue> && !std::is_same_v<D, bool> &&
                  std::is_convertible_v<T&&, std::string_view>)
      attrs.emplace_back(k, std::in_place_index<0>, std::forward<T>(v));
    else
      attrs.emplace_back(k, AttrValue(std::forward<T>(v)));
  }
  void set_dynamic(std::string key, AttrValue v) {
    owned_keys.push_back(std::make_unique<std::string>(std::move(key)));
    attrs.emplace_back(*owned_keys.back(), std::move(v));
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
    span = SpanIds{};
    span_name.clear();
    status = SpanStatus::kUnset;
    trace_state.clear();
    span_from_header = false;
    conn_cookie = exec_ctx = start_mono_ns = end_mono_ns = 0;
    attrs.clear();
    owned_keys.clear();
  }
  // Wall-clock end: exact from the kernel times when known.
  uint64_t end_ns() const {
    if (end_mono_ns >= start_mono_ns && start_mono_ns) return start_ns + (end_mono_ns - start_mono_ns);
    return start_ns + uint64_t(duration_ms * 1e6 + 0.5);
  }
  const AttrValue* get(std::string_view key) const {
    for (auto& a : attrs)
      if (a.key == key) return &a.value;
    return nullptr;
  }
  // A string attribute without a copy; empty when absent or not a string.
  std::string_view get_view(std::string_view key) const {
    auto* v = get(key);
    if (v && std::holds_alternative<std::string>(*v)) return std::get<std::string>(*v);
    return {};
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
