#include "loader/probe_points.hpp"

#include <algorithm>
#include <array>
#include <capstone/capstone.h>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <map>
#include <set>
#include <span>
#include <unistd.h>
#include <unordered_map>
#include <vector>

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
  // Every instruction of `code` up to the first undecodable byte, with details; the
  // caller frees them with cs_free(*insns, count).
  size_t all(std::span<const uint8_t> code, uint64_t addr, cs_insn** insns) {
    *insns = nullptr;
    return ok() ? cs_disasm(handle_, code.data(), code.size(), addr, 0, insns) : 0;
  }
  // The registers `in` writes, explicitly or implicitly (capstone register ids).
  std::vector<uint16_t> writes(const cs_insn* in) {
    cs_regs read, written;
    uint8_t nread = 0, nwritten = 0;
    if (cs_regs_access(handle_, in, read, &nread, written, &nwritten) != CS_ERR_OK) return {};
    return {written, written + nwritten};
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

// ---- GnuTLS: the record layer's functions behind the exported wrappers ----

constexpr int64_t kAppData = 23; // GNUTLS_APPLICATION_DATA: the TLS content type

// What a general-purpose register holds at some point of the function analysed: the
// function's n-th argument (1-based), a constant, or something else. kUnset: no path
// analysed so far reaches that point.
struct Val {
  enum Kind : uint8_t { kUnset, kArg, kImm, kUnknown };
  Kind kind = kUnset;
  int64_t v = 0;
  bool operator==(const Val&) const = default;
  static Val arg(int n) { return {kArg, n}; }
  static Val imm(int64_t x) { return {kImm, x}; }
  static Val unknown() { return {kUnknown, 0}; }
};

// By hardware number: rax rcx rdx rbx rsp rbp rsi rdi r8 ... r15.
using Regs = std::array<Val, 16>;
constexpr int kArgRegs[6] = {7, 6, 2, 1, 8, 9};                  // rdi rsi rdx rcx r8 r9
constexpr int kCallerSaved[9] = {0, 1, 2, 6, 7, 8, 9, 10, 11}; // what a call clobbers

// Any width of a general-purpose register (capstone id) -> its number, or -1.
int gpr(unsigned reg) {
  static const std::unordered_map<unsigned, int> numbers = [] {
    const unsigned rows[16][4] = {
        {X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL},
        {X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL},
        {X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL},
        {X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL},
        {X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL},
        {X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL},
        {X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL},
        {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL},
        {X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B},
        {X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B},
        {X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B},
        {X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B},
        {X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B},
        {X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B},
        {X86_REG_R14, X86_REG_R14D, X86_REG_R14W, X86_REG_R14B},
        {X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B},
    };
    std::unordered_map<unsigned, int> m;
    for (int n = 0; n < 16; n++)
      for (unsigned r : rows[n]) m[r] = n;
    m[X86_REG_AH] = 0, m[X86_REG_CH] = 1, m[X86_REG_DH] = 2, m[X86_REG_BH] = 3;
    return m;
  }();
  auto it = numbers.find(reg);
  return it == numbers.end() ? -1 : it->second;
}

// The registers after `in`. Tracked exactly: mov between 64-bit registers, mov of a
// constant into a 32- or 64-bit register, xor of a register with itself; a call
// clobbers the caller-saved registers; any other write makes a register unknown.
void step(Disasm& d, const cs_insn* in, Regs& r) {
  if (in->id == X86_INS_CALL) {
    for (int n : kCallerSaved) r[n] = Val::unknown();
    return;
  }
  const cs_x86& x = in->detail->x86;
  if (x.op_count == 2 && x.operands[1].type == X86_OP_REG) { // AT&T order: source, destination
    const cs_x86_op& src = x.operands[0];
    const cs_x86_op& dst = x.operands[1];
    int to = gpr(dst.reg);
    if (to >= 0 && in->id == X86_INS_MOV) {
      if (src.type == X86_OP_REG && gpr(src.reg) >= 0 && src.size == dst.size && dst.size >= 4) {
        Val v = r[gpr(src.reg)];
        if (dst.size == 4) v = v.kind == Val::kImm ? Val::imm(int64_t(uint32_t(v.v))) : Val::unknown();
        r[to] = v;
        return;
      }
      if (src.type == X86_OP_IMM && dst.size >= 4) {
        r[to] = Val::imm(dst.size == 4 ? int64_t(uint32_t(src.imm)) : src.imm);
        return;
      }
    }
    if (to >= 0 && in->id == X86_INS_XOR && src.type == X86_OP_REG && src.reg == dst.reg && dst.size >= 4) {
      r[to] = Val::imm(0);
      return;
    }
  }
  for (uint16_t w : d.writes(in))
    if (int n = gpr(w); n >= 0) r[n] = Val::unknown();
}

// A call or jump out of the function analysed.
struct Site {
  uint64_t at = 0;
  uint64_t target = 0;               // a direct one's target
  std::optional<uint64_t> got_slot;  // `call/jmp *x(%rip)`: the slot it reads
  bool jump = false;                 // a (tail) jump, not a call
  Regs regs;                         // the registers there, over every path
};

// The GOT slot `[endbr64;] [bnd] jmp *x(%rip)` at `addr` (a PLT stub) jumps through.
std::optional<uint64_t> plt_slot(const ElfFile& elf, Disasm& d, uint64_t addr) {
  for (int i = 0; i < 2; i++) {
    auto code = elf.bytes_at(addr, kMaxInsnLen);
    const cs_insn* in = d.first(code, addr);
    if (!in) return std::nullopt;
    if (in->id == X86_INS_ENDBR64 && i == 0) {
      addr += in->size;
      continue;
    }
    const cs_x86& x = in->detail->x86;
    if (in->id == X86_INS_JMP && x.op_count == 1 && x.operands[0].type == X86_OP_MEM &&
        x.operands[0].mem.base == X86_REG_RIP && x.operands[0].mem.index == X86_REG_INVALID)
      return in->address + in->size + x.operands[0].mem.disp;
    return std::nullopt;
  }
  return std::nullopt;
}

// GOT slot -> the symbol its relocation (.rela.plt JUMP_SLOT, .rela.dyn GLOB_DAT) binds
// it to, read from the file on first use.
class GotSymbols {
public:
  explicit GotSymbols(std::string path) : path_(std::move(path)) {}
  std::string at(uint64_t slot) {
    load();
    auto it = names_.find(slot);
    return it == names_.end() ? std::string() : it->second;
  }

private:
  void load() {
    if (loaded_) return;
    loaded_ = true;
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    elf_version(EV_CURRENT);
    if (Elf* e = elf_begin(fd, ELF_C_READ, nullptr)) {
      for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(e, scn)) != nullptr;) {
        GElf_Shdr sh, symsh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || sh.sh_entsize == 0) continue;
        Elf_Scn* symscn = elf_getscn(e, sh.sh_link);
        if (!symscn || !gelf_getshdr(symscn, &symsh)) continue;
        Elf_Data* rels = elf_getdata(scn, nullptr);
        Elf_Data* syms = elf_getdata(symscn, nullptr);
        if (!rels || !syms) continue;
        for (size_t i = 0, n = sh.sh_size / sh.sh_entsize; i < n; i++) {
          GElf_Rela rel;
          GElf_Sym sym;
          if (!gelf_getrela(rels, int(i), &rel)) break;
          if (GELF_R_SYM(rel.r_info) == 0 || !gelf_getsym(syms, int(GELF_R_SYM(rel.r_info)), &sym)) continue;
          const char* name = elf_strptr(e, symsh.sh_link, sym.st_name);
          if (name && *name) names_.emplace(rel.r_offset, name);
        }
      }
      elf_end(e);
    }
    close(fd);
  }

  std::string path_;
  bool loaded_ = false;
  std::unordered_map<uint64_t, std::string> names_;
};

