// Helpers of the unit tests that look at real files: running a command (independent oracles
// such as objdump, go tool nm, and builds of fixtures made at test time) and reading bytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <vector>

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

// Up to `len` bytes of the file at `offset` (fewer at its end).
inline std::vector<uint8_t> file_bytes(const std::string& path, uint64_t offset, size_t len) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(std::streamoff(offset));
  std::vector<uint8_t> b(len);
  in.read(reinterpret_cast<char*>(b.data()), std::streamsize(len));
  b.resize(size_t(in.gcount()));
  return b;
}

} // namespace odigos::test
