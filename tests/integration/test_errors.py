"""Bad input and hostile environments: each must exit 125 with an `odigos-trace: error:` line
that says what is wrong, leave no output file behind, and never crash. Also: -o creates its
file with mode 0600 whatever the umask; --help lists every flag of the man page; a closed
stdout pipe (`| head -1`) ends the tracer cleanly with exit code 0."""
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from harness import (Failure, check, free_port, require_root, run_main, start_python_server,
                     stop)

HERE = os.path.dirname(os.path.abspath(__file__))
MAN = os.path.join(HERE, "..", "..", "man", "odigos-trace.1")


def run(cmd, env=None, timeout=30, preexec_fn=None):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, timeout=timeout, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"{cmd} did not exit within {timeout}s (stderr: {e.stderr})")
    return p.returncode, p.stdout, p.stderr


def no_crash(err, what):
    for bad in ("Traceback", "terminate called", "Segmentation", "Aborted", "what():"):
        check(bad not in err, f"{what}: crash output on stderr:\n{err}")


def expect_error(a, tmp, label, args, must_contain, env=None, prefix=(), hint=None):
    """Runs the binary with args plus -o FILE; requires exit 125, one error line holding every
    string of must_contain (case-insensitive), optional hint text, and no FILE afterwards."""
    out = os.path.join(tmp, f"{label}.ndjson")
    rc, stdout, err = run([*prefix, a.binary, *args, "-o", out], env=env)
    print(f"  {label}: exit {rc}: {err.strip()}")
    no_crash(err, label)
    check(rc == 125, f"{label}: exit code {rc}, expected 125\n  stderr: {err}")
    lines = [l for l in err.splitlines() if l.startswith("odigos-trace: error: ")]
    check(len(lines) == 1, f"{label}: expected one 'odigos-trace: error: ' line, got:\n{err}")
    for s in must_contain:
        check(s.lower() in lines[0].lower(),
              f"{label}: error line does not mention {s!r}:\n  {lines[0]}")
    if hint is not None:
        hints = [l for l in err.splitlines() if l.startswith("hint: ")]
        check(hints and all(h.lower() in hints[0].lower() for h in hint),
              f"{label}: expected a 'hint:' line mentioning {hint}, stderr:\n{err}")
    check(not os.path.exists(out), f"{label}: the output file {out} was created anyway")
    check(stdout == "", f"{label}: unexpected stdout {stdout!r}")
    return err


def unused_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def bad_inputs(a, tmp):
    pid = unused_pid()
    expect_error(a, tmp, "no-such-pid", ["--pid", str(pid)], [str(pid)])

    d = os.path.join(tmp, "a-directory")
    os.mkdir(d)
    expect_error(a, tmp, "exe-directory", ["--exe", d], [d, "not a regular file"])

    text = os.path.join(tmp, "notes.txt")
    with open(text, "w") as f:
        f.write("just some text\n")
    os.chmod(text, 0o755)  # executable bit set: the content is what is wrong
    expect_error(a, tmp, "exe-text-file", ["--exe", text], [text, "ELF"])

    noexec = os.path.join(tmp, "true-copy")
    shutil.copy(shutil.which("true") or "/bin/true", noexec)
    os.chmod(noexec, 0o644)  # a real ELF binary without x permission
    expect_error(a, tmp, "exe-not-executable", ["--exe", noexec], [noexec, "not executable"])

    expect_error(a, tmp, "unknown-flag", ["--all", "--frobnicate"], ["--frobnicate"],
                 hint=["--help"])
    expect_error(a, tmp, "duration-garbage", ["--all", "--duration", "garbage"],
                 ["--duration", "garbage"])

    missing_dir = os.path.join(tmp, "no-such-dir")
    out = os.path.join(missing_dir, "records.ndjson")
    rc, _, err = run([a.binary, "--all", "--duration", "1s", "-o", out])
    print(f"  output-in-missing-dir: exit {rc}: {err.strip()}")
    no_crash(err, "output-in-missing-dir")
    check(rc == 125, f"-o {out}: exit code {rc}, expected 125:\n{err}")
    check(f"odigos-trace: error: " in err and out in err,
          f"-o {out}: the error does not name the file:\n{err}")
    check(not os.path.exists(missing_dir) and not os.path.exists(out),
          f"-o {out}: the directory or file was created")

    # Not root: an unprivileged user (nobody) runs a copy of the binary it can read.
    if shutil.which("setpriv"):
        bindir = tempfile.mkdtemp(prefix="odigos-bin-")
        os.chmod(bindir, 0o755)
        binary = os.path.join(bindir, "odigos-trace")
        shutil.copy(a.binary, binary)
        os.chmod(binary, 0o755)
        outdir = tempfile.mkdtemp(prefix="odigos-nobody-")
        os.chmod(outdir, 0o777)
        out = os.path.join(outdir, "records.ndjson")
        rc, stdout, err = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               binary, "--all", "-o", out])
        print(f"  not-root: exit {rc}: {err.strip()}")
        no_crash(err, "not-root")
        check(rc == 125, f"not root: exit code {rc}, expected 125:\n{err}")
        line = next((l for l in err.splitlines() if l.startswith("odigos-trace: error: ")), "")
        for cap in ("CAP_BPF", "CAP_PERFMON"):
            check(cap in line, f"not root: the error does not name {cap}:\n{err}")
        check("capabilit" in line.lower(), f"not root: the error does not say 'capabilities':\n{err}")
        check(any(l.startswith("hint: ") and "sudo" in l for l in err.splitlines()),
              f"not root: no hint suggesting sudo:\n{err}")
        check(not os.path.exists(out), "not root: the output file was created")
    else:
        print("  not-root: setpriv missing, part skipped")

    expect_error(a, tmp, "no-btf", ["--all"], ["BTF"],
                 env=dict(os.environ, ODIGOS_KERNEL_BTF="/nonexistent"))


