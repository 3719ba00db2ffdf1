#include "export/otlp_http.hpp"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "export/otlp_json.hpp"
#include "export/otlp_proto.hpp"

namespace odigos::otlp {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = char(tolower(uint8_t(c)));
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isspace(uint8_t(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(uint8_t(s.back()))) s.remove_suffix(1);
  return s;
}

// The path part of an http(s) URL ("" when none); nullopt when not http(s).
std::optional<std::string> url_path(const std::string& url) {
  std::string l = lower(url.substr(0, 8));
  size_t start;
  if (l.rfind("http://", 0) == 0) start = 7;
  else if (l.rfind("https://", 0) == 0) start = 8;
  else return std::nullopt;
  size_t slash = url.find('/', start);
  if (slash == start) return std::nullopt; // no host
  return slash == std::string::npos ? std::string() : url.substr(slash);
}

} // namespace

std::string endpoint_path(const std::string& url) {
  std::string p = url_path(url).value_or("");
  if (size_t q = p.find('?'); q != std::string::npos) p.resize(q);
  return p.empty() ? "/" : p;
}

std::string HttpConfig::describe() const {
  return fmt::format("{} ({}{})", endpoint, json ? "http/json" : "http/protobuf", gzip ? ", gzip" : "");
}

GetEnv process_env() {
  return [](const char* name) { return static_cast<const char*>(getenv(name)); };
}

bool export_requested(const std::string& flag_endpoint, const GetEnv& env) {
  if (!flag_endpoint.empty()) return true;
  for (auto name : {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}) {
    const char* v = env(name);
    if (v && *v) return true;
  }
  return false;
}

bool resolve_http_config(const std::string& flag_endpoint, const GetEnv& env, HttpConfig* out, std::string* error) {
  HttpConfig c;
  // The signal-specific variable wins over the generic one; `name` says which
  // was used (for messages).
  auto pick = [&](const char* suffix, std::string* name) -> std::optional<std::string> {
    for (auto prefix : {"OTEL_EXPORTER_OTLP_TRACES_", "OTEL_EXPORTER_OTLP_"}) {
      std::string n = std::string(prefix) + suffix;
      const char* v = env(n.c_str());
      if (v && *v) {
        *name = n;
        return std::string(trim(v));
      }
    }
    return std::nullopt;
  };
  std::string name;
  if (!flag_endpoint.empty()) {
    auto path = url_path(flag_endpoint);
    if (!path) {
      *error = "--otlp-endpoint: '" + flag_endpoint + "' is not an http:// or https:// URL";
      return false;
    }
    c.endpoint = flag_endpoint;
    if (path->empty() || *path == "/") {
      while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
      c.endpoint += "/v1/traces";
    }
  } else if (const char* t = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); t && *t) {
    c.endpoint = std::string(trim(t));
    if (!url_path(c.endpoint)) {
      *error = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '" + c.endpoint + "' is not an http:// or https:// URL";
      return false;
    }
  } else if (const char* g = env("OTEL_EXPORTER_OTLP_ENDPOINT"); g && *g) {
    std::string base(trim(g));
    if (!url_path(base)) {
      *error = "OTEL_EXPORTER_OTLP_ENDPOINT: '" + base + "' is not an http:// or https:// URL";
      return false;
    }
    while (!base.empty() && base.back() == '/') base.pop_back();
    c.endpoint = base + "/v1/traces";
  } else {
    c.endpoint = "http://localhost:4318/v1/traces";
  }
  if (auto p = pick("PROTOCOL", &name)) {
    if (*p == "http/protobuf") c.json = false;
    else if (*p == "http/json") c.json = true;
    else if (*p == "grpc") {
      *error = name + "=grpc is not supported: odigos-trace exports OTLP over HTTP (http/protobuf or "
                      "http/json, usually port 4318)";
      return false;
    } else {
      *error = name + ": unknown protocol '" + *p + "' (http/protobuf or http/json)";
      return false;
    }
  }
  if (auto h = pick("HEADERS", &name)) {
    std::string err;
    auto list = parse_key_value_list(*h, &err);
    if (!list) {
      *error = name + ": " + err;
      return false;
    }
    for (auto& [k, v] : *list) {
      if (k.find_first_of("\r\n:") != std::string::npos || v.find_first_of("\r\n") != std::string::npos) {
        *error = name + ": header '" + k + "' has a forbidden character";
        return false;
      }
    }
    c.headers = std::move(*list);
  }
  if (auto t = pick("TIMEOUT", &name)) {
    bool digits = !t->empty() && t->size() <= 9 && t->find_first_not_of("0123456789") == std::string::npos;
    unsigned long ms = digits ? strtoul(t->c_str(), nullptr, 10) : 0;
    if (!digits || ms == 0) {
      *error = name + ": '" + *t + "' is not a timeout in milliseconds";
      return false;
    }
    c.timeout_ms = uint32_t(ms);
  }
  if (auto z = pick("COMPRESSION", &name)) {
    std::string v = lower(*z);
    if (v == "gzip") c.gzip = true;
    else if (v == "none") c.gzip = false;
    else {
      *error = name + ": unknown compression '" + *z + "' (gzip or none)";
      return false;
    }
  }
  *out = std::move(c);
  return true;
}

