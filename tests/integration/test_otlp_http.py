"""OTLP/HTTP export to a receiver that decodes with the official OpenTelemetry codec
(tests/otlp/receiver.js): http/protobuf via --otlp-endpoint, http/json via the
OTEL_EXPORTER_OTLP_* variables alone, gzip with headers, and --all (the exporter's own
requests must never become spans: the tracer's process is not traced, and the receiver's
side of our requests is not exported). Oracles: the official codec, the requests curl made,
and the NDJSON records written at the same time (same trace and span ids)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "otlp"))
from harness import (Tracer, check, free_port, require_root, run_main,  # noqa: E402
                     start_python_server, stop)
from otlp_helpers import Receiver, attrs, export_run, require_codec, spans_of  # noqa: E402

REQUESTS = [("/fast", 200), ("/fast", 200), ("/fast", 200), ("/error", 500)]


def scenario(a, name, py, py_port, targets, extra=None, env_extra=None, flag=True,
             content_type="application/x-protobuf", encoding="", headers=None):
    print(f"== {name}")
    recv = Receiver()
    env = dict(os.environ, **(env_extra or {}))
    env = {k: v.replace("RECEIVER", recv.url) for k, v in env.items()}
    args = list(extra or [])
    if flag:
        args += ["--otlp-endpoint", recv.url]
    try:
        tracer = Tracer(a.binary, targets, extra=args, env=env)
    except BaseException:
        recv.stop()
        raise

    def drive():
        for path, _ in REQUESTS:
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{py_port}{path}"],
                           check=True, timeout=30)
        time.sleep(1.5)  # at least one batch goes out before the exit flush

    reqs, summ = export_run(recv, tracer, drive)
    check(reqs, "the receiver got no request")
    for r in reqs:
        check(r["status"] == 200 and r["path"] == "/v1/traces" and r["method"] == "POST",
              f"request {r['method']} {r['path']} answered {r['status']}")
        check(r["contentType"] == content_type, f"Content-Type {r['contentType']}")
        check(r["contentEncoding"] == encoding, f"Content-Encoding {r['contentEncoding']!r}")
        check(r["userAgent"].startswith("odigos-trace/"), f"User-Agent {r['userAgent']}")
        for k, v in (headers or {}).items():
            check(r["headers"].get(k) == v, f"header {k}: {r['headers'].get(k)!r}, expected {v!r}")
    spans = spans_of([r["request"] for r in reqs])
    ours = [(res, sp) for res, _, sp in spans if res.get("process.pid") == py.pid]
    got = sorted((attrs(sp["attributes"]).get("url.path"),
                  attrs(sp["attributes"]).get("http.response.status_code")) for _, sp in ours)
    check(got == sorted(REQUESTS), f"spans of the server: {got}, expected {sorted(REQUESTS)}")
    for res, sp in ours:
        check(sp["kind"] == 2, f"kind {sp['kind']}")
        check(res.get("service.name") == "otlp-http-shop", f"service.name {res.get('service.name')}")
    # The same spans as the NDJSON records written alongside.
    recs = [r for r in tracer.records() if r.get("process", {}).get("pid") == py.pid]
    check(recs and all("span_id" in r for r in recs),
          f"{len(recs)} NDJSON records of the server, or some without span_id")
    check(sorted((r["trace_id"], r["span_id"]) for r in recs) ==
          sorted((sp["traceId"], sp["spanId"]) for _, sp in ours),
          "OTLP ids differ from the NDJSON records' ids")
    check(summ["exported"] == len(spans) and summ["failed"] == 0 and summ["dropped"] == 0,
          f"summary {summ['line']} but the receiver got {len(spans)} spans")
    return tracer, spans


def test(a):
    require_root()
    require_codec()
    py_port = free_port()
    py = start_python_server(py_port, extra_env={"OTEL_SERVICE_NAME": "otlp-http-shop"})
    try:
        scenario(a, "http/protobuf, --otlp-endpoint", py, py_port, ["--pid", str(py.pid)])
        scenario(a, "http/json from the environment only", py, py_port, ["--pid", str(py.pid)],
                 flag=False, content_type="application/json",
                 env_extra={"OTEL_EXPORTER_OTLP_ENDPOINT": "RECEIVER",
                            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
        scenario(a, "gzip and headers", py, py_port, ["--pid", str(py.pid)], encoding="gzip",
                 env_extra={"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
                            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s%3Dcret,x-tenant=t1",
                            # the flag wins over these
                            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"},
                 headers={"x-api-key": "s=cret", "x-tenant": "t1"})
        tracer, spans = scenario(a, "--all", py, py_port, ["--all"])
        tpid = tracer.proc.pid
        for res, _, sp in spans:
            path = attrs(sp["attributes"]).get("url.path")
            check(res.get("process.pid") != tpid, f"a span of the tracer itself: {sp}")
            check(path != "/v1/traces", f"an export request became a span: {res} {sp}")
        mine = [r for r in tracer.records(kind=None) if r.get("process", {}).get("pid") == tpid]
        check(not mine, f"records of the tracer's own process: {mine[:3]}")
        # The receiver's side of an export request was traced (it is a process like any
        # other, and the NDJSON output has it) but not exported: no feedback loop.
        seen = [r for r in tracer.records() if r.get("url", {}).get("path") == "/v1/traces"]
        print(f"  receiver-side records of export requests (NDJSON only): {len(seen)}")
        check(seen and all(r.get("side") == "server" for r in seen),
              f"expected the receiver's server records of our requests in NDJSON: {seen[:2]}")
    finally:
        stop(py)


if __name__ == "__main__":
    run_main(test)
