// Go executables (x86-64 ELF): the toolchain version and main module from the build info,
// the function table of the pclntab (present in stripped binaries too: `-ldflags=-s -w`
// and strip(1) remove .symtab, not the table the runtime itself needs for tracebacks),
// and cheap uprobe points for crypto/tls plaintext.
//
// Never put a uretprobe on Go code: the kernel overwrites the return address on the
// goroutine stack, and the Go runtime moves stacks and unwinds them itself (it crashes).
// Every point found here is an instruction the kernel emulates (~1 us a hit, not ~14 us
// for a single-stepped one), checked with is_emulated_entry().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loader/elf_symbols.hpp"

namespace odigos {

struct GoFunc {
  uint64_t entry = 0; // vaddr of the first instruction
  uint64_t end = 0;   // vaddr of the next function (the end, with the padding after it)
};

class GoBinary {
public:
  // Reads the build info (.go.buildinfo, else the start of the first writable segment)
  // and locates the pclntab (.gopclntab / .data.rel.ro.gopclntab, else by its header in
  // the file's segments, as in externally linked or section-less files). Errors say
  // which: "'/x' is not a Go executable (no Go build info)", "... no pclntab found",
  // "... pclntab of Go before 1.16 (magic 0xfffffffb) is not supported".
  static std::optional<GoBinary> open(const std::string& path, std::string* error);
  // Only the build info: the Go minor version of the executable (19 for go1.19.8), 0 when
  // it is not a Go executable. No pclntab read: cheap enough to ask once per process.
  static int minor_version_of(const std::string& path);
  GoBinary(GoBinary&&) noexcept;
  GoBinary& operator=(GoBinary&&) noexcept;
  ~GoBinary();

  const ElfFile& elf() const;
  const std::string& version() const;     // runtime.buildVersion: "go1.19.8", "devel go1.23-abc..."
  const std::string& module_path() const; // the main module's path; "" when not recorded
  int minor_version() const;              // 19 for go1.19.8; 0 when the version has no "go1.N"
  // Go >= 1.17 on amd64: ABIInternal passes arguments and results in RAX, RBX, RCX, RDI,
  // RSI, R8, R9, R10, R11, and R14 holds the current goroutine (g) in Go code.
  bool register_abi() const;
  uint32_t pclntab_magic() const; // 0xfffffffa (1.16, 1.17), 0xfffffff0 (1.18, 1.19), 0xfffffff1 (1.20+)

  size_t function_count() const;
  std::optional<GoFunc> function(const std::string& name) const;
  // The function holding pc ("" when none), and the source file of the innermost
  // (possibly inlined) function at pc, from the pcfile table ("" when unknown).
  std::string function_at(uint64_t pc) const;
  std::string source_file_at(uint64_t pc) const;

private:
  struct Impl;
  explicit GoBinary(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct GoProbePoint {
  uint64_t vaddr = 0;
  uint64_t file_offset = 0; // what a uprobe takes
  std::string description;  // "crypto/tls.(*Conn).Read+0x4: jbe 0x5a64cc after cmpq 0x10(%r14), %rsp (stack check)"
  // Set on a stack-check jbe: a hit with CF or ZF set in the saved flags is the branch
  // to morestack (stack growth, or a preemption request), after which the function runs
  // again from its entry and the point is hit a second time with the same arguments.
  // BPF: if (regs->flags & (X86_EFLAGS_CF | X86_EFLAGS_ZF)) return 0;
  bool skip_if_cf_or_zf = false;
  // Read's copy points only: the register holding n, the byte count copied into the
  // caller's buffer ("rcx"), and its byte offset in struct pt_regs (= user_regs_struct).
  std::string n_register;
  int n_pt_regs_offset = -1;
};

// Goroutine creation, for trace linking. runtime.newproc runs a closure on the system
// stack (runtime.newproc.func1): `newg := newproc1(fn, gp, pc, ...); pp :=
// getg().m.p.ptr(); runqput(pp, newg, true)`. The point is its call to runtime.runqput
// (a call: emulated), where RBX = newg and R14 = g0 of the M, whose m.curg is the
// goroutine that executed `go`. The offsets are read from the closure's own code: the
// load of g.m (`mov 0x30(%r14), %rA`) and of m.p (`mov 0xd0(%rA), %rB`); m.curg is the
// field two words before m.p (`curg *g; caughtsig guintptr; p puintptr` in every Go
// since 1.5). The BPF side checks the result (curg.m must be the same m).
struct GoSpawnProbe {
  GoProbePoint point;
  int g_m_offset = 0;    // offset of g.m
  int m_curg_offset = 0; // offset of m.curg
  // Goroutine exit: runtime.goexit0(gp), the jbe after its stack check (RAX = gp, the
  // goroutine that ended). A goroutine is trusted to have worked for the request that
  // started it only if it ended before that request did (a worker goroutine a request
  // happens to start serves later requests too).
  GoProbePoint exit_point;
};

struct GoTlsProbes {
  std::string go_version; // "go1.19.8"
  bool register_abi = false; // always true in a result: Go < 1.17 is refused
  // func (c *Conn) Write(b []byte) (int, error): RAX = c, RBX = &b[0], RCX = len(b),
  // R14 = g. The plaintext is b[:len(b)], readable at this point.
  GoProbePoint write_entry;
  // func (c *Conn) Read(b []byte) (int, error): the same registers; b is not filled yet.
  GoProbePoint read_entry;
  // Points in (*Conn).Read after the plaintext has been copied into b (from the record
  // buffer c.input), where n_register holds n, the byte count Read returns (0: nothing
  // copied). R14 is still g, but the thread may differ (goroutines migrate); b is in no
  // register: record it at read_entry keyed by (tgid, g) and take it from there.
  // Each Read call passes at most one of them, once. Empty when the layout is not
  // recognised (read_copied_why says why); then only the entry points are usable.
  std::vector<GoProbePoint> read_copied;
  std::string read_copied_why;
  // net/http's HTTP/1 client, for trace linking (not TLS): (*persistConn).roundTrip(req)
  // runs on the goroutine making the request (RAX = pc, RBX = req *transportRequest,
  // whose first word is the *Request); (*Request).write runs on the transport's
  // writeLoop goroutine, which writes the request (RAX = the *Request). Together they say
  // whose request a writeLoop writes. Absent when the binary has no net/http client or a
  // point is not emulated.
  std::optional<GoProbePoint> http_round_trip;
  std::optional<GoProbePoint> http_request_write;
  // Goroutine creation (see GoSpawnProbe); absent, with spawn_why, when the runtime's
  // code has another shape, the program uses coroutines (runtime.newcoro creates
  // goroutines without runtime.newproc), or it has net/http's client without the two
  // points above (its transport's goroutines would be taken for the request that
  // started them).
  std::optional<GoSpawnProbe> spawn;
  std::string spawn_why;
};


// The uprobe points for crypto/tls.(*Conn).Write and (*Conn).Read in the Go executable
// `path`. nullopt and *error when it is not a Go executable, its Go is older than 1.17
// (stack-based ABI), it does not contain crypto/tls, or an entry point is not emulated.
std::optional<GoTlsProbes> find_go_tls_probes(const std::string& path, std::string* error);

} // namespace odigos
