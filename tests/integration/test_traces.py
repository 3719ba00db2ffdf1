"""Traces across processes: one odigos-trace run (--pid for each of nginx's master, a Python
service, a Go service, redis-server and PostgreSQL's postmaster) links the spans of every
request into one tree, across processes (both ends of a TCP connection traced) and inside them
(a client call is the child of the server request it is made for).

Topology, all on private 127.0.0.1 ports, started by this test:

    curl (not traced) -> nginx (master + 2 workers, proxy_pass without URI, upstream keep-alive)
        /py/<id> -> Python ThreadingHTTPServer (tests/fixtures/traces/py_service.py)
                      -> Redis INCRBY hits:<id> 1 (redis-py), PostgreSQL SELECT 'py-<id>'
                         (psycopg2)
        /go/<id> -> Go net/http (tests/fixtures/traces/goservice, built now, GOPATH mode)
                      -> Redis INCR hits:<id> (raw RESP on a net.Conn), PostgreSQL
                         SELECT 'go-<id>' (database/sql + lib/pq)
    both services sleep a few ms between the Redis and the PostgreSQL call (concurrent requests
    stay active together; a Go goroutine may resume on another OS thread).

Every request carries a unique id in its path; the id shows in url.path and in db.query.text
(--no-redact keeps the SQL literal). So each span names its request, which is the oracle: the
expected tree of one request is (roles are process.side.protocol)

    nginx.server.http                      root (no parent_span_id)
      nginx.client.http
        py|go.server.http
          py|go.client.redis
            redis.server.redis
          py|go.client.postgresql
            pg.server.postgresql

(A) one request to /py/<id> and one to /go/<id>: every span mentioning the id is in one trace,
    exactly the tree above.
(B) 32 concurrent requests (py and go mixed): no trace mixes ids, no span has a parent of
    another request, and at least 80% of the expected links are made (unlinked count printed).
(C) requests with `traceparent: 00-<trace>-<parent>-01`: nginx's server span takes that trace
    id and parent; every span of the request shares the trace id and the tree is the one above.
    nginx forwards the header unchanged, so the services see it too: their server spans still
    are children of nginx's client span, and no span takes the header's parent id (curl's) as
    its own span_id.
(D) /chain/<id> straight to the Go service (curl not traced), sequential then concurrent: its
    handler calls the Python service with net/http's default client, whose pooled keep-alive
    connections are written by the transport's writeLoop goroutine, not by the handler: the
    Go client span must be the child of its own handler's server span (never of another
    request's), and the Python server span the child of that client span.
(E) goroutines: the goroutine-creation probe is attached only once a Go call comes from a
    goroutine serving no request (a first /fan/ request, not counted); then /fan/<id> straight
    to the Go service, sequential then concurrent: its handler
    starts goroutines (one of them starting another) that call Redis (INCR fan:<id>:a and
    fan:<id>:b) and the Python service (GET /py/<id>, net/http's client): each of those client
    spans must be the child of its own handler's server span, and the Python server span the
    child of that client span. /pooled/<id> hands INCR pooled:<id> to one worker goroutine that
    serves every request in turn, started (while traced, after the probe is attached) by a
    goroutine that serves no request: its span is never the child of another request's span
    (left unlinked: nothing says which request it works for). /lazy/<id>: the first request's
    handler starts a worker (sync.Once) that makes the calls of later /lazy/ requests while the
    first one still runs (it sleeps 800 ms after its job): none of them may be under the first
    request (the worker never ends, so its calls are left unlinked).
Everywhere: trace_id/span_id/parent_span_id/span_name well-formed, span_ids unique, no parent
cycles. On failure the NDJSON of the spans concerned is printed as trees.
"""
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from harness import (children, Failure, Tracer, check, free_port, get, require_root, run_main, start_nginx,
                     stop, wait_port)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "traces")
# The service runs on Debian's interpreter: python3-redis and python3-psycopg2 are installed for
# it (scripts/install-deps.sh), whatever python3 runs this test.
SERVICE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DELAY_MS = 5
CONCURRENT = 32
CHAIN = 8  # (D) requests, sequential and then as many concurrent
FAN = 6  # (E) /fan/ requests, sequential and then as many concurrent; as many /pooled/
LAZY_HOLD_MS = 800  # (E) how long the first /lazy/ request lasts after its job
MIN_LINKED = 0.80

ID_RE = re.compile(r"tr[0-9a-f]{12}")
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def new_id():
    return "tr" + secrets.token_hex(6)


# ---------------------------------------------------------------------------------------------
# Processes


