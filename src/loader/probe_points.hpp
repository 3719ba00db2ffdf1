// Cheap uprobe points (capstone). A uprobe costs ~1 us when the x86-64 kernel emulates
// the probed instruction (push reg, call rel32, jmp rel, jcc rel, the standard nops) and
// ~14 us when it must single-step it out of line (sub, lea, mov, cmp, endbr64, ...).
// OpenSSL 3's SSL_read/SSL_write wrappers start with `sub $N,%rsp`; the internal
// functions they call (ssl_read_internal / ssl_write_internal: same arguments as
// SSL_read_ex / SSL_write_ex) start with a push, so the probes go there. GnuTLS: see
// GnutlsProbes below.
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

// Where a uprobe entry program finds a probed TLS function's arguments: 1-based
// positions, as PT_REGS_PARMn reads them.
struct TlsCallArgs {
  int session = 0;       // the connection object (gnutls_session_t)
  int buf = 0;           // the plaintext buffer
  int type = 0;          // the TLS record content type; 0 when the function takes none
  int app_data_type = 0; // the value of that argument for application data (23)
  bool operator==(const TlsCallArgs&) const = default;
};

// GnuTLS (libgnutls.so.30). The exported functions are no place for cheap probes (Debian
// 12, 3.7.9): gnutls_record_recv starts with `sub $0x8,%rsp`, gnutls_record_recv_seq
// with a mov, gnutls_record_send with `xor %r8d,%r8d` before its tail jump to
// gnutls_record_send2@plt. The probes go on the record layer's internals:
//
//   recv: _gnutls_recv_int(session, type, data, data_size, seq, ms)             push %r15
//         gnutls_record_recv and gnutls_record_recv_seq both tail-jump to it with
//         type = 23, the caller's session and buffer, once per call.
//         args: session = 1, type = 2, buf = 3.
//   send: _gnutls_send_tlen_int(session, type, htype, epoch_rel, data, data_size,
//                               min_pad, mflags)                                push %r15
//         gnutls_record_send -> gnutls_record_send2 calls it with type = 23 once per
//         record it sends, as does gnutls_record_send_range.
//         args: session = 1, type = 2, buf = 5.
//
// What the BPF side must do with them:
//  - count = the return value (ssize_t) when > 0: the plaintext bytes moved, the first
//    `count` bytes of buf. There is no count pointer. (<= 0: EOF or an error such as
//    GNUTLS_E_AGAIN, which a TLS 1.3 post-handshake message also returns.)
//  - Only calls whose type argument is 23 (application data) carry plaintext. Both
//    functions also move the other records: ChangeCipherSpec (20; TLS 1.2 receives it
//    through _gnutls_recv_int during the handshake), alerts (21: gnutls_bye,
//    gnutls_alert_send), handshake messages (22), heartbeats (24).
//  - buf is the application's buffer, or GnuTLS's copy of it for sends it deferred:
//    corked data (gnutls_record_cork) goes out, once, from gnutls_record_uncork, and
//    data sent while answering a TLS 1.3 KeyUpdate request goes out after the
//    KeyUpdate. Corked sends do not reach _gnutls_send_tlen_int at all (a probe on
//    gnutls_record_send2 would count corked data twice). After GNUTLS_E_AGAIN the
//    application may resume a send with (NULL, 0): count is then the earlier call's
//    and buf is NULL.
//  - Calls can nest: the first gnutls_record_recv of a TLS 1.2 false-start client or
//    of a TLS 1.3 early-start server (GNUTLS_ENABLE_FALSE_START / _EARLY_START) finishes
//    the handshake inside _gnutls_recv_int(23), through _gnutls_recv_int(20) and
//    _gnutls_send_tlen_int(20, 22). A return must therefore be matched with its own
//    entry, not just the thread's last one: skip type != 23 at entry and key the saved
//    call by thread and stack pointer (PT_REGS_SP at the return = PT_REGS_SP at the
//    entry + 8).
//  - Sessions with kernel TLS (gnutls_transport_is_ktls_enabled) bypass both functions:
//    the kernel encrypts and decrypts, and the socket calls carry the plaintext.
//  - Not covered: gnutls_record_recv_packet and gnutls_record_recv_early_data (no copy
//    into a caller's buffer).
struct GnutlsProbes {
  UprobePoint recv;      // _gnutls_recv_int
  UprobePoint send;      // _gnutls_send_tlen_int
  TlsCallArgs recv_args; // {session 1, buf 3, type 2, 23}
  TlsCallArgs send_args; // {session 1, buf 5, type 2, 23}
  bool count_from_return = true;
};

// The two functions above in `path` (libgnutls.so.30, or an executable linked with
// libgnutls.a), found by following the exported wrappers' direct calls and jumps
// (through the PLT or GOT to gnutls_record_send2 by its relocation) and tracking
// their argument registers: the function gnutls_record_recv and
// gnutls_record_recv_seq both pass (session, 23, buffer) to; the one
// gnutls_record_send2 (or gnutls_record_send itself) passes (session, 23, ..., buffer)
// to and, when the file has it, gnutls_record_send_range calls too (which tells it from
// the kernel TLS path). The argument positions come from those call sites. nullopt and
// *error when there is no GnuTLS ("no GnuTLS in '...'"), the layout is unknown
// ("unknown GnuTLS layout in '...': ..."), or a probe there would be single-stepped.
std::optional<GnutlsProbes> find_gnutls_probes(const std::string& path, std::string* error);

} // namespace odigos
