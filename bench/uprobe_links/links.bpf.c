// SPDX-License-Identifier: GPL-2.0-only
/* bench/uprobe_links: the same trivial program behind four kinds of uprobe link, to
 * measure what each kind of link costs per probed call (run.sh). */
#include "../../bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern __u64 *bpf_session_cookie(void) __ksym __weak;
extern bool bpf_session_is_return(void) __ksym __weak;

__u64 entries, returns, last_arg;

SEC("uprobe")
int BPF_KPROBE(on_entry)
{
	__sync_fetch_and_add(&entries, 1);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_return)
{
	__sync_fetch_and_add(&returns, 1);
	return 0;
}

/* uprobe_multi link, BPF_TRACE_UPROBE_SESSION: one program runs at entry and
 * at return, with an 8-byte cookie per call instead of a map. */
SEC("uprobe")
int BPF_KPROBE(on_session)
{
	__u64 arg = ctx->di;
	__u64 *cookie = bpf_session_cookie();
	if (!bpf_session_is_return()) {
		__sync_fetch_and_add(&entries, 1);
		*cookie = arg;
		return 0;
	}
	__sync_fetch_and_add(&returns, 1);
	last_arg = *cookie;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
