#!/usr/bin/env python3
"""Helpers of bench/db_bench.sh (python3 standard library only).

  free-port                   print a free TCP port on 127.0.0.1
  redis-csv FILE              redis-benchmark --csv output: one "TEST rps avg_us p99_us" line per test
  commandstats FILE           INFO commandstats output: print "set_calls get_calls"
  redis-count NDJSON          records of the tracer: print "set get set_incomplete get_incomplete other"
                              (protocol redis, db.operation.name SET / GET; complete false counted apart)
  pgbench OUT LOGPREFIX       pgbench output and its -l logs (LOGPREFIX.*): print
                              "tps processed failed latency_avg_us p99_us logged"
  pg-count NDJSON PREFIX      records of the tracer: print "executes prepares incomplete other": protocol
                              postgresql records whose db.query.text starts with PREFIX, executions
                              (complete) apart from prepare-only exchanges (odigos.db.prepare) and
                              incomplete ones
  cpu-pg PID                  CPU seconds of a postmaster, its live children and the children it reaped
  summary RUNS.TSV            medians, ratios B/A with bootstrap 95% CIs, per workload and test

Counting records: redis runs write millions of lines, too many to json-decode each in reasonable time
on a shared 2-vCPU machine. The fields are taken with regular expressions on the raw line (a JSON
string cannot contain an unescaped quote, so '"name":"SET"' cannot match inside a value), and the
regular expressions are checked against a full JSON decode of every CHECK_EVERY-th line and of every
line where they found no operation; any disagreement aborts the count (exit 3), so a format change
cannot silently produce wrong counts.
"""
import glob
import json
import math
import os
import re
import socket
import statistics as st
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nginx_wrk_stats import bootstrap_ratio  # noqa: E402  (one bootstrap for every bench script)

CHECK_EVERY = 64


# ---- load generator outputs ---------------------------------------------------------------------
def redis_csv(path):
    """{"SET": (rps, avg_us, p99_us), ...} from redis-benchmark --csv (redis 7: the columns are
    test, rps, avg_latency_ms, min_latency_ms, p50_latency_ms, p95_latency_ms, p99_latency_ms,
    max_latency_ms)."""
    head, out = None, {}
    for line in open(path, errors="replace"):
        line = line.strip().replace("\r", "")
        if not line.startswith('"'):
            continue
        cells = [c.strip('"') for c in line.split('","')]
        if cells[0] == "test":
            head = {name: i for i, name in enumerate(cells)}
            continue
        if head is None:
            continue
        rps = float(cells[head["rps"]])
        avg = float(cells[head["avg_latency_ms"]]) * 1e3 if "avg_latency_ms" in head else float("nan")
        p99 = float(cells[head["p99_latency_ms"]]) * 1e3 if "p99_latency_ms" in head else float("nan")
        # "SET" (redis 7); older versions name tests "SET" too, "PING_INLINE"... for others
        out[cells[0].split()[0].upper()] = (rps, avg, p99)
    return out


def commandstats(path):
    calls = {}
    for line in open(path, errors="replace"):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line.strip())
        if m:
            calls[m.group(1).lower()] = int(m.group(2))
    return calls.get("set", 0), calls.get("get", 0)


def pgbench_out(out, logprefix):
    t = open(out, errors="replace").read()
    m = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", t, re.M) or \
        re.search(r"^tps = ([\d.]+)", t, re.M)
    if not m:
        raise SystemExit(f"no tps line in {out}")
    tps = float(m.group(1))
    processed = int(re.search(r"number of transactions actually processed: (\d+)", t).group(1))
    m = re.search(r"number of failed transactions: (\d+)", t)
    failed = int(m.group(1)) if m else 0
    m = re.search(r"latency average = ([\d.]+) ms", t)
    lat_avg = float(m.group(1)) * 1e3 if m else float("nan")
    # -l: "client_id transaction_no time script_no time_epoch time_us", time in us
    lat = []
    for path in glob.glob(glob.escape(logprefix) + ".*"):
        for line in open(path, errors="replace"):
            f = line.split()
            if len(f) >= 3 and f[2].isdigit():
                lat.append(int(f[2]))
    lat.sort()
    p99 = float(lat[max(0, math.ceil(0.99 * len(lat)) - 1)]) if lat else float("nan")
    return tps, processed, failed, lat_avg, p99, len(lat)


