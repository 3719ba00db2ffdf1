"""Faults: a ring buffer forced to overflow (loss reported live, in the JSON stream and the
summary; later records still correct), SIGKILL of odigos-trace leaves no BPF program behind
(bpftool), -o onto a full filesystem is an error with a non-zero exit."""
import json
import os
import re
import subprocess
import tempfile
import time

from harness import (prog_ids_of, loaded_prog_ids, Tracer, check, free_port, get, require_root, run_main, start_nginx,
                     start_python_server, stop)


def overflow(a):
    nginx, _, port = start_nginx({"index.html": "x" * 100}, prefix="odigos-ovf-")
    # 4 KiB ring (the minimum): a handful of events fits.
    t = Tracer(a.binary, ["--pid", str(nginx.pid)], extra=["--ringbuf-size", "4K"]).wait_attached()
    try:
        subprocess.run(["wrk", "-t1", "-c8", "-d2s", f"http://127.0.0.1:{port}/index.html"],
                       capture_output=True, check=True, timeout=30)
        time.sleep(0.5)
        # After the storm: single requests are decoded correctly again.
        codes = []
        for _ in range(3):
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"http://127.0.0.1:{port}/after"],
                                 capture_output=True, text=True, check=True, timeout=10)
            codes.append(int(out.stdout))
            time.sleep(0.3)
        time.sleep(0.5)
        rc = t.stop()
    finally:
        stop(nginx)
    check(rc == 0, f"tracer exit {rc} after overflow:\n{t.stderr()}")
    loss = t.records(kind="loss")
    check(loss and sum(get(r, "odigos.lost_events") for r in loss) > 0,
          "no loss record in the JSON stream")
    # Each loss record says which CPUs lost how many ("cpu0=12 cpu1=3"), adding up.
    for r in loss:
        parts = get(r, "odigos.lost_events_cpus", "").split()
        per = [int(p.split("=")[1]) for p in parts if re.fullmatch(r"cpu\d+=\d+", p)]
        check(per and len(per) == len(parts) and sum(per) == get(r, "odigos.lost_events"),
              f"loss record CPUs do not add up: {r}")
    check("events lost (ring buffer full)" in t.stderr(), "no live loss warning on stderr")
    m = re.search(r"[;,] (\d+) events lost", t.stderr())
    check(m and int(m.group(1)) > 0, f"summary does not report the loss:\n{t.stderr()}")
    after = [r for r in t.records() if get(r, "url.path") == "/after"]
    check(len(after) == 3 and [get(r, "http.response.status_code") for r in after] == codes
          and all(r["complete"] for r in after),
          f"requests after the overflow not decoded correctly: {after}")
    print(f"  overflow: {m.group(1)} events lost, later requests decoded")


def sigkill_leaves_nothing(a):
    port = free_port()
    server = start_python_server(port)
    t = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    try:
        ours = prog_ids_of(t.proc.pid)
        check(len(ours) >= 5, f"expected our programs in /proc/PID/fdinfo, found {ours}")
        check(ours <= loaded_prog_ids(), "our programs are not listed by bpftool")
        t.proc.kill()
        t.proc.wait(10)
        deadline = time.time() + 10
        left = ours & loaded_prog_ids()
        while left and time.time() < deadline:
            time.sleep(0.2)
            left = ours & loaded_prog_ids()
        check(not left, f"programs left after SIGKILL: {left}")
    finally:
        stop(server)
    print(f"  SIGKILL: {len(ours)} programs gone")


def full_filesystem(a):
    mnt = tempfile.mkdtemp(prefix="odigos-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], check=True)
    port = free_port()
    server = start_python_server(port)
    try:
        p = subprocess.Popen([a.binary, "--pid", str(server.pid), "-q", "-o", f"{mnt}/out.ndjson",
                              "--show", "headers,body=4096"], stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        for _ in range(200):
            if p.poll() is not None:
                break
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", "X-Pad: " + "p" * 2000,
                            f"http://127.0.0.1:{port}/large?bytes=4000"], timeout=10)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        err = p.stderr.read()
    finally:
        stop(server)
        subprocess.run(["umount", mnt])
    check(rc is not None, "the tracer kept running with a full output filesystem")
    check(rc == 125, f"exit {rc} on a full filesystem:\n{err}")
    check("No space left on device" in err, f"message: {err}")
    print("  full filesystem: exit 125, 'No space left on device'")


def test(a):
    require_root()
    overflow(a)
    sigkill_leaves_nothing(a)
    full_filesystem(a)


run_main(test)
