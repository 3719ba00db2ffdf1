"""Shared helpers for the integration tests.

Each test_*.py is a standalone script run by CTest as root:
    python3 test_x.py --binary build/odigos-trace
Exit 0 = pass, 77 = skipped (the reason is printed), anything else = failure.
The tests load the real BPF programs and trace real servers and clients; the
oracles are other programs' measurements (curl's timings, tshark's http.time,
server logs), never odigos-trace's own output.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    a, _ = p.parse_known_args()
    return a


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def require_root():
    if os.geteuid() != 0:
        skip("needs root to load BPF programs (run the suite with sudo)")


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"nothing listens on {host}:{port} after {timeout}s")


class Tracer:
    """Runs odigos-trace with NDJSON to a file; waits for the 'attached' line."""

    def __init__(self, binary, targets, extra=None, stdout=subprocess.DEVNULL, env=None,
                 preexec_fn=None):
        self.tmp = tempfile.mkdtemp(prefix="odigos-test-")
        self.out = os.path.join(self.tmp, "records.ndjson")
        self.cmd = [binary] + list(targets) + ["-q", "-o", self.out] + list(extra or [])
        self.stderr_lines = []
        self.attached = threading.Event()
        self.proc = subprocess.Popen(self.cmd, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                     env=env, preexec_fn=preexec_fn)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if "attached" in line:
                self.attached.set()
        self.attached.set()

    def wait_attached(self, timeout=30):
        if not self.attached.wait(timeout) or self.proc.poll() not in (None, 0) and \
                not any("attached" in l for l in self.stderr_lines):
            raise Failure("tracer did not attach:\n" + self.stderr())
        check(any("attached" in l for l in self.stderr_lines),
              "tracer exited before attaching:\n" + self.stderr())
        return self

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("tracer did not exit after signal:\n" + self.stderr())
        self._reader.join(5)
        return self.proc.returncode

    def wait(self, timeout=60):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("tracer did not exit by itself:\n" + self.stderr())
        self._reader.join(5)
        return self.proc.returncode

    def stderr(self):
        return "".join(self.stderr_lines)

    def records(self, kind="request"):
        return read_ndjson(self.out, kind)


def get(r, dotted, default=None):
    node = r
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def cpu_split():
    """(server_cpus, client_cpus): two disjoint CPU sets when at least two CPUs are usable,
    else (None, None). A client pinned away from the server is not preempted by the server's
    wakeup right after it sends a request, so the client's own user-space clock readings
    (curl -w) stay next to the socket calls they describe."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[-1]}


def pin(cpus):
    """A preexec_fn for subprocess.Popen that pins the child to cpus (None: no pinning)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def start_python_server(port, extra_env=None, cpus=None):
    """The test HTTP/1.1 server (tests/integration/servers/http_server.py).
    cpus: optional CPU set to pin the server to."""
    env = dict(os.environ, **(extra_env or {}))
    p = subprocess.Popen([sys.executable, os.path.join(SERVERS, "http_server.py"), str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                         preexec_fn=pin(cpus))
    try:
        wait_port(port)
    except Failure:
        stop(p)
        raise
    return p


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """
daemon {daemon};
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log{error_level};
events {{ worker_connections {connections}; }}
http {{
{http}
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port}{listen};
        root {tmp}/www;
{server}
    }}
}}
"""


def nginx_prefix(files, prefix="odigos-nginx-", http="    access_log off;", server="",
                 workers=1, connections=256, daemon=False, error_level="", listen=""):
    """A fresh nginx prefix directory: www/ holding files ({name: str or bytes}), readable by
    the workers (they run as nobody), and nginx.conf listening on a free 127.0.0.1 port.
    http/server: extra directives for the http and server blocks, "{tmp}" in them stands for
    the prefix directory. Returns (tmp, conf, port)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.chmod(www, 0o755)
    for name, content in files.items():
        path = os.path.join(www, name)
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.chmod(path, 0o644)
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port=port, http=http.replace("{tmp}", tmp),
                                  server=server.replace("{tmp}", tmp), workers=workers,
                                  connections=connections, daemon="on" if daemon else "off",
                                  listen=listen,
                                  error_level=f" {error_level}" if error_level else ""))
    return tmp, conf, port