# ---- tracer records -------------------------------------------------------------------------------
RX_PROTO = re.compile(rb'"protocol":"([^"\\]*)"')
RX_OP = re.compile(rb'"operation":\{"name":"((?:[^"\\]|\\.)*)"')
RX_COMPLETE = re.compile(rb'"complete":(true|false)')
RX_TEXT = re.compile(rb'"query":\{"text":"((?:[^"\\]|\\.)*)"')
RX_PREPARE = re.compile(rb'"prepare":true')


def _json_fields(obj):
    db = obj.get("db") or {}
    op = (db.get("operation") or {}).get("name")
    text = (db.get("query") or {}).get("text")
    prep = bool(((obj.get("odigos") or {}).get("db") or {}).get("prepare"))
    return obj.get("protocol"), op, obj.get("complete"), text, prep


def _rx_fields(line):
    def g(rx):
        m = rx.search(line)
        return m.group(1) if m else None
    proto, op, comp, text = g(RX_PROTO), g(RX_OP), g(RX_COMPLETE), g(RX_TEXT)
    dec = lambda b: None if b is None else json.loads(b'"' + b + b'"')
    return (dec(proto), dec(op), None if comp is None else comp == b"true", dec(text),
            bool(RX_PREPARE.search(line)))


def records(path):
    """Yield (protocol, operation, complete, text, prepare) of every line, cross-checked."""
    with open(path, "rb") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            fields = _rx_fields(line)
            if n % CHECK_EVERY == 0 or fields[1] is None:
                try:
                    ref = _json_fields(json.loads(line))
                except ValueError:
                    sys.stderr.write(f"{path}:{n + 1}: not JSON: {line[:200]!r}\n")
                    raise SystemExit(3)
                if ref != fields:
                    sys.stderr.write(f"{path}:{n + 1}: fields {fields} != JSON {ref}\n")
                    raise SystemExit(3)
            yield fields


def redis_count(path):
    c = {"SET": 0, "GET": 0}
    inc = {"SET": 0, "GET": 0}
    other = 0
    for proto, op, complete, _, _ in records(path):
        if proto == "redis" and op in c:
            if complete:
                c[op] += 1
            else:
                inc[op] += 1
        else:
            other += 1
    return c["SET"], c["GET"], inc["SET"], inc["GET"], other


def pg_count(path, prefix):
    ex = prep = inc = other = 0
    for proto, _, complete, text, prepare in records(path):
        if proto == "postgresql" and text is not None and text.startswith(prefix):
            if prepare:
                prep += 1
            elif complete:
                ex += 1
            else:
                inc += 1
        else:
            other += 1
    return ex, prep, inc, other


def cpu_pg(pid):
    """utime + stime + cutime + cstime of the postmaster (backends that exited were reaped by
    it) plus utime + stime of its live children."""
    hz = os.sysconf("SC_CLK_TCK")

    def stat(p):
        try:
            s = open(f"/proc/{p}/stat").read()
        except OSError:
            return None
        return s[s.rindex(")") + 2:].split()

    f = stat(pid)
    if f is None:
        return 0.0
    total = sum(int(x) for x in f[11:15])
    for d in os.listdir("/proc"):  # /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN
        if d.isdigit():
            g = stat(d)
            if g is not None and int(g[1]) == pid:  # field 4 (ppid)
                total += int(g[11]) + int(g[12])
    return total / hz


