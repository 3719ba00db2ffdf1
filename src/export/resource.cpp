#include "export/resource.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "core/text.hpp"
#include "export/otlp_json.hpp"
#include "export/otlp_proto.hpp"
#include "loader/go_binary.hpp"

namespace odigos::otlp {

namespace {


// Up to `limit` bytes of a file (procfs files have no size).
std::string read_file(const std::string& path, size_t limit) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[16384];
  while (out.size() < limit) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  if (out.size() > limit) out.resize(limit);
  return out;
}


void put(KeyValues& kvs, std::string_view key, AttrValue v) {
  for (auto& kv : kvs)
    if (kv.key == key) {
      kv.value = std::move(v);
      return;
    }
  kvs.push_back(KeyValue{std::string(key), std::move(v)});
}

} // namespace

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(char(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_key_value_list(std::string_view s,
                                                                                     std::string* error) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string_view member = s.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? s.size() + 1 : comma + 1;
    if (trim_ows(member).empty()) continue;
    size_t eq = member.find('=');
    if (eq == std::string_view::npos) {
      if (error) *error = "'" + std::string(trim_ows(member)) + "' is not key=value";
      return std::nullopt;
    }
    std::string_view key = trim_ows(member.substr(0, eq)), raw = trim_ows(member.substr(eq + 1));
    // Baggage metadata (";prop") is not part of this format.
    if (key.empty()) {
      if (error) *error = "empty key in '" + std::string(trim_ows(member)) + "'";
      return std::nullopt;
    }
    auto k = percent_decode(key);
    auto v = percent_decode(raw);
    if (!k || !v) {
      if (error) *error = "bad percent-encoding in '" + std::string(trim_ows(member)) + "'";
      return std::nullopt;
    }
    out.emplace_back(std::move(*k), std::move(*v));
  }
  return out;
}

