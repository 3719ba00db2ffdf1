"""--format otlp -o FILE: OTLP/JSON lines (TracesData) while curl hits a traced Python
http.server (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES in its environment) and nginx.
Oracle: the official OpenTelemetry codec (tests/otlp/receiver.js validate: strict field names,
fromObject + verify), the requests curl made and the test's own clock."""
import os
import re
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "otlp"))
from harness import (children, Tracer, check, free_port, require_root, run_main, start_nginx,  # noqa: E402
                     start_python_server, stop)
from otlp_helpers import require_codec, spans_of, attrs, validate_file  # noqa: E402

PY_REQUESTS = [("/fast", 200), ("/fast", 200), ("/fast", 200), ("/slow?ms=200", 200),
               ("/error", 500), ("/notfound", 404)]
NGINX_REQUESTS = [("/index.html", 200), ("/index.html", 200), ("/missing.html", 404)]




def test(a):
    require_root()
    require_codec()
    py_port = free_port()
    py = start_python_server(py_port, extra_env={
        "OTEL_SERVICE_NAME": "otlp-pyshop",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=ci%20run,team=obs"})
    nginx, ntmp, nport = start_nginx({"index.html": "<html>hello</html>\n"})
    tracer = None
    try:
        end = time.time() + 10
        while not children(nginx.pid) and time.time() < end:
            time.sleep(0.05)
        workers = children(nginx.pid)
        env = dict(os.environ, OTEL_RESOURCE_ATTRIBUTES="team=base,cloud.region=here")
        tracer = Tracer(a.binary, ["--pid", str(py.pid), "--pid", str(nginx.pid)],
                        extra=["--format", "otlp"], env=env).wait_attached()
        t_begin = time.time_ns()
        for path, _ in PY_REQUESTS:
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{py_port}{path}"],
                           check=True, timeout=30)
        for path, _ in NGINX_REQUESTS:
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{nport}{path}"],
                           check=True, timeout=30)
        t_end = time.time_ns()
        time.sleep(1.0)
    finally:
        rc = tracer.stop() if tracer else None
        stop(py)
        stop(nginx)
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    mode = stat.S_IMODE(os.stat(tracer.out).st_mode)
    check(mode == 0o600, f"output file mode {oct(mode)}, expected 0600")

    traces = validate_file(tracer.out)
    with open(tracer.out) as f:
        raw_lines = [l for l in f if l.strip()]
    check(len(traces) == len(raw_lines) and traces, f"{len(raw_lines)} lines, {len(traces)} decoded")
    # Each line groups its spans by process: one resourceSpans per pid.
    for t in traces:
        pids = [attrs(rs["resource"]["attributes"])["process.pid"] for rs in t["resourceSpans"]]
        check(len(pids) == len(set(pids)), f"a line has two resourceSpans for one pid: {pids}")
    spans = spans_of(traces)
    for res, scope, sp in spans:
        a_ = attrs(sp.get("attributes"))
        print(f"  span pid {res.get('process.pid')} {res.get('service.name'):12} kind {sp.get('kind')}"
              f" {sp.get('name')!r:28} {a_.get('url.path')} {a_.get('http.response.status_code')}"
              f" status {sp.get('status', {}).get('code', 0)}")
    check(len(spans) == len(PY_REQUESTS) + len(NGINX_REQUESTS),
          f"{len(spans)} spans, expected {len(PY_REQUESTS) + len(NGINX_REQUESTS)} (one per request)")
    host = socket.gethostname()
    seen_py, seen_nginx = [], []
    span_ids = set()
    for res, scope, sp in spans:
        check(scope.get("name") == "odigos-trace" and scope.get("version"), f"scope {scope}")
        check(re.fullmatch(r"[0-9a-f]{32}", sp["traceId"]) and sp["traceId"] != "0" * 32,
              f"traceId {sp['traceId']}")
        check(re.fullmatch(r"[0-9a-f]{16}", sp["spanId"]), f"spanId {sp['spanId']}")
        check(sp["spanId"] not in span_ids, "span ids repeat")
        span_ids.add(sp["spanId"])
        check(sp.get("kind") == 2, f"kind {sp.get('kind')}, expected SPAN_KIND_SERVER (2): {sp}")
        check(sp.get("name", "").startswith("GET"), f"span name {sp.get('name')!r}")
        start, end_ = int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"])
        check(t_begin - 50_000_000 <= start <= end_ <= t_end + 50_000_000,
              f"span times {start}..{end_} outside the test's {t_begin}..{t_end}")
        a_ = attrs(sp.get("attributes"))
        check(a_.get("http.request.method") == "GET", f"method {a_}")
        path = a_.get("url.path", "") + ("?" + a_["url.query"] if a_.get("url.query") else "")
        code = a_.get("http.response.status_code")
        if path == "/slow?ms=200":
            check(end_ - start >= 200_000_000, f"/slow?ms=200 lasted {(end_ - start) / 1e6} ms")
        if code == 500:
            check(sp.get("status", {}).get("code") == 2, f"500 without an error status: {sp}")
        if code == 200:
            check(sp.get("status", {}).get("code", 0) != 2, f"200 with an error status: {sp}")
        check(res.get("host.name") == host, f"host.name {res.get('host.name')} != {host}")
        check(res.get("telemetry.sdk.name") == "odigos-trace", f"telemetry.sdk.name {res}")
        check(res.get("telemetry.distro.name") == "odigos-trace", f"telemetry.distro.name {res}")
        check(res.get("cloud.region") == "here", f"the tracer's OTEL_RESOURCE_ATTRIBUTES: {res}")
        if res.get("process.pid") == py.pid:
            seen_py.append((path, code))
            check(res.get("service.name") == "otlp-pyshop", f"OTEL_SERVICE_NAME not honoured: {res}")
            check(res.get("deployment.environment.name") == "ci run", f"percent-decoding: {res}")
            check(res.get("team") == "obs", f"the process's attributes win over the tracer's: {res}")
            check(res.get("telemetry.sdk.language") == "python", f"language {res}")
            check(str(res.get("process.executable.name", "")).startswith("python"), f"exe {res}")
            check(res.get("process.executable.path") == os.path.realpath(sys.executable),
                  f"process.executable.path {res.get('process.executable.path')}, expected "
                  f"{os.path.realpath(sys.executable)}")
        else:
            seen_nginx.append((path, code))
            check(res.get("process.pid") in workers, f"pid {res.get('process.pid')} not a worker "
                  f"{workers}")
            check(res.get("service.name") == "nginx", f"service.name from the executable: {res}")
            check(res.get("process.executable.path") == os.path.realpath("/usr/sbin/nginx") or
                  str(res.get("process.executable.path", "")).endswith("/nginx"), f"exe {res}")
            check(res.get("team") == "base", f"the tracer's base attributes: {res}")
            check("telemetry.sdk.language" not in res, f"nginx has no known language: {res}")
    check(sorted(seen_py) == sorted(PY_REQUESTS), f"python spans {sorted(seen_py)}")
    check(sorted(seen_nginx) == sorted(NGINX_REQUESTS), f"nginx spans {sorted(seen_nginx)}")


if __name__ == "__main__":
    run_main(test)
