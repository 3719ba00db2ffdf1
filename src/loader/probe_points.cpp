#include "loader/probe_points.hpp"

#include <capstone/capstone.h>
#include <cstring>
#include <elf.h>
#include <fmt/format.h>
#include <span>

#include "loader/elf_symbols.hpp"

namespace odigos {

namespace {

constexpr size_t kMaxInsnLen = 15;
constexpr int kMaxWrapperInsns = 64;

// One capstone x86-64 decoder (AT&T syntax, details on) and one instruction buffer.
class Disasm {
public:
  Disasm() {
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle_) != CS_ERR_OK) {
      handle_ = 0;
      return;
    }
    cs_option(handle_, CS_OPT_DETAIL, CS_OPT_ON);
    cs_option(handle_, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
    insn_ = cs_malloc(handle_);
  }
  Disasm(const Disasm&) = delete;
  Disasm& operator=(const Disasm&) = delete;
  ~Disasm() {
    if (insn_) cs_free(insn_, 1);
    if (handle_) cs_close(&handle_);
  }
  bool ok() const { return handle_ && insn_; }
  // The instruction at *code (then advanced past it), or nullptr. Valid until the next call.
  const cs_insn* next(const uint8_t** code, size_t* len, uint64_t* addr) {
    if (!ok() || !cs_disasm_iter(handle_, code, len, addr, insn_)) return nullptr;
    return insn_;
  }
  const cs_insn* first(std::span<const uint8_t> code, uint64_t addr) {
    const uint8_t* p = code.data();
    size_t n = code.size();
    return next(&p, &n, &addr);
  }

private:
  csh handle_ = 0;
  cs_insn* insn_ = nullptr;
};

// The kernel's x86-64 nops (arch/x86/include/asm/nops.h), indexed by length: the
// forms every kernel with uprobe nop emulation recognises.
constexpr uint8_t kNops[9][8] = {
    {},
    {0x90},
    {0x66, 0x90},
    {0x0f, 0x1f, 0x00},
    {0x0f, 0x1f, 0x40, 0x00},
    {0x0f, 0x1f, 0x44, 0x00, 0x00},
    {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
    {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
    {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
};

bool in_group(const cs_insn* in, uint8_t group) {
  const cs_detail* d = in->detail;
  for (uint8_t i = 0; d && i < d->groups_count; i++)
    if (d->groups[i] == group) return true;
  return false;
}

// Byte forms first (an opcode in byte 0 means no prefix, which the kernel's push
// emulation requires and its branch emulation partly does), then capstone's reading
// of them as a cross-check.
bool emulated(const cs_insn* in) {
  const uint8_t* b = in->bytes;
  const unsigned n = in->size;
  if (n <= 8 && std::memcmp(b, kNops[n], n) == 0) return in->id == X86_INS_NOP;
  if ((n == 1 && b[0] >= 0x50 && b[0] <= 0x57) || (n == 2 && b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57))
    return in->id == X86_INS_PUSH;
  if (n == 5 && b[0] == 0xe8) return in->id == X86_INS_CALL;
  if ((n == 2 && b[0] == 0xeb) || (n == 5 && b[0] == 0xe9)) return in->id == X86_INS_JMP;
  if ((n == 2 && b[0] >= 0x70 && b[0] <= 0x7f) || (n == 6 && b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f))
    return in->id != X86_INS_JMP && in_group(in, X86_GRP_JUMP);
  return false;
}

std::string describe(const cs_insn* in) {
  if (!in) return "(undecodable)";
  std::string s = in->mnemonic;
  // Always 64-bit in 64-bit mode: print them as objdump does ("push %r13", not "pushq").
  if (s == "pushq" || s == "popq" || s == "callq" || s == "jmpq" || s == "retq") s.pop_back();
  if (in->op_str[0]) s += std::string(" ") + in->op_str;
  return s;
}

bool is_direct_call(const cs_insn* in) {
  return in->id == X86_INS_CALL && in->size == 5 && in->bytes[0] == 0xe8 && in->detail &&
         in->detail->x86.op_count == 1 && in->detail->x86.operands[0].type == X86_OP_IMM;
}

bool is_indirect_jmp(const cs_insn* in) {
  return in->id == X86_INS_JMP && in->detail && in->detail->x86.op_count == 1 &&
         in->detail->x86.operands[0].type != X86_OP_IMM;
}

bool is_function(const std::optional<ElfSymbol>& s) {
  return s && (s->type == STT_FUNC || s->type == STT_NOTYPE);
}

// "" when `target` is code of this file that is not a PLT stub, else why not.
std::string why_not_local_code(const ElfFile& elf, Disasm& d, uint64_t target) {
  const ElfSegment* seg = elf.segment_at(target);
  if (!seg || !seg->executable) return "outside this file's code";
  std::string sec = elf.section_at(target);
  if (sec.starts_with(".plt") || sec == ".iplt") return "a PLT stub (" + sec + ")";
  auto code = elf.bytes_at(target, 2 * kMaxInsnLen);
  const cs_insn* in = d.first(code, target);
  if (!in) return "undecodable";
  if (is_indirect_jmp(in)) return "a PLT stub (jmp " + std::string(in->op_str) + ")";
  if (in->id == X86_INS_ENDBR64) { // .plt.sec stubs: endbr64; bnd jmp *GOT(%rip)
    const cs_insn* second = d.first(code.subspan(in->size), target + in->size);
    if (second && is_indirect_jmp(second)) return "a PLT stub (endbr64; jmp " + std::string(second->op_str) + ")";
  }
  return {};
}

// The target of the first direct call of `fn` (decoded from its start up to its first
// ret, its size, or kMaxWrapperInsns instructions) into this file's code, not a PLT stub.
std::optional<uint64_t> first_local_call(const ElfFile& elf, Disasm& d, const ElfSymbol& fn) {
  size_t limit = fn.size ? size_t(fn.size) : kMaxWrapperInsns * kMaxInsnLen;
  auto code = elf.bytes_at(fn.vaddr, limit);
  const uint8_t* p = code.data();
  size_t n = code.size();
  uint64_t addr = fn.vaddr;
  for (int i = 0; i < kMaxWrapperInsns; i++) {
    const cs_insn* in = d.next(&p, &n, &addr);
    if (!in || in->id == X86_INS_RET || in->id == X86_INS_RETF) break;
    if (!is_direct_call(in)) continue;
    auto target = uint64_t(in->detail->x86.operands[0].imm);
    // why_not_local_code() reuses the decoder's buffer: `in` is dead after this.
    if (why_not_local_code(elf, d, target).empty()) return target;
  }
  return std::nullopt;
}

struct Names {
  const char* wrapper;  // SSL_read
  const char* ex;       // SSL_read_ex
  const char* internal; // ssl_read_internal
};

bool find_one(const ElfFile& elf, Disasm& d, const Names& n, UprobePoint* out, std::string* error) {
  const std::string& path = elf.path();
  // 1. The internal function by name (unstripped static executables keep it in .symtab).
  if (auto s = elf.symbol(n.internal); is_function(s) && !s->ambiguous) {
    const ElfSegment* seg = elf.segment_at(s->vaddr);
    auto code = elf.bytes_at(s->vaddr, kMaxInsnLen);
    if (seg && seg->executable && is_emulated_entry(code.data(), code.size())) {
      out->symbol = n.internal;
      out->vaddr = s->vaddr;
      out->file_offset = *elf.file_offset(s->vaddr);
      out->how = fmt::format("{} symbol ({})", n.internal, describe(d.first(code, s->vaddr)));
      return true;
    }
  }
  // 2. What the wrapper calls, checked against the _ex wrapper.
  auto wrapper = elf.symbol(n.wrapper);
  auto target = first_local_call(elf, d, *wrapper);
  if (!target) {
    *error = fmt::format("unknown OpenSSL layout in '{}': {} ({:#x}) makes no direct call into the "
                         "library's own code before it returns",
                         path, n.wrapper, wrapper->vaddr);
    return false;
  }
  std::string how = fmt::format("{} -> call target {:#x}", n.wrapper, *target);
  if (auto ex = elf.symbol(n.ex); is_function(ex)) {
    auto ex_target = first_local_call(elf, d, *ex);
    if (ex_target != target) {
      *error = fmt::format("unknown OpenSSL layout in '{}': {} calls {:#x} first but {} {}", path, n.wrapper,
                           *target, n.ex,
                           ex_target ? fmt::format("calls {:#x}", *ex_target) : std::string("makes no such call"));
      return false;
    }
    how += fmt::format(", which {} calls too", n.ex);
  }
  auto code = elf.bytes_at(*target, kMaxInsnLen);
  std::string first = describe(d.first(code, *target));
  if (!is_emulated_entry(code.data(), code.size())) {
    *error = fmt::format("'{}': the function {} calls ({:#x}) starts with '{}': a uprobe there would be "
                         "single-stepped, not emulated",
                         path, n.wrapper, *target, first);
    return false;
  }
  out->symbol = elf.symbol_at(*target);
  out->vaddr = *target;
  out->file_offset = *elf.file_offset(*target);
  out->how = how + " (" + first + ")";
  return true;
}

} // namespace

bool is_emulated_entry(const uint8_t* code, size_t len) {
  if (!code || len == 0) return false;
  Disasm d;
  const cs_insn* in = d.first({code, len}, 0);
  return in && emulated(in);
}

std::string describe_first_instruction(const uint8_t* code, size_t len, uint64_t vaddr) {
  if (!code || len == 0) return describe(nullptr);
  Disasm d;
  return describe(d.first({code, len}, vaddr));
}

std::optional<OpensslProbes> find_openssl_probes(const std::string& path, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  auto elf = ElfFile::open(path, error);
  if (!elf) return std::nullopt;
  for (const char* name : {"SSL_read", "SSL_write"}) {
    if (!is_function(elf->symbol(name))) {
      *error = fmt::format("no OpenSSL in '{}' (it defines no {} function)", path, name);
      return std::nullopt;
    }
  }
  Disasm d;
  if (!d.ok()) {
    *error = "capstone: cannot open an x86-64 disassembler";
    return std::nullopt;
  }
  OpensslProbes out;
  if (!find_one(*elf, d, {"SSL_read", "SSL_read_ex", "ssl_read_internal"}, &out.read, error) ||
      !find_one(*elf, d, {"SSL_write", "SSL_write_ex", "ssl_write_internal"}, &out.write, error))
    return std::nullopt;
  if (out.read.vaddr == out.write.vaddr) {
    *error = fmt::format("unknown OpenSSL layout in '{}': SSL_read and SSL_write lead to the same function "
                         "({:#x})",
                         path, out.read.vaddr);
    return std::nullopt;
  }
  return out;
}

} // namespace odigos
