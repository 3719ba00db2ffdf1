// OTLP/HTTP trace exporter: a bounded queue filled by the reader thread, one
// background thread that batches, encodes the request (the spans are already
// encoded), optionally gzips it and POSTs it with libcurl, retrying only what
// the OTLP specification calls retryable (429, 502, 503, 504, and connection
// failures) with exponential backoff and jitter, honouring Retry-After.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "export/resource.hpp"

namespace odigos::otlp {

struct HttpConfig {
  std::string endpoint; // the full URL spans are POSTed to
  std::vector<std::pair<std::string, std::string>> headers;
  uint32_t timeout_ms = 10000; // per request; also the bound of the final flush at exit
  bool gzip = false;
  bool json = false; // http/json; else http/protobuf
  // Batching and the queue.
  size_t max_batch = 512;
  uint32_t batch_delay_ms = 1000;
  size_t max_queue = 4096;
  // Retries.
  uint32_t max_attempts = 5;
  uint32_t initial_backoff_ms = 1000;
  uint32_t max_backoff_ms = 8000;
  uint32_t max_elapsed_ms = 30000; // per batch, from its first attempt
  std::string describe() const;    // "http://x:4318/v1/traces (http/protobuf, gzip)"
};

using GetEnv = std::function<const char*(const char*)>;
GetEnv process_env(); // getenv

// Is export requested: --otlp-endpoint given, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// or OTEL_EXPORTER_OTLP_ENDPOINT set (non-empty) in the environment.
bool export_requested(const std::string& flag_endpoint, const GetEnv& env);

// The exporter's settings from --otlp-endpoint (flag_endpoint, "" when not
// given) and the standard variables; the flag wins over the environment, a
// OTEL_EXPORTER_OTLP_TRACES_* variable over its OTEL_EXPORTER_OTLP_* twin.
//   endpoint: the flag (a URL without a path gets /v1/traces), else
//     ..._TRACES_ENDPOINT as is, else ..._ENDPOINT + "/v1/traces", else
//     http://localhost:4318/v1/traces
//   ..._HEADERS  k=v,k2=v2 (percent-decoded)     ..._TIMEOUT  milliseconds
//   ..._COMPRESSION gzip|none    ..._PROTOCOL http/protobuf (default) | http/json
// false with *error on a malformed or unsupported value (grpc).
bool resolve_http_config(const std::string& flag_endpoint, const GetEnv& env, HttpConfig* out, std::string* error);

// Retry-After: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850, asctime),
// as milliseconds from `now` (0 for a date in the past); nullopt when malformed.
std::optional<uint64_t> parse_retry_after(std::string_view v, time_t now);

// Backoff before retry number `retry` (1 = the first retry):
// initial * 2^(retry-1), capped at max_backoff, times a jitter factor in
// [0.5, 1.0) given by unit in [0, 1).
uint64_t backoff_ms(const HttpConfig& c, uint32_t retry, double unit);

struct HttpResponse {
  long status = 0;         // 0: no HTTP response (connection failure, timeout)
  std::string error;       // transport error when status == 0
  std::string retry_after; // the Retry-After header, if any
  std::string body;        // the first bytes of the body
};

// What to do after an attempt.
struct Decision {
  enum Kind { kDone, kRetry, kFail } kind = kDone;
  uint64_t delay_ms = 0;
  std::string reason; // for kFail: why (for the summary)
};
// attempt: 1 for the first; elapsed_ms since the batch's first attempt;
// remaining_ms: time left before a deadline (exit), UINT64_MAX when none.
Decision decide(const HttpConfig& c, const HttpResponse& r, uint32_t attempt, uint64_t elapsed_ms,
                uint64_t remaining_ms, time_t now, double unit);

class Transport {
 public:
  virtual ~Transport() = default;
  virtual HttpResponse post(const std::string& body, uint32_t timeout_ms) = 0;
  // The local TCP port of the last request's connection (0: unknown), so that
  // the collector's side of our own requests can be told apart.
  virtual uint16_t local_port() const { return 0; }
};
std::unique_ptr<Transport> make_curl_transport(const HttpConfig& c);

// gzip (RFC 1952) of data; "" on failure.
std::string gzip(std::string_view data);

// The path of an http(s) endpoint URL without its query ("/v1/traces"; "/" when it has
// none): what a request to it asks for.
std::string endpoint_path(const std::string& url);

class Exporter {
 public:
  // Starts the background thread.
  Exporter(HttpConfig c, std::unique_ptr<Transport> t);
  ~Exporter(); // shutdown() if not done

  // Reader thread. full(): the queue is at its bound (a span now would be
  // dropped) — checked before encoding.
  bool full() const { return queued_.load(std::memory_order_relaxed) >= cfg_.max_queue; }
  void count_dropped() { dropped_queue_.fetch_add(1, std::memory_order_relaxed); }
  // Queues one encoded span (a ScopeSpans `spans` field, or a JSON Span
  // object) of `res`, or drops and counts it when the queue is full; either
  // way `span` comes back empty, as the buffer to encode the next span into
  // (a pooled one once spans have been sent). One lock per span.
  bool enqueue(std::shared_ptr<const Resource> res, std::string& span);
  bool enqueue(std::shared_ptr<const Resource> res, std::string&& span) {
    std::string s = std::move(span);
    return enqueue(std::move(res), s);
  }

  // Sends what is queued and stops the thread, waiting at most wait_ms (then
  // what is left is counted as failed).
  void shutdown(uint32_t wait_ms);

  struct Stats {
    uint64_t exported = 0, dropped_queue = 0, failed = 0, requests = 0;
    std::string failed_reason; // the last failure's reason
  };
  Stats stats() const;
  // "OTLP: 10 spans exported to URL, 0 dropped (queue full), 0 failed"
  std::string summary() const;
  const HttpConfig& config() const { return cfg_; }
  // Was port the local port of one of our connections?
  bool own_port(uint16_t port) const;

 private:
  struct Item {
    std::shared_ptr<const Resource> res;
    std::string span;
  };
  void run();
  void send_batch(std::vector<Item>& batch);
  void fail(uint64_t n, const std::string& reason);
  uint64_t now_ms() const;

  HttpConfig cfg_;
  std::unique_ptr<Transport> transport_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> queue_;
  std::vector<std::string> pool_;
  std::atomic<size_t> queued_{0};
  bool stopping_ = false;
  uint64_t deadline_ms_ = UINT64_MAX; // exit: give up at this time
  std::atomic<uint64_t> exported_{0}, dropped_queue_{0}, failed_{0}, requests_{0};
  std::string failed_reason_; // under mu_
  static constexpr size_t kOwnPorts = 8;
  std::atomic<uint16_t> own_ports_[kOwnPorts] = {};
  size_t own_port_next_ = 0;
  std::thread thread_;
  bool joined_ = false;
  uint64_t rng_ = 0x9E3779B97F4A7C15ull;
};

} // namespace odigos::otlp
