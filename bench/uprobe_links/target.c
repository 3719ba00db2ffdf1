// bench/uprobe_links: calls probed() N times once a byte arrives on stdin and prints the
// thread's CPU time per call. probed() starts with `push %rbx`, an instruction the kernel
// emulates (no single-step), like the OpenSSL and Go points odigos-trace probes.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) long probed(long x) {
  __asm__ volatile("push %%rbx; pop %%rbx" ::: "memory");
  return x * 3 + 1;
}

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 200000;
  char c;
  if (read(0, &c, 1) != 1) return 1;
  long sum = 0;
  struct timespec a, b;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
  for (long i = 0; i < n; i++) sum += probed(i);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
  printf("%.0f %ld\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, sum);
  return 0;
}
