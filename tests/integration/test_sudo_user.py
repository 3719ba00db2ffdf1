"""Under sudo, a launched command runs as the invoking user ($SUDO_USER), not as root, unless
-u says otherwise. Oracle: id(1) run as the command."""
import os
import subprocess

from harness import check, require_root, run_main


def run(binary, env_extra, extra=()):
    env = dict(os.environ, **env_extra)
    p = subprocess.run([binary, "-q", *extra, "--", "id", "-u"], capture_output=True, text=True,
                       env=env, timeout=60)
    check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
    return p.stdout.strip()


def test(a):
    require_root()
    check(run(a.binary, {"SUDO_USER": "nobody"}) == "65534", "SUDO_USER=nobody did not run as nobody")
    check(run(a.binary, {"SUDO_USER": "nobody"}, ["-u", "root"]) == "0", "-u root did not win over SUDO_USER")
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    p = subprocess.run([a.binary, "-q", "--", "id", "-u"], capture_output=True, text=True, env=env,
                       timeout=60)
    check(p.returncode == 0, f"without SUDO_USER: exit {p.returncode}: {p.stderr}")
    check(p.stdout.strip() == str(os.geteuid()), f"without SUDO_USER: {p.stdout!r}")


run_main(test)
