// SPDX-License-Identifier: GPL-2.0-only
/* TLS plaintext: uprobes on a TLS library's read/write functions.
 *
 * Entry: remember the call (connection object, buffer, where the byte count
 * goes) for this thread. The socket I/O the library does inside the call
 * (bpf/sock_io.bpf.c) binds the call to its socket and stops the ciphertext
 * from being copied. Return: the call's plaintext, as many bytes as it moved,
 * goes out as an ot_data_event flagged OT_DATA_TLS on that socket.
 *
 * Probe points are chosen by userspace (src/loader/probe_points.cpp) on
 * instructions the kernel emulates: a uprobe whose instruction must be
 * single-stepped costs ~15x more. The programs take the arguments of the
 * library's internal functions, which for OpenSSL 3 are
 *   ssl_read_internal(SSL *s, void *buf, size_t num, size_t *readbytes)
 *   ssl_write_internal(SSL *s, const void *buf, size_t num, size_t *written)
 * returning 1 (>0) on success; GnuTLS's below. */
#include "common.bpf.h"

static __always_inline int tls_enter(struct pt_regs *ctx, __u8 dir, __u8 lib, __u64 buf,
				     __u64 count_ptr)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!current_is_traced(id >> 32))
		return 0;
	struct tls_call call = {
		.conn = PT_REGS_PARM1(ctx),
		.buf = buf,
		.count_ptr = count_ptr,
		.sp = PT_REGS_SP(ctx),
		.dir = dir,
		.lib = lib,
	};
	bpf_map_update_elem(&tls_calls, &id, &call, BPF_ANY);
	return 0;
}

static __always_inline int tls_exit(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = bpf_map_lookup_elem(&tls_calls, &id);
	if (!call)
		return 0;
	/* The return of the call we recorded (the stack pointer is back above its
	 * return address), not of a nested call we did not record (GnuTLS
	 * finishes a handshake inside a read with calls of other record types). */
	if (PT_REGS_SP(ctx) != call->sp + 8)
		return 0;
	long ret = call->lib == OT_TLS_GNUTLS ? (long)PT_REGS_RC(ctx) : (int)PT_REGS_RC(ctx);
	__u64 count = 0;
	if (ret > 0) {
		if (call->count_ptr)
			bpf_probe_read_user(&count, sizeof(count), (void *)call->count_ptr);
		else
			count = ret;
	}
	if (count == 0 || count > (1u << 30)) {
		bpf_map_delete_elem(&tls_calls, &id);
		return 0;
	}
	__u64 cookie = call->cookie;
	__u32 tgid = id >> 32;
	if (!cookie) {
		struct tls_conn_key k = {.tgid = tgid, .conn = call->conn};
		__u64 *c = bpf_map_lookup_elem(&tls_socks, &k);
		if (c)
			cookie = *c;
	}
	if (!cookie) {
		count_drop(OT_DROP_TLS_NO_SOCKET);
		bpf_map_delete_elem(&tls_calls, &id);
		return 0;
	}
	__u32 cpu = bpf_get_smp_processor_id();
	struct data_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s) {
		bpf_map_delete_elem(&tls_calls, &id);
		return 0;
	}
	struct ot_data_event *ev = &s->ev;
	fill_hdr(&ev->hdr, OT_EV_DATA);
	__u8 dir = call->dir & 1;
	ev->cookie = cookie;
	ev->dir = dir;
	ev->len = count;
	ev->flags = OT_DATA_TLS;
	ev->err = 0;
	ev->fd = -1;
	ev->syscall = OT_SYSCALL_TLS_BASE + call->lib;
	ev->wire_ns = call->wire_ns;
	ev->role = OT_ROLE_UNKNOWN;
	ev->pos = 0;
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (st) {
		ev->role = st->role;
		ev->pos = __sync_fetch_and_add(&st->pos[dir], count);
	}
	__u32 cap = count;
	if (cap > cfg_capture_size)
		cap = cfg_capture_size;
	if (cap > OT_MAX_CAPTURE)
		cap = OT_MAX_CAPTURE;
	if (bpf_probe_read_user(s->buf, cap, (void *)call->buf))
		cap = 0;
	bpf_map_delete_elem(&tls_calls, &id);
	ev->cap = cap;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev) + cap, ringbuf_flags()))
		count_drop(OT_DROP_RINGBUF);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ot_openssl_read_enter)
{
	return tls_enter(ctx, OT_DIR_INGRESS, OT_TLS_OPENSSL, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx));
}

SEC("uprobe")
int BPF_KPROBE(ot_openssl_write_enter)
{
	return tls_enter(ctx, OT_DIR_EGRESS, OT_TLS_OPENSSL, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx));
}

/* GnuTLS's record layer (src/loader/probe_points.hpp):
 *   _gnutls_recv_int(session, type, data, data_size, seq, ms)
 *   _gnutls_send_tlen_int(session, type, htype, epoch_rel, data, data_size, ...)
 * return the bytes moved; only type 23 (application data) carries plaintext. */
#define TLS_APPLICATION_DATA 23
SEC("uprobe")
int BPF_KPROBE(ot_gnutls_recv_enter)
{
	if (PT_REGS_PARM2(ctx) != TLS_APPLICATION_DATA)
		return 0;
	return tls_enter(ctx, OT_DIR_INGRESS, OT_TLS_GNUTLS, PT_REGS_PARM3(ctx), 0);
}

SEC("uprobe")
int BPF_KPROBE(ot_gnutls_send_enter)
{
	if (PT_REGS_PARM2(ctx) != TLS_APPLICATION_DATA)
		return 0;
	return tls_enter(ctx, OT_DIR_EGRESS, OT_TLS_GNUTLS, PT_REGS_PARM5(ctx), 0);
}

/* One return program serves both directions: the call remembers its own. */
SEC("uretprobe")
int BPF_KRETPROBE(ot_tls_exit)
{
	return tls_exit(ctx);
}

char LICENSE[] SEC("license") = "GPL";
