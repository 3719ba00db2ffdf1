// SPDX-License-Identifier: GPL-2.0-only
/* bench/hook_floor: empty programs on the kernel hooks odigos-trace runs per socket call
 * (bpf/sock_io.bpf.c), for the "floor" side of bench/nginx_wrk.sh (FLOOR=1): what the hooks
 * cost before a program does anything. They fire for every process, as odigos-trace's do. */
#include "../../bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* One empty program on tp_btf/HOOK. */
#define FLOOR_PROG(name, hook)        \
	SEC("tp_btf/" hook)           \
	int BPF_PROG(name)            \
	{                             \
		return 0;             \
	}

FLOOR_PROG(floor_sock_send, "sock_send_length")
FLOOR_PROG(floor_sock_recv, "sock_recv_length")
FLOOR_PROG(floor_tcp_sendmsg, "tcp_sendmsg_locked")
FLOOR_PROG(floor_sk_data_ready, "sk_data_ready")

char LICENSE[] SEC("license") = "GPL";
