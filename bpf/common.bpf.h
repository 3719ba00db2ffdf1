/* SPDX-License-Identifier: GPL-2.0-only */
/* Maps, run-time knobs and helpers shared by every odigos-trace BPF program.
 * Maps and knobs are __weak so each .bpf.c can include this header and
 * `bpftool gen object` merges them into one skeleton. */
#ifndef ODIGOS_COMMON_BPF_H
#define ODIGOS_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "odigos/abi.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define SOCK_STREAM 1
#define EAGAIN 11
#define EINPROGRESS 115

/* Knobs set by userspace before load (rodata). */
const volatile __u32 cfg_self_tgid __weak = 0;      /* never traced */
const volatile __u32 cfg_capture_size __weak = 4096; /* <= OT_MAX_CAPTURE */
const volatile __u8 cfg_filter_pid __weak = 0;      /* only tgids in traced_tgids */
const volatile __u8 cfg_filter_cgroup __weak = 0;   /* only cgroups in traced_cgroups */
const volatile __u32 cfg_cgroup_levels __weak = 0;  /* depths of the traced_cgroups entries */
const volatile __u8 cfg_filter_port __weak = 0;     /* only connections with a port in traced_ports */
const volatile __u8 cfg_match_exe __weak = 0;       /* exec of an exe_targets inode is traced */
const volatile __u32 cfg_wakeup_bytes __weak = 65536; /* wake the reader past this backlog */
const volatile __u8 tls_probes_wanted __weak = 0;   /* report executable mmaps (TLS libraries) */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized by userspace (--ringbuf-size) */
} events SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* tgid */
	__type(value, __u32); /* OT_PROC_* */
} traced_tgids SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct ot_exe_key);
	__type(value, __u32);
} exe_targets SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64); /* cgroup v2 id */
	__type(value, __u32);
} traced_cgroups SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16); /* port, host order */
	__type(value, __u32);
} traced_ports SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, struct ot_conn_state);
} conns SEC(".maps") __weak;

/* Role learnt from accept() before the connection's first I/O. Keyed by the
 * struct sock address, which is stable while the socket lives. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} accepted_socks SEC(".maps") __weak;

/* Listening ports of traced servers (from /proc at start, and every accept),
 * indexed by port: an array lookup is inlined by the verifier, which matters
 * in sk_data_ready (every received segment on the host). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} listen_ports SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OT_DROP__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps") __weak;

/* Per-CPU scratch for a data event: twice the largest capture so the verifier
 * can prove every masked copy stays in bounds. A plain array indexed by CPU
 * (programs cannot migrate while they run): per-CPU map values are limited to
 * 32 KiB. Userspace sets max_entries to the number of possible CPUs. */
struct data_scratch {
	struct ot_data_event ev;
	__u8 buf[2 * OT_MAX_CAPTURE];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct data_scratch);
} scratch SEC(".maps") __weak;

/* TLS plaintext (bpf/tls.bpf.c). A thread inside a probed TLS library call:
 * the socket its nested socket I/O uses is the call's socket. */
struct tls_call {
	__u64 conn;       /* the library's connection object (SSL *, gnutls_session_t) */
	__u64 buf;        /* the caller's plaintext buffer */
	__u64 count_ptr;  /* size_t * receiving the byte count (0: the return value is it) */
	__u64 cookie;     /* socket of the nested I/O, 0 until one happens */
	__u64 wire_ns;    /* ingress: arrival of the first ciphertext byte read; egress: push time */
	__u64 sp;         /* stack pointer at entry: its return has sp + 8 (nested calls) */
	__u64 len;        /* Go Write: the plaintext length, known at entry */
	__u8 emitted;     /* Go Write: its plaintext went out (at the first nested write) */
	__u8 dir;         /* enum ot_dir */
	__u8 lib;         /* enum ot_tls_lib */
	__u8 _pad[5];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid: one call in flight per thread */
	__type(value, struct tls_call);
} tls_calls SEC(".maps") __weak;

struct tls_conn_key {
	__u32 tgid;
	__u32 _pad;
	__u64 conn; /* SSL * */
};
/* Library connection object -> socket cookie, for calls served from the
 * library's buffer without socket I/O. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_conn_key);
	__type(value, __u64);
} tls_socks SEC(".maps") __weak;

/* Go crypto/tls calls, keyed by goroutine: a goroutine migrates between
 * threads (a Read that waits resumes elsewhere), and its g stays in R14, also
 * at the syscall (saved in pt_regs). No return probes on Go code: a call
 * entry stays until the goroutine's next call overwrites it. */
struct go_call_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_call_key);
	__type(value, struct tls_call);
} go_calls SEC(".maps") __weak;

/* struct sock address -> socket cookie, made at a connection's first I/O: a
 * Go Read served from what its handshake already read has no socket I/O of
 * its own; its socket is then found from its file descriptor. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} sk_cookies SEC(".maps") __weak;

/* Set by userspace once a TLS probe is attached: until then socket I/O does
 * not look for TLS calls. */
volatile __u32 tls_probes_active __weak = 0;
volatile __u32 go_probes_active __weak = 0;
volatile __u32 go_http_probes_active __weak = 0;
/* Goroutine creations that could not be reported (bpf/tls.bpf.c ot_go_spawn). */
volatile __u64 go_spawn_lost __weak = 0;