std::optional<uint64_t> parse_retry_after(std::string_view v, time_t now) {
  v = trim(v);
  if (v.empty()) return std::nullopt;
  if (v.find_first_not_of("0123456789") == std::string_view::npos) {
    if (v.size() > 9) return uint64_t(999999999) * 1000;
    return uint64_t(strtoull(std::string(v).c_str(), nullptr, 10)) * 1000;
  }
  std::string s(v);
  for (const char* f : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    struct tm tm{};
    const char* end = strptime(s.c_str(), f, &tm);
    if (!end || *end) continue;
    time_t t = timegm(&tm);
    if (t == time_t(-1)) continue;
    return t <= now ? 0 : uint64_t(t - now) * 1000;
  }
  return std::nullopt;
}

uint64_t backoff_ms(const HttpConfig& c, uint32_t retry, double unit) {
  uint64_t b = c.initial_backoff_ms;
  for (uint32_t i = 1; i < retry && b < c.max_backoff_ms; i++) b *= 2;
  b = std::min<uint64_t>(b, c.max_backoff_ms);
  unit = std::clamp(unit, 0.0, 0.999999);
  return uint64_t(double(b) * (0.5 + 0.5 * unit));
}

Decision decide(const HttpConfig& c, const HttpResponse& r, uint32_t attempt, uint64_t elapsed_ms,
                uint64_t remaining_ms, time_t now, double unit) {
  Decision d;
  if (r.status >= 200 && r.status < 300) return d;
  std::string what;
  if (r.status == 0) {
    what = r.error.empty() ? "no response" : r.error;
  } else {
    std::string line = r.body.substr(0, r.body.find_first_of("\r\n"));
    line = std::string(trim(line));
    if (line.size() > 200) line = line.substr(0, 200) + "...";
    what = line.empty() ? fmt::format("HTTP {}", r.status) : fmt::format("HTTP {}: {}", r.status, line);
  }
  const bool retryable = r.status == 0 || r.status == 429 || r.status == 502 || r.status == 503 || r.status == 504;
  d.kind = Decision::kFail;
  if (!retryable) {
    d.reason = what;
    return d;
  }
  if (attempt >= c.max_attempts) {
    d.reason = fmt::format("{} (after {} attempts)", what, attempt);
    return d;
  }
  uint64_t delay = backoff_ms(c, attempt, unit);
  if (r.status != 0 && !r.retry_after.empty())
    if (auto ra = parse_retry_after(r.retry_after, now)) delay = *ra;
  if (elapsed_ms + delay > c.max_elapsed_ms) {
    d.reason = fmt::format("{} (retry in {:.1f} s would exceed {:.0f} s)", what, double(delay) / 1000,
                           double(c.max_elapsed_ms) / 1000);
    return d;
  }
  if (delay >= remaining_ms) {
    d.reason = fmt::format("{} (not retried before exit)", what);
    return d;
  }
  d.kind = Decision::kRetry;
  d.delay_ms = delay;
  return d;
}