// The name of the imported function a site reaches through a GOT slot or a PLT stub, or "".
std::string imported(const ElfFile& elf, Disasm& d, GotSymbols& got, const Site& s) {
  if (s.got_slot) return got.at(*s.got_slot);
  if (!why_not_local_code(elf, d, s.target).starts_with("a PLT stub")) return {};
  auto slot = plt_slot(elf, d, s.target);
  return slot ? got.at(*slot) : std::string();
}

bool is_noreturn(const std::string& name) {
  return name == "__stack_chk_fail" || name == "__assert_fail" || name == "abort" || name == "exit" ||
         name == "_exit" || name == "__fortify_fail";
}

class Insns { // cs_disasm's array
public:
  Insns(Disasm& d, std::span<const uint8_t> code, uint64_t addr) { n_ = d.all(code, addr, &p_); }
  Insns(const Insns&) = delete;
  Insns& operator=(const Insns&) = delete;
  ~Insns() {
    if (p_) cs_free(p_, n_);
  }
  size_t size() const { return n_; }
  const cs_insn& operator[](size_t i) const { return p_[i]; }

private:
  cs_insn* p_ = nullptr;
  size_t n_ = 0;
};

// The targets of gcc's PIC jump table behind `jmp *%reg` (insns[i]):
//   lea T(%rip),%B; movslq (%B,%I,4),%reg; add %B,%reg; jmp *%reg
// while they are instructions of the function.
std::vector<uint64_t> jump_table(const ElfFile& elf, const Insns& ins, size_t i,
                                 const std::unordered_map<uint64_t, size_t>& index) {
  const cs_x86& j = ins[i].detail->x86;
  if (j.op_count != 1 || j.operands[0].type != X86_OP_REG) return {};
  const unsigned reg = j.operands[0].reg;
  unsigned base = X86_REG_INVALID;
  bool loaded = false;
  std::optional<uint64_t> table;
  for (size_t k = i; k-- > 0 && i - k <= 8 && !table;) {
    const cs_insn& in = ins[k];
    const cs_x86& x = in.detail->x86;
    if (x.op_count != 2 || x.operands[1].type != X86_OP_REG) continue;
    const cs_x86_op& src = x.operands[0];
    const unsigned dst = x.operands[1].reg;
    if (base == X86_REG_INVALID) {
      if (in.id == X86_INS_ADD && dst == reg && src.type == X86_OP_REG) base = src.reg;
    } else if (!loaded) {
      loaded = in.id == X86_INS_MOVSXD && dst == reg && src.type == X86_OP_MEM && src.mem.base == base &&
               src.mem.scale == 4 && src.mem.disp == 0;
    } else if (in.id == X86_INS_LEA && dst == base && src.type == X86_OP_MEM && src.mem.base == X86_REG_RIP &&
               src.mem.index == X86_REG_INVALID) {
      table = in.address + in.size + src.mem.disp;
    }
  }
  std::vector<uint64_t> targets;
  for (uint64_t e = 0; table && e < 512; e++) {
    auto b = elf.bytes_at(*table + 4 * e, 4);
    if (b.size() < 4) break;
    int32_t rel;
    std::memcpy(&rel, b.data(), 4);
    uint64_t t = *table + uint64_t(int64_t(rel));
    if (!index.count(t)) break;
    targets.push_back(t);
  }
  return targets;
}

