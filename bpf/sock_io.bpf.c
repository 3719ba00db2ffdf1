// SPDX-License-Identifier: GPL-2.0-only
/* Socket payload capture: one hook per socket read/write.
 *
 * sock:sock_{send,recv}_length fire inside sock_{send,recv}msg_nosec for every
 * socket I/O (read/write, readv/writev, send*, recv*, sendfile via splice) with
 * the struct sock and the true byte count. The user buffer is not a tracepoint
 * argument, so it is taken from the syscall's saved registers (pt_regs): the
 * syscall number says where the buffer or iovec array is. No syscall enter/exit
 * hook is needed, and processes we do not trace pay one map lookup. */
#include "common.bpf.h"

#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

static __always_inline int emit_conn_open(struct sock *sk, __u64 cookie, __u8 role)
{
	struct ot_conn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(OT_DROP_RINGBUF);
		return -1;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->hdr, OT_EV_CONN_OPEN);
	e->cookie = cookie;
	e->role = role;
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	read_addrs(sk, &e->local, &e->remote);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, ringbuf_flags());
	return 0;
}

static __always_inline __u32 clamp_capture(__u64 n)
{
	if (n > cfg_capture_size)
		n = cfg_capture_size;
	if (n > OT_MAX_CAPTURE)
		n = OT_MAX_CAPTURE;
	return n;
}

/* Copies up to `limit` bytes spread over a user iovec array into s->buf. */
static __always_inline __u32 copy_iov(struct data_scratch *s, const struct iovec *iovp,
				      __u64 iovcnt, __u32 limit)
{
	__u32 off = 0;
	for (int i = 0; i < OT_MAX_IOV; i++) {
		struct iovec iov;
		if (i >= iovcnt || off >= limit)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), &iovp[i]))
			break;
		__u64 n = iov.iov_len;
		if (n > limit - off)
			n = limit - off;
		if (n > OT_MAX_CAPTURE)
			n = OT_MAX_CAPTURE;
		/* off < limit <= OT_MAX_CAPTURE: the mask only tells the verifier. */
		__u32 at = off & (OT_MAX_CAPTURE - 1);
		if (bpf_probe_read_user(&s->buf[at], n, iov.iov_base))
			break;
		off += n;
	}
	return off;
}

/* When the bytes of this call were on the wire (see ot_data_event.wire_ns), 0
 * when unknown. Ingress consumes the arrival time. */
static __always_inline __u64 wire_time(struct ot_conn_state *st, struct sock *sk, __u8 dir,
				       __u32 len)
{
	if (dir == OT_DIR_EGRESS && len > 0 && sk->sk_protocol == IPPROTO_TCP && st->send_ns) {
		/* Only when everything written has left: otherwise the tail goes
		 * out later (flow control) and the call's end is the better bound. */
		struct tcp_sock *tp = (struct tcp_sock *)sk;
		if (BPF_CORE_READ(tp, write_seq) == BPF_CORE_READ(tp, snd_nxt))
			return st->send_ns;
	}
	if (dir == OT_DIR_INGRESS && st->arrive_ns) {
		/* A read that leaves bytes unread (TLS libraries read a record at a
		 * time: a handshake message and the request behind it arrive
		 * together) leaves the arrival time to them. */
		if (len > 0 && sk->sk_protocol == IPPROTO_TCP) {
			struct tcp_sock *tp = (struct tcp_sock *)sk;
			if (BPF_CORE_READ(tp, rcv_nxt) != BPF_CORE_READ(tp, copied_seq))
				return st->arrive_ns;
		}
		/* Any read (EOF included) consumes it: a FIN also signals data ready. */
		return __sync_lock_test_and_set(&st->arrive_ns, 0);
	}
	return 0;
}

/* The Go crypto/tls call the current goroutine is in (g from R14, saved at
 * the syscall), if any. A call bound to another socket is over (no return
 * probes on Go code: the entry stays until the next call): dropped. */
static __always_inline struct tls_call *go_call(__u32 tgid, __u64 cookie, struct pt_regs *regs)
{
	struct go_call_key key = {.tgid = tgid, .g = regs->r14};
	struct tls_call *call = bpf_map_lookup_elem(&go_calls, &key);
	if (call && call->cookie && call->cookie != cookie) {
		bpf_map_delete_elem(&go_calls, &key);
		return NULL;
	}
	return call;
}