# ---- statistics ---------------------------------------------------------------------------------
def fnum(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def summary(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    head, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    get = lambda r, name: r[col[name]]
    keys = []
    for r in rows:
        k = (get(r, "workload"), get(r, "test"))
        if k not in keys:
            keys.append(k)
    rc = 0
    for wl, test in keys:
        rs = [r for r in rows if get(r, "workload") == wl and get(r, "test") == test]
        A = {get(r, "pair"): r for r in rs if get(r, "side") == "A"}
        B = {get(r, "pair"): r for r in rs if get(r, "side") == "B"}
        unit = get(rs[0], "unit")
        bad = [p for p, r in B.items() if get(r, "valid") != "yes"]
        ok = [p for p in A if p in B and p not in bad]
        print(f"== {wl} {test}: valid B runs {len(ok)} of {len(B)}")
        if bad:
            print(f"   INVALID B runs (records != operations the server counted, or events lost): "
                  f"pairs {', '.join(bad)}")
        if not ok:
            rc = 1
            continue
        f = lambda side, name, pairs: [fnum(get(side[p], name)) for p in pairs]
        for label, side in (("A untraced", A), ("B traced  ", B)):
            t, p99, avg = f(side, "tput", ok), f(side, "p99_us", ok), f(side, "avg_us", ok)
            line = (f"   {label}: {unit} median {st.median(t):,.0f} (min {min(t):,.0f}, max {max(t):,.0f})")
            if all(x is not None for x in avg):
                line += f"; latency avg median {st.median(avg):,.0f} us"
            if all(x is not None for x in p99):
                line += f"; p99 median {st.median(p99):,.0f} us"
            print(line)

        def ratio(name, label, fmt):
            a, b = f(A, name, ok), f(B, name, ok)
            if any(x is None or x <= 0 for x in a) or any(x is None for x in b):
                return
            lo, hi = bootstrap_ratio(a, b)
            per = sorted(y / x for x, y in zip(a, b))
            print(f"   B/A {label}: {st.median(b) / st.median(a):{fmt}} (bootstrap 95% CI {lo:{fmt}}..{hi:{fmt}}, "
                  f"{len(ok)} pairs); per pair {per[0]:{fmt}}..{per[-1]:{fmt}}, median {st.median(per):{fmt}}")
        ratio("tput", unit, ".3f")
        ratio("avg_us", "latency average", ".2f")
        ratio("p99_us", "latency p99", ".2f")
        done, recs = f(B, "ops", ok), f(B, "records", ok)
        print(f"   records vs operations (valid B runs): max |diff| "
              f"{max(abs(x - y) for x, y in zip(done, recs)):.0f} of median {st.median(done):,.0f}; "
              f"events lost 0 in each")

        def per_op(side, name, pairs, n_name="cpu_ops"):
            out = []
            for p in pairs:
                x, n = fnum(get(side[p], name)), fnum(get(side[p], n_name))
                if x is not None and n:
                    out.append(x / n * 1e6)
            return st.median(out) if out else float("nan")
        print(f"   CPU us per operation, median: server A {per_op(A, 'server_cpu_s', ok):.1f} -> "
              f"B {per_op(B, 'server_cpu_s', ok):.1f}; load generator A {per_op(A, 'client_cpu_s', ok):.1f} -> "
              f"B {per_op(B, 'client_cpu_s', ok):.1f}; tracer {per_op(B, 'tracer_cpu_s', ok):.1f} "
              f"(whole run; {get(rs[0], 'cpu_note')})")
    return rc


def main():
    cmd, a = (sys.argv[1] if len(sys.argv) > 1 else ""), sys.argv[2:]
    if cmd == "free-port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
    elif cmd == "redis-csv":
        for test, (rps, avg, p99) in redis_csv(a[0]).items():
            print(test, rps, f"{avg:.1f}", f"{p99:.1f}")
    elif cmd == "commandstats":
        print(*commandstats(a[0]))
    elif cmd == "redis-count":
        print(*redis_count(a[0]))
    elif cmd == "pgbench":
        tps, processed, failed, lat_avg, p99, logged = pgbench_out(a[0], a[1])
        print(tps, processed, failed, f"{lat_avg:.1f}", f"{p99:.1f}", logged)
    elif cmd == "pg-count":
        print(*pg_count(a[0], a[1]))
    elif cmd == "cpu-pg":
        print(f"{cpu_pg(int(a[0])):.3f}")
    elif cmd == "summary":
        return summary(a[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