// The calls and tail jumps of the function `fn` (decoded over its size) with the
// argument registers' values there over every path from its entry, where argument n
// holds Val::arg(n): forward data flow along its direct branches and jump tables.
std::vector<Site> call_sites(const ElfFile& elf, Disasm& d, GotSymbols& got, const ElfSymbol& fn) {
  size_t limit = fn.size ? size_t(fn.size) : kMaxWrapperInsns * kMaxInsnLen;
  Insns ins(d, elf.bytes_at(fn.vaddr, limit), fn.vaddr);
  std::unordered_map<uint64_t, size_t> index;
  for (size_t i = 0; i < ins.size(); i++) index[ins[i].address] = i;

  std::vector<Regs> in(ins.size()); // all kUnset: not reached
  std::vector<size_t> work;
  auto flow = [&](uint64_t addr, const Regs& r) {
    auto it = index.find(addr);
    if (it == index.end()) return; // leaves the function
    Regs& cur = in[it->second];
    bool changed = false;
    for (size_t n = 0; n < cur.size(); n++) {
      Val v = cur[n].kind == Val::kUnset ? r[n] : (cur[n] == r[n] ? cur[n] : Val::unknown());
      if (!(v == cur[n])) cur[n] = v, changed = true;
    }
    if (changed) work.push_back(it->second);
  };
  Regs entry;
  entry.fill(Val::unknown());
  for (int k = 0; k < 6; k++) entry[kArgRegs[k]] = Val::arg(k + 1);
  if (ins.size()) flow(fn.vaddr, entry);

  std::vector<bool> is_site(ins.size());
  std::vector<Site> sites(ins.size());
  while (!work.empty()) {
    size_t i = work.back();
    work.pop_back();
    const cs_insn& it = ins[i];
    const cs_x86& x = it.detail->x86;
    const uint64_t next = it.address + it.size;
    Regs r = in[i];
    const bool imm = x.op_count == 1 && x.operands[0].type == X86_OP_IMM;
    const bool via_got = x.op_count == 1 && x.operands[0].type == X86_OP_MEM && x.operands[0].mem.base == X86_REG_RIP &&
                         x.operands[0].mem.index == X86_REG_INVALID;
    if (it.id == X86_INS_CALL || it.id == X86_INS_JMP) {
      Site s{it.address, imm ? uint64_t(x.operands[0].imm) : 0, std::nullopt, it.id == X86_INS_JMP, r};
      if (via_got) s.got_slot = next + x.operands[0].mem.disp;
      if (it.id == X86_INS_JMP && imm && index.count(s.target)) { // a jump inside the function
        flow(s.target, r);
        continue;
      }
      if (it.id == X86_INS_JMP && !imm && !via_got) { // a jump table, else an unknown exit
        for (uint64_t t : jump_table(elf, ins, i, index)) flow(t, r);
        continue;
      }
      if (imm || via_got) is_site[i] = true, sites[i] = s;
      if (it.id == X86_INS_CALL && !is_noreturn(imported(elf, d, got, s))) {
        step(d, &it, r);
        flow(next, r);
      }
      continue;
    }
    if (in_group(&it, X86_GRP_RET) || it.id == X86_INS_UD2 || it.id == X86_INS_HLT || it.id == X86_INS_INT3)
      continue;
    if (in_group(&it, X86_GRP_JUMP)) { // jcc, jrcxz, loop
      if (imm) flow(uint64_t(x.operands[0].imm), r);
      step(d, &it, r);
      flow(next, r);
      continue;
    }
    step(d, &it, r);
    flow(next, r);
  }
  std::vector<Site> out;
  for (size_t i = 0; i < ins.size(); i++)
    if (is_site[i]) out.push_back(sites[i]);
  return out;
}