std::string gzip(std::string_view data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&zs, uLong(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = uInt(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t n = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return {};
  out.resize(n);
  return out;
}

// ---- libcurl transport --------------------------------------------------------

namespace {

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(const HttpConfig& c) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    h_ = curl_easy_init();
    hdrs_ = curl_slist_append(hdrs_, c.json ? "Content-Type: application/json" : "Content-Type: application/x-protobuf");
    if (c.gzip) hdrs_ = curl_slist_append(hdrs_, "Content-Encoding: gzip");
    hdrs_ = curl_slist_append(hdrs_, "Expect:"); // no 100-continue round trip
    for (auto& [k, v] : c.headers) hdrs_ = curl_slist_append(hdrs_, (k + ": " + v).c_str());
    if (!h_) return;
    curl_easy_setopt(h_, CURLOPT_URL, c.endpoint.c_str());
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, hdrs_);
    curl_easy_setopt(h_, CURLOPT_USERAGENT, "odigos-trace/" ODIGOS_VERSION);
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_POST, 1L);
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, &CurlTransport::on_body);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h_, CURLOPT_HEADERFUNCTION, &CurlTransport::on_header);
    curl_easy_setopt(h_, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, errbuf_);
  }
  ~CurlTransport() override {
    if (h_) curl_easy_cleanup(h_);
    curl_slist_free_all(hdrs_);
  }
  HttpResponse post(const std::string& body, uint32_t timeout_ms) override {
    resp_ = HttpResponse{};
    if (!h_) {
      resp_.error = "libcurl could not be initialised";
      return resp_;
    }
    errbuf_[0] = 0;
    curl_easy_setopt(h_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.size()));
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, long(std::max<uint32_t>(timeout_ms, 1)));
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, long(std::max<uint32_t>(timeout_ms, 1)));
    CURLcode rc = curl_easy_perform(h_);
    long port = 0;
    if (curl_easy_getinfo(h_, CURLINFO_LOCAL_PORT, &port) == CURLE_OK) port_ = uint16_t(port);
    if (rc != CURLE_OK) {
      resp_.status = 0;
      resp_.error = errbuf_[0] ? std::string(errbuf_) : curl_easy_strerror(rc);
      return resp_;
    }
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &resp_.status);
    return resp_;
  }
  uint16_t local_port() const override { return port_; }

 private:
  static size_t on_body(char* p, size_t size, size_t n, void* self) {
    auto* t = static_cast<CurlTransport*>(self);
    size_t len = size * n;
    if (t->resp_.body.size() < 4096) t->resp_.body.append(p, std::min(len, 4096 - t->resp_.body.size()));
    return len;
  }
  static size_t on_header(char* p, size_t size, size_t n, void* self) {
    auto* t = static_cast<CurlTransport*>(self);
    size_t len = size * n;
    std::string_view line(p, len);
    constexpr std::string_view name = "retry-after:";
    if (line.size() > name.size() && lower(std::string(line.substr(0, name.size()))) == name)
      t->resp_.retry_after = std::string(trim(line.substr(name.size())));
    return len;
  }
  CURL* h_ = nullptr;
  curl_slist* hdrs_ = nullptr;
  char errbuf_[CURL_ERROR_SIZE] = {};
  HttpResponse resp_;
  uint16_t port_ = 0;
};

} // namespace

std::unique_ptr<Transport> make_curl_transport(const HttpConfig& c) { return std::make_unique<CurlTransport>(c); }

// ---- the exporter ------------------------------------------------------------

Exporter::Exporter(HttpConfig c, std::unique_ptr<Transport> t) : cfg_(std::move(c)), transport_(std::move(t)) {
  queue_.reserve(cfg_.max_queue);
  rng_ ^= uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  thread_ = std::thread([this] { run(); });
}

Exporter::~Exporter() { shutdown(cfg_.timeout_ms); }

uint64_t Exporter::now_ms() const {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

bool Exporter::enqueue(std::shared_ptr<const Resource> res, std::string& span) {
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (queue_.size() >= cfg_.max_queue || stopping_) {
      dropped_queue_.fetch_add(1, std::memory_order_relaxed);
      span.clear(); // the caller's next buffer
      return false;
    }
    queue_.push_back(Item{std::move(res), std::move(span)});
    queued_.store(queue_.size(), std::memory_order_relaxed);
    wake = queue_.size() == cfg_.max_batch;
    if (!pool_.empty()) {
      span = std::move(pool_.back());
      pool_.pop_back();
    } else {
      span = std::string();
    }
  }
  if (wake) cv_.notify_one();
  return true;
}

void Exporter::fail(uint64_t n, const std::string& reason) {
  failed_.fetch_add(n);
  std::lock_guard lk(mu_);
  failed_reason_ = reason;
}

bool Exporter::own_port(uint16_t port) const {
  if (!port) return false;
  for (auto& p : own_ports_)
    if (p.load(std::memory_order_relaxed) == port) return true;
  return false;
}

void Exporter::run() {
  std::vector<Item> batch;
  batch.reserve(cfg_.max_batch);
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait_for(lk, std::chrono::milliseconds(cfg_.batch_delay_ms),
                 [&] { return stopping_ || queue_.size() >= cfg_.max_batch; });
    if (queue_.empty()) {
      if (stopping_) break;
      continue;
    }
    if (stopping_ && now_ms() >= deadline_ms_) break;
    if (queue_.size() <= cfg_.max_batch) {
      batch.swap(queue_); // the common case: no copy, no erase under the lock
    } else {
      size_t n = cfg_.max_batch;
      std::move(queue_.begin(), queue_.begin() + long(n), std::back_inserter(batch));
      queue_.erase(queue_.begin(), queue_.begin() + long(n));
    }
    queued_.store(queue_.size(), std::memory_order_relaxed);
    lk.unlock(); // no lock held during encoding and I/O
    send_batch(batch);
    lk.lock();
    for (auto& it : batch) {
      it.res.reset();
      if (pool_.size() < cfg_.max_queue && it.span.capacity() <= 65536) {
        it.span.clear();
        pool_.push_back(std::move(it.span));
      }
    }
    batch.clear();
  }
}