/* Socket I/O nested in a TLS library call: bind the call (and the library's
 * connection object) to this socket, and mark the socket as TLS so its
 * ciphertext is no longer copied. */
static __always_inline void tls_bind_call(struct tls_call *call, struct ot_conn_state *st,
					  struct sock *sk, __u64 cookie, __u32 tgid, __u8 dir)
{
	if (call->cookie != cookie) {
		call->cookie = cookie;
		/* Written when it changes only: a lookup is cheaper than an LRU update. */
		struct tls_conn_key k = {.tgid = tgid, .conn = call->conn};
		__u64 *known = bpf_map_lookup_elem(&tls_socks, &k);
		if (!known || *known != cookie)
			bpf_map_update_elem(&tls_socks, &k, &cookie, BPF_ANY);
	}
	mark_tls(st);
	/* Ingress: the first arrival in the call; egress: the last push. */
	if (dir == call->dir && (dir == OT_DIR_EGRESS || !call->wire_ns)) {
		__u64 w = wire_time(st, sk, dir, 1);
		if (w)
			call->wire_ns = w;
	}
}

static __always_inline int handle_io(struct sock *sk, int ret, int flags, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;

	if (!current_is_traced(tgid))
		return 0;
	if (ret < 0 && ret == -EAGAIN)
		return 0;
	if (dir == OT_DIR_INGRESS && (flags & MSG_PEEK))
		return 0;
	if (ret == 0 && dir == OT_DIR_EGRESS)
		return 0;
	/* tp_btf hands us trusted BTF pointers: plain (CO-RE relocated) loads
	 * instead of one bpf_probe_read_kernel per field (docs/HOOK_DESIGN.md). */
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
		return 0;
	/* Byte streams only: datagrams (DNS, QUIC) are not decoded. */
	if (sk->sk_type != SOCK_STREAM)
		return 0;
	if (!port_selected(sk))
		return 0;

	__u64 cookie = bpf_get_socket_cookie(sk);
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (!st) {
		struct ot_conn_state init = {};
		bpf_map_update_elem(&conns, &cookie, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&conns, &cookie);
		if (!st) {
			count_drop(OT_DROP_CONN_TABLE);
			return 0;
		}
	}
	if (!st->tgid) { /* first I/O: new entry, or one sk_data_ready made */
		__u64 skp = (__u64)sk;
		__u8 *role = bpf_map_lookup_elem(&accepted_socks, &skp);
		if (role) {
			st->role = *role;
			bpf_map_delete_elem(&accepted_socks, &skp);
		}
		st->tgid = tgid;
		if (go_probes_active)
			bpf_map_update_elem(&sk_cookies, &skp, &cookie, BPF_ANY);
	}
	/* Ciphertext inside a TLS library call: its plaintext is reported by the
	 * call's return probe; the call learns its socket here. */
	/* The syscall's saved user registers: the goroutine (R14) for Go calls,
	 * the user buffer below; fetched once, when first needed. */
	struct pt_regs *regs = NULL;
	struct tls_call *call = NULL;
	if (tls_probes_active && ret > 0) {
		call = bpf_map_lookup_elem(&tls_calls, &id);
		/* A call bound to another socket is one whose return we missed
		 * (its probe was detached meanwhile): this I/O is not part of it. */
		if (call && call->cookie && call->cookie != cookie) {
			bpf_map_delete_elem(&tls_calls, &id);
			call = NULL;
		}
		if (!call && go_probes_active) {
			regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
			call = go_call(tgid, cookie, regs);
		}
	}
	if (!call && (st->flags & OT_CONN_IGNORE))
		return 0;
	if (!(st->flags & OT_CONN_ANNOUNCED)) {
		if (emit_conn_open(sk, cookie, st->role) == 0)
			__sync_fetch_and_or(&st->flags, OT_CONN_ANNOUNCED);
	}
	if (call) {
		tls_bind_call(call, st, sk, cookie, tgid, dir);
		/* Go's Write: its plaintext (known at entry) goes out now that its
		 * socket is known, once for the call's several record writes. */
		if (call->lib == OT_TLS_GO && call->dir == OT_DIR_EGRESS && dir == OT_DIR_EGRESS &&
		    !call->emitted) {
			call->emitted = 1;
			if (call->len)
				emit_plaintext(call, cookie, call->len);
		}
		return 0;
	}
	if ((st->flags & OT_CONN_TLS) && ret > 0)
		return 0; /* handshake or alert records outside a call */

	__u32 cpu = bpf_get_smp_processor_id();
	struct data_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	struct ot_data_event *ev = &s->ev;
	fill_hdr(&ev->hdr, OT_EV_DATA);
	__u32 len = ret > 0 ? ret : 0;
	ev->cookie = cookie;
	ev->dir = dir;
	ev->role = st->role;
	ev->len = len;
	ev->pos = __sync_fetch_and_add(&st->pos[dir & 1], len);
	ev->flags = ret == 0 ? OT_DATA_EOF : (ret < 0 ? OT_DATA_ERROR : 0);
	ev->err = ret < 0 ? ret : 0;
	ev->wire_ns = wire_time(st, sk, dir, len);

	if (!regs)
		regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = regs->orig_ax;
	unsigned long a0 = regs->di;
	unsigned long a1 = regs->si;
	unsigned long a2 = regs->dx;
	ev->syscall = (nr >= 0 && nr < OT_SYSCALL_OTHER) ? nr : OT_SYSCALL_OTHER;
	ev->user_ctx = exec_ctx(tgid, regs->r14, cookie, dir);
	ev->fd = (__s32)a0;

	__u32 cap = 0;
	if (len > 0) {
		__u32 limit = clamp_capture(len);
		switch (nr) {
		case NR_read:
		case NR_write:
		case NR_sendto:
		case NR_recvfrom:
			if (limit > 0 && bpf_probe_read_user(s->buf, limit, (void *)a1) == 0)
				cap = limit;
			break;
		case NR_readv:
		case NR_writev:
			cap = copy_iov(s, (const struct iovec *)a1, a2, limit);
			break;
		case NR_sendmsg:
		case NR_recvmsg: {
			struct user_msghdr msg;
			if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a1) == 0)
				cap = copy_iov(s, msg.msg_iov, msg.msg_iovlen, limit);
			break;
		}
		default: /* sendfile, splice, io_uring: no user buffer to copy */
			ev->fd = nr == NR_sendfile ? (__s32)a0 : -1;
			ev->flags |= OT_DATA_NO_PAYLOAD;
			break;
		}
	}
	if (cap > OT_MAX_CAPTURE)
		cap = OT_MAX_CAPTURE;
	ev->cap = cap;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev) + cap, ringbuf_flags()))
		count_drop(OT_DROP_RINGBUF);
	return 0;
}

