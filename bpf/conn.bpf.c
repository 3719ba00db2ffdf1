// SPDX-License-Identifier: GPL-2.0-only
/* Connection lifecycle: role (accept → server, active open → client), close,
 * failed connects, resets and retransmissions of tracked connections. */
#include "common.bpf.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9

static __always_inline void emit_conn(const struct sock *sk, __u64 cookie, __u32 type,
				      const struct ot_conn_state *st, __s32 err)
{
	struct ot_conn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(OT_DROP_RINGBUF);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->hdr, type);
	/* Softirq context (resets, handshake failures): the current task is
	 * unrelated, so report the connection's owner. */
	e->hdr.tgid = st->tgid;
	e->cookie = cookie;
	e->role = st->role;
	e->err = err;
	e->retransmits = st->retransmits;
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	read_addrs(sk, &e->local, &e->remote);
	bpf_ringbuf_submit(e, ringbuf_flags());
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ot_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u64 cookie = bpf_get_socket_cookie((void *)sk);

	if (newstate == TCP_SYN_SENT) {
		/* Active open, in connect()'s process context. */
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (!current_is_traced(tgid) || !port_selected(sk))
			return 0;
		struct ot_conn_state init = {.tgid = tgid, .role = OT_ROLE_CLIENT};
		bpf_map_update_elem(&conns, &cookie, &init, BPF_ANY);
		return 0;
	}

	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (!st)
		return 0;
	if (oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE) {
		emit_conn(sk, cookie, OT_EV_CONN_FAIL, st, BPF_CORE_READ(sk, sk_err));
		bpf_map_delete_elem(&conns, &cookie);
		return 0;
	}
	if ((newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK || newstate == TCP_CLOSE) &&
	    !(st->flags & OT_CONN_CLOSED) && (st->flags & OT_CONN_ANNOUNCED)) {
		__sync_fetch_and_or(&st->flags, OT_CONN_CLOSED);
		emit_conn(sk, cookie, OT_EV_CONN_CLOSE, st, 0);
	}
	/* The entry stays (flagged closed) until the LRU recycles it: on loopback a
	 * peer's RST can close the socket while the owner is still inside a send,
	 * whose bytes must keep their stream offsets instead of starting a new
	 * connection. Cookies are never reused, so a stale entry cannot be hit. */
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(ot_tcp_rcv_reset, struct sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (st)
		emit_conn(sk, cookie, OT_EV_CONN_RESET, st, 0 /* received */);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(ot_tcp_send_reset, const struct sock *sk)
{
	if (!sk)
		return 0;
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (st)
		emit_conn(sk, cookie, OT_EV_CONN_RESET, st, 1 /* sent */);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ot_tcp_retransmit, const struct sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (!st)
		return 0;
	__sync_fetch_and_add(&st->retransmits, 1);
	emit_conn(sk, cookie, OT_EV_RETRANSMIT, st, 0);
	return 0;
}

/* The struct sock behind a file descriptor of the current process, or NULL. */
static __always_inline struct sock *sock_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd & 0xfffff]) || !file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	return BPF_CORE_READ(sock, sk);
}

static __always_inline void add_listen_port(struct sock *sk)
{
	if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP) {
		__u32 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u8 one = 1;
		bpf_map_update_elem(&listen_ports, &lport, &one, BPF_ANY);
	}
}

/* accept()/accept4() returned a new socket fd: remember its struct sock as a
 * server-side connection until its first I/O (sock_io.bpf.c) picks it up. */
static __always_inline int on_accept_exit(long ret)
{
	if (ret < 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!current_is_traced(tgid))
		return 0;
	struct sock *sk = sock_of_fd(ret);
	__u64 skp = (__u64)sk;
	__u8 role = OT_ROLE_SERVER;
	if (!skp)
		return 0;
	bpf_map_update_elem(&accepted_socks, &skp, &role, BPF_ANY);
	add_listen_port(sk);
	return 0;
}

/* A traced process starts listening: its port's arrivals are timed from now
 * on (sk_data_ready), also for the first connection it accepts. */
SEC("tracepoint/syscalls/sys_enter_listen")
int ot_listen_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!current_is_traced(tgid))
		return 0;
	struct sock *sk = sock_of_fd((long)ctx->args[0]);
	if (sk)
		add_listen_port(sk);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int ot_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int ot_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
