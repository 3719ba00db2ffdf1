"""-o FILE is never half-written: a failure before tracing starts leaves an existing file
untouched and removes a file it created; a successful run creates it with mode 0600 even if
it existed with a wider mode."""
import os
import stat
import subprocess
import tempfile

from harness import check, require_root, run_main


def test(a):
    require_root()
    d = tempfile.mkdtemp(prefix="odigos-out-")
    existing = os.path.join(d, "existing.ndjson")
    with open(existing, "w") as f:
        f.write("precious\n")
    os.chmod(existing, 0o644)
    fresh = os.path.join(d, "fresh.ndjson")

    # Fails after the output was opened (unknown user for the launched command).
    for path in (existing, fresh):
        p = subprocess.run([a.binary, "-q", "-o", path, "-u", "no-such-user-xyz", "--", "true"],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 125, f"exit {p.returncode}: {p.stderr}")
        check("no-such-user-xyz" in p.stderr, f"message: {p.stderr}")
    with open(existing) as f:
        check(f.read() == "precious\n", "an existing output file was modified by a failed run")
    check(not os.path.exists(fresh), "a failed run left the output file it created")

    # A successful run truncates and tightens the mode.
    p = subprocess.run([a.binary, "-q", "-o", existing, "--", "true"], capture_output=True,
                       text=True, timeout=60)
    check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
    mode = stat.S_IMODE(os.stat(existing).st_mode)
    check(mode == 0o600, f"mode {oct(mode)}")
    with open(existing) as f:
        check("precious" not in f.read(), "the output file was not truncated")


run_main(test)
