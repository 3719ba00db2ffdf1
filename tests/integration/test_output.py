"""What the user sees: redaction of secrets by default (and --no-redact), --show headers and
body in JSON and on the terminal, colour only on a TTY and never with NO_COLOR, and the
terminal line's columns. The oracle for what was sent is curl's own command line."""
import json
import os
import re
import subprocess
import time

from harness import (Tracer, check, free_port, get, require_root, run_main, start_python_server,
                     stop)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def curl_secret(port):
    subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", "Authorization: Bearer s3cr3t-token",
                    "-b", "sid=cookie-secret", "--data-binary", "hello-body-0123456789",
                    f"http://127.0.0.1:{port}/echo?user=bob&token=abc123&page=2"],
                   check=True, timeout=20)


def json_run(binary, server, port, extra):
    t = Tracer(binary, ["--pid", str(server.pid)], extra=extra).wait_attached()
    try:
        curl_secret(port)
        time.sleep(0.3)
    finally:
        rc = t.stop()
    check(rc == 0, f"tracer exit {rc}: {t.stderr()}")
    recs = t.records()
    check(len(recs) == 1, f"expected 1 record, got {len(recs)}")
    # Written records are spans: linked, and the summary counts them.
    check("odigos-trace: traces: 1 spans" in t.stderr() and "span_id" in recs[0],
          f"no span linking with -o: {t.stderr()}")
    return recs[0]


def terminal_run(binary, server, port, env_extra, tty):
    """Runs the tracer with its stdout on a pipe or (tty=True) on a pseudo-terminal via
    script(1); returns what the terminal got, and (on a pipe) the tracer's stderr."""
    env = dict(os.environ, **env_extra)
    env.pop("NO_COLOR", None) if "NO_COLOR" not in env_extra else None
    cmd = [binary, "--pid", str(server.pid), "--show", "headers"]
    if tty:
        out_file = f"/tmp/odigos-tty-{os.getpid()}.txt"
        quoted = " ".join(cmd)
        p = subprocess.Popen(["script", "-qfec", quoted, out_file], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    else:
        out_file = None
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(1.5)  # attach (stderr is not ours to watch under script)
    curl_secret(port)
    time.sleep(0.5)
    subprocess.run(["pkill", "-INT", "-f", f"{binary} --pid {server.pid}"])
    err = ""
    if tty:
        p.wait(20)
        with open(out_file, errors="replace") as f:
            text = f.read()
        os.unlink(out_file)
    else:
        text, err = p.communicate(timeout=20)
    return text, err


def test(a):
    require_root()
    port = free_port()
    server = start_python_server(port)
    try:
        # Default: secrets redacted, headers shown only with --show.
        r = json_run(a.binary, server, port, [])
        check(get(r, "url.query") == "user=bob&token=REDACTED&page=2", f"url.query {get(r, 'url.query')}")
        check(get(r, "http.request.header") is None, "headers present without --show")
        check(get(r, "http.request.method") == "POST" and get(r, "url.path") == "/echo", str(r))
        check(get(r, "http.request.body.size") == len("hello-body-0123456789"), "request body size")

        r = json_run(a.binary, server, port, ["--show", "headers,body=10"])
        h = get(r, "http.request.header") or {}
        check(h.get("authorization") == "REDACTED", f"authorization: {h.get('authorization')}")
        check(h.get("cookie") == "REDACTED", f"cookie: {h.get('cookie')}")
        check(h.get("user-agent", "").startswith("curl/"), f"user-agent: {h}")
        check(get(r, "http.request.body.content") == "hello-body", f"body: {get(r, 'http.request.body.content')}")
        check(get(r, "http.response.header.content-type") == "application/octet-stream", str(r))
        blob = json.dumps(r)
        for secret in ("s3cr3t-token", "cookie-secret", "abc123"):
            check(secret not in blob, f"secret {secret!r} leaked: {blob}")

        r = json_run(a.binary, server, port, ["--show", "headers", "--no-redact"])
        check(get(r, "http.request.header.authorization") == "Bearer s3cr3t-token", str(r))
        check(get(r, "url.query") == "user=bob&token=abc123&page=2", str(r))

        # Terminal: columns, no colour on a pipe.
        text, err = terminal_run(a.binary, server, port, {}, tty=False)
        # The terminal lines alone need no linking: no span summary.
        check("requests" in err or "records" in err, f"no exit summary on stderr: {err!r}")
        check("odigos-trace: traces:" not in err, f"spans linked for the terminal alone: {err!r}")
        lines = [l for l in text.splitlines() if "/echo" in l]
        check(len(lines) == 1, f"terminal output: {text!r}")
        line = lines[0]
        for part in ("POST", "/echo?user=bob&token=REDACTED&page=2", "200", "server",
                     f"{server.pid}/python"):
            check(part in line, f"{part!r} missing from terminal line {line!r}")
        check(not ANSI.search(text), f"colour on a pipe: {text!r}")
        check("> authorization: REDACTED" in text, f"--show headers on the terminal: {text!r}")

        # On a TTY: colour; with NO_COLOR: none.
        text, _ = terminal_run(a.binary, server, port, {}, tty=True)
        check("/echo" in text, f"tty output: {text!r}")
        check(ANSI.search(text), f"no colour on a TTY: {text!r}")
        text, _ = terminal_run(a.binary, server, port, {"NO_COLOR": "1"}, tty=True)
        check("/echo" in text, f"tty output: {text!r}")
        check(not ANSI.search(text.replace("\x1b[K", "")), f"colour despite NO_COLOR: {text!r}")
    finally:
        stop(server)


run_main(test)
