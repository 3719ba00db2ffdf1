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

/* The socket of a call: bound by its nested socket I/O, or known for its
 * connection object from an earlier call (0: unknown). */
static __always_inline __u64 call_cookie(__u32 tgid, const struct tls_call *call)
{
	if (call->cookie)
		return call->cookie;
	struct tls_conn_key k = {.tgid = tgid, .conn = call->conn};
	__u64 *c = bpf_map_lookup_elem(&tls_socks, &k);
	return c ? *c : 0;
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
	emit_plaintext(call, call_cookie(id >> 32, call), count);
	bpf_map_delete_elem(&tls_calls, &id);
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

/* Go crypto/tls (src/loader/go_binary.hpp), register ABI (Go >= 1.17):
 * (*Conn).Write(b) and (*Conn).Read(b) are probed on the jbe after their stack
 * check: RAX = *tls.Conn, RBX = &b[0], RCX = len(b), R14 = g. A hit with CF or
 * ZF set is the branch to morestack, after which the function starts over:
 * not a call. Write's plaintext goes out at its first socket write
 * (bpf/sock_io.bpf.c), which also names the socket; Read's at the point after
 * the plaintext was copied into b, where a register holds n. The attach cookie
 * says which (its byte offset in struct pt_regs, low 16 bits) and whether the
 * binary's Go version has the struct layout go_conn_cookie walks (bit 16). */
#define GO_COOKIE_LAYOUT_KNOWN (1u << 16)
#define X86_EFLAGS_CF 0x0001
#define X86_EFLAGS_ZF 0x0040

/* A hit on the jbe after a Go function's stack check, in a traced process:
 * its tgid. 0 for the branch to morestack (CF or ZF set: the function starts
 * over, not a call) and for processes not traced. */
static __always_inline __u32 go_entry_tgid(struct pt_regs *ctx)
{
	if (ctx->flags & (X86_EFLAGS_CF | X86_EFLAGS_ZF))
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return current_is_traced(tgid) ? tgid : 0;
}

static __always_inline int go_enter(struct pt_regs *ctx, __u8 dir)
{
	__u32 tgid = go_entry_tgid(ctx);
	if (!tgid)
		return 0;
	struct go_call_key key = {.tgid = tgid, .g = ctx->r14};
	struct tls_call call = {
		.conn = ctx->ax,
		.buf = ctx->bx,
		.len = ctx->cx,
		.dir = dir,
		.lib = OT_TLS_GO,
	};
	bpf_map_update_elem(&go_calls, &key, &call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ot_go_write_enter)
{
	return go_enter(ctx, OT_DIR_EGRESS);
}

SEC("uprobe")
int BPF_KPROBE(ot_go_read_enter)
{
	return go_enter(ctx, OT_DIR_INGRESS);
}

/* The register at byte `offset` of struct pt_regs: the verifier allows no
 * variable offset into the context, so through a copy on the stack. */
static __always_inline __u64 reg_at(struct pt_regs *ctx, __u64 offset)
{
	struct pt_regs regs;
	if (bpf_probe_read_kernel(&regs, sizeof(regs), ctx))
		return 0;
	__u64 idx = offset / 8;
	if (idx >= sizeof(regs) / 8)
		return 0;
	return ((__u64 *)&regs)[idx];
}

/* The socket of a *tls.Conn from its file descriptor, for a Read served from
 * what the handshake already read (no socket I/O inside the call). Layout of
 * Go 1.17 to 1.23 (userspace attaches these probes only for those):
 * tls.Conn{conn net.Conn (itab, data) ...}, data = *net.TCPConn whose first
 * word is *netFD, netFD{pfd poll.FD{fdmu fdMutex (16 bytes), Sysfd int}}. The
 * file found must be a socket we saw. */
#define S_IFMT_ 00170000
#define S_IFSOCK_ 0140000
static __always_inline __u64 go_conn_cookie(__u64 tconn)
{
	__u64 data = 0, netfd = 0;
	__s64 sysfd = -1;
	if (bpf_probe_read_user(&data, sizeof(data), (void *)(tconn + 8)) || !data)
		return 0;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)data) || !netfd)
		return 0;
	if (bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + 16)))
		return 0;
	if (sysfd < 0 || sysfd >= (1 << 20))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[sysfd]) || !file)
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT_) != S_IFSOCK_)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	__u64 sk = (__u64)BPF_CORE_READ(sock, sk);
	__u64 *c = bpf_map_lookup_elem(&sk_cookies, &sk);
	return c ? *c : 0;
}

