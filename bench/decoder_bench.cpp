// Decoder throughput (Google Benchmark): HTTP/1 request/response pairs per
// second per core, for the protocol session alone and for the whole user-space
// path a record takes (event decoding, tracking, record building, NDJSON).
//   ./build/decoder_bench            (docs/BENCHMARKS.md has results)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "conn/conn_tracker.hpp"
#include "odigos/abi.hpp"
#include "protocols/http1/http1.hpp"
#include "sinks/json.hpp"
#include "export/otlp_json.hpp"
#include "export/otlp_proto.hpp"
#include "trace/linker.hpp"

using namespace odigos;

namespace {
const std::string kReq =
    "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nUser-Agent: wrk\r\n\r\n";
const std::string kResp =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 17:00:00 GMT\r\n"
    "Content-Type: text/html\r\nContent-Length: 612\r\nLast-Modified: Mon, 30 Nov 2026 16:00:00 GMT\r\n"
    "Connection: keep-alive\r\nETag: \"6568a1b0-264\"\r\nAccept-Ranges: bytes\r\n\r\n";

void BM_Http1SessionPairs(benchmark::State& state) {
  http1::Limits lim;
  lim.keep_all_headers = false; // as the tracker runs without --show headers
  http1::Session s(http1::Side::kServer, lim);
  uint64_t ts = 1;
  std::vector<http1::Exchange> ex; // reused, as SessionDecoder::drain does
  for (auto _ : state) {
    http1::Segment req{ts++, kReq.size(), kReq, false};
    s.on_data(true, req);
    http1::Segment head{ts++, kResp.size(), kResp, false};
    s.on_data(false, head);
    http1::Segment body{ts++, 612, {}, false}; // sendfile: length only
    s.on_data(false, body);
    s.take_exchanges(ex);
    benchmark::DoNotOptimize(ex.data());
  }
  // Every iteration must have made one complete exchange (not a benchmark of nothing).
  if (ex.size() != 1 || !ex[0].response || ex[0].response->status != 200 ||
      ex[0].response->body_size != 612)
    state.SkipWithError("the session did not decode the exchange");
  state.SetItemsProcessed(state.iterations());
}

std::vector<uint8_t> data_event(uint64_t cookie, uint8_t dir, uint64_t ts, uint64_t pos,
                                const std::string& payload, uint32_t len) {
  ot_data_event ev{};
  ev.hdr.type = OT_EV_DATA;
  ev.hdr.tgid = 100;
  ev.hdr.tid = 100;
  ev.hdr.ts_ns = ts;
  ev.cookie = cookie;
  ev.pos = pos;
  ev.len = len;
  ev.cap = uint32_t(payload.size());
  ev.dir = dir;
  ev.role = OT_ROLE_SERVER;
  std::vector<uint8_t> out(sizeof(ev) + payload.size());
  memcpy(out.data(), &ev, sizeof(ev));
  memcpy(out.data() + sizeof(ev), payload.data(), payload.size());
  return out;
}

// Connection 1: nginx-like server side, 0.0.0.0:18080 <- :50000.
void open_server_conn(ConnTracker& t) {
  ot_conn_event open{};
  open.hdr.type = OT_EV_CONN_OPEN;
  open.hdr.tgid = 100;
  open.cookie = 1;
  open.role = OT_ROLE_SERVER;
  open.local.family = open.remote.family = 2;
  open.local.port = 18080;
  open.remote.port = 50000;
  t.handle(&open, sizeof(open));
}

// `link`: records go through the trace linker (as in the tracer) before the
// NDJSON line; the client is not traced, so each request is a root span.
void full_path(benchmark::State& state, bool link) {
  WallClock clock;
  std::string line;
  size_t bytes = 0;
  auto write_line = [&](const Record& r) { // as the NDJSON sink writes a line
    JsonLayout layout = layout_record_json(r);
    if (line.size() < layout.bound + 1) line.resize(std::max(2 * line.size(), layout.bound + 1));
    char* end = put_record_json(line.data(), r, layout);
    *end++ = '\n';
    bytes += size_t(end - line.data());
  };
  trace::Linker linker(trace::LinkerOptions{}, write_line, nullptr);
  ConnTracker t(
      TrackerOptions{}, clock,
      [&](Record& r) {
        if (link) linker.add(r);
        else write_line(r);
      },
      nullptr, nullptr);
  if (link) t.set_observer(&linker);
  open_server_conn(t);
  // Built once; each iteration only patches time and stream position, so the
  // loop measures the tracker, decoder, record and JSON, not event building.
  auto a = data_event(1, OT_DIR_INGRESS, 0, 0, kReq, uint32_t(kReq.size()));
  auto b = data_event(1, OT_DIR_EGRESS, 0, 0, kResp, uint32_t(kResp.size()));
  auto c = data_event(1, OT_DIR_EGRESS, 0, 0, "", 612);
  auto patch = [](std::vector<uint8_t>& ev, uint64_t ts, uint64_t pos) {
    auto* e = reinterpret_cast<ot_data_event*>(ev.data());
    e->hdr.ts_ns = ts;
    e->pos = pos;
  };
  uint64_t ts = 1, pos_in = 0, pos_out = 0;
  for (auto _ : state) {
    patch(a, ts++, pos_in);
    pos_in += kReq.size();
    patch(b, ts++, pos_out);
    pos_out += kResp.size();
    patch(c, ts++, pos_out);
    pos_out += 612;
    t.handle(a.data(), a.size());
    t.handle(b.data(), b.size());
    t.handle(c.data(), c.size());
    if (link && (ts & 1023) < 3) linker.tick(ts);
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}

// One nginx-like exchange as the record (a root span) the sinks get.
Record sample_span() {
  WallClock clock;
  Record out;
  trace::Linker linker(trace::LinkerOptions{}, [&](Record& r) { out = r; }, nullptr);
  ConnTracker t(TrackerOptions{}, clock, [&](Record& r) { linker.add(r); }, nullptr, nullptr);
  open_server_conn(t);
  auto a = data_event(1, OT_DIR_INGRESS, 1, 0, kReq, uint32_t(kReq.size()));
  auto b = data_event(1, OT_DIR_EGRESS, 2, 0, kResp, uint32_t(kResp.size()));
  auto c = data_event(1, OT_DIR_EGRESS, 3, kResp.size(), "", 612);
  t.handle(a.data(), a.size());
  t.handle(b.data(), b.size());
  t.handle(c.data(), c.size());
  return out;
}

// The OTLP sinks' per-span work on the reader thread: one Span encoded.
void BM_OtlpSpanProto(benchmark::State& state) {
  Record r = sample_span();
  std::string buf;
  for (auto _ : state) {
    buf.clear();
    otlp::append_span_field_proto(buf, r);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_OtlpSpanJson(benchmark::State& state) {
  Record r = sample_span();
  std::string buf;
  for (auto _ : state) {
    buf.clear();
    otlp::append_span_json(buf, r);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_FullPathPerRecord(benchmark::State& state) { full_path(state, false); }
void BM_FullPathLinkedPerRecord(benchmark::State& state) { full_path(state, true); }
} // namespace

// ODIGOS_BENCH_ITERS=N runs each benchmark exactly N iterations, once: with
// valgrind --tool=callgrind that gives instructions per pair, a count that does
// not depend on what else the machine is doing (see docs/BENCHMARKS.md).
int main(int argc, char** argv) {
  std::vector<benchmark::internal::Benchmark*> all = {
      benchmark::RegisterBenchmark("BM_Http1SessionPairs", BM_Http1SessionPairs),
      benchmark::RegisterBenchmark("BM_FullPathPerRecord", BM_FullPathPerRecord),
      benchmark::RegisterBenchmark("BM_FullPathLinkedPerRecord", BM_FullPathLinkedPerRecord),
      benchmark::RegisterBenchmark("BM_OtlpSpanProto", BM_OtlpSpanProto),
      benchmark::RegisterBenchmark("BM_OtlpSpanJson", BM_OtlpSpanJson),
  };
  if (const char* it = getenv("ODIGOS_BENCH_ITERS"))
    for (auto* b : all) b->Iterations(benchmark::IterationCount(atoll(it)));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
