"""`odigos-trace ... --json | head -1` as a user types it (bash, pipefail): the pipeline ends
quickly once head has its line, the tracer's own exit status is 0, it prints no error, and
the BPF programs it loaded are gone afterwards (bpftool).

test_errors.py (closed_pipe) already checks the exit status 0 and the first line with Popen
pipes, and test_faults.py (sigkill_leaves_nothing) that SIGKILL leaves no program; neither
bounds the time the pipeline takes nor checks programs after the broken-pipe exit.

Under steady traffic (a request every 100 ms by a client thread) the first record reaches head
within LIVE_S of the tracer attaching, and the whole pipeline has exited within EXIT_S of
head's line: the tracer notices the closed pipe at its next write (the next record) or, with
no traffic after head's line, by polling its stdout pipe (POLLERR once the reader is gone):
both cases must exit within EXIT_S.
"""
import json
import os
import re
import subprocess
import threading
import time
import urllib.request

from harness import (prog_ids_of, loaded_prog_ids, Failure, check, free_port, require_root, run_main, start_python_server,
                     stop)

LIVE_S = 2.0   # attach -> head has the first record
EXIT_S = 2.0   # head has its line -> the whole pipeline has exited


def child_named(ppid, comm):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == comm and int(fields[1]) == ppid:
            return int(d)
    return None


class Traffic:
    """GET /fast every period seconds from a thread, until stopped."""

    def __init__(self, port, period=0.1):
        self.port, self.period, self.count = port, period, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/fast", timeout=5).read()
                self.count += 1
            except OSError:
                pass
            self.stopped.wait(self.period)

    def stop(self):
        self.stopped.set()
        self.thread.join(10)


def pipeline(a, port, traffic_after_head):
    """Runs `BIN --port P --json | head -1` under bash; returns a dict of timings."""
    script = ('set -o pipefail; "$0" --port "$1" --json | head -1; '
              'echo "pipestatus ${PIPESTATUS[*]}" >&2')
    traffic = Traffic(port)
    p = subprocess.Popen(["bash", "-c", script, a.binary, str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    err_lines = []
    tracer = None
    ours = set()
    try:
        line = p.stderr.readline()
        err_lines.append(line)
        check("attached" in line, f"tracer did not attach: {line!r}")
        t_attached = time.monotonic()
        tracer = child_named(p.pid, "odigos-trace")
        check(tracer is not None, "cannot find the tracer process under bash")
        ours = prog_ids_of(tracer)
        check(len(ours) >= 5, f"expected the tracer's programs in its fdinfo, found {ours}")
        first = p.stdout.readline()
        t_line = time.monotonic()
        if not traffic_after_head:
            traffic.stop()
        try:
            p.wait(EXIT_S if traffic_after_head else 3.0)
            t_exit = time.monotonic()
        except subprocess.TimeoutExpired:
            t_exit = None
        if t_exit is None and not traffic_after_head:
            # The expected outcome here: one more request lets the tracer see the closed pipe.
            urllib.request.urlopen(f"http://127.0.0.1:{port}/fast", timeout=5).read()
            p.wait(10)
        rest = p.stdout.read()
        err_lines += p.stderr.readlines()
    except subprocess.TimeoutExpired:
        raise Failure("the pipeline did not end")
    finally:
        traffic.stop()
        if p.poll() is None:
            p.kill()
            p.wait()
        if tracer and os.path.exists(f"/proc/{tracer}"):
            try:
                os.kill(tracer, 9)
            except ProcessLookupError:
                pass
    err = "".join(err_lines)
    return {"first": first, "rest": rest, "err": err, "rc": p.returncode, "ours": ours,
            "live_s": t_line - t_attached,
            "exit_s": None if t_exit is None else t_exit - t_line, "requests": traffic.count}


def test(a):
    require_root()
    port = free_port()
    server = start_python_server(port)
    try:
        r = pipeline(a, port, traffic_after_head=True)
        idle = pipeline(a, port, traffic_after_head=False)
    finally:
        stop(server)

    print(f"  with traffic: first record {r['live_s']:.2f} s after attach, pipeline exited "
          f"{r['exit_s'] if r['exit_s'] is None else round(r['exit_s'], 2)} s after it; "
          f"stderr: {r['err'].strip()!r}")
    check(r["first"].startswith("{") and json.loads(r["first"]).get("kind") == "request",
          f"head -1 printed {r['first']!r}")
    check(r["rest"] == "", f"output after head's line: {r['rest']!r}")
    check(r["live_s"] <= LIVE_S, f"the first record took {r['live_s']:.2f} s after attach")
    check(r["exit_s"] is not None and r["exit_s"] <= EXIT_S,
          f"the pipeline did not exit within {EXIT_S} s of head's line "
          f"({r['requests']} requests made)")
    m = re.search(r"pipestatus (\d+) (\d+)", r["err"])
    check(m and m.group(1) == "0" and m.group(2) == "0",
          f"exit statuses (tracer, head): {m.groups() if m else None}\n{r['err']}")
    check(r["rc"] == 0, f"pipeline exit {r['rc']}")
    for bad in ("error", "Traceback", "terminate called", "Segmentation", "Aborted"):
        check(bad not in r["err"], f"{bad!r} on stderr:\n{r['err']}")
    deadline = time.time() + 5
    left = r["ours"] & loaded_prog_ids()
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = r["ours"] & loaded_prog_ids()
    check(not left, f"programs left after the broken-pipe exit: {left}")
    print(f"  {len(r['ours'])} programs gone after the exit; tracer and head exit status 0")

    check(idle["rc"] == 0 and re.search(r"pipestatus 0 0", idle["err"]),
          f"idle case: exit {idle['rc']}:\n{idle['err']}")
    check(idle["exit_s"] is not None and idle["exit_s"] <= EXIT_S,
          f"without traffic after head's line the pipeline did not exit within {EXIT_S} s "
          f"(exit after {idle['exit_s']} s)")
    print(f"  without traffic after head's line: exited {idle['exit_s']:.2f} s after it")


run_main(test)