const AttrValue* Resource::get(std::string_view key) const {
  for (auto& kv : attrs)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

std::string Resource::service_name() const {
  auto* v = get("service.name");
  return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : std::string();
}

std::string detect_language(const std::string& exe_path, const std::string& open_path) {
  if (exe_path.empty()) return "";
  std::string_view name = basename_of(exe_path);
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  if (starts("python") || starts("pypy")) return "python";
  if (name == "node" || name == "nodejs") return "nodejs";
  if (name == "java") return "java";
  if (starts("ruby")) return "ruby";
  if (starts("php")) return "php";
  if (name == "dotnet") return "dotnet";
  if (name == "beam.smp" || name == "beam") return "erlang";
  // The build info alone (not the whole function table GoBinary::open reads).
  if (GoBinary::minor_version_of(open_path.empty() ? exe_path : open_path) > 0) return "go";
  return "";
}

ProcessFacts read_process_facts(uint32_t pid, std::string_view fallback_comm, const std::string& proc_root) {
  ProcessFacts f;
  f.pid = pid;
  std::string dir = proc_root + "/" + std::to_string(pid);
  char buf[PATH_MAX];
  ssize_t n = readlink((dir + "/exe").c_str(), buf, sizeof buf - 1);
  if (n > 0) {
    f.exe_path.assign(buf, size_t(n));
    const std::string deleted = " (deleted)";
    if (f.exe_path.size() > deleted.size() &&
        f.exe_path.compare(f.exe_path.size() - deleted.size(), deleted.size(), deleted) == 0)
      f.exe_path.resize(f.exe_path.size() - deleted.size());
  }
  f.comm = read_file(dir + "/comm", 64);
  while (!f.comm.empty() && (f.comm.back() == '\n' || f.comm.back() == '\0')) f.comm.pop_back();
  if (f.comm.empty()) f.comm = std::string(fallback_comm);
  // environ: NUL-separated NAME=value; a process may have rewritten it, so it
  // is only what the process started with, at best.
  std::string env = read_file(dir + "/environ", 1 << 20);
  size_t start = 0;
  while (start < env.size()) {
    size_t end = env.find('\0', start);
    if (end == std::string::npos) end = env.size();
    std::string_view e(env.data() + start, end - start);
    auto take = [&](std::string_view name, std::string& out) {
      if (e.size() > name.size() && e.substr(0, name.size()) == name && e[name.size()] == '=')
        out = std::string(e.substr(name.size() + 1));
    };
    take("OTEL_SERVICE_NAME", f.otel_service_name);
    take("OTEL_RESOURCE_ATTRIBUTES", f.otel_resource_attributes);
    start = end + 1;
  }
  return f;
}

KeyValues build_resource(const ProcessFacts& p, const ResourceDefaults& d, std::vector<std::string>* warnings) {
  KeyValues kvs;
  std::string err;
  std::string base_service, proc_service;
  if (!d.base_attributes.empty()) {
    // Parsed once per cache (ResourceCache), else here.
    std::optional<std::vector<std::pair<std::string, std::string>>> parsed;
    const auto* list = d.base_list ? &*d.base_list : nullptr;
    if (!list && d.base_error.empty() && (parsed = parse_key_value_list(d.base_attributes, &err)))
      list = &*parsed;
    if (list) {
      for (auto& [k, v] : *list) {
        if (k == "service.name") base_service = v;
        else put(kvs, k, v);
      }
    } else if (warnings) {
      warnings->push_back("ignoring OTEL_RESOURCE_ATTRIBUTES of odigos-trace: " +
                          (d.base_error.empty() ? err : d.base_error));
    }
  }
  put(kvs, "process.pid", int64_t(p.pid));
  if (!p.exe_path.empty()) {
    put(kvs, "process.executable.path", p.exe_path);
    put(kvs, "process.executable.name", std::string(basename_of(p.exe_path)));
  }
  if (!p.comm.empty()) put(kvs, "process.command", p.comm);
  if (!d.host_name.empty()) put(kvs, "host.name", d.host_name);
  if (!p.otel_resource_attributes.empty()) {
    if (auto list = parse_key_value_list(p.otel_resource_attributes, &err)) {
      for (auto& [k, v] : *list) {
        if (k == "service.name") proc_service = v;
        else if (k.rfind("telemetry.", 0) != 0) put(kvs, k, v);
      }
    } else if (warnings) {
      warnings->push_back("ignoring OTEL_RESOURCE_ATTRIBUTES of process " + std::to_string(p.pid) + ": " + err);
    }
  }
  std::string service = !p.otel_service_name.empty() ? p.otel_service_name
                        : !proc_service.empty()      ? proc_service
                        : !base_service.empty()      ? base_service
                        : !p.exe_path.empty()        ? std::string(basename_of(p.exe_path))
                                                     : p.comm;
  if (service.empty()) service = "unknown_service";
  // service.name first: easier to read in raw output.
  kvs.insert(kvs.begin(), KeyValue{"service.name", service});
  put(kvs, "telemetry.sdk.name", std::string("odigos-trace"));
  put(kvs, "telemetry.sdk.version", std::string(ODIGOS_VERSION));
  if (!p.language.empty()) put(kvs, "telemetry.sdk.language", p.language);
  put(kvs, "telemetry.distro.name", std::string("odigos-trace"));
  put(kvs, "telemetry.distro.version", std::string(ODIGOS_VERSION));
  return kvs;
}

uint64_t resource_capabilities() { return (1ull << CAP_SYS_PTRACE) | (1ull << CAP_DAC_READ_SEARCH); }

void encode_resource(Resource& r) {
  r.json.clear();
  append_resource_json(r.json, r.attrs);
  r.proto.clear();
  append_resource_proto(r.proto, r.attrs);
}

ResourceCache::ResourceCache(ResourceDefaults d, std::string proc_root)
    : defaults_(std::move(d)), proc_root_(std::move(proc_root)) {
  if (!defaults_.base_attributes.empty() && !defaults_.base_list) {
    defaults_.base_list = parse_key_value_list(defaults_.base_attributes, &defaults_.base_error);
    if (!defaults_.base_list && defaults_.base_error.empty()) defaults_.base_error = "invalid";
  }
}

std::shared_ptr<const Resource> ResourceCache::get(uint32_t pid, std::string_view comm) {
  auto it = by_pid_.find(pid);
  if (it != by_pid_.end() && it->second.comm == comm) return it->second.res;
  // Bounded: a host running through many short-lived processes.
  if (by_pid_.size() >= 8192) by_pid_.clear();
  if (language_by_exe_.size() >= 1024) language_by_exe_.clear();
  ProcessFacts f = read_process_facts(pid, comm, proc_root_);
  if (!f.exe_path.empty()) {
    auto lang = language_by_exe_.find(f.exe_path);
    if (lang == language_by_exe_.end())
      lang = language_by_exe_
                 .emplace(f.exe_path, detect_language(f.exe_path, proc_root_ + "/" + std::to_string(pid) + "/exe"))
                 .first;
    f.language = lang->second;
  }
  auto res = std::make_shared<Resource>();
  std::vector<std::string> warnings;
  res->attrs = build_resource(f, defaults_, &warnings);
  encode_resource(*res);
  for (auto& w : warnings)
    if (warned_.insert(w).second) warnings_.push_back(w);
  by_pid_[pid] = Entry{std::string(comm), res};
  return res;
}

std::vector<std::string> ResourceCache::take_warnings() {
  std::vector<std::string> out;
  out.swap(warnings_);
  return out;
}

ResourceDefaults default_resource_settings() {
  ResourceDefaults d;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) d.host_name = host;
  if (const char* e = getenv("OTEL_RESOURCE_ATTRIBUTES")) d.base_attributes = e;
  return d;
}

} // namespace odigos::otlp