// Which arguments of a call hold the caller's session (its argument 1), the caller's
// buffer (its argument 2) and 23: each must be in exactly one argument register.
std::optional<TlsCallArgs> app_data_args(const Regs& r) {
  int session = 0, buf = 0, type = 0;
  for (int k = 0; k < 6; k++) {
    const Val& v = r[kArgRegs[k]];
    int* slot = v == Val::arg(1) ? &session : v == Val::arg(2) ? &buf : v == Val::imm(kAppData) ? &type : nullptr;
    if (slot) *slot = *slot ? -1 : k + 1;
  }
  if (session <= 0 || buf <= 0 || type <= 0) return std::nullopt;
  return TlsCallArgs{session, buf, type, int(kAppData)};
}

struct AppDataCall {
  TlsCallArgs args;
  bool consistent = true; // every call of this target passes them the same way
  std::string how;        // "jmp 0x3e8b0"
};

// The functions of this file (not PLT stubs) `fn` calls or tail-jumps to with its
// session, its buffer and type 23.
std::map<uint64_t, AppDataCall> app_data_calls(const ElfFile& elf, Disasm& d, GotSymbols& got, const ElfSymbol& fn) {
  std::map<uint64_t, AppDataCall> out;
  for (const Site& s : call_sites(elf, d, got, fn)) {
    if (s.got_slot || !why_not_local_code(elf, d, s.target).empty()) continue;
    auto args = app_data_args(s.regs);
    if (!args) continue;
    std::string how = fmt::format("{} {:#x}", s.jump ? "jmp" : "call", s.target);
    auto [it, inserted] = out.try_emplace(s.target, AppDataCall{*args, true, how});
    if (!inserted && !(it->second.args == *args)) it->second.consistent = false;
  }
  return out;
}

std::string addresses(const std::map<uint64_t, AppDataCall>& calls) {
  std::string s;
  for (const auto& [addr, call] : calls) s += fmt::format("{}{:#x}", s.empty() ? "" : ", ", addr);
  return s;
}

