// SPDX-License-Identifier: Apache-2.0
/*
 * hookload: minimal libbpf loader for the hook-cost benchmark designs.
 *
 *   hookload OBJ.bpf.o PID [PID...]
 *
 * Loads OBJ, puts each PID and its current descendants into the `targets`
 * map, attaches every program (section names say where), prints
 * "hookload: attached ..." on stderr, then drains the ring buffer counting
 * events until SIGINT/SIGTERM. On exit it prints on stdout:
 *   EVENTS events=N bytes=B drops_ringbuf=X drops_conn=Y
 *   PROG name=P run_cnt=C run_time_ns=T ns_per_run=R     (one per program)
 * run_cnt/run_time_ns are the kernel's per-program statistics (the numbers
 * `bpftool prog show` prints); they are only counted while
 * kernel.bpf_stats_enabled=1.
 * HC_READER_DELAY_NS=T busy-waits T ns per event in the reader, to see what a
 * reader that falls behind costs the traced process (ring-buffer wake-ups).
 * HC_WAKE_MODE=0..3 selects the BPF side's wake-up policy (hc_common.bpf.h).
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hc_event.h"

static volatile sig_atomic_t stop;
static unsigned long long n_events, n_bytes;
static long reader_delay_ns; /* HC_READER_DELAY_NS: simulate a slow reader (experiment) */

static unsigned long long mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void on_signal(int sig) { (void)sig; stop = 1; }

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	n_events++;
	n_bytes += size;
	if (reader_delay_ns > 0) {
		unsigned long long end = mono_ns() + reader_delay_ns;
		while (mono_ns() < end)
			;
	}
	return 0;
}

static int add_tgid(int map_fd, unsigned int pid)
{
	__u32 one = 1;
	return bpf_map_update_elem(map_fd, &pid, &one, BPF_ANY) == 0;
}

/* Adds pid and, recursively, the children listed in /proc/PID/task/T/children. */
static int add_tree(int map_fd, unsigned int pid, int depth)
{
	int added = add_tgid(map_fd, pid);
	if (depth > 32)
		return added;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%u/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return added;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char cpath[320];
		snprintf(cpath, sizeof(cpath), "/proc/%u/task/%s/children", pid, de->d_name);
		FILE *f = fopen(cpath, "r");
		if (!f)
			continue;
		unsigned int child;
		while (fscanf(f, "%u", &child) == 1)
			added += add_tree(map_fd, child, depth + 1);
		fclose(f);
	}
	closedir(d);
	return added;
}

static unsigned long long sum_percpu(int map_fd, __u32 key, int ncpu)
{
	unsigned long long *vals = calloc((size_t)ncpu, sizeof(*vals)), total = 0;
	if (vals && bpf_map_lookup_elem(map_fd, &key, vals) == 0)
		for (int i = 0; i < ncpu; i++)
			total += vals[i];
	free(vals);
	return total;
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s OBJ.bpf.o PID [PID...]\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet_print);
	if (getenv("HC_READER_DELAY_NS"))
		reader_delay_ns = atol(getenv("HC_READER_DELAY_NS"));
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "hookload: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (getenv("HC_WAKE_MODE")) {
		/* the only rodata variable is hc_wake_mode */
		struct bpf_map *ro = bpf_object__find_map_by_name(obj, ".rodata");
		__u32 mode = (__u32)atoi(getenv("HC_WAKE_MODE"));
		if (!ro || bpf_map__set_initial_value(ro, &mode, sizeof(mode))) {
			fprintf(stderr, "hookload: cannot set HC_WAKE_MODE\n");
			return 1;
		}
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "hookload: load %s failed\n", argv[1]);
		return 1;
	}
	int targets = bpf_object__find_map_fd_by_name(obj, "targets");
	int events = bpf_object__find_map_fd_by_name(obj, "events");
	int drops = bpf_object__find_map_fd_by_name(obj, "drops");
	if (targets < 0 || events < 0 || drops < 0) {
		fprintf(stderr, "hookload: maps missing in %s\n", argv[1]);
		return 1;
	}
	int ntraced = 0;
	for (int i = 2; i < argc; i++)
		ntraced += add_tree(targets, (unsigned int)strtoul(argv[i], NULL, 10), 0);

	struct bpf_program *prog;
	int nprogs = 0;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "hookload: attach %s: %s\n", bpf_program__name(prog),
				strerror(errno));
			return 1;
		}
		nprogs++;
	}
	struct ring_buffer *rb = ring_buffer__new(events, on_event, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "hookload: ring buffer: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "hookload: attached %d programs from %s; tracing %d processes\n", nprogs,
		argv[1], ntraced);

	while (!stop) {
		int err = ring_buffer__poll(rb, 100);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "hookload: poll: %d\n", err);
			break;
		}
		if (err == 0) /* timeout: the BPF side may not have woken us (HC_WAKE_MODE) */
			ring_buffer__consume(rb);
	}
	ring_buffer__consume(rb);

	int ncpu = libbpf_num_possible_cpus();
	printf("EVENTS events=%llu bytes=%llu drops_ringbuf=%llu drops_conn=%llu\n", n_events,
	       n_bytes, sum_percpu(drops, 0, ncpu), sum_percpu(drops, 1, ncpu));
	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			continue;
		printf("PROG name=%s id=%u run_cnt=%llu run_time_ns=%llu ns_per_run=%.1f\n",
		       bpf_program__name(prog), info.id, (unsigned long long)info.run_cnt,
		       (unsigned long long)info.run_time_ns,
		       info.run_cnt ? (double)info.run_time_ns / info.run_cnt : 0.0);
	}
	fflush(stdout);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
