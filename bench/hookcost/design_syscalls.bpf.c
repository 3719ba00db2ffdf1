// SPDX-License-Identifier: GPL-2.0-only
/* Design (a): syscall tracepoints.
 *
 * syscalls:sys_enter_{read,write,readv,writev,sendto,recvfrom,sendmsg,recvmsg}
 * keep the arguments (fd, buffer or iovec or msghdr) in task-local storage,
 * after the tgid filter. The matching sys_exit_* looks the stash up (a task
 * that was filtered out has none), walks task->files->fdt->fd[fd] -> file,
 * checks the inode is a socket, follows file->private_data (struct socket)
 * -> sk with CO-RE reads, reads the family and copies min(ret, 4096) bytes
 * exactly as design (b) does.
 *
 * Built twice: as is, the walk uses BPF_CORE_READ (one
 * bpf_probe_read_kernel call per pointer hop); with -DHC_DIRECT it uses plain
 * loads through BTF pointers (task is one; the file and socket pointers are
 * made into read-only BTF pointers with the bpf_rdonly_cast kfunc), leaving
 * one probe read for the fd array slot. */
#include "hc_common.bpf.h"

#define S_IFMT 00170000
#define S_IFSOCK 0140000

enum { K_BUF = 0, K_IOV = 1, K_MSG = 2 };

#ifdef HC_DIRECT
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#endif

struct stash {
	__u64 ptr;  /* buffer, iovec array or msghdr */
	__u64 cnt;  /* iovcnt for K_IOV */
	__s32 fd;
	__u32 flags; /* recv flags (MSG_PEEK) */
	__u8 nr;
	__u8 kind;
	__u8 dir;
	__u8 active;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stash);
} stashes SEC(".maps");

static __always_inline int on_enter(__u8 nr, __u8 kind, __u8 dir, long fd, unsigned long ptr,
				    unsigned long cnt, unsigned long flags)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!hc_traced(tgid))
		return 0;
	struct stash *st = bpf_task_storage_get(&stashes, bpf_get_current_task_btf(), NULL,
						BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	st->ptr = ptr;
	st->cnt = cnt;
	st->fd = fd;
	st->flags = flags;
	st->nr = nr;
	st->kind = kind;
	st->dir = dir;
	st->active = 1;
	return 0;
}

static __always_inline int on_exit(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	/* No create: processes that were filtered out on entry have no stash. */
	struct stash *st = bpf_task_storage_get(&stashes, task, NULL, 0);
	if (!st || !st->active)
		return 0;
	st->active = 0;
	__u8 dir = st->dir;
	if (ret == -EAGAIN || (ret == 0 && dir == 1) || ret < -4095)
		return 0;
	if (dir == 0 && (st->flags & MSG_PEEK))
		return 0;

	/* fd -> struct file -> socket -> sock */
	int fd = st->fd;
#ifdef HC_DIRECT
	struct fdtable *fdt = task->files->fdt;
	unsigned int max_fds = fdt->max_fds;
	struct file **fda = fdt->fd;
#else
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file **fda = BPF_CORE_READ(fdt, fd);
#endif
	if (fd < 0 || (unsigned int)fd >= max_fds)
		return 0;
	struct file *file = NULL;
	if (bpf_core_read(&file, sizeof(file), &fda[fd]) || !file)
		return 0;
#ifdef HC_DIRECT
	file = bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
	umode_t mode = file->f_inode->i_mode;
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = bpf_rdonly_cast(file->private_data,
					      bpf_core_type_id_kernel(struct socket));
	struct sock *sk = sock->sk;
	if (!sk)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
#else
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = (struct socket *)BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
#endif
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
		return 0;

	__u64 key = (__u64)sk;
	struct hc_conn *c = hc_conn_get(key);
	if (!c)
		return 0;
	struct hc_scratch *s = hc_scratch_get();
	if (!s)
		return 0;
	__u32 len = ret > 0 ? ret : 0;
	__u32 cap = 0;
	if (len) {
		if (st->kind == K_BUF)
			cap = hc_copy_buf(s, (const void *)st->ptr, len);
		else if (st->kind == K_IOV)
			cap = hc_copy_iov(s, (const struct iovec *)st->ptr, st->cnt, len);
		else
			cap = hc_copy_msg(s, (const struct user_msghdr *)st->ptr, len);
	}
	hc_emit(s, c, key, len, cap, family, dir, st->nr, fd);
	return 0;
}

/* Per-syscall tracepoints: args[] follow the syscall's signature. */
#define ENTER(name, nr, kind, dir, cnt_arg, flags_arg)                                        \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                           \
	int hca_enter_##name(struct trace_event_raw_sys_enter *ctx)                           \
	{                                                                                     \
		return on_enter(nr, kind, dir, ctx->args[0], ctx->args[1], cnt_arg, flags_arg); \
	}                                                                                     \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                            \
	int hca_exit_##name(struct trace_event_raw_sys_exit *ctx)                             \
	{                                                                                     \
		return on_exit(ctx->ret);                                                     \
	}

ENTER(read, NR_read, K_BUF, 0, 0, 0)
ENTER(write, NR_write, K_BUF, 1, 0, 0)
ENTER(readv, NR_readv, K_IOV, 0, ctx->args[2], 0)
ENTER(writev, NR_writev, K_IOV, 1, ctx->args[2], 0)
ENTER(sendto, NR_sendto, K_BUF, 1, 0, 0)
ENTER(recvfrom, NR_recvfrom, K_BUF, 0, 0, ctx->args[3])
ENTER(sendmsg, NR_sendmsg, K_MSG, 1, 0, 0)
ENTER(recvmsg, NR_recvmsg, K_MSG, 0, 0, ctx->args[2])

char LICENSE[] SEC("license") = "GPL";