def output_mode(a, tmp):
    out = os.path.join(tmp, "mode.ndjson")
    rc, _, err = run([a.binary, "--all", "--duration", "300ms", "-q", "-o", out],
                     preexec_fn=lambda: os.umask(0))
    check(rc == 0, f"--duration 300ms -o FILE exited {rc}:\n{err}")
    check(os.path.exists(out), "-o FILE did not create FILE")
    mode = stat.S_IMODE(os.stat(out).st_mode)
    check(mode == 0o600, f"-o FILE created with mode {mode:o} under umask 0, expected 600")
    # An existing, world-readable file is made private too.
    os.chmod(out, 0o644)
    rc, _, err = run([a.binary, "--all", "--duration", "300ms", "-q", "-o", out])
    check(rc == 0, f"second run exited {rc}:\n{err}")
    mode = stat.S_IMODE(os.stat(out).st_mode)
    check(mode == 0o600, f"-o on an existing 0644 file left mode {mode:o}, expected 600")


def help_lists_man_flags(a):
    rc, out, err = run([a.binary, "--help"])
    check(rc == 0, f"--help exited {rc}:\n{err}")
    check("Usage:" in out, f"--help printed no usage:\n{out}")
    if not os.path.exists(MAN):
        print(f"  --help vs man page: {os.path.normpath(MAN)} does not exist yet, part skipped")
        return
    with open(MAN) as f:
        man = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "") \
            .replace("\\fI", "").replace("\\fP", "")
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", man))
    # Short flags: only from the option headings (.B/.BR lines), not from examples.
    for line in man.splitlines():
        if line.startswith((".B ", ".BR ")):
            flags |= set(re.findall(r"(?<![\w-])(-[a-zA-Z])(?![\w-])", line))
    flags = sorted(flags)
    check(flags, f"no --flags found in {MAN}")
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", out)]
    print(f"  man page flags: {' '.join(flags)}")
    check(not missing, f"flags in the man page but not in --help: {missing}")


def closed_pipe(a):
    port = free_port()
    server = start_python_server(port)
    tracer = head = None
    try:
        tracer = subprocess.Popen([a.binary, "--port", str(port), "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        head = subprocess.Popen(["head", "-1"], stdin=tracer.stdout, stdout=subprocess.PIPE,
                                text=True)
        tracer.stdout.close()  # only head holds the read end now
        # Wait for the attach line, then make traffic until the tracer notices the pipe.
        line = tracer.stderr.readline()
        check("attached" in line, f"tracer did not attach: {line}")
        end = time.time() + 30
        n = 0
        while tracer.poll() is None and time.time() < end:
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/fast"],
                           timeout=30)
            n += 1
            time.sleep(0.05)
        first = head.communicate(timeout=10)[0]
        try:
            tracer.wait(10)
        except subprocess.TimeoutExpired:
            raise Failure(f"the tracer kept running after head exited ({n} requests made)")
        err = line + tracer.stderr.read()
    finally:
        for p in (tracer, head):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        stop(server)
    print(f"  | head -1: tracer exit {tracer.returncode} after {n} requests; stderr: {err.strip()}")
    check(first.startswith("{") and '"kind":"request"' in first.replace(" ", ""),
          f"head -1 got {first!r}")
    check(tracer.returncode == 0, f"| head -1: tracer exit code {tracer.returncode}, expected 0:\n"
                                  f"{err}")
    no_crash(err, "| head -1")
    check("error" not in err.lower(), f"| head -1: an error on stderr:\n{err}")


def test(a):
    require_root()
    tmp = tempfile.mkdtemp(prefix="odigos-errors-")
    bad_inputs(a, tmp)
    output_mode(a, tmp)
    help_lists_man_flags(a)
    closed_pipe(a)


run_main(test)
