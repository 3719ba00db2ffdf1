"""Helpers of the OTLP integration tests (tests/integration/test_otlp*.py): the official
OTLP codec (installed by scripts/install-otlp-validator.sh, never skipped: a missing
codec or npm registry fails the test), the receiver and validator of receiver.js."""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import Failure, check  # noqa: E402

RECEIVER = os.path.join(HERE, "receiver.js")
INSTALL = os.path.join(ROOT, "scripts", "install-otlp-validator.sh")


def require_codec():
    """The official codec must be there; installs it (idempotent) or fails saying why."""
    node = subprocess.run(["sh", "-c", "command -v node"], capture_output=True, text=True)
    check(node.returncode == 0, "node is not installed: run scripts/install-deps.sh test")
    res = subprocess.run([INSTALL], capture_output=True, text=True, timeout=600)
    check(res.returncode == 0,
          "the official OTLP codec (@opentelemetry/otlp-transformer from the npm registry) could "
          f"not be installed; these tests need it:\n{res.stdout}{res.stderr}")


def validate_file(path):
    """Decodes an OTLP/JSON lines file with the official codec (strict field names); returns
    the TracesData of each line (ids as hex, 64-bit integers as strings)."""
    res = subprocess.run(["node", RECEIVER, "validate", path], capture_output=True, text=True,
                         timeout=120)
    check(res.returncode == 0, f"the official codec rejects {path}:\n{res.stderr}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def value(any_value):
    """AnyValue (decoded) -> Python value."""
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in any_value:
            return any_value[k]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    return None


def attrs(kvs):
    return {kv["key"]: value(kv.get("value", {})) for kv in kvs or []}


def spans_of(traces):
    """[(resource attributes, scope, span)] of a list of TracesData/ExportTraceServiceRequest."""
    out = []
    for t in traces:
        for rs in t.get("resourceSpans", []):
            res = attrs(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    out.append((res, ss.get("scope", {}), sp))
    return out


class Receiver:
    """tests/otlp/receiver.js serve: an OTLP/HTTP receiver decoding with the official codec."""

    def __init__(self, script=None):
        self.tmp = tempfile.mkdtemp(prefix="odigos-otlp-")
        self.out = os.path.join(self.tmp, "requests.jsonl")
        cmd = ["node", RECEIVER, "serve", "--out", self.out]
        if script:
            cmd += ["--script", json.dumps(script)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise Failure(f"receiver did not start: {line}{self.proc.stderr.read()}")
        self.port = int(line.split()[-1])
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [json.loads(l) for l in f if l.strip()]

    def wait_requests(self, n, timeout=15):
        end = time.time() + timeout
        while time.time() < end and len(self.requests()) < n:
            time.sleep(0.05)
        return self.requests()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def otlp_summary(stderr):
    """The exporter's summary line, parsed: {exported, dropped, failed, reason, line}."""
    import re
    for line in stderr.splitlines():
        m = re.search(r"OTLP: (\d+) spans exported to (\S+), (\d+) dropped \(queue full\), "
                      r"(\d+) failed(?: \((.*)\))?$", line)
        if m:
            return {"exported": int(m.group(1)), "endpoint": m.group(2),
                    "dropped": int(m.group(3)), "failed": int(m.group(4)),
                    "reason": m.group(5) or "", "line": line}
    raise Failure("no 'OTLP: ...' summary line on stderr:\n" + stderr)


def export_run(recv, tracer, drive):
    """One export scenario: once `tracer` (started, exporting to `recv`) is attached, drive()
    makes the traffic; then the tracer and the receiver stop. Checks the tracer's exit code and
    that the official codec accepted every request; returns (requests, parsed summary)."""
    try:
        tracer.wait_attached()
        drive()
        rc = tracer.stop()
    finally:
        tracer.stop()
        reqs = recv.requests()
        recv.stop()
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    summ = otlp_summary(tracer.stderr())
    print("  " + summ["line"])
    for r in reqs:
        check(r["error"] is None, f"the official codec rejected a request: {r['error']}")
    return reqs, summ