std::string describe_args(const TlsCallArgs& a) {
  return fmt::format("session arg {}, type {} arg {}, buffer arg {}", a.session, a.app_data_type, a.type, a.buf);
}

// The entry of `target`, which `what` lead to, as a probe point, if the kernel emulates it.
bool place(const ElfFile& elf, Disasm& d, uint64_t target, const std::string& what, const std::string& how,
           const std::string& note, UprobePoint* out, std::string* error) {
  auto code = elf.bytes_at(target, kMaxInsnLen);
  std::string first = describe(d.first(code, target));
  auto offset = elf.file_offset(target);
  if (!is_emulated_entry(code.data(), code.size())) {
    *error = fmt::format("'{}': the function {} lead to ({:#x}) starts with '{}': a uprobe there would be "
                         "single-stepped, not emulated",
                         elf.path(), what, target, first);
    return false;
  }
  if (!offset) {
    *error = fmt::format("'{}': the function {} lead to ({:#x}) is not in the file", elf.path(), what, target);
    return false;
  }
  out->symbol = elf.symbol_at(target);
  out->vaddr = target;
  out->file_offset = *offset;
  out->how = how + " (" + first + ")" + note;
  return true;
}

// An unstripped file names the functions: they must be the ones found.
bool check_name(const ElfFile& elf, const UprobePoint& p, const char* name, const std::string& what,
                std::string* error) {
  auto s = elf.symbol(name);
  if (!is_function(s) || s->vaddr == p.vaddr) return true;
  *error = fmt::format("unknown GnuTLS layout in '{}': {} lead to {:#x}, but {} is at {:#x}", elf.path(), what,
                       p.vaddr, name, s->vaddr);
  return false;
}

bool find_gnutls_recv(const ElfFile& elf, Disasm& d, GotSymbols& got, GnutlsProbes* out, std::string* error) {
  const std::string& path = elf.path();
  auto recv = elf.symbol("gnutls_record_recv");
  auto seq = elf.symbol("gnutls_record_recv_seq");
  std::string what = "gnutls_record_recv";
  auto calls = app_data_calls(elf, d, got, *recv);
  auto all_recv = calls;
  std::map<uint64_t, AppDataCall> seq_calls;
  if (is_function(seq)) {
    what += " and gnutls_record_recv_seq";
    seq_calls = app_data_calls(elf, d, got, *seq);
    std::erase_if(calls, [&](const auto& c) {
      auto it = seq_calls.find(c.first);
      return it == seq_calls.end() || !(it->second.args == c.second.args) || !it->second.consistent;
    });
  }
  std::erase_if(calls, [](const auto& c) { return !c.second.consistent; });
  if (calls.size() != 1) {
    *error = fmt::format("unknown GnuTLS layout in '{}': {} pass{} the caller's session and buffer with type 23 "
                         "(application data) to {}",
                         path, what, is_function(seq) ? "" : "es",
                         calls.empty() ? std::string(is_function(seq) ? "no common function" : "no function")
                                       : "several functions: " + addresses(calls));
    return false;
  }
  const auto& [target, call] = *calls.begin();
  std::string how = "gnutls_record_recv -> " + all_recv.at(target).how;
  if (is_function(seq)) how += ", gnutls_record_recv_seq -> " + seq_calls.at(target).how;
  how += " (" + describe_args(call.args) + ")";
  all_recv.erase(target);
  std::string note = all_recv.empty() ? "" : "; not probed: gnutls_record_recv's same call of " + addresses(all_recv);
  out->recv_args = call.args;
  return place(elf, d, target, what, how, note, &out->recv, error) &&
         check_name(elf, out->recv, "_gnutls_recv_int", what, error);
}

