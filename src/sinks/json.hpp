// The NDJSON record format (schema: docs/schema/record.schema.json).
#pragma once

#include <string>
#include <string_view>

#include "core/record.hpp"

namespace odigos {

constexpr int kSchemaVersion = 1;

// Appends one record as a JSON object (no newline) to `out`. Dotted attribute
// names become nested objects: "http.request.method" → {"http":{"request":
// {"method":...}}}, so jq paths read like the names. Written by hand, not
// through a DOM: this runs once per request on the hot path.
void append_record_json(const Record& r, std::string& out);

// JSON string escaping; invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string_view s, std::string& out);

} // namespace odigos
