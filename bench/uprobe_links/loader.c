// bench/uprobe_links: starts ./target, attaches one kind of uprobe link to its probed()
// for that process only, lets it run, and checks the program ran once per call.
//   loader MODE N OFFSET      MODE: none | perf-entry | multi-entry | perf-pair | session
// perf-*: libbpf's perf-event uprobes (what odigos-trace attaches); multi-*/session: a
// BPF_LINK_CREATE uprobe_multi link (Linux >= 6.6; session >= 6.13), made with the raw
// syscall because Debian 12's libbpf 1.1 predates it. Prints "MODE NS_PER_CALL".
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "links.skel.h"

enum { kUprobeMulti = 48, kUprobeSession = 57 }; /* enum bpf_attach_type, Linux 6.18 */

/* union bpf_attr's link_create with its uprobe_multi member (include/uapi/linux/bpf.h). */
struct link_create_uprobe_multi {
  __u32 prog_fd, target_fd, attach_type, flags;
  __aligned_u64 path, offsets, ref_ctr_offsets, cookies;
  __u32 cnt, multi_flags, pid, pad;
};

static int uprobe_multi_link(int prog_fd, int type, const char* path, __u64 offset, int pid) {
  union { struct link_create_uprobe_multi lc; char attr[160]; } a;
  memset(&a, 0, sizeof a);
  a.lc.prog_fd = prog_fd;
  a.lc.attach_type = type;
  a.lc.path = (unsigned long)path;
  a.lc.offsets = (unsigned long)&offset;
  a.lc.cnt = 1;
  a.lc.pid = pid;
  return syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof a);
}

int main(int argc, char** argv) {
  if (argc != 4) { fprintf(stderr, "usage: loader MODE N OFFSET\n"); return 2; }
  const char* mode = argv[1];
  const long n = atol(argv[2]);
  const unsigned long off = strtoul(argv[3], NULL, 16);
  char path[4096];
  if (!realpath("./target", path)) { perror("target"); return 1; }
  int go[2], out[2];
  if (pipe(go) || pipe(out)) return 1;
  const int pid = fork();
  if (pid == 0) {
    dup2(go[0], 0);
    dup2(out[1], 1);
    close(go[1]);
    close(out[0]);
    execl(path, "target", argv[2], (char*)NULL);
    _exit(127);
  }
  close(go[0]);
  close(out[1]);
  const int session = !strcmp(mode, "session"), multi = !strcmp(mode, "multi-entry");
  struct links_bpf* s = links_bpf__open();
  if (!s) return 1;
  bpf_program__set_autoload(s->progs.on_session, session);
  if (session) bpf_program__set_expected_attach_type(s->progs.on_session, kUprobeSession);
  if (multi) bpf_program__set_expected_attach_type(s->progs.on_entry, kUprobeMulti);
  if (links_bpf__load(s)) { fprintf(stderr, "%s: load failed\n", mode); return 1; }
  int ok = 1;
  if (!strcmp(mode, "perf-entry") || !strcmp(mode, "perf-pair")) {
    LIBBPF_OPTS(bpf_uprobe_opts, entry);
    ok = bpf_program__attach_uprobe_opts(s->progs.on_entry, pid, path, off, &entry) != NULL;
    if (ok && !strcmp(mode, "perf-pair")) {
      LIBBPF_OPTS(bpf_uprobe_opts, ret, .retprobe = true);
      ok = bpf_program__attach_uprobe_opts(s->progs.on_return, pid, path, off, &ret) != NULL;
    }
  } else if (multi) {
    ok = uprobe_multi_link(bpf_program__fd(s->progs.on_entry), kUprobeMulti, path, off, pid) >= 0;
  } else if (session) {
    ok = uprobe_multi_link(bpf_program__fd(s->progs.on_session), kUprobeSession, path, off, pid) >= 0;
  } else if (strcmp(mode, "none")) {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  if (!ok) { fprintf(stderr, "%s: attach failed: %s\n", mode, strerror(errno)); return 1; }
  if (write(go[1], "x", 1) != 1) return 1;
  char line[128] = {0};
  FILE* f = fdopen(out[0], "r");
  if (!f || !fgets(line, sizeof line, f)) { fprintf(stderr, "%s: no output from target\n", mode); return 1; }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status)) { fprintf(stderr, "%s: target failed (%x)\n", mode, status); return 1; }
  const unsigned long long want_e = strcmp(mode, "none") ? n : 0;
  const unsigned long long want_r = (!strcmp(mode, "perf-pair") || session) ? n : 0;
  if (s->bss->entries != want_e || s->bss->returns != want_r) {
    fprintf(stderr, "%s: program ran %llu/%llu times, expected %llu/%llu\n", mode,
            s->bss->entries, s->bss->returns, want_e, want_r);
    return 1;
  }
  printf("%s %ld\n", mode, atol(line));
  links_bpf__destroy(s);
  return 0;
}
