/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0-only) */
/* Event layout shared by the two benchmark designs and their loader.
 * Both designs produce exactly this record so that their costs compare. */
#ifndef HC_EVENT_H
#define HC_EVENT_H

#ifndef __BPF__
#include <linux/types.h>
#endif

#define HC_CAPTURE 4096 /* bytes copied per call at most (power of two) */
#define HC_MAX_IOV 8    /* iovec entries walked per readv/writev/sendmsg/recvmsg */

struct hc_event {
	__u64 ts_ns;
	__u32 tgid;
	__u32 tid;
	__u64 conn; /* connection key: socket cookie (design b) or struct sock address (design a) */
	__u64 pos;  /* stream offset of the first byte, per direction */
	__u32 len;  /* true byte count of the call */
	__u32 cap;  /* payload bytes that follow */
	__u16 family;
	__u8 dir; /* 0: read by the process, 1: written */
	__u8 nr;  /* syscall number (x86-64; 255 when unknown) */
	__s32 fd;
	/* followed by `cap` payload bytes */
};

struct hc_conn {
	__u64 pos[2];
};

struct hc_scratch {
	struct hc_event ev;
	__u8 buf[2 * HC_CAPTURE]; /* twice the capture: masked offsets stay in bounds */
};

#endif
