// Running a command from a unit test (independent oracles such as objdump, go tool nm, and
// builds of fixtures made at test time).
#pragma once

#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace odigos::test {

// Runs `cmd` with /bin/sh; returns its standard output; *status: its exit code (-1 when it
// did not exit normally).
inline std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int st = pclose(f);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

} // namespace odigos::test
