// SPDX-License-Identifier: GPL-2.0-only
/* Design (b): one tp_btf hook per socket I/O.
 *
 * sock:sock_send_length / sock:sock_recv_length fire once per socket
 * send/recv with the struct sock and the byte count. The user buffer comes
 * from the syscall's saved registers (bpf_task_pt_regs): orig_ax is the
 * syscall number, di/si/dx its first arguments. Same approach as
 * bpf/sock_io.bpf.c, reduced to what the benchmark needs (no role, no
 * connection-open event, no port/cgroup filter).
 *
 * Built twice: as is, every kernel field is read with BPF_CORE_READ (one
 * bpf_probe_read_kernel call per field, as bpf/sock_io.bpf.c does); with
 * -DHC_DIRECT the same fields are plain loads through the BTF pointers the
 * verifier already knows (sk, and the pt_regs bpf_task_pt_regs returns). */
#include "hc_common.bpf.h"

static __always_inline int on_io(struct sock *sk, int ret, int flags, __u8 dir)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!hc_traced(tgid))
		return 0;
	if (ret == -EAGAIN || (ret == 0 && dir == 1))
		return 0;
	if (dir == 0 && (flags & MSG_PEEK))
		return 0;
#ifdef HC_DIRECT
	__u16 family = sk->__sk_common.skc_family;
#else
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
#endif
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
		return 0;

	__u64 cookie = bpf_get_socket_cookie(sk);
	struct hc_conn *c = hc_conn_get(cookie);
	if (!c)
		return 0;
	struct hc_scratch *s = hc_scratch_get();
	if (!s)
		return 0;

	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
#ifdef HC_DIRECT
	long nr = regs->orig_ax;
	unsigned long a0 = regs->di;
	unsigned long a1 = regs->si;
	unsigned long a2 = regs->dx;
#else
	long nr = BPF_CORE_READ(regs, orig_ax);
	unsigned long a0 = BPF_CORE_READ(regs, di);
	unsigned long a1 = BPF_CORE_READ(regs, si);
	unsigned long a2 = BPF_CORE_READ(regs, dx);
#endif
	__u32 len = ret > 0 ? ret : 0;
	__u32 cap = 0;
	if (len) {
		switch (nr) {
		case NR_read:
		case NR_write:
		case NR_sendto:
		case NR_recvfrom:
			cap = hc_copy_buf(s, (const void *)a1, len);
			break;
		case NR_readv:
		case NR_writev:
			cap = hc_copy_iov(s, (const struct iovec *)a1, a2, len);
			break;
		case NR_sendmsg:
		case NR_recvmsg:
			cap = hc_copy_msg(s, (const struct user_msghdr *)a1, len);
			break;
		default: /* sendfile, splice, io_uring: no user buffer */
			break;
		}
	}
	hc_emit(s, c, cookie, len, cap, family, dir, (nr >= 0 && nr < 255) ? nr : 255, (__s32)a0);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(hcb_send, struct sock *sk, int ret, int flags)
{
	return on_io(sk, ret, flags, 1);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(hcb_recv, struct sock *sk, int ret, int flags)
{
	return on_io(sk, ret, flags, 0);
}

char LICENSE[] SEC("license") = "GPL";
