// SPDX-License-Identifier: GPL-2.0-only
/* bench/hook_floor: empty programs on the kernel hooks odigos-trace runs per socket call
 * (bpf/sock_io.bpf.c), for the "floor" side of bench/nginx_wrk.sh (FLOOR=1): what the hooks
 * cost before a program does anything. They fire for every process, as odigos-trace's do. */
#include "../../bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sock_send_length")
int BPF_PROG(floor_sock_send)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(floor_sock_recv)
{
	return 0;
}

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(floor_tcp_sendmsg)
{
	return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(floor_sk_data_ready)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
