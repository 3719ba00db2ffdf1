/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/*
 * The one ABI shared by the BPF programs (bpf/ *.bpf.c) and userspace (src/).
 * C only, fixed-width fields, explicit padding: every record starts with
 * struct ot_event_hdr whose `type` says which record follows.
 * C++ conveniences and static_asserts on the layout live in abi.hpp.
 */
#ifndef ODIGOS_ABI_H
#define ODIGOS_ABI_H

#ifdef __BPF__
/* vmlinux.h provides __u8.. types in BPF builds. */
#else
#include <linux/types.h>
#endif

#define OT_TASK_COMM_LEN 16
#define OT_MAX_CAPTURE 16384 /* upper bound of --capture-size (power of two) */
#define OT_MAX_IOV 8         /* iovec entries copied per readv/writev/sendmsg/recvmsg */
#define OT_PATH_MAX 256

enum ot_event_type {
	OT_EV_DATA = 1,       /* bytes read from / written to a socket */
	OT_EV_CONN_OPEN = 2,  /* first sight of a connection: addresses and role */
	OT_EV_CONN_CLOSE = 3, /* our side closed (FIN sent / socket closed) */
	OT_EV_CONN_FAIL = 4,  /* active open failed (refused, timed out) */
	OT_EV_CONN_RESET = 5, /* RST received or sent */
	OT_EV_RETRANSMIT = 6, /* TCP retransmission on a tracked connection */
	OT_EV_PROC_FORK = 7,  /* a traced process forked a new process */
	OT_EV_PROC_EXEC = 8,  /* a traced (or newly matched) process exec'd */
	OT_EV_PROC_EXIT = 9,  /* the last thread of a traced process exited */
	OT_EV_PROC_MMAP = 10, /* a traced process mapped a file executable (ld.so, dlopen) */
	OT_EV_GO_SPAWN = 11,  /* a goroutine of a traced Go program started another (`go f()`) */
	OT_EV_GO_EXIT = 12,   /* a goroutine of a traced Go program ended (ot_go_spawn_event:
			       * child = its g, parent 0) */
};

enum ot_role {
	OT_ROLE_UNKNOWN = 0, /* connection predates tracing: userspace infers it */
	OT_ROLE_CLIENT = 1,  /* connect()ed by the traced process */
	OT_ROLE_SERVER = 2,  /* accept()ed by the traced process */
};

enum ot_dir {
	OT_DIR_INGRESS = 0, /* the process read these bytes */
	OT_DIR_EGRESS = 1,  /* the process wrote these bytes */
};

/* Which call carried the bytes (x86-64 syscall number, or OT_SYSCALL_OTHER).
 * Plaintext taken from a TLS library call (OT_DATA_TLS) carries
 * OT_SYSCALL_TLS_BASE + enum ot_tls_lib. */
#define OT_SYSCALL_OTHER 0xffff
#define OT_SYSCALL_TLS_BASE 0xff00

enum ot_tls_lib {
	OT_TLS_OPENSSL = 1,
	OT_TLS_GNUTLS = 2,
	OT_TLS_GO = 3,
};

/* ot_data_event.flags */
#define OT_DATA_EOF 0x1       /* recv returned 0: the peer closed its side */
#define OT_DATA_ERROR 0x2     /* the call failed; `err` holds -errno */
#define OT_DATA_NO_PAYLOAD 0x4 /* bytes moved without a user buffer (sendfile, splice, io_uring) */
#define OT_DATA_TLS 0x8       /* plaintext of a TLS library call (SSL_read/SSL_write...) on the
			       * socket its nested read/write used; pos counts plaintext */

/* Drop counters (per-CPU array indices). */
enum ot_drop_kind {
	OT_DROP_RINGBUF = 0,   /* ring buffer full: event lost */
	OT_DROP_CONN_TABLE = 1, /* connection table full: connection not tracked */
	OT_DROP_TLS_NO_SOCKET = 2, /* TLS plaintext whose socket was never seen: not reported */
	OT_DROP__COUNT = 4,
};

/* Connection-table flags (ot_conn_state.flags), written by both sides. */
#define OT_CONN_ANNOUNCED 0x1 /* CONN_OPEN reached the ring buffer */
#define OT_CONN_IGNORE 0x2    /* userspace: not a protocol we decode; stop copying */
#define OT_CONN_CLOSED 0x4    /* CONN_CLOSE sent */
#define OT_CONN_TLS 0x8       /* a TLS library call used it: plaintext is reported, the
			       * ciphertext is no longer copied */