SEC("uprobe")
int BPF_KPROBE(ot_go_read_copied)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_call_key key = {.tgid = tgid, .g = ctx->r14};
	struct tls_call *call = bpf_map_lookup_elem(&go_calls, &key);
	if (!call || call->dir != OT_DIR_INGRESS)
		return 0;
	__u64 attach = bpf_get_attach_cookie(ctx);
	__u64 n = reg_at(ctx, attach & 0xffff);
	if (n == 0 || n > call->len) {
		bpf_map_delete_elem(&go_calls, &key);
		return 0;
	}
	__u64 cookie = call_cookie(tgid, call);
	if (!cookie && (attach & GO_COOKIE_LAYOUT_KNOWN)) {
		cookie = go_conn_cookie(call->conn);
		if (cookie) {
			struct tls_conn_key k = {.tgid = tgid, .conn = call->conn};
			bpf_map_update_elem(&tls_socks, &k, &cookie, BPF_ANY);
		}
	}
	emit_plaintext(call, cookie, n); /* marks the connection TLS */
	bpf_map_delete_elem(&go_calls, &key);
	return 0;
}

/* Go net/http client, for trace linking (see go_writers in common.bpf.h). Both
 * on the jbe after the stack check, like the crypto/tls entries. */
SEC("uprobe")
int BPF_KPROBE(ot_go_http_round_trip)
{
	__u32 tgid = go_entry_tgid(ctx);
	if (!tgid)
		return 0;
	/* RBX = *transportRequest, whose first field is the embedded *Request. */
	__u64 req = 0;
	if (bpf_probe_read_user(&req, sizeof(req), (void *)ctx->bx) || !req)
		return 0;
	struct go_req_key k = {.tgid = tgid, .req = req};
	__u64 g = ctx->r14;
	bpf_map_update_elem(&go_req_owner, &k, &g, BPF_ANY);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ot_go_http_request_write)
{
	__u32 tgid = go_entry_tgid(ctx);
	if (!tgid)
		return 0;
	struct go_req_key k = {.tgid = tgid, .req = ctx->ax};
	__u64 *owner = bpf_map_lookup_elem(&go_req_owner, &k);
	struct go_call_key wk = {.tgid = tgid, .g = ctx->r14};
	if (!owner) {
		/* Not a transport's request we saw start (Request.Write
		 * elsewhere, or a missed roundTrip): whose it is is unknown.
		 * Owner 0 says so for the socket it writes to (the writer's own
		 * g may have been started for another request). */
		struct go_writer none = {.owner = 0, .cookie = 0};
		bpf_map_update_elem(&go_writers, &wk, &none, BPF_ANY);
		return 0;
	}
	struct go_writer w = {.owner = *owner, .cookie = 0};
	bpf_map_update_elem(&go_writers, &wk, &w, BPF_ANY);
	bpf_map_delete_elem(&go_req_owner, &k);
	return 0;
}

/* A goroutine creation or exit event; false when the ring buffer is full
 * (counted as a drop). */
static __always_inline bool emit_go_event(__u32 type, __u64 parent, __u64 child)
{
	struct ot_go_spawn_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(OT_DROP_RINGBUF);
		return false;
	}
	fill_hdr(&e->hdr, type);
	e->parent = parent;
	e->child = child;
	bpf_ringbuf_submit(e, ringbuf_flags());
	return true;
}

/* Goroutine creation, for trace linking: on the call to runtime.runqput in
 * runtime.newproc's systemstack closure (`newg := newproc1(...); runqput(pp,
 * newg, true)`), a call instruction the kernel emulates. There RBX = newg and
 * R14 = g0 of the M; the goroutine that executed `go` is g0.m.curg. The
 * offsets come from the closure's own code (userspace, GoSpawnProbe) in the
 * attach cookie: g.m in bits 0..15, m.curg in bits 16..31. The parent read
 * is checked (its g.m must be the same m); when it fails (no user goroutine
 * on the M: time.AfterFunc's goroutines start from the scheduler), the event
 * says parent 0, so that what was known of the reused g is forgotten all the
 * same. A creation that cannot be reported (ring buffer full) bumps
 * go_spawn_lost, which userspace reads in-band before trusting ancestry. */
SEC("uprobe")
int BPF_KPROBE(ot_go_spawn)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!current_is_traced(tgid) || !ctx->bx)
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 g_m = cookie & 0xffff, m_curg = (cookie >> 16) & 0xffff;
	__u64 m = 0, curg = 0, curg_m = 0;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)(ctx->r14 + g_m)) || !m ||
	    bpf_probe_read_user(&curg, sizeof(curg), (void *)(m + m_curg)) || curg == ctx->r14 ||
	    !curg || bpf_probe_read_user(&curg_m, sizeof(curg_m), (void *)(curg + g_m)) ||
	    curg_m != m)
		curg = 0;
	if (!emit_go_event(OT_EV_GO_SPAWN, curg, ctx->bx))
		__sync_fetch_and_add(&go_spawn_lost, 1);
	return 0;
}

/* Goroutine exit, for trace linking: runtime.goexit0(gp) on the jbe after its
 * stack check (RAX = gp, the goroutine that ended; R14 = g0). A goroutine
 * started for a request is trusted to have worked for it only if it ended
 * before the request did (src/trace/linker.cpp). A lost exit event only
 * leaves spans unlinked. */
SEC("uprobe")
int BPF_KPROBE(ot_go_exit)
{
	if (go_entry_tgid(ctx) && ctx->ax)
		emit_go_event(OT_EV_GO_EXIT, 0, ctx->ax);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