def make_cert(directory, cn="localhost"):
    """A self-signed certificate made with openssl: returns (cert.pem, key.pem) in directory,
    readable by nginx's workers."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


def nginx_cmd(tmp, conf):
    return [NGINX, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")]


def start_nginx(files, timeout=20, **knobs):
    """nginx in the foreground (daemon off) on a fresh prefix (see nginx_prefix for files and
    knobs), listening once this returns. Returns (proc, tmp, port); stop it with stop(proc)."""
    # Not a skip: scripts/install-deps.sh installs nginx, so its absence is a broken setup.
    check(os.path.exists(NGINX), "nginx is not installed (run scripts/install-deps.sh test)")
    tmp, conf, port = nginx_prefix(files, **knobs)
    proc = subprocess.Popen(nginx_cmd(tmp, conf), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, timeout=timeout)
    except Failure:
        proc.kill()
        raise Failure("nginx did not start:\n" + proc.communicate()[1])
    return proc, tmp, port


def read_ndjson(path, kind="request"):
    """Records of one kind (None: all) from an NDJSON file; [] if the file does not exist."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                if kind is None or r.get("kind") == kind:
                    out.append(r)
    return out


def summary(recs):
    """(method, path, status) per record, sorted: for readable failure messages."""
    return sorted((str(get(r, "http.request.method")), str(get(r, "url.path")),
                   get(r, "http.response.status_code", -1)) for r in recs)


def stop(proc, sig=signal.SIGTERM):
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Tshark:
    """Packet-level oracle: tshark's own request/response timing (http.time)."""

    def __init__(self, port, iface="lo"):
        self.tmp = tempfile.mkdtemp(prefix="odigos-pcap-")
        self.pcap = os.path.join(self.tmp, "cap.pcap")
        os.chmod(self.tmp, 0o777)
        self.proc = subprocess.Popen(
            ["tshark", "-q", "-i", iface, "-f", f"tcp port {port}", "-w", self.pcap],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tshark prints "Capturing on 'Loopback: lo'" once the capture runs.
        end = time.time() + 20
        line = ""
        while time.time() < end:
            line = self.proc.stderr.readline()
            if "Capturing on" in line or not line:
                break
        check("Capturing on" in line, f"tshark did not start: {line}")
        self.port = port

    def stop_and_read(self, keylog=None):
        """keylog: a TLS key log file (SSLKEYLOGFILE of the client) to decrypt HTTPS with."""
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(20)
        tls = ["-o", f"tls.keylog_file:{keylog}", "-d", f"tcp.port=={self.port},tls", "-o",
               f"http.tls.port:{self.port}"] if keylog else ["-o", f"http.tcp.port:{self.port}"]
        res = subprocess.run(
            ["tshark", "-r", self.pcap, *tls, "-Y", "http.response",
             "-T", "fields", "-E", "separator=\t", "-e", "http.response_for.uri", "-e", "http.time",
             "-e", "http.response.code", "-e", "tcp.stream", "-e", "frame.time_epoch"],
            capture_output=True, text=True, check=True)
        rows = []
        for line in res.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1]:
                end = float(parts[4]) if len(parts) > 4 and parts[4] else 0.0
                rows.append({"uri": parts[0], "time_ms": float(parts[1]) * 1000.0,
                             "status": int(parts[2].split(",")[0]), "stream": parts[3],
                             "end_s": end, "start_s": end - float(parts[1])})
        return rows


def run_main(fn):
    """Runs a test function; prints PASS/FAIL; exits with the right code."""
    try:
        fn(args())
    except Failure as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("PASS")
    sys.exit(0)


def check_schema(records):
    """Every key of every record is documented in docs/schema/record.schema.json, with the
    documented type (the walker of test_schema.py)."""
    from test_schema import SCHEMA, walk
    with open(SCHEMA) as f:
        schema = json.load(f)
    errors = []
    for r in records:
        walk(r, schema, "", errors)
    check(not errors, "records do not match the schema:\n  " + "\n  ".join(sorted(set(errors))[:30]))


def prog_ids_of(pid):
    """IDs of the BPF programs a process holds open (from /proc/PID/fdinfo)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return ids


def loaded_prog_ids():
    """IDs of every BPF program loaded in the kernel (bpftool)."""
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True,
                         check=True).stdout
    return {p["id"] for p in json.loads(out)}


def proc_status(pid):
    """/proc/PID/status as a dict (VmRSS, VmHWM, CapEff...)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def children(pid):
    """PIDs of the processes whose parent is `pid` (e.g. nginx's workers)."""
    kids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name.
        if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
            kids.add(int(entry))
    return kids