/* Process-table flags (traced_tgids value). */
#define OT_PROC_FOLLOW_FORKS 0x1

struct ot_event_hdr {
	__u32 type;
	__u32 cpu;
	__u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u32 tgid;
	__u32 tid;
};

struct ot_addr {
	__u16 family; /* AF_INET, AF_INET6, AF_UNIX */
	__u16 port;   /* host byte order; 0 for AF_UNIX */
	__u32 _pad;
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
};

struct ot_conn_event {
	struct ot_event_hdr hdr;
	__u64 cookie; /* socket cookie: unique for the socket's lifetime, never reused */
	struct ot_addr local;
	struct ot_addr remote;
	__u8 role; /* enum ot_role */
	__u8 protocol; /* IPPROTO_TCP, IPPROTO_UDP, 0 for AF_UNIX */
	__u16 _pad0;
	__s32 err; /* CONN_FAIL: sk_err (errno) when known */
	__u32 retransmits;
	__u32 _pad1;
	char comm[OT_TASK_COMM_LEN];
};

struct ot_data_event {
	struct ot_event_hdr hdr;
	__u64 cookie;
	__u64 pos;  /* stream offset of the first byte, per direction; a jump means lost bytes */
	__u32 len;  /* true number of bytes moved by the call */
	__u32 cap;  /* bytes of payload that follow (<= len, <= capture size) */
	__u8 dir;   /* enum ot_dir */
	__u8 role;  /* enum ot_role as known when the event was made */
	__u16 syscall;
	__u32 flags; /* OT_DATA_* */
	__s32 err;   /* -errno when OT_DATA_ERROR */
	__s32 fd;    /* fd argument of the syscall, -1 when unknown */
	/* When the bytes were on the wire, as the kernel saw it (same clock), 0
	 * when unknown. Ingress on a traced server's TCP connection: when the
	 * first byte of this read arrived (sk_data_ready), before any wait in the
	 * accept queue or receive buffer. Egress on TCP when everything written
	 * has been transmitted: when the kernel queued the last chunk for sending
	 * (tcp_sendmsg_locked), before the sender was perhaps preempted (by the
	 * receiver it woke) on its way out of the call. */
	__u64 wire_ns;
	/* The caller's R14 at the call (syscall or TLS library probe): in Go
	 * programs (register ABI, amd64) the running goroutine's g, which is the
	 * unit of work the trace linker follows; meaningless in other programs
	 * (userspace uses the thread id there). */
	__u64 user_ctx;
	/* followed by `cap` payload bytes */
};

struct ot_proc_event {
	struct ot_event_hdr hdr; /* tgid: the process concerned */
	__u32 ppid;
	__s32 exit_code; /* PROC_EXIT: wait status as the kernel keeps it */
	char comm[OT_TASK_COMM_LEN];
};
/* OT_EV_PROC_MMAP uses struct ot_proc_event too (ppid and exit_code 0): the
 * process's maps changed; userspace looks for TLS libraries to probe. */

/* OT_EV_GO_SPAWN: goroutine `parent` executed `go f()`, which created goroutine
 * `child` (both g pointers, as R14 holds them: ot_data_event.user_ctx);
 * parent 0 when the creator is not a user goroutine or could not be read. A
 * g struct is reused once its goroutine exits; every creation through
 * runtime.newproc is reported, so the latest event for a g describes its
 * current goroutine. */
struct ot_go_spawn_event {
	struct ot_event_hdr hdr; /* tgid, tid: where `go` ran */
	__u64 parent;
	__u64 child;
};

/* Kernel-side connection table value (map `conns`, key: socket cookie). */
struct ot_conn_state {
	__u64 pos[2]; /* next stream offset per direction */
	__u32 tgid;
	__u32 flags; /* OT_CONN_* */
	__u8 role;
	__u8 _pad[3];
	__u32 retransmits;
	__u64 send_ns; /* when tcp_sendmsg_locked last ran for this socket */
	__u64 arrive_ns; /* server side: when the first unread byte arrived (sk_data_ready);
			  * 0 once a read consumed it. An entry made by sk_data_ready
			  * before the first read has tgid 0 (set by that read). */
};

/* Key of the --exe target table: the executable's inode. */
struct ot_exe_key {
	__u64 dev; /* super_block->s_dev (kernel encoding) */
	__u64 ino;
};

#endif /* ODIGOS_ABI_H */
