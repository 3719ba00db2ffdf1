// SPDX-License-Identifier: Apache-2.0
/*
 * sysloop: cost of syscalls that are NOT socket I/O, to see what each design
 * charges them.
 *
 *   sysloop [-m getppid|read|write] [-n CALLS] [-r RUNS] [-g]
 *
 *   getppid  a syscall no design hooks (design a still routes it through the
 *            syscall-tracepoint slow path while any syscall tracepoint is on)
 *   read     read(2) of 100 bytes from /dev/zero: design a's sys_enter/exit_read
 *            fire and its exit walks the fd table to find it is not a socket
 *   write    write(2) of 100 bytes to /dev/null: same for write
 *   -g       print the PID, wait for SIGUSR1 before the first run
 *
 * Output (stdout):
 *   RESULT mode=read n=.. runs=.. median_ns=.. min_ns=.. max_ns=.. all=..
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *mode = "getppid";
	long n = 1000000;
	int runs = 5, gate = 0, opt;
	while ((opt = getopt(argc, argv, "m:n:r:g")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'n': n = atol(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'g': gate = 1; break;
		default:
			fprintf(stderr, "usage: %s [-m getppid|read|write] [-n N] [-r RUNS] [-g]\n", argv[0]);
			return 2;
		}
	}
	int m = strcmp(mode, "getppid") == 0 ? 0 : strcmp(mode, "read") == 0 ? 1
					  : strcmp(mode, "write") == 0 ? 2 : -1;
	if (m < 0 || n <= 0 || runs <= 0 || runs > 1000) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	int fd = m == 1 ? open("/dev/zero", O_RDONLY) : m == 2 ? open("/dev/null", O_WRONLY) : -1;
	if (m && fd < 0) {
		perror("open");
		return 1;
	}
	if (gate) {
		sigset_t usr1, old;
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		struct sigaction act = {.sa_handler = on_usr1};
		sigaction(SIGUSR1, &act, NULL);
		sigprocmask(SIG_BLOCK, &usr1, &old);
		fprintf(stderr, "sysloop: pid %d; waiting for SIGUSR1\n", getpid());
		while (!go)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	char buf[100];
	memset(buf, 'x', sizeof(buf));
	double *res = calloc((size_t)runs, sizeof(double));
	for (int r = 0; r < runs; r++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			long rc;
			if (m == 0)
				rc = syscall(SYS_getppid);
			else if (m == 1)
				rc = read(fd, buf, sizeof(buf));
			else
				rc = write(fd, buf, sizeof(buf));
			if (rc < 0) {
				perror("syscall");
				return 1;
			}
		}
		res[r] = (now_ns() - t0) / (double)n;
	}
	double *s = calloc((size_t)runs, sizeof(double));
	memcpy(s, res, sizeof(double) * runs);
	qsort(s, runs, sizeof(double), cmp_double);
	double med = runs % 2 ? s[runs / 2] : (s[runs / 2 - 1] + s[runs / 2]) / 2;
	printf("RESULT mode=%s n=%ld runs=%d median_ns=%.1f min_ns=%.1f max_ns=%.1f all=", mode, n,
	       runs, med, s[0], s[runs - 1]);
	for (int r = 0; r < runs; r++)
		printf("%s%.1f", r ? "," : "", res[r]);
	printf("\n");
	return 0;
}
