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

// The same in two steps, for a sink that writes into its own buffer without
// zero-filling it first: the layout (valid until the next call) says how many
// bytes the record can take at most; put_record_json writes them at p and
// returns the end.
struct JsonLayout {
  const void* plan;
  size_t bound;
};
JsonLayout layout_record_json(const Record& r);
char* put_record_json(char* p, const Record& r, JsonLayout layout);

// JSON string escaping; invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string_view s, std::string& out);

} // namespace odigos