bool find_gnutls_send(const ElfFile& elf, Disasm& d, GotSymbols& got, GnutlsProbes* out, std::string* error) {
  const std::string& path = elf.path();
  auto send = elf.symbol("gnutls_record_send");
  auto send2 = elf.symbol("gnutls_record_send2");
  std::string how;
  std::vector<std::pair<std::string, ElfSymbol>> sources; // the functions that must lead there
  if (is_function(send2)) {
    // gnutls_record_send(s, data, size) = gnutls_record_send2(s, data, size, 0, 0)?
    for (const Site& s : call_sites(elf, d, got, *send)) {
      std::string name = imported(elf, d, got, s);
      bool direct = !s.got_slot && s.target == send2->vaddr;
      bool passes = s.regs[7] == Val::arg(1) && s.regs[6] == Val::arg(2) && s.regs[2] == Val::arg(3);
      if ((direct || name == "gnutls_record_send2") && passes) {
        how = fmt::format("gnutls_record_send -> {} {}, ", s.jump ? "jmp" : "call",
                          direct       ? "gnutls_record_send2"
                          : s.got_slot ? "*gnutls_record_send2@got"
                                       : "gnutls_record_send2@plt");
        break;
      }
    }
    sources.emplace_back("gnutls_record_send2", *send2);
  }
  if (how.empty()) sources.emplace_back("gnutls_record_send", *send);

  std::map<uint64_t, AppDataCall> calls;
  std::string what;
  for (size_t i = 0; i < sources.size(); i++) {
    auto these = app_data_calls(elf, d, got, sources[i].second);
    if (i == 0) {
      calls = these;
      what = sources[i].first;
    } else {
      what += " and " + sources[i].first;
      std::erase_if(calls, [&](const auto& c) {
        auto it = these.find(c.first);
        return it == these.end() || !(it->second.args == c.second.args) || !it->second.consistent;
      });
    }
  }
  std::erase_if(calls, [](const auto& c) { return !c.second.consistent; });
  auto first_calls = calls;
  std::string range_note;
  // gnutls_record_send2 also hands application data to the kernel TLS path; the record
  // layer is the one gnutls_record_send_range calls too.
  if (auto range = elf.symbol("gnutls_record_send_range"); is_function(range)) {
    std::set<uint64_t> targets;
    for (const Site& s : call_sites(elf, d, got, *range))
      if (!s.got_slot) targets.insert(s.target);
    std::erase_if(calls, [&](const auto& c) { return !targets.count(c.first); });
    range_note = ", which gnutls_record_send_range calls too";
  }
  if (calls.size() != 1) {
    *error = fmt::format("unknown GnuTLS layout in '{}': {} pass{} the caller's session and buffer with type 23 "
                         "(application data) to {}{}",
                         path, what, sources.size() > 1 ? "" : "es",
                         calls.empty() ? std::string("no function") : "several functions: " + addresses(calls),
                         range_note.empty() ? "" : " that gnutls_record_send_range calls too");
    return false;
  }
  const auto& [target, call] = *calls.begin();
  how += sources.front().first + " -> " + call.how + range_note + " (" + describe_args(call.args) + ")";
  first_calls.erase(target);
  std::string note = first_calls.empty() ? "" : "; not probed: the same call of " + addresses(first_calls);
  out->send_args = call.args;
  if (how.starts_with("gnutls_record_send ->")) what = "gnutls_record_send and gnutls_record_send2";
  return place(elf, d, target, what, how, note, &out->send, error) &&
         check_name(elf, out->send, "_gnutls_send_tlen_int", what, error);
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

std::optional<GnutlsProbes> find_gnutls_probes(const std::string& path, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  auto elf = ElfFile::open(path, error);
  if (!elf) return std::nullopt;
  for (const char* name : {"gnutls_record_recv", "gnutls_record_send"}) {
    if (!is_function(elf->symbol(name))) {
      *error = fmt::format("no GnuTLS in '{}' (it defines no {} function)", path, name);
      return std::nullopt;
    }
  }
  Disasm d;
  if (!d.ok()) {
    *error = "capstone: cannot open an x86-64 disassembler";
    return std::nullopt;
  }
  GotSymbols got(path);
  GnutlsProbes out;
  if (!find_gnutls_recv(*elf, d, got, &out, error) || !find_gnutls_send(*elf, d, got, &out, error))
    return std::nullopt;
  if (out.recv.vaddr == out.send.vaddr) {
    *error = fmt::format("unknown GnuTLS layout in '{}': receiving and sending lead to the same function ({:#x})",
                         path, out.recv.vaddr);
    return std::nullopt;
  }
  return out;
}

} // namespace odigos
