// The output model: one decoded exchange (or connection-level event), ready for
// any sink. Attributes use OpenTelemetry semantic-convention names; sinks that
// write JSON expand the dotted names into nested objects.
#pragma once

#include <cstdint>
#include <string>
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
  std::vector<std::pair<std::string, AttrValue>> attrs; // OpenTelemetry names, insertion order

  void set(std::string key, AttrValue v) { attrs.emplace_back(std::move(key), std::move(v)); }
  const AttrValue* get(std::string_view key) const {
    for (auto& [k, v] : attrs)
      if (k == key) return &v;
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