/* Data arrived on a TCP socket whose local port is a traced server's
 * listening port: remember when the first unread byte came, so a request that
 * waits in the accept queue or receive buffer is timed from its arrival (the
 * read consumes the entry). Runs in softirq for every received segment on the
 * host, so the port lookup comes first. */
SEC("tp_btf/sk_data_ready")
int BPF_PROG(ot_sk_data_ready, const struct sock *sk)
{
	__u32 lport = sk->__sk_common.skc_num;
	__u8 *listening = bpf_map_lookup_elem(&listen_ports, &lport);
	if (!listening || !*listening)
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	/* In the connection's own entry (keyed by cookie, never reused), made
	 * here when the first request arrives before the first read: a field
	 * write instead of a hash insert and delete per request. */
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (!st) {
		struct ot_conn_state init = {.arrive_ns = bpf_ktime_get_ns()};
		bpf_map_update_elem(&conns, &cookie, &init, BPF_NOEXIST);
		return 0;
	}
	if (!st->arrive_ns)
		st->arrive_ns = bpf_ktime_get_ns();
	return 0;
}

/* Runs inside tcp_sendmsg_locked, where the data is queued and pushed out:
 * its time is when the bytes leave, whereas sock_send_length runs when the
 * call returns, possibly after the sender was preempted. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(ot_tcp_sendmsg, const struct sock *sk)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!current_is_traced(tgid))
		return 0;
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (st)
		st->send_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(ot_sock_send, struct sock *sk, int ret, int flags)
{
	return handle_io(sk, ret, flags, OT_DIR_EGRESS);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(ot_sock_recv, struct sock *sk, int ret, int flags)
{
	return handle_io(sk, ret, flags, OT_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