/* Go net/http client (trace linking): the goroutine that called
 * (*persistConn).roundTrip for a request (key: its *Request), and, once the
 * transport's writeLoop goroutine starts writing that request, whose request
 * that writer goroutine writes (key: the writer's g). The writer's next socket
 * binds the override to that socket: a goroutine that later reuses the
 * writer's g struct writes elsewhere and keeps its own identity. */
struct go_req_key {
	__u32 tgid;
	__u32 _pad;
	__u64 req;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_req_key);
	__type(value, __u64);
} go_req_owner SEC(".maps") __weak;

struct go_writer {
	__u64 owner;  /* g of the goroutine whose request is being written */
	__u64 cookie; /* the socket it is written to; 0 until the first write */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_call_key);
	__type(value, struct go_writer);
} go_writers SEC(".maps") __weak;

/* The execution context reported with a socket call (ot_data_event.user_ctx):
 * R14, the goroutine in Go programs, or for net/http's writeLoop the
 * goroutine whose request it writes (writes only: a writeLoop never reads,
 * and reads need no lookup). */
static __always_inline __u64 exec_ctx(__u32 tgid, __u64 r14, __u64 cookie, __u8 dir)
{
	if (!go_http_probes_active || dir != OT_DIR_EGRESS)
		return r14;
	struct go_call_key k = {.tgid = tgid, .g = r14};
	struct go_writer *w = bpf_map_lookup_elem(&go_writers, &k);
	if (!w)
		return r14;
	if (!w->cookie)
		w->cookie = cookie;
	return w->cookie == cookie ? w->owner : r14;
}

static __always_inline void count_drop(__u32 kind)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &kind);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* In a traced cgroup or below it (also cgroups created after start): compare
 * the task's ancestor at each depth where a target sits. */
static __always_inline bool in_traced_cgroup(void)
{
	for (int level = 0; level < 16; level++) {
		if (!(cfg_cgroup_levels & (1u << level)))
			continue;
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (id && bpf_map_lookup_elem(&traced_cgroups, &id))
			return true;
	}
	return false;
}

/* Is the current process one we trace? Cheapest checks first. */
static __always_inline bool current_is_traced(__u32 tgid)
{
	if (tgid == cfg_self_tgid)
		return false;
	if (cfg_filter_pid && !bpf_map_lookup_elem(&traced_tgids, &tgid))
		return false;
	if (cfg_filter_cgroup && !in_traced_cgroup())
		return false;
	return true;
}

/* --port: either end of the connection uses a selected port. */
static __always_inline bool port_selected(const struct sock *sk)
{
	if (!cfg_filter_port)
		return true;
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return bpf_map_lookup_elem(&traced_ports, &lport) ||
	       bpf_map_lookup_elem(&traced_ports, &rport);
}

/* Wakeup batching: no wakeup per event. The reader is woken once, when the
 * backlog crosses cfg_wakeup_bytes (a narrow window, so only the few events
 * landing in it pay for a wakeup), and otherwise polls on a timer. A forced
 * wakeup on every event past the threshold measured ~4 us per event here: the
 * self-IPI runs the wakeup inside the traced process's socket call. */
static __always_inline __u64 ringbuf_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (avail >= cfg_wakeup_bytes && avail < cfg_wakeup_bytes + 2 * OT_MAX_CAPTURE)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* Addresses and ports of a socket (IPv4, IPv6; AF_UNIX: family only). */
static __always_inline void read_addrs(const struct sock *sk, struct ot_addr *local,
				       struct ot_addr *remote)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	local->family = family;
	remote->family = family;
	if (family == AF_INET) {
		__u32 l4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(local->addr, &l4, 4);
		__u32 r4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(remote->addr, &r4, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO((struct in6_addr *)local->addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)remote->addr, sk, __sk_common.skc_v6_daddr);
	}
	if (family == AF_INET || family == AF_INET6) {
		local->port = BPF_CORE_READ(sk, __sk_common.skc_num);
		remote->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
}

static __always_inline void fill_hdr(struct ot_event_hdr *h, __u32 type)
{
	__u64 id = bpf_get_current_pid_tgid();
	h->type = type;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = bpf_ktime_get_ns();
	h->tgid = id >> 32;
	h->tid = (__u32)id;
}

/* The connection carries TLS whose plaintext we report: its ciphertext is no
 * longer copied, and if userspace had given up on that ciphertext, the
 * plaintext is decodable again. */
static __always_inline void mark_tls(struct ot_conn_state *st)
{
	if (!(st->flags & OT_CONN_TLS)) {
		__sync_fetch_and_or(&st->flags, OT_CONN_TLS);
		__sync_fetch_and_and(&st->flags, ~OT_CONN_IGNORE);
	}
}

/* The plaintext of a TLS call as one OT_DATA_TLS data event on `cookie`:
 * `count` bytes moved, the first ones copied from the caller's buffer. No
 * socket known (cookie 0): counted, not reported. */
static __always_inline void emit_plaintext(const struct tls_call *call, __u64 cookie, __u64 count)
{
	if (!cookie) {
		count_drop(OT_DROP_TLS_NO_SOCKET);
		return;
	}
	__u32 cpu = bpf_get_smp_processor_id();
	struct data_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return;
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
	/* In a probe or a syscall alike, the task's saved user registers. */
	ev->user_ctx = exec_ctx(ev->hdr.tgid,
				((struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()))->r14,
				cookie, call->dir);
	ev->role = OT_ROLE_UNKNOWN;
	ev->pos = 0;
	struct ot_conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (st) {
		mark_tls(st);
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
	ev->cap = cap;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev) + cap, ringbuf_flags()))
		count_drop(OT_DROP_RINGBUF);
}

#endif
