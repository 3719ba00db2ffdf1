/* SPDX-License-Identifier: GPL-2.0-only */
/* What both benchmark designs share: the tgid filter, the connection table,
 * the per-CPU scratch, the iovec copy and the ring buffer output. Only how
 * each design finds the socket and the user buffer differs. */
#ifndef HC_COMMON_BPF_H
#define HC_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "hc_event.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define EAGAIN 11

#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* tgids to trace (value unused) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct hc_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hc_scratch);
} scratch SEC(".maps");

/* [0]: ring buffer full, [1]: connection table insert failed */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void hc_drop(__u32 kind)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &kind);
	if (v)
		*v += 1; /* per-CPU: no atomic needed */
}

static __always_inline bool hc_traced(__u32 tgid)
{
	return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

/* Ring-buffer wake-up policy (set by the loader, HC_WAKE_MODE):
 *  0: the tracer's policy: force a wake-up on every record while more than
 *     64 KiB are queued, none otherwise (the reader also polls on a timer)
 *  1: never wake (the reader polls on a timer)
 *  2: wake once, when the backlog crosses 64 KiB
 *  3: the kernel's default (wake when the reader has caught up)
 *  4: force a wake-up on every record while the backlog is between 64 KiB and
 *     64 KiB + 32 KiB (bpf/common.bpf.h as of commit 35a961e) */
const volatile __u32 hc_wake_mode = 0;

#define HC_WAKE_BYTES 65536

static __always_inline __u64 hc_rb_flags(__u32 size)
{
	__u64 avail;
	switch (hc_wake_mode) {
	case 1:
		return BPF_RB_NO_WAKEUP;
	case 2:
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		return avail < HC_WAKE_BYTES && avail + size >= HC_WAKE_BYTES ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
	case 3:
		return 0;
	case 4:
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		return avail >= HC_WAKE_BYTES && avail < HC_WAKE_BYTES + 2 * 16384 ? BPF_RB_FORCE_WAKEUP
										  : BPF_RB_NO_WAKEUP;
	default:
		return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= HC_WAKE_BYTES
			       ? BPF_RB_FORCE_WAKEUP
			       : BPF_RB_NO_WAKEUP;
	}
}

static __always_inline struct hc_conn *hc_conn_get(__u64 key)
{
	struct hc_conn *c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		return c;
	struct hc_conn init = {};
	bpf_map_update_elem(&conns, &key, &init, BPF_NOEXIST);
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		hc_drop(1);
	return c;
}

static __always_inline __u32 hc_copy_buf(struct hc_scratch *s, const void *ubuf, __u32 len)
{
	__u32 n = len > HC_CAPTURE ? HC_CAPTURE : len;
	if (n == 0 || bpf_probe_read_user(s->buf, n, ubuf))
		return 0;
	return n;
}

static __always_inline __u32 hc_copy_iov(struct hc_scratch *s, const struct iovec *iovp,
					 __u64 iovcnt, __u32 len)
{
	__u32 limit = len > HC_CAPTURE ? HC_CAPTURE : len;
	__u32 off = 0;
	for (int i = 0; i < HC_MAX_IOV; i++) {
		struct iovec iov;
		if (i >= iovcnt || off >= limit)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), &iovp[i]))
			break;
		__u64 n = iov.iov_len;
		if (n > limit - off)
			n = limit - off;
		if (n > HC_CAPTURE)
			n = HC_CAPTURE;
		__u32 at = off & (HC_CAPTURE - 1); /* off < limit <= HC_CAPTURE */
		if (bpf_probe_read_user(&s->buf[at], n, iov.iov_base))
			break;
		off += n;
	}
	return off;
}

static __always_inline __u32 hc_copy_msg(struct hc_scratch *s, const struct user_msghdr *um,
					 __u32 len)
{
	struct user_msghdr m;
	if (bpf_probe_read_user(&m, sizeof(m), um))
		return 0;
	return hc_copy_iov(s, m.msg_iov, m.msg_iovlen, len);
}

static __always_inline struct hc_scratch *hc_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Fills the fixed part of s->ev and sends it with `cap` payload bytes. */
static __always_inline void hc_emit(struct hc_scratch *s, struct hc_conn *c, __u64 conn,
				    __u32 len, __u32 cap, __u16 family, __u8 dir, __u8 nr, __s32 fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hc_event *ev = &s->ev;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->tgid = id >> 32;
	ev->tid = (__u32)id;
	ev->conn = conn;
	ev->pos = __sync_fetch_and_add(&c->pos[dir & 1], len);
	ev->len = len;
	if (cap > HC_CAPTURE)
		cap = HC_CAPTURE;
	ev->cap = cap;
	ev->family = family;
	ev->dir = dir;
	ev->nr = nr;
	ev->fd = fd;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev) + cap, hc_rb_flags(sizeof(*ev) + cap)))
		hc_drop(0);
}

#endif
