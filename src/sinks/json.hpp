// The NDJSON record format (schema: docs/schema/record.schema.json).
#pragma once

#include <nlohmann/json.hpp>

#include "core/record.hpp"

namespace odigos {

constexpr int kSchemaVersion = 1;

// Dotted attribute names become nested objects: "http.request.method" →
// {"http":{"request":{"method":...}}}, so jq paths read like the names.
nlohmann::json record_to_json(const Record& r);

} // namespace odigos
