// SPDX-License-Identifier: GPL-2.0-only
/* Process lifecycle: the traced set follows forks (descendants of --pid and
 * launched commands), grows on exec of an --exe target, shrinks on exit. */
#include "common.bpf.h"

static __always_inline void emit_proc(__u32 type, __u32 tgid, __u32 ppid, __s32 code,
				      struct task_struct *p)
{
	struct ot_proc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(OT_DROP_RINGBUF);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->hdr, type);
	e->hdr.tgid = tgid;
	e->ppid = ppid;
	e->exit_code = code;
	BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
	/* With TLS probes, a new process (or library) needs its uprobes now: a
	 * forked server child does its TLS handshake within milliseconds. */
	bpf_ringbuf_submit(e, tls_probes_wanted ? BPF_RB_FORCE_WAKEUP : ringbuf_flags());
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ot_proc_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ptgid == ctgid || !cfg_filter_pid)
		return 0; /* a new thread, or no per-process filter to extend */
	__u32 *flags = bpf_map_lookup_elem(&traced_tgids, &ptgid);
	if (!flags || !(*flags & OT_PROC_FOLLOW_FORKS))
		return 0;
	__u32 v = *flags;
	bpf_map_update_elem(&traced_tgids, &ctgid, &v, BPF_ANY);
	emit_proc(OT_EV_PROC_FORK, ctgid, ptgid, 0, child);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ot_proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	if (tgid == cfg_self_tgid || !cfg_filter_pid)
		return 0;
	bool traced = bpf_map_lookup_elem(&traced_tgids, &tgid) != NULL;
	if (!traced && cfg_match_exe) {
		struct ot_exe_key key = {};
		struct inode *ino = BPF_CORE_READ(bprm, file, f_inode);
		key.ino = BPF_CORE_READ(ino, i_ino);
		key.dev = BPF_CORE_READ(ino, i_sb, s_dev);
		if (bpf_map_lookup_elem(&exe_targets, &key)) {
			__u32 v = OT_PROC_FOLLOW_FORKS;
			bpf_map_update_elem(&traced_tgids, &tgid, &v, BPF_ANY);
			traced = true;
		}
	}
	if (traced)
		emit_proc(OT_EV_PROC_EXEC, tgid, BPF_CORE_READ(p, real_parent, tgid), 0, p);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ot_proc_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	if (!cfg_filter_pid)
		return 0;
	/* signal->live drops to 0 when the last thread of the group exits. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	if (!bpf_map_lookup_elem(&traced_tgids, &tgid))
		return 0;
	bpf_map_delete_elem(&traced_tgids, &tgid);
	emit_proc(OT_EV_PROC_EXIT, tgid, BPF_CORE_READ(p, real_parent, tgid),
		  BPF_CORE_READ(p, exit_code), p);
	return 0;
}

/* An executable file mapping by a traced process (ld.so loading libraries,
 * dlopen): userspace rescans its maps for TLS libraries to probe. Only mmap
 * calls pay (a syscall tracepoint, not a hook on every syscall). */
#define PROT_EXEC 0x4
SEC("tp/syscalls/sys_enter_mmap")
int ot_proc_mmap(struct trace_event_raw_sys_enter *ctx)
{
	if (!cfg_filter_pid || !tls_probes_wanted)
		return 0;
	if (!(ctx->args[2] & PROT_EXEC) || (long)ctx->args[4] < 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&traced_tgids, &tgid))
		return 0;
	struct task_struct *p = bpf_get_current_task_btf();
	emit_proc(OT_EV_PROC_MMAP, tgid, 0, 0, p);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