void Exporter::send_batch(std::vector<Item>& batch) {
  // Group by resource, keeping the order of first appearance.
  std::vector<std::pair<const Resource*, std::string>> groups;
  for (auto& it : batch) {
    auto g = std::find_if(groups.begin(), groups.end(), [&](auto& x) { return x.first == it.res.get(); });
    if (g == groups.end()) {
      groups.emplace_back(it.res.get(), std::string());
      g = groups.end() - 1;
    } else if (cfg_.json) {
      g->second.push_back(',');
    }
    g->second += it.span;
  }
  std::string body;
  if (cfg_.json) {
    std::vector<JsonGroup> jg;
    for (auto& [res, spans] : groups) jg.push_back(JsonGroup{res, spans});
    append_traces_json(body, jg);
  } else {
    std::vector<ProtoGroup> pg;
    for (auto& [res, spans] : groups) pg.push_back(ProtoGroup{res, spans});
    append_export_request_proto(body, pg);
  }
  if (cfg_.gzip) {
    std::string z = gzip(body);
    if (z.empty()) {
      fail(batch.size(), "gzip compression failed");
      return;
    }
    body.swap(z);
  }
  const uint64_t n = batch.size();
  const uint64_t start = now_ms();
  for (uint32_t attempt = 1;; attempt++) {
    uint64_t deadline;
    {
      std::lock_guard lk(mu_);
      deadline = deadline_ms_;
    }
    uint64_t now = now_ms();
    if (now >= deadline) {
      fail(n, "not sent before exit (timeout)");
      return;
    }
    uint64_t remaining = deadline == UINT64_MAX ? UINT64_MAX : deadline - now;
    HttpResponse r = transport_->post(body, uint32_t(std::min<uint64_t>(cfg_.timeout_ms, remaining)));
    requests_.fetch_add(1);
    if (uint16_t port = transport_->local_port(); port && !own_port(port)) {
      own_ports_[own_port_next_].store(port, std::memory_order_relaxed);
      own_port_next_ = (own_port_next_ + 1) % kOwnPorts;
    }
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    double unit = double(rng_ >> 11) / double(1ull << 53);
    now = now_ms();
    {
      std::lock_guard lk(mu_);
      deadline = deadline_ms_;
    }
    remaining = deadline == UINT64_MAX ? UINT64_MAX : (deadline > now ? deadline - now : 0);
    Decision d = decide(cfg_, r, attempt, now - start, remaining, time(nullptr), unit);
    if (d.kind == Decision::kDone) {
      exported_.fetch_add(n);
      return;
    }
    if (d.kind == Decision::kFail) {
      fail(n, d.reason);
      return;
    }
    // Sleep until the retry, waking early only if an exit deadline now falls
    // before it (then give up).
    // (On the clock itself: whole milliseconds would wake up to 1 ms early.)
    const auto until_tp = std::chrono::steady_clock::now() + std::chrono::milliseconds(d.delay_ms);
    const uint64_t until = now_ms() + d.delay_ms + 1;
    std::unique_lock lk(mu_);
    while (true) {
      if (std::chrono::steady_clock::now() >= until_tp) break;
      if (deadline_ms_ <= until) {
        lk.unlock();
        fail(n, r.status ? fmt::format("HTTP {} (not retried before exit)", r.status)
                         : fmt::format("{} (not retried before exit)", r.error));
        return;
      }
      cv_.wait_until(lk, until_tp);
    }
  }
}

void Exporter::shutdown(uint32_t wait_ms) {
  {
    std::lock_guard lk(mu_);
    if (joined_) return;
    stopping_ = true;
    deadline_ms_ = now_ms() + wait_ms;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lk(mu_);
  joined_ = true;
  if (!queue_.empty()) {
    failed_.fetch_add(queue_.size());
    failed_reason_ = "not sent before exit (timeout)";
    queue_.clear();
    queued_.store(0);
  }
}

Exporter::Stats Exporter::stats() const {
  Stats s;
  s.exported = exported_.load();
  s.dropped_queue = dropped_queue_.load();
  s.failed = failed_.load();
  s.requests = requests_.load();
  std::lock_guard lk(mu_);
  s.failed_reason = failed_reason_;
  return s;
}

std::string Exporter::summary() const {
  Stats s = stats();
  return fmt::format("OTLP: {} spans exported to {}, {} dropped (queue full), {} failed{}", s.exported,
                     cfg_.endpoint, s.dropped_queue, s.failed,
                     s.failed ? " (" + s.failed_reason + ")" : std::string());
}

} // namespace odigos::otlp