def build_go(tmp):
    """tests/fixtures/traces/goservice, offline: GOPATH mode, lib/pq from
    golang-github-lib-pq-dev (/usr/share/gocode)."""
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="", GOPROXY="off", CGO_ENABLED="0",
               GOPATH=f"{os.path.join(tmp, 'gopath')}:/usr/share/gocode",
               GOCACHE=os.path.join(tempfile.gettempdir(), "odigos-gocache"))
    out = os.path.join(tmp, "goservice")
    r = subprocess.run(["go", "build", "-o", out, "."], cwd=os.path.join(FIXTURES, "goservice"),
                       env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "go build of tests/fixtures/traces/goservice failed (golang-go and "
                             f"golang-github-lib-pq-dev: scripts/install-deps.sh):\n{r.stderr}")
    return out




def alive(pid, comm):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == comm
    except OSError:
        return False


def log_tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def curl(url, traceparent=None):
    """GET url; returns (status, body). curl is not traced."""
    cmd = ["curl", "-s", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"]
    if traceparent:
        cmd += ["-H", f"traceparent: {traceparent}"]
    r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


# ---------------------------------------------------------------------------------------------
# Records -> spans


class Topology:
    def __init__(self):
        self.nginx = set()   # master and workers
        self.py = self.go = self.redis = self.pg = None

    def service(self, r):
        pid, comm = get(r, "process.pid"), get(r, "process.command")
        if pid in self.nginx:
            return "nginx"
        if pid == self.py:
            return "py"
        if pid == self.go:
            return "go"
        if pid == self.redis:
            return "redis"
        if comm == "postgres" or pid == self.pg:
            return "pg"
        return f"?{pid}/{comm}"


def role(topo, r):
    return f"{topo.service(r)}.{r.get('side')}.{r.get('protocol')}"


def mentions(r):
    text = " ".join(str(x) for x in (get(r, "url.path"), get(r, "db.query.text")) if x)
    return set(ID_RE.findall(text))


def expected_parent(rl):
    """The role of the expected parent of a span of role rl ("" for a root)."""
    svc, side, proto = rl.split(".")
    if rl == "nginx.server.http":
        return ""
    if rl == "nginx.client.http":
        return "nginx.server.http"
    if svc in ("py", "go") and side == "server" and proto == "http":
        return "nginx.client.http"
    if svc in ("py", "go") and side == "client" and proto in ("redis", "postgresql"):
        return f"{svc}.server.http"
    if rl == "redis.server.redis":
        return "*.client.redis"
    if rl == "pg.server.postgresql":
        return "*.client.postgresql"
    return None  # not part of a request's tree


def expected_roles(svc):
    return sorted(["nginx.server.http", "nginx.client.http", f"{svc}.server.http",
                   f"{svc}.client.redis", "redis.server.redis", f"{svc}.client.postgresql",
                   "pg.server.postgresql"])


def role_matches(want, got):
    return want == got or (want.startswith("*.") and got.split(".", 1)[1] == want[2:])


def line(topo, r):
    """One span, compactly: for failure messages and the printed trees."""
    what = get(r, "db.query.text") or f"{get(r, 'http.request.method')} {get(r, 'url.path')}"
    return (f"{role(topo, r):26} pid {get(r, 'process.pid')} tid {get(r, 'thread.id')} "
            f"trace {r.get('trace_id')} span {r.get('span_id')} parent "
            f"{r.get('parent_span_id', '-')} name {r.get('span_name')!r} | {what}")


def tree_text(topo, spans):
    """The spans as indented trees (by parent_span_id), orphans and roots at the left."""
    by_span = {s.get("span_id"): s for s in spans}
    kids = {}
    roots = []
    for s in sorted(spans, key=lambda s: s.get("time_unix_nano", 0)):
        p = s.get("parent_span_id")
        if p and p in by_span and p != s.get("span_id"):
            kids.setdefault(p, []).append(s)
        else:
            roots.append(s)
    out = []
    seen = set()

    def walk(s, depth, path):
        note = "   <- CYCLE (its own ancestor)" if id(s) in path else \
            "   (shown above)" if id(s) in seen else ""
        out.append("    " + "  " * depth + line(topo, s) + note)
        if note:
            return
        seen.add(id(s))
        for k in kids.get(s.get("span_id"), []):
            walk(k, depth + 1, path | {id(s)})

    for r in roots:
        walk(r, 0, set())
    for c in cycles(spans):  # spans on a parent cycle, and below one, are reachable from no root
        if id(c[-1]) not in seen:
            out.append("    (a parent cycle:)")
            walk(c[-1], 0, set())
    return "\n".join(out)


def cycles(recs):
    """Spans that are their own ancestor through parent_span_id, one list per cycle."""
    by_span = {r.get("span_id"): r for r in recs if r.get("span_id")}
    found, done = [], set()
    for r in recs:
        path, s = [], r
        while s is not None and id(s) not in done:
            if s in path:
                found.append(path[path.index(s):])
                break
            path.append(s)
            s = by_span.get(s.get("parent_span_id"))
        done.update(id(x) for x in path)
    return found


class Links:
    """Every span's link judged against the oracle (the ids its request mentions)."""

    def __init__(self, topo, recs):
        self.topo = topo
        self.by_span = {}
        for r in recs:
            if r.get("span_id"):
                self.by_span[r["span_id"]] = r

    def judge(self, s):
        """(verdict, detail) of one span mentioning an id: "root" (a root that should be one),
        "ok", "unlinked" (no parent_span_id, a parent expected), "wrong" (a parent of another
        request, or of the wrong role, or in another trace, or a parent on a root), "dangling"
        (parent_span_id names no span in the output)."""
        rl = role(self.topo, s)
        want = expected_parent(rl)
        p = s.get("parent_span_id")
        ids = mentions(s)
        if want == "":
            return ("root", "") if not p else ("wrong", f"root role has parent {p}")
        if not p:
            return "unlinked", ""
        parent = self.by_span.get(p)
        if parent is None:
            return "dangling", f"parent {p} not in the output"
        prl = role(self.topo, parent)
        pids = mentions(parent)
        if pids and ids and pids != ids:
            return "wrong", f"parent of another request: {line(self.topo, parent)}"
        if parent.get("trace_id") != s.get("trace_id"):
            return "wrong", f"parent in another trace: {line(self.topo, parent)}"
        if want is None or not role_matches(want, prl):
            return "wrong", f"parent role {prl}, expected {want}: {line(self.topo, parent)}"
        if prl.startswith(("py.", "go.")) and rl.startswith(("py.", "go.")) and \
                prl.split(".")[0] != rl.split(".")[0]:
            return "wrong", f"parent in another service: {line(self.topo, parent)}"
        if want.startswith("*.") and not pids:
            return "wrong", f"parent mentions no id: {line(self.topo, parent)}"
        return "ok", ""


# ---------------------------------------------------------------------------------------------
# Checks


def check_fields(recs):
    bad = []
    for r in recs:
        t, s, p, n = r.get("trace_id"), r.get("span_id"), r.get("parent_span_id"), \
            r.get("span_name")
        if not (isinstance(t, str) and HEX32.fullmatch(t) and t != "0" * 32):
            bad.append(f"trace_id {t!r}")
        elif not (isinstance(s, str) and HEX16.fullmatch(s) and s != "0" * 16):
            bad.append(f"span_id {s!r}")
        elif "parent_span_id" in r and not (isinstance(p, str) and HEX16.fullmatch(p) and
                                            p != "0" * 16 and p != s):
            bad.append(f"parent_span_id {p!r} (span {s})")
        elif not (isinstance(n, str) and n):
            bad.append(f"span_name {n!r}")
        else:
            continue
        if len(bad) > 5:
            break
    check(not bad, f"trace fields missing or malformed in {len(bad)}+ records, e.g. "
                   f"{bad[:5]}; first record: {recs[0] if recs else None}")
    ids = [r["span_id"] for r in recs]
    check(len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} span_ids are not unique")


def check_acyclic(topo, recs):
    cyc = cycles(recs)
    check(not cyc, f"{len(cyc)} parent cycles (a span is its own ancestor), e.g.:\n" +
          "\n".join("  " + "\n  ".join(line(topo, s) for s in c) for c in cyc[:3]))


def spans_of(recs, rid):
    return [r for r in recs if rid in mentions(r)]


def check_topology(topo, recs, requests):
    """Before any link: every request shows as the seven spans of its tree (right processes,
    sides, protocols), from this one tracer run."""
    problems = []
    for rid, svc, _ in requests:
        got = sorted(role(topo, r) for r in spans_of(recs, rid))
        if got != expected_roles(svc):
            problems.append(f"/{svc}/{rid}: spans {got}, expected {expected_roles(svc)}")
    check(not problems, f"{len(problems)} of {len(requests)} requests lack spans:\n  " +
          "\n  ".join(problems[:10]))


def check_one_tree(topo, links, recs, rid, svc):
    """(A): every span mentioning rid in one trace, linked exactly as the expected tree, and
    that trace holding no span of another request."""
    spans = spans_of(recs, rid)
    traces = {s.get("trace_id") for s in spans}
    check(len(traces) == 1, f"/{svc}/{rid}: spans in {len(traces)} traces:\n"
                            + tree_text(topo, spans))
    tid = traces.pop()
    in_trace = [r for r in recs if r.get("trace_id") == tid]
    others = {i for r in in_trace for i in mentions(r)} - {rid}
    check(not others, f"/{svc}/{rid}: trace {tid} also holds spans of {others}:\n"
                      + tree_text(topo, in_trace))
    verdicts = [(links.judge(s), s) for s in spans]
    bad = [f"{v}: {line(topo, s)} {d}" for (v, d), s in verdicts if v not in ("ok", "root")]
    roots = [s for (v, _), s in verdicts if v == "root"]
    check(not bad and len(roots) == 1,
          f"/{svc}/{rid}: tree differs from nginx.server -> nginx.client -> {svc}.server -> "
          f"{{redis, postgresql}} client -> server:\n  " + "\n  ".join(bad) +
          "\n  tree:\n" + tree_text(topo, in_trace))
    return in_trace


def main(a):
    require_root()
    from pg_cluster import PG_BIN, Cluster
    for tool in ("nginx", "redis-server", "go", "curl"):
        check(shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}"),
              f"{tool} missing: run scripts/install-deps.sh test")
    check(PG_BIN, "PostgreSQL server missing: run scripts/install-deps.sh test")
    r = subprocess.run([SERVICE_PYTHON, "-c", "import redis, psycopg2"], capture_output=True,
                       text=True)
    check(r.returncode == 0, f"{SERVICE_PYTHON} lacks redis/psycopg2 (python3-redis, "
                             f"python3-psycopg2: scripts/install-deps.sh test): {r.stderr}")

    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="odigos-traces-")
    os.chmod(tmp, 0o755)
    topo = Topology()
    procs = []
    cluster = nginx = tracer = None
    workers = set()
    try:
        goexe = build_go(tmp)
        cluster = Cluster()
        topo.pg = cluster.pid
        rport = free_port()
        rlog = open(os.path.join(tmp, "redis.log"), "w")
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=rlog, stderr=subprocess.STDOUT)
        procs.append(redis)
        topo.redis = redis.pid
        pyport, goport = free_port(), free_port()
        pylog = os.path.join(tmp, "py.log")
        py = subprocess.Popen([SERVICE_PYTHON, os.path.join(FIXTURES, "py_service.py"),
                               str(pyport), str(rport), str(cluster.port), str(DELAY_MS)],
                              stdout=subprocess.DEVNULL, stderr=open(pylog, "w"),
                              env=dict(os.environ, PGSSLMODE="disable"))
        procs.append(py)
        topo.py = py.pid
        golog = os.path.join(tmp, "go.log")
        gosvc = subprocess.Popen([goexe, "-listen", f"127.0.0.1:{goport}", "-redis",
                                  f"127.0.0.1:{rport}", "-delay-ms", str(DELAY_MS),
                                  "-downstream", f"http://127.0.0.1:{pyport}", "-pg",
                                  f"host=127.0.0.1 port={cluster.port} user=postgres "
                                  "dbname=postgres sslmode=disable"],
                                 stdout=subprocess.DEVNULL, stderr=open(golog, "w"))
        procs.append(gosvc)
        topo.go = gosvc.pid
        for port, name, log in ((rport, "redis-server", os.path.join(tmp, "redis.log")),
                                (pyport, "python service", pylog), (goport, "go service", golog)):
            try:
                wait_port(port, timeout=20)
            except Failure:
                raise Failure(f"{name} did not start:\n{log_tail(log)}")
        for port in (pyport, goport):
            code, body = curl(f"http://127.0.0.1:{port}/health")
            check(code == 200 and body == "ok", f"health of :{port}: {code} {body!r}")
        proxy = ("        proxy_http_version 1.1;\n"
                 "        proxy_set_header Connection \"\";\n")
        nginx, ntmp, nport = start_nginx(
            {}, workers=2, connections=512,
            http="    access_log off;\n"
                 f"    upstream py {{ server 127.0.0.1:{pyport}; keepalive 32; }}\n"
                 f"    upstream go {{ server 127.0.0.1:{goport}; keepalive 32; }}",
            server="        location /py/ {\n            proxy_pass http://py;\n" + proxy +
                   "        }\n        location /go/ {\n            proxy_pass http://go;\n" +
                   proxy + "        }")
        end = time.time() + 20
        while len(children(nginx.pid)) < 2 and time.time() < end:
            time.sleep(0.05)
        workers = children(nginx.pid)
        check(len(workers) == 2, f"nginx master {nginx.pid} has workers {workers}")
        topo.nginx = {nginx.pid} | workers
        print(f"  nginx {nginx.pid} (workers {sorted(workers)}) :{nport}, python {py.pid} "
              f":{pyport}, go {gosvc.pid} :{goport}, redis-server {redis.pid} :{rport}, "
              f"postmaster {cluster.pid} :{cluster.port}; set up in {time.monotonic() - t0:.1f}s")

        targets = []
        for pid in (nginx.pid, py.pid, gosvc.pid, redis.pid, cluster.pid):
            targets += ["--pid", str(pid)]
        tracer = Tracer(a.binary, targets, extra=["--no-redact", "-v"]).wait_attached()
        base = f"http://127.0.0.1:{nport}"

        def request(svc, rid, traceparent=None):
            code, body = curl(f"{base}/{svc}/{rid}", traceparent)
            check(code == 200 and body == rid, f"GET /{svc}/{rid}: {code} {body!r}\n"
                  f"python log:\n{log_tail(pylog)}\ngo log:\n{log_tail(golog)}")

        # (A) one request at a time.
        part_a = [(new_id(), "py", None), (new_id(), "go", None)]
        for rid, svc, _ in part_a:
            request(svc, rid)
        # (B) concurrent requests, started together.
        part_b = [(new_id(), ("py", "go")[i % 2], None) for i in range(CONCURRENT)]
        barrier = threading.Barrier(CONCURRENT)
        errors = []

        def one(rid, svc):
            try:
                barrier.wait(10)
                request(svc, rid)
            except Exception as e:  # reported below
                errors.append(str(e))

        threads = [threading.Thread(target=one, args=(rid, svc)) for rid, svc, _ in part_b]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(not errors, f"{len(errors)} concurrent requests failed: {errors[:3]}")
        # (C) requests carrying a W3C traceparent.
        part_c = [(new_id(), svc, (secrets.token_hex(16), secrets.token_hex(8)))
                  for svc in ("py", "go")]
        for rid, svc, (trace, parent) in part_c:
            request(svc, rid, f"00-{trace}-{parent}-01")
        # (D) Go's HTTP client from a handler, sequential then concurrent.
        part_d = [new_id() for _ in range(2 * CHAIN)]

        def chain(rid):
            code, body = curl(f"http://127.0.0.1:{goport}/chain/{rid}")
            check(code == 200 and body == rid, f"GET /chain/{rid}: {code} {body!r}\n"
                  f"go log:\n{log_tail(golog)}")

        for rid in part_d[:CHAIN]:
            chain(rid)
        def chain_in_thread(rid):
            try:
                chain(rid)
            except Exception as e:  # reported below
                errors.append(str(e))

        threads = [threading.Thread(target=chain_in_thread, args=(rid,)) for rid in part_d[CHAIN:]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(not errors, f"{len(errors)} /chain/ requests failed: {errors[:3]}")
        # (E) goroutines started by a handler; a worker goroutine shared by all requests.
        part_e = [new_id() for _ in range(2 * FAN)]
        part_e_pooled = [new_id() for _ in range(FAN)]

        def go_get(path, rid):
            try:
                code, body = curl(f"http://127.0.0.1:{goport}/{path}/{rid}")
                check(code == 200 and body == rid, f"GET /{path}/{rid}: {code} {body!r}\n"
                      f"go log:\n{log_tail(golog)}")
            except Exception as e:  # reported below
                errors.append(str(e))

        # The goroutine-creation probe is attached on demand: not yet (no Go call so far came
        # from a goroutine serving no request), then after the first such call (a warm-up).
        follow = f"following the goroutines of process {gosvc.pid}"
        check(follow not in tracer.stderr(), "goroutine-creation probe attached before any "
              f"call needed it:\n{tracer.stderr()[-2000:]}")
        go_get("fan", new_id())
        end = time.time() + 10
        while follow not in tracer.stderr() and time.time() < end:
            time.sleep(0.05)
        check(tracer.stderr().count(follow) == 1, f"'{follow}' said "
              f"{tracer.stderr().count(follow)} times after the first /fan/ request")
        for rid in part_e[:FAN]:
            go_get("fan", rid)
        threads = [threading.Thread(target=go_get, args=("fan", rid)) for rid in part_e[FAN:]]
        threads += [threading.Thread(target=go_get, args=("pooled", rid)) for rid in part_e_pooled]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(not errors, f"{len(errors)} /fan/ or /pooled/ requests failed: {errors[:3]}")
        # A worker started by the first /lazy/ request's handler serves later requests while
        # that first one still runs (it holds LAZY_HOLD_MS after its job).
        lazy_a, lazy_b = new_id(), [new_id() for _ in range(3)]

        def lazy_first():
            try:
                code, body = curl(f"http://127.0.0.1:{goport}/lazy/{lazy_a}?hold={LAZY_HOLD_MS}")
                check(code == 200 and body == lazy_a, f"GET /lazy/{lazy_a}: {code} {body!r}")
            except Exception as e:  # reported below
                errors.append(str(e))

        first = threading.Thread(target=lazy_first)
        first.start()
        time.sleep(0.2)
        for rid in lazy_b:
            go_get("lazy", rid)
        first.join(30)
        check(not errors, f"/lazy/ requests failed: {errors[:3]}")
        time.sleep(0.5)
        rc = tracer.stop()
        check(rc == 0, f"tracer exit {rc}:\n{tracer.stderr()}")
    finally:
        if tracer and tracer.proc.poll() is None:
            tracer.stop()
        if nginx:
            stop(nginx)
            end = time.time() + 10
            while any(alive(w, "nginx") for w in workers) and time.time() < end:
                time.sleep(0.05)
            for w in workers:
                if alive(w, "nginx"):
                    os.kill(w, 9)
        for p in procs:
            stop(p)
        if cluster:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    recs = tracer.records()
    print(f"  {len(recs)} request records in {tracer.out}; tracer: "
          f"{' / '.join(l.strip() for l in tracer.stderr().strip().splitlines()[-3:])}")

    analyse(topo, recs, part_a, part_b, part_c, part_d, part_e, part_e_pooled, (lazy_a, lazy_b))
    print(f"  total {time.monotonic() - t0:.1f}s")


def analyse(topo, recs, part_a, part_b, part_c, part_d, part_e, part_e_pooled, lazy):
    """The checks on the records of one run; part_a..c: [(id, "py"|"go", traceparent or None)],
    part_d: ids of /chain/ requests, part_e: of /fan/ requests, part_e_pooled: of /pooled/."""
    check_topology(topo, recs, part_a + part_b + part_c)
    print(f"  topology: every one of the {len(part_a + part_b + part_c)} requests has its 7 spans "
          "(nginx server+client, service server, redis client+server, postgresql client+server)")

    check_fields(recs)
    links = Links(topo, recs)
    failures = []
    try:
        check_acyclic(topo, recs)
    except Failure as e:
        failures.append(str(e))

    # (A)
    for rid, svc, _ in part_a:
        try:
            in_trace = check_one_tree(topo, links, recs, rid, svc)
            print(f"  (A) /{svc}/{rid}: one trace, the expected tree:\n" +
                  tree_text(topo, in_trace))
        except Failure as e:
            failures.append(f"(A) {e}")

    # (B)
    try:
        ids_b = {rid for rid, _, _ in part_b}
        spans_b = [r for r in recs if mentions(r) & ids_b]
        traces = {}
        for s in spans_b:
            traces.setdefault(s.get("trace_id"), set()).update(mentions(s))
        mixed = {t: ids for t, ids in traces.items() if len(ids) > 1}
        verdicts = {}
        wrong = []
        for s in spans_b:
            v, d = links.judge(s)
            verdicts[v] = verdicts.get(v, 0) + 1
            if v in ("wrong", "dangling"):
                wrong.append(f"{v}: {line(topo, s)}\n      {d}")
        expected_links = sum(n for v, n in verdicts.items() if v != "root")
        linked = verdicts.get("ok", 0)
        complete = 0
        for rid, svc, _ in part_b:
            sp = spans_of(recs, rid)
            if len({s.get("trace_id") for s in sp}) == 1 and \
                    all(links.judge(s)[0] in ("ok", "root") for s in sp):
                complete += 1
        print(f"  (B) {CONCURRENT} concurrent requests: {len(spans_b)} spans in {len(traces)} "
              f"traces; links: {linked} of {expected_links} made "
              f"({100.0 * linked / max(expected_links, 1):.1f}%), "
              f"{verdicts.get('unlinked', 0)} unlinked, {verdicts.get('wrong', 0)} wrong, "
              f"{verdicts.get('dangling', 0)} dangling; roots {verdicts.get('root', 0)}; "
              f"{complete} of {CONCURRENT} requests fully linked")
        moved = sum(1 for rid, svc, _ in part_b if svc == "go" and
                    len({get(r, "thread.id") for r in spans_of(recs, rid)
                         if role(topo, r).startswith("go.")}) > 1)
        print(f"      Go requests whose handler goroutine ran on more than one OS thread: "
              f"{moved} of {sum(1 for _, svc, _ in part_b if svc == 'go')}")
        unl = {}
        for s in spans_b:
            if links.judge(s)[0] == "unlinked":
                unl[role(topo, s)] = unl.get(role(topo, s), 0) + 1
        if unl:
            print(f"      unlinked by role: {unl}")
        check(not mixed, f"(B) {len(mixed)} traces mix requests: " +
              "; ".join(f"{t}: {sorted(i)}" for t, i in list(mixed.items())[:5]))
        check(not wrong, f"(B) {len(wrong)} spans with a wrong parent:\n  " +
              "\n  ".join(wrong[:10]))
        check(linked >= MIN_LINKED * expected_links,
              f"(B) only {linked} of {expected_links} links made "
              f"(< {MIN_LINKED:.0%}); unlinked by role: {unl}")
    except Failure as e:
        failures.append(str(e))

    # (C)
    for rid, svc, (trace, parent) in part_c:
        try:
            spans = spans_of(recs, rid)
            roots = [s for s in spans if role(topo, s) == "nginx.server.http"]
            check(len(roots) == 1 and roots[0].get("trace_id") == trace and
                  roots[0].get("parent_span_id") == parent,
                  f"/{svc}/{rid} with traceparent 00-{trace}-{parent}-01: nginx server span "
                  f"{[line(topo, s) for s in roots]}, expected trace {trace} parent {parent}")
            # The header's parent is curl's span: curl is not traced, no record has that id.
            clash = [r for r in recs if r.get("span_id") == parent]
            check(not clash, f"/{svc}/{rid}: the traceparent's parent id {parent} (the untraced "
                             "caller's) is the span_id of a record: "
                             f"{line(topo, clash[0]) if clash else ''}\n  tree:\n" +
                             tree_text(topo, spans))
            other = [s for s in spans if s.get("trace_id") != trace]
            check(not other, f"/{svc}/{rid}: spans outside the traceparent's trace {trace}:\n" +
                  tree_text(topo, spans))
            # The tree below the root: as in (A), except the root's parent is the caller's.
            bad = []
            for s in spans:
                v, d = links.judge(s)
                if s is roots[0]:
                    continue
                if v != "ok":
                    if s.get("parent_span_id") == parent:
                        d += (" (= the traceparent's parent id: nginx forwards the header "
                              "unchanged, but this span's caller is nginx's client span)")
                    bad.append(f"{v}: {line(topo, s)} {d}")
            check(not bad, f"/{svc}/{rid} with traceparent: tree differs below the root:\n  "
                           + "\n  ".join(bad) + "\n  tree:\n" + tree_text(topo, spans))
            print(f"  (C) /{svc}/{rid}: traceparent's trace and parent taken, the whole tree "
                  "in that trace")
        except Failure as e:
            failures.append(f"(C) {e}")

    # (D)
    try:
        check_chain(topo, recs, part_d)
    except Failure as e:
        failures.append(f"(D) {e}")

    # (E)
    try:
        check_fan(topo, recs, part_e, part_e_pooled)
    except Failure as e:
        failures.append(f"(E) {e}")
    try:
        check_lazy(topo, recs, *lazy)
    except Failure as e:
        failures.append(f"(E) {e}")

    check(not failures, "\n".join(failures))


class LinkTally:
    """Counts expected links: made, wrong (another parent), missing (unlinked)."""

    def __init__(self, topo, by_span):
        self.topo, self.by_span = topo, by_span
        self.linked = self.wrong = 0
        self.problems = []

    def judge(self, child, parent):
        p = child.get("parent_span_id")
        if p == parent["span_id"] and child["trace_id"] == parent["trace_id"]:
            self.linked += 1
        elif p:
            self.wrong += 1
            other = self.by_span.get(p)
            self.problems.append(f"wrong parent: {line(self.topo, child)}\n    parent "
                                 f"{line(self.topo, other) if other else p + ' (not in the output)'}")
        else:
            self.problems.append(f"unlinked ({child.get('odigos', {}).get('trace', {})}): "
                                 f"{line(self.topo, child)}")


def check_fan(topo, recs, ids, pooled_ids):
    """(E): go server /fan/<id> -> goroutines: go client INCR fan:<id>:a, INCR fan:<id>:b (from a
    goroutine's goroutine), GET /py/<id> -> py server /py/<id>; /pooled/<id> -> the shared
    worker's INCR pooled:<id>: no parent but its own request's."""
    by_span = {r["span_id"]: r for r in recs if "span_id" in r}
    tally = LinkTally(topo, by_span)
    judge = tally.judge

    def one(want, pred, what):
        return one_span(topo, recs, want, pred, what)

    for rid in ids:
        srv = one("go.server.http", lambda r: get(r, "url.path") == f"/fan/{rid}", f"/fan/{rid}")
        for key in (f"fan:{rid}:a", f"fan:{rid}:b"):
            judge(one("go.client.redis", lambda r: key in (get(r, "db.query.text") or ""), key), srv)
        cli = one("go.client.http", lambda r: get(r, "url.path") == f"/py/{rid}", f"/py/{rid}")
        judge(cli, srv)
        judge(one("py.server.http", lambda r: get(r, "url.path") == f"/py/{rid}", f"/py/{rid}"), cli)
    pooled_wrong, pooled_unlinked = [], 0
    for rid in pooled_ids:
        _, _, parent = worker_call(topo, recs, by_span, "pooled", rid)
        if parent is None:
            pooled_unlinked += 1
        elif parent != "own":
            pooled_wrong.append(parent)
    linked, wrong, problems = tally.linked, tally.wrong, tally.problems
    expected = 4 * len(ids)
    print(f"  (E) goroutines started by {len(ids)} handlers ({FAN} sequential, {FAN} concurrent): "
          f"{linked} of {expected} links, {wrong} wrong; the shared worker's calls for "
          f"{len(pooled_ids)} /pooled/ requests: {pooled_unlinked} unlinked, "
          f"{len(pooled_wrong)} under another request")
    check(wrong == 0, f"{wrong} wrong parents:\n  " + "\n  ".join(problems))
    check(not pooled_wrong, "the shared worker's call under another request:\n  " +
          "\n  ".join(pooled_wrong))
    check(linked == expected, f"{expected - linked} links missing:\n  " +
          "\n  ".join(problems[:6]))


def one_span(topo, recs, want, pred, what):
    got = [r for r in recs if role(topo, r) == want and pred(r)]
    check(len(got) == 1, f"{len(got)} {want} spans for {what}")
    return got[0]


def worker_call(topo, recs, by_span, path, rid):
    """The server span of /<path>/<rid>, the Redis call its job made (INCR <path>:<rid>) and
    that call's parent: None (unlinked), "own" (the request's server span), else a description
    of the other parent."""
    srv = one_span(topo, recs, "go.server.http", lambda r: get(r, "url.path") == f"/{path}/{rid}",
                   f"/{path}/{rid}")
    key = f"{path}:{rid}"
    cli = one_span(topo, recs, "go.client.redis", lambda r: key in (get(r, "db.query.text") or ""), key)
    p = cli.get("parent_span_id")
    if not p:
        return srv, cli, None
    if p == srv["span_id"]:
        return srv, cli, "own"
    other = by_span.get(p)
    return srv, cli, (f"{line(topo, cli)}\n    parent "
                      f"{line(topo, other) if other else p + ' (not in the output)'}")


def span_times(r):
    start = int(r["time_unix_nano"])
    return start, start + int(float(r["duration_ms"]) * 1e6)


def check_lazy(topo, recs, first, later):
    """(E): the worker the first /lazy/ request's handler started makes the later requests'
    calls while that request still runs: none may be under the first request (or any other
    than its own)."""
    by_span = {r["span_id"]: r for r in recs if "span_id" in r}
    first_srv = one_span(topo, recs, "go.server.http", lambda r: get(r, "url.path") == f"/lazy/{first}",
                         first)
    f0, f1 = span_times(first_srv)
    wrong, unlinked, during = [], 0, 0
    for rid in [first] + later:
        _, cli, parent = worker_call(topo, recs, by_span, "lazy", rid)
        if rid != first and f0 <= span_times(cli)[0] <= f1:
            during += 1
        if parent is None:
            unlinked += 1
        elif parent != "own":
            wrong.append(parent)
    print(f"  (E) a worker started by the first /lazy/ request's handler: {during} of {len(later)} "
          f"later requests' calls made while the first still ran; {unlinked} of {len(later) + 1} "
          f"calls unlinked, {len(wrong)} under another request")
    check(during == len(later), f"only {during} of {len(later)} later /lazy/ calls were made while "
          "the first request ran: the case is not exercised")
    check(not wrong, "the lazily started worker's calls under another request:\n  " +
          "\n  ".join(wrong))


def check_chain(topo, recs, ids):
    """(D): go server /chain/<id> -> go client GET /py/<id> -> py server /py/<id>, per id."""
    by_span = {r["span_id"]: r for r in recs if "span_id" in r}
    tally = LinkTally(topo, by_span)
    for rid in ids:
        def one(want, path):
            got = [r for r in recs if role(topo, r) == want and get(r, "url.path") == path]
            check(len(got) == 1, f"{len(got)} {want} spans for {path}")
            return got[0]
        srv = one("go.server.http", f"/chain/{rid}")
        cli = one("go.client.http", f"/py/{rid}")
        down = one("py.server.http", f"/py/{rid}")
        tally.judge(cli, srv)
        tally.judge(down, cli)
    linked, wrong, problems = tally.linked, tally.wrong, tally.problems
    print(f"  (D) Go HTTP client from {len(ids)} handlers ({CHAIN} sequential, {CHAIN} "
          f"concurrent): {linked} of {2 * len(ids)} links, {wrong} wrong")
    check(wrong == 0, f"{wrong} wrong parents:\n  " + "\n  ".join(problems))
    check(linked == 2 * len(ids), f"{2 * len(ids) - linked} links missing:\n  " +
          "\n  ".join(problems[:6]))


if __name__ == "__main__":
    run_main(main)
