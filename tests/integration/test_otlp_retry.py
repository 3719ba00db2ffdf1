"""OTLP/HTTP failure handling against a scripted receiver (tests/otlp/receiver.js, official
codec): 503 with Retry-After in delta-seconds and as an HTTP-date (the retry comes no earlier,
then succeeds), 400 (never retried, counted as failed with the receiver's message), and no
receiver at all (tracing goes on, the tracer exits 0 within its timeout and reports the spans
it could not send). Oracles: the receiver's own clock and decoding, the NDJSON records."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "otlp"))
from harness import (Tracer, check, free_port, require_root, run_main,  # noqa: E402
                     start_python_server, stop)
from otlp_helpers import Receiver, export_run, otlp_summary, require_codec, spans_of  # noqa: E402

N = 3


def requests_to(port):
    for _ in range(N):
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/fast"],
                       check=True, timeout=30)


def span_ids(req):
    return [sp["spanId"] for _, _, sp in spans_of([req["request"]])] if req["request"] else []


def retry_after(a, py, port, answer, name):
    print(f"== {answer['status']} with {name}, then 200")
    recv = Receiver([answer, {"status": 200}])
    tracer = Tracer(a.binary, ["--pid", str(py.pid)], extra=["--otlp-endpoint", recv.url])

    def drive():
        requests_to(port)
        recv.wait_requests(2, timeout=20)
        time.sleep(1.5)

    reqs, summ = export_run(recv, tracer, drive)
    for r in reqs:
        print(f"  t={r['t'] / 1000:.3f} answered {r['status']} spans {span_ids(r)}")
    check(len(reqs) >= 2 and reqs[0]["status"] == answer["status"],
          f"{len(reqs)} requests, answered {[r['status'] for r in reqs]}")
    first, retry = reqs[0], reqs[1]
    check(span_ids(first) == span_ids(retry), "the retry does not carry the same spans")
    if "retryAfterDate" in first:
        check(retry["t"] >= first["retryAfterDate"],
              f"retry at {retry['t']:.0f} ms, before the Retry-After date {first['retryAfterDate']}")
    else:
        wait = float(answer["retryAfter"]) * 1000
        check(retry["t"] - first["t"] >= wait,
              f"retry {retry['t'] - first['t']:.0f} ms after the 503, Retry-After said {wait:.0f}")
    check(retry["t"] - first["t"] < 10000, f"retry after {retry['t'] - first['t']:.0f} ms")
    exported = {s for r in reqs if r["status"] == 200 for s in span_ids(r)}
    check(len(exported) == N, f"{len(exported)} distinct spans accepted, expected {N}")
    check(summ["exported"] == N and summ["failed"] == 0 and summ["dropped"] == 0, summ["line"])


def bad_request(a, py, port):
    print("== 400: not retried")
    recv = Receiver([{"status": 400, "body": "bad data: span 1 is broken\nsecond line"}])
    tracer = Tracer(a.binary, ["--pid", str(py.pid)], extra=["--otlp-endpoint", recv.url])

    def drive():
        requests_to(port)
        recv.wait_requests(1, timeout=20)
        time.sleep(3)  # a retry would come within this (the first backoff is 0.5-1 s)

    reqs, summ = export_run(recv, tracer, drive)
    ids = [s for r in reqs for s in span_ids(r)]
    for r in reqs:
        check(r["status"] == 400, f"answered {r['status']}")
    # Each batch exactly once: no span id is sent twice.
    check(len(ids) == N and len(set(ids)) == N, f"{len(reqs)} requests carried spans {ids}")
    check(summ["failed"] == N and summ["exported"] == 0, summ["line"])
    check(summ["reason"] == "HTTP 400: bad data: span 1 is broken", f"reason {summ['reason']!r}")


def receiver_down(a, py, port):
    print("== no receiver")
    dead = free_port()
    env = dict(os.environ, OTEL_EXPORTER_OTLP_TIMEOUT="2000")
    tracer = Tracer(a.binary, ["--pid", str(py.pid)],
                    extra=["--otlp-endpoint", f"http://127.0.0.1:{dead}"], env=env)
    try:
        tracer.wait_attached()
        requests_to(port)
        end = time.time() + 10
        while len(tracer.records()) < N and time.time() < end:
            time.sleep(0.1)
        during = len(tracer.records())
        time.sleep(1.5)
        t0 = time.time()
        rc = tracer.stop()
        took = time.time() - t0
    finally:
        tracer.stop()
    print(f"  {during} records written while the receiver was down; exit took {took:.2f} s")
    check(during == N, f"{during} records written while exporting failed, expected {N}")
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    check(took < 2.0 + 4.0, f"exit took {took:.1f} s with OTEL_EXPORTER_OTLP_TIMEOUT=2000")
    summ = otlp_summary(tracer.stderr())
    print("  " + summ["line"])
    check(summ["exported"] == 0 and summ["failed"] + summ["dropped"] == N, summ["line"])
    check("refused" in summ["reason"].lower() or "connect" in summ["reason"].lower(),
          f"reason {summ['reason']!r}")


def test(a):
    require_root()
    require_codec()
    port = free_port()
    py = start_python_server(port, extra_env={"OTEL_SERVICE_NAME": "otlp-retry"})
    try:
        retry_after(a, py, port, {"status": 503, "retryAfter": "2"}, "Retry-After: 2")
        retry_after(a, py, port, {"status": 429, "retryAfterDateIn": 2}, "an HTTP-date")
        bad_request(a, py, port)
        receiver_down(a, py, port)
    finally:
        stop(py)


if __name__ == "__main__":
    run_main(test)
