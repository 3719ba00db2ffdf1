// bench/hook_floor: loads floor.bpf.o, attaches every program, says "attached" on stderr and
// waits for SIGINT/SIGTERM; then detaches (closing the links) and exits.
//   floor_load FLOOR.bpf.o
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char** argv) {
  if (argc != 2) { fprintf(stderr, "usage: floor_load OBJ\n"); return 2; }
  struct bpf_object* obj = bpf_object__open_file(argv[1], NULL);
  if (!obj || bpf_object__load(obj)) { fprintf(stderr, "floor_load: cannot load %s\n", argv[1]); return 1; }
  struct bpf_program* prog;
  int n = 0;
  bpf_object__for_each_program(prog, obj) {
    if (!bpf_program__attach(prog)) {
      fprintf(stderr, "floor_load: cannot attach %s\n", bpf_program__name(prog));
      return 1;
    }
    n++;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  fprintf(stderr, "floor_load: attached %d programs\n", n);
  while (!stop) pause();
  bpf_object__close(obj);
  return 0;
}
