/* Calls SSL_read (or SSL_write) N times on an SSL object that has no connection, for
 * bench/tls_uprobe_cost.sh: each call enters OpenSSL's internal read (write) function, the
 * one odigos-trace probes, and fails at once (no handshake function set), so the time per
 * call is OpenSSL's few instructions plus whatever the probes on that function cost.
 *
 *   tls_call_loop read|write N ROUNDS
 *
 * Waits for a line on stdin before starting (the caller attaches a tracer first), then runs
 * ROUNDS rounds of N calls and prints one line per round: "ns_per_call", measured with the
 * thread's CPU clock (CLOCK_THREAD_CPUTIME_ID: user and kernel time of this thread, which
 * includes the uprobe handling and BPF programs run on its behalf, and not the time other
 * processes on a busy machine take from it). */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "read") && strcmp(argv[1], "write"))) {
		fprintf(stderr, "usage: %s read|write N ROUNDS\n", argv[0]);
		return 2;
	}
	const int wr = argv[1][0] == 'w';
	const long n = atol(argv[2]), rounds = atol(argv[3]);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl) {
		fprintf(stderr, "SSL_new failed\n");
		return 1;
	}
	char buf[64] = {0}, line[16];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (long r = 0; r < rounds; r++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			if (wr)
				SSL_write(ssl, buf, sizeof(buf));
			else
				SSL_read(ssl, buf, sizeof(buf));
			if ((i & 255) == 255)
				ERR_clear_error(); /* each failed call queues an error */
		}
		printf("%.1f\n", (now_ns() - t0) / n);
		fflush(stdout);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return 0;
}
