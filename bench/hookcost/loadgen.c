// SPDX-License-Identifier: Apache-2.0
/*
 * loadgen: request/response round trips over loopback TCP between two
 * processes, to measure what a socket-I/O hook costs per call.
 *
 * The parent is the client, a forked child is the server. Each message is
 * exactly MSG bytes (default 100) and is a well-formed HTTP/1.1 request or
 * response, so a tracer that decodes HTTP sees one request per round trip.
 *
 *   loadgen [-m write|sendto] [-n ROUNDTRIPS] [-r RUNS] [-w WARMUP] [-g]
 *
 *   -m write   client and server use write() + read()  (default)
 *   -m sendto  client and server use sendto() + recvfrom()
 *   -g         print the two PIDs, then wait for SIGUSR1 before the first run
 *              (lets a tracer attach to both processes first)
 *
 * Every run opens a new connection, does WARMUP untimed round trips, then
 * ROUNDTRIPS timed ones, and measures two things per round trip:
 *   wall: elapsed time (what a user sees; includes being preempted by
 *         unrelated work on a shared machine)
 *   cpu:  CPU time the client and the server consumed (user + system,
 *         CLOCK_PROCESS_CPUTIME_ID of each process): hook costs land here, time
 *         spent waiting for the CPU does not, so it is far less noisy.
 * Output (stdout), one line:
 *   RESULT mode=write n=20000 runs=5 median_ns=.. min_ns=.. max_ns=.. all=a,b,c
 *          cpu_median_ns=.. cpu_all=a,b,c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 100

static int use_sendto;
static volatile sig_atomic_t go;

static void on_usr1(int sig) { (void)sig; go = 1; }

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void fill_msg(char *out, const char *head)
{
	/* head + "X-Pad: " + padding + "\r\n\r\n" == MSG bytes */
	size_t h = strlen(head);
	size_t fixed = h + strlen("X-Pad: ") + 4;
	if (fixed > MSG) {
		fprintf(stderr, "message header too long\n");
		exit(1);
	}
	memcpy(out, head, h);
	memcpy(out + h, "X-Pad: ", 7);
	memset(out + h + 7, 'p', MSG - fixed);
	memcpy(out + MSG - 4, "\r\n\r\n", 4);
}

static void send_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = use_sendto ? sendto(fd, buf, n, 0, NULL, 0) : write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("send");
		}
		buf += w;
		n -= (size_t)w;
	}
}

/* Returns 0 on EOF before the first byte, 1 when n bytes were read. */
static int recv_all(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = use_sendto ? recvfrom(fd, buf + got, n - got, 0, NULL, NULL)
				       : read(fd, buf + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("recv");
		}
		if (r == 0) {
			if (got == 0)
				return 0;
			fprintf(stderr, "short message\n");
			exit(1);
		}
		got += (size_t)r;
	}
	return 1;
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static double clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static double cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

/* Serves `runs` connections; after each, reports on `report` the CPU time it
 * spent on the timed round trips (those after the first `warmup`). */
static void server(int lfd, int runs, long warmup, int report)
{
	char req[MSG], resp[MSG];
	fill_msg(resp, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
	for (int i = 0; i < runs; i++) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			die("accept");
		nodelay(c);
		long served = 0;
		double t0 = cpu_ns();
		while (recv_all(c, req, MSG)) {
			send_all(c, resp, MSG);
			if (++served == warmup)
				t0 = cpu_ns();
		}
		double spent = cpu_ns() - t0;
		close(c);
		if (write(report, &spent, sizeof(spent)) != sizeof(spent))
			die("report");
	}
	_exit(0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = 20000, warmup = 1000;
	int runs = 5, gate = 0, opt;
	const char *mode = "write";
	while ((opt = getopt(argc, argv, "m:n:r:w:g")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'n': n = atol(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'w': warmup = atol(optarg); break;
		case 'g': gate = 1; break;
		default:
			fprintf(stderr, "usage: %s [-m write|sendto] [-n N] [-r RUNS] [-w WARMUP] [-g]\n", argv[0]);
			return 2;
		}
	}
	if (strcmp(mode, "sendto") == 0)
		use_sendto = 1;
	else if (strcmp(mode, "write") != 0) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	if (n <= 0 || runs <= 0 || runs > 1000) {
		fprintf(stderr, "bad -n/-r\n");
		return 2;
	}

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl))
		die("listen");

	/* Block SIGUSR1 before forking so the gate cannot be missed. */
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	struct sigaction act = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &act, NULL);
	sigprocmask(SIG_BLOCK, &usr1, &old);

	int pfd[2];
	if (pipe(pfd))
		die("pipe");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(pfd[0]);
		server(lfd, runs, warmup, pfd[1]);
	}
	close(pfd[1]);
	close(lfd);

	if (gate) {
		fprintf(stderr, "loadgen: pids %d %d; waiting for SIGUSR1\n", getpid(), child);
		while (!go)
			sigsuspend(&old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);

	char req[MSG], resp[MSG];
	fill_msg(req, "GET /hookcost HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	double *res = calloc((size_t)runs, sizeof(double));
	double *cpu = calloc((size_t)runs, sizeof(double));
	for (int r = 0; r < runs; r++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			die("connect");
		nodelay(fd);
		for (long i = 0; i < warmup; i++) {
			send_all(fd, req, MSG);
			if (!recv_all(fd, resp, MSG))
				die("eof");
		}
		double c0 = cpu_ns(), t0 = now_ns();
		for (long i = 0; i < n; i++) {
			send_all(fd, req, MSG);
			if (!recv_all(fd, resp, MSG))
				die("eof");
		}
		res[r] = (now_ns() - t0) / (double)n;
		cpu[r] = cpu_ns() - c0;
		close(fd);
		double srv;
		if (read(pfd[0], &srv, sizeof(srv)) != sizeof(srv))
			die("server report");
		cpu[r] = (cpu[r] + srv) / (double)n;
	}
	int st;
	waitpid(child, &st, 0);

	double *sorted = calloc((size_t)runs, sizeof(double));
	memcpy(sorted, res, sizeof(double) * runs);
	qsort(sorted, runs, sizeof(double), cmp_double);
	double med = runs % 2 ? sorted[runs / 2] : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
	printf("RESULT mode=%s n=%ld runs=%d median_ns=%.1f min_ns=%.1f max_ns=%.1f all=", mode, n,
	       runs, med, sorted[0], sorted[runs - 1]);
	for (int r = 0; r < runs; r++)
		printf("%s%.1f", r ? "," : "", res[r]);
	memcpy(sorted, cpu, sizeof(double) * runs);
	qsort(sorted, runs, sizeof(double), cmp_double);
	med = runs % 2 ? sorted[runs / 2] : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
	printf(" cpu_median_ns=%.1f cpu_all=", med);
	for (int r = 0; r < runs; r++)
		printf("%s%.1f", r ? "," : "", cpu[r]);
	printf("\n");
	return 0;
}
