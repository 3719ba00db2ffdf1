// Cheap uprobe points (capstone). A uprobe costs ~1 us when the x86-64 kernel emulates
// the probed instruction (push reg, call rel32, jmp rel, jcc rel, the standard nops) and
// ~14 us when it must single-step it out of line (sub, lea, mov, cmp, endbr64, ...).
// OpenSSL 3's SSL_read/SSL_write wrappers start with `sub $N,%rsp`; the internal
// functions they call (ssl_read_internal / ssl_write_internal: same arguments as
// SSL_read_ex / SSL_write_ex) start with a push, so the probes go there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace odigos {

// Is the first instruction of `code` one the kernel's x86 uprobe code emulates
// instead of single-stepping? Conservative: push reg (50+r, 41 50+r), call rel32 (e8),
// jmp rel8/rel32 (eb, e9), jcc rel8/rel32 (70-7f, 0f 80-8f), all without prefixes,
// and the kernel's standard 1..8-byte nops (90, 66 90, 0f 1f 00, ... nopw, nopl).
// Anything else, or too few bytes for the instruction, is false.
bool is_emulated_entry(const uint8_t* code, size_t len);

// The first instruction in AT&T syntax ("push %r13", "sub $0x18, %rsp"), for
// messages; "(undecodable)" when capstone cannot decode it.
std::string describe_first_instruction(const uint8_t* code, size_t len, uint64_t vaddr = 0);

struct UprobePoint {
  std::string symbol;       // the ELF name of the function at vaddr; "" when the file names none
  uint64_t vaddr = 0;
  uint64_t file_offset = 0; // what a uprobe takes
  std::string how;          // e.g. "SSL_read -> call target 0x35290 (push %r13)"
};

struct OpensslProbes {
  UprobePoint read;  // ssl_read_internal(SSL*, void* buf, size_t num, size_t* readbytes)
  UprobePoint write; // ssl_write_internal(SSL*, const void* buf, size_t num, size_t* written)
};

// The entries of ssl_read_internal / ssl_write_internal in `path` (libssl.so.3, or an
// executable linked with libssl.a): by their symbols when the file has them and they
// start with an emulated instruction, else as the first direct call of SSL_read /
// SSL_write into this file's code (not a PLT stub), which SSL_read_ex / SSL_write_ex,
// when present, must call too. nullopt and *error when there is no OpenSSL ("no OpenSSL
// in '...'"), the layout is unknown, or a probe there would be single-stepped.
std::optional<OpensslProbes> find_openssl_probes(const std::string& path, std::string* error);

} // namespace odigos
