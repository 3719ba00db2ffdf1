#include "sinks/json.hpp"

#include <cmath>

#include "core/clock.hpp"

namespace odigos {

static void put_nested(nlohmann::json& root, const std::string& dotted, nlohmann::json value) {
  nlohmann::json* node = &root;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (dot == std::string::npos) {
      (*node)[part] = std::move(value);
      return;
    }
    nlohmann::json& next = (*node)[part];
    if (!next.is_object()) next = nlohmann::json::object(); // a leaf never hides a subtree
    node = &next;
    start = dot + 1;
  }
}

static double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

nlohmann::json record_to_json(const Record& r) {
  nlohmann::json j = nlohmann::json::object();
  j["kind"] = to_string(r.kind);
  j["schema_version"] = kSchemaVersion;
  j["time"] = format_rfc3339_ns(r.start_ns);
  j["time_unix_nano"] = r.start_ns;
  if (r.kind == RecordKind::kLoss) {
    for (auto& [k, v] : r.attrs)
      std::visit([&](auto&& x) { put_nested(j, k, nlohmann::json(x)); }, v);
    return j;
  }
  j["duration_ms"] = round3(r.duration_ms);
  if (r.ttfb_ms >= 0) j["ttfb_ms"] = round3(r.ttfb_ms);
  if (!r.protocol.empty()) j["protocol"] = r.protocol;
  j["side"] = to_string(r.side);
  j["complete"] = r.complete;
  j["process"] = {{"pid", r.pid}, {"command", r.command}};
  j["thread"] = {{"id", r.tid}};
  for (auto& [k, v] : r.attrs)
    std::visit([&](auto&& x) { put_nested(j, k, nlohmann::json(x)); }, v);
  return j;
}

} // namespace odigos
