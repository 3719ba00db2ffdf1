#!/usr/bin/env bash
# Regenerates bpf/vmlinux.h from the running kernel's BTF. The checked-in copy keeps builds
# reproducible; CO-RE relocations make the compiled programs portable across kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
BPFTOOL=$(command -v bpftool || echo /usr/sbin/bpftool)
"$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h
echo "wrote bpf/vmlinux.h"
