"""`odigos-trace demo --duration 2s --json`: exits 0 by itself and prints NDJSON records from
both the demo server and the demo client, with statuses 200, 404, 500 and 204, a /large
response of 262144 body bytes and a chunked response."""
import json
import subprocess
import time

from harness import Failure, check, get, require_root, run_main

LARGE = 262144


def run_demo(cmd, timeout=60):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"`{' '.join(cmd)}` did not exit by itself within {timeout}s:\n{e.stderr}")
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def check_output(cmd, rc, out, err, took):
    what = "`" + " ".join(cmd[1:]) + "`"
    print(f"  {what}: exit {rc} after {took:.1f} s, {len(out.splitlines())} stdout lines")
    check(rc == 0, f"{what} exited {rc}, expected 0:\n{err}")
    check(took < 30, f"{what} took {took:.1f} s for a 2 s demo")
    recs = []
    for i, line in enumerate(out.splitlines()):
        try:
            recs.append(json.loads(line))
        except ValueError:
            raise Failure(f"{what}: stdout line {i + 1} is not JSON: {line!r}")
    reqs = [r for r in recs if r.get("kind") == "request"]
    check(reqs, f"{what}: no request records on stdout")
    for side, command in (("server", "demo-server"), ("client", "demo-client")):
        mine = [r for r in reqs if r.get("side") == side]
        check(mine, f"{what}: no {side}-side records")
        cmds = {get(r, "process.command") for r in mine}
        check(cmds == {command}, f"{what}: {side}-side process.command {cmds}, expected {command}")
        statuses = {get(r, "http.response.status_code") for r in mine}
        for s in (200, 404, 500, 204):
            check(s in statuses, f"{what}: no {side}-side record with status {s} ({statuses})")
        large = [r for r in mine if get(r, "url.path") == "/large"]
        check(large, f"{what}: no {side}-side /large record")
        sizes = {get(r, "http.response.body.size") for r in large}
        check(sizes == {LARGE}, f"{what}: {side}-side /large body sizes {sizes}, expected {LARGE}")
        chunked = [r for r in mine if get(r, "url.path") == "/chunked"]
        check(chunked, f"{what}: no {side}-side /chunked record")
        check(all(get(r, "http.response.status_code") == 200 and r.get("complete") is True and
                  (get(r, "http.response.body.size") or 0) > 0 for r in chunked),
              f"{what}: {side}-side /chunked records: {chunked[:2]}")
        incomplete = [r for r in mine if r.get("complete") is not True]
        check(not incomplete, f"{what}: incomplete {side}-side records: {incomplete[:3]}")
    pids = {get(r, "process.pid") for r in reqs}
    check(len(pids) == 2, f"{what}: records from pids {pids}, expected the demo's two")
    servers = [r for r in reqs if r.get("side") == "server"]
    clients = [r for r in reqs if r.get("side") == "client"]
    check(len(servers) == len(clients),
          f"{what}: {len(servers)} server-side vs {len(clients)} client-side records")


def test(a):
    require_root()
    cmd = [a.binary, "demo", "--duration", "2s", "--json"]
    rc, out, err, took = run_demo(cmd)
    failure = None
    try:
        check_output(cmd, rc, out, err, took)
    except Failure as e:
        failure = e
    if failure:
        # Tell apart "the demo is broken" from "this spelling of the flags is refused".
        alt = [a.binary, "--json", "demo", "--duration", "2s"]
        try:
            check_output(alt, *run_demo(alt))
            print(f"  (`{' '.join(alt[1:])}` works)")
        except Failure as e:
            print(f"  (`{' '.join(alt[1:])}` fails too: {e})")
        raise failure


run_main(test)
