// OpenTelemetry resources of traced processes: who emitted a span (service.name,
// process.*, host.name, telemetry.*), read once per process from /proc at its
// first span and cached (the process may be gone when its spans are exported).
//
// Precedence, lowest first:
//   1. the tracer's own OTEL_RESOURCE_ATTRIBUTES (a base for every process);
//   2. what is detected: process.pid, process.executable.{path,name},
//      process.command, host.name;
//   3. the traced process's OTEL_RESOURCE_ATTRIBUTES (/proc/PID/environ);
//   4. telemetry.sdk.{name,version,language} and telemetry.distro.{name,version}
//      are always odigos-trace's own: they say what produced the data.
// service.name: the process's OTEL_SERVICE_NAME, else service.name in its
// OTEL_RESOURCE_ATTRIBUTES, else service.name in the tracer's, else the
// executable's base name, else the command name (comm). An explicit setting beats
// a guess, so the tracer's own setting beats the executable's name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/record.hpp"

namespace odigos::otlp {

struct KeyValue {
  std::string key;
  AttrValue value;
};
using KeyValues = std::vector<KeyValue>;

// The OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS format: a W3C
// baggage-like list "key1=value1,key2=value2" (optional whitespace around keys
// and values, empty list members ignored), values percent-decoded. Per the
// OpenTelemetry specification a malformed value is discarded as a whole:
// nullopt, and *error says why.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_key_value_list(std::string_view s,
                                                                                     std::string* error);
// "%41b" -> "Ab"; nullopt on a '%' not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view s);

// A resource and its two encodings, computed once.
struct Resource {
  KeyValues attrs;
  std::string json;  // OTLP/JSON Resource object: {"attributes":[...]}
  std::string proto; // protobuf Resource message (without tag and length)
  std::string service_name() const;
  const AttrValue* get(std::string_view key) const;
};

// What the resource is made of, read from /proc (read_process_facts) or given
// by a test.
struct ProcessFacts {
  uint32_t pid = 0;
  std::string exe_path;   // /proc/PID/exe ("" when unreadable)
  std::string comm;       // /proc/PID/comm, else the record's command
  std::string otel_service_name;        // the process's OTEL_SERVICE_NAME
  std::string otel_resource_attributes; // the process's OTEL_RESOURCE_ATTRIBUTES
  std::string language;   // telemetry.sdk.language, "" when unknown
};

struct ResourceDefaults {
  std::string host_name;
  std::string base_attributes; // the tracer's own OTEL_RESOURCE_ATTRIBUTES
  // base_attributes parsed (ResourceCache does it once), or why they do not parse.
  std::optional<std::vector<std::pair<std::string, std::string>>> base_list;
  std::string base_error;
};

// telemetry.sdk.language from the executable: "go" for Go binaries (build info),
// "python", "nodejs", "java", "ruby", "php", "dotnet", "erlang" by the
// interpreter's name; "" otherwise (C, C++, Rust... are not told apart).
// open_path: where to read the file (/proc/PID/exe: works across mount
// namespaces); exe_path by default.
std::string detect_language(const std::string& exe_path, const std::string& open_path = "");

ProcessFacts read_process_facts(uint32_t pid, std::string_view fallback_comm, const std::string& proc_root = "/proc");

// The resource's attributes (see the precedence above). Malformed
// OTEL_RESOURCE_ATTRIBUTES values are ignored with a warning appended.
KeyValues build_resource(const ProcessFacts& p, const ResourceDefaults& d, std::vector<std::string>* warnings);

// Resources by PID, built at a process's first span. A PID whose command name
// changed (exec, or PID reuse) is read again.
class ResourceCache {
 public:
  explicit ResourceCache(ResourceDefaults d, std::string proc_root = "/proc");
  std::shared_ptr<const Resource> get(uint32_t pid, std::string_view comm);
  // Warnings (malformed OTEL_RESOURCE_ATTRIBUTES), once each; cleared.
  std::vector<std::string> take_warnings();
  size_t size() const { return by_pid_.size(); }

 private:
  struct Entry {
    std::string comm;
    std::shared_ptr<const Resource> res;
  };
  ResourceDefaults defaults_;
  std::string proc_root_;
  std::map<uint32_t, Entry> by_pid_;
  std::map<std::string, std::string> language_by_exe_;
  std::vector<std::string> warnings_;
  std::set<std::string> warned_; // every warning ever queued: each is said once
};

// The tracer's defaults: gethostname() and its own OTEL_RESOURCE_ATTRIBUTES.
ResourceDefaults default_resource_settings();

// Capabilities reading another process's /proc/PID/exe and environ needs once
// odigos-trace has dropped the others (a root process's, too: the kernel
// wants the reader's capabilities to cover the target's, or CAP_SYS_PTRACE):
// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, as a capability bit mask.
uint64_t resource_capabilities();

// Fills r.json and r.proto from r.attrs.
void encode_resource(Resource& r);

} // namespace odigos::otlp
