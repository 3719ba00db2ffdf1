// ELF symbols (libelf) and cheap uprobe points (capstone): byte fixtures, this test
// binary checked against /proc/self/maps, Debian's libssl.so.3 checked against
// objdump, and small OpenSSL look-alikes assembled with cc for the other layouts.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <elf.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "loader/elf_symbols.hpp"
#include "shell.hpp"
#include "loader/probe_points.hpp"

using namespace odigos;

extern "C" __attribute__((noinline, used)) int odigos_probe_points_anchor(int x) { return x * 3 + 1; }

namespace {

const char* const kLibssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
const char* const kLibc = "/lib/x86_64-linux-gnu/libc.so.6";

bool emulated(std::initializer_list<uint8_t> bytes) {
  std::vector<uint8_t> v(bytes);
  return is_emulated_entry(v.data(), v.size());
}

std::string first_insn(std::initializer_list<uint8_t> bytes) {
  std::vector<uint8_t> v(bytes);
  return describe_first_instruction(v.data(), v.size());
}

// A temporary directory, removed with its contents.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "odigos-pp-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

using odigos::test::run;

using odigos::test::file_bytes;

// Oracle: `objdump -T` -> {address, size} of the default-version definition of `name`.
struct DynSym {
  uint64_t vaddr = 0;
  uint64_t size = 0;
};
std::optional<DynSym> objdump_dynsym(const std::string& path, const std::string& name) {
  std::istringstream lines(run("objdump -T '" + path + "'"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ws(line);
    std::vector<std::string> tok;
    for (std::string t; ws >> t;) tok.push_back(t);
    // 0000000000035430 g    DF .text  0000000000000083  OPENSSL_3.0.0 SSL_read
    if (tok.size() < 6 || tok.back() != name || tok[tok.size() - 2].starts_with("(")) continue;
    for (size_t i = 1; i + 1 < tok.size(); i++)
      if (tok[i] == ".text") return DynSym{std::stoull(tok[0], nullptr, 16), std::stoull(tok[i + 1], nullptr, 16)};
  }
  return std::nullopt;
}

// Oracle: the target of the first `call` in [start, start+size) that objdump does not
// label as a PLT entry.
std::optional<uint64_t> objdump_first_call(const std::string& path, uint64_t start, uint64_t size) {
  char range[96];
  snprintf(range, sizeof range, "--start-address=0x%llx --stop-address=0x%llx", (unsigned long long)start,
           (unsigned long long)(start + size));
  std::istringstream lines(run("objdump -d --no-show-raw-insn " + std::string(range) + " '" + path + "'"));
  static const std::regex call(R"(^\s*[0-9a-f]+:\s+callq?\s+([0-9a-f]+)\s*(<[^>]*>)?)");
  std::string line;
  std::smatch m;
  while (std::getline(lines, line))
    if (std::regex_search(line, m, call) && m[2].str().find("@plt") == std::string::npos)
      return std::stoull(m[1].str(), nullptr, 16);
  return std::nullopt;
}

// Hand-written OpenSSL look-alikes, assembled and linked by cc.
std::string asm_function(const std::string& name, bool global, const std::string& body) {
  return (global ? "  .globl " + name + "\n" : std::string()) + "  .type " + name + ",@function\n" + name +
         ":\n" + body + "  .size " + name + ", .-" + name + "\n";
}
std::string asm_wrapper(const std::string& name, const std::string& callee, const std::string& call_first = "") {
  return asm_function(name, true,
                      "  sub $0x18,%rsp\n" + (call_first.empty() ? "" : "  call " + call_first + "\n") +
                          "  call " + callee + "\n  add $0x18,%rsp\n  ret\n");
}
std::string asm_internal(const std::string& name, const std::string& first) {
  return asm_function(name, false, "  " + first + "\n  xor %eax,%eax\n  ud2\n");
}
struct Layout {
  std::string read_first = "push %r13";   // first instruction of ssl_read_internal
  std::string read_ex_callee = "ssl_read_internal";
  std::string read_call_first;            // a call SSL_read makes before ssl_read_internal
};
std::string openssl_lookalike(const Layout& l) {
  return "  .text\n" + asm_function("main", true, "  xor %eax,%eax\n  ret\n") +
         asm_wrapper("SSL_read", "ssl_read_internal", l.read_call_first) +
         asm_wrapper("SSL_read_ex", l.read_ex_callee) + asm_wrapper("SSL_write", "ssl_write_internal") +
         asm_wrapper("SSL_write_ex", "ssl_write_internal") + asm_internal("ssl_read_internal", l.read_first) +
         asm_internal("ssl_write_internal", "push %r14") + asm_internal("other_internal", "push %rbx") +
         "  .section .note.GNU-stack,\"\",@progbits\n";
}

} // namespace

TEST_CASE("is_emulated_entry: what the kernel emulates", "[probe_points]") {
  CHECK(emulated({0x41, 0x55}));                   // push %r13
  CHECK(emulated({0x41, 0x56, 0x41, 0x55}));       // push %r14; push %r13
  CHECK(emulated({0x53}));                         // push %rbx
  CHECK(emulated({0x55, 0x48, 0x89, 0xe5}));       // push %rbp; mov %rsp,%rbp
  CHECK(emulated({0xe8, 0x10, 0x00, 0x00, 0x00})); // call rel32
  CHECK(emulated({0xe9, 0x00, 0x01, 0x00, 0x00})); // jmp rel32
  CHECK(emulated({0xeb, 0x05}));                   // jmp rel8
  CHECK(emulated({0x74, 0x05}));                   // je rel8
  CHECK(emulated({0x0f, 0x85, 0x10, 0x00, 0x00, 0x00})); // jne rel32
  CHECK(emulated({0x90}));                               // nop
  CHECK(emulated({0x66, 0x90}));                         // xchg %ax,%ax
  CHECK(emulated({0x0f, 0x1f, 0x00}));                   // nopl (%rax)
  CHECK(emulated({0x0f, 0x1f, 0x40, 0x00}));
  CHECK(emulated({0x0f, 0x1f, 0x44, 0x00, 0x00}));       // 5-byte nop
  CHECK(emulated({0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00})); // nopw 0x0(%rax,%rax,1)
  CHECK(emulated({0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00}));
  CHECK(emulated({0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00}));
}

TEST_CASE("is_emulated_entry: what the kernel single-steps (or cannot probe)", "[probe_points]") {
  CHECK_FALSE(emulated({0x48, 0x83, 0xec, 0x18}));             // sub $0x18,%rsp
  CHECK_FALSE(emulated({0xf3, 0x0f, 0x1e, 0xfa}));             // endbr64
  CHECK_FALSE(emulated({0x48, 0x8d, 0x05, 0, 0, 0, 0}));       // lea 0x0(%rip),%rax
  CHECK_FALSE(emulated({0x48, 0x89, 0xe5}));                   // mov %rsp,%rbp
  CHECK_FALSE(emulated({0x48, 0x8b, 0x07}));                   // mov (%rdi),%rax
  CHECK_FALSE(emulated({0x48, 0x39, 0xf7}));                   // cmp %rsi,%rdi
  CHECK_FALSE(emulated({0x31, 0xc0}));                         // xor %eax,%eax
  CHECK_FALSE(emulated({0xc3}));                               // ret
  CHECK_FALSE(emulated({0xff, 0x25, 0, 0, 0, 0}));             // jmp *0x0(%rip)
  CHECK_FALSE(emulated({0xff, 0xd0}));                         // call *%rax
  CHECK_FALSE(emulated({0x48, 0x50}));                         // rex.W push %rax
  CHECK_FALSE(emulated({0x66, 0x50}));                         // push %ax
  CHECK_FALSE(emulated({0xff, 0x35, 0, 0, 0, 0}));             // push 0x0(%rip)
  CHECK_FALSE(emulated({0x6a, 0x01}));                         // push $1
  CHECK_FALSE(emulated({0x66, 0xe8, 0x10, 0x00}));             // callw
  CHECK_FALSE(emulated({0xf2, 0xe9, 0x00, 0x01, 0x00, 0x00})); // bnd jmp rel32
  CHECK_FALSE(emulated({0xf3, 0x90}));                         // pause
  CHECK_FALSE(emulated({0x41, 0x90}));                         // xchg %eax,%r8d
  CHECK_FALSE(emulated({0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0})); // cs nopw: a bad prefix
  CHECK_FALSE(emulated({0x0f, 0x1f, 0x44, 0x00}));             // a 5-byte nop cut short
  CHECK_FALSE(emulated({0xe8, 0x10}));                         // a call cut short
  CHECK_FALSE(emulated({0x41}));
  CHECK_FALSE(is_emulated_entry(nullptr, 0));
}

TEST_CASE("describe_first_instruction: AT&T syntax for messages", "[probe_points]") {
  CHECK(first_insn({0x41, 0x55, 0x90}) == "push %r13");
  CHECK(first_insn({0x48, 0x83, 0xec, 0x18}).find("$0x18, %rsp") != std::string::npos);
  CHECK(first_insn({0x06}) == "(undecodable)"); // push %es: invalid in 64-bit mode
}

TEST_CASE("ElfFile: files that are not x86-64 executables or libraries", "[probe_points]") {
  TempDir dir;
  std::string error;

  std::string text = dir.write("notes.txt", "hello, not an ELF file\n");
  CHECK_FALSE(ElfFile::open(text, &error));
  CHECK(error == "'" + text + "' is not an ELF file");

  std::string empty = dir.write("empty", "");
  CHECK_FALSE(ElfFile::open(empty, &error));
  CHECK(error == "'" + empty + "' is not an ELF file");

  std::string ar = dir.write("lib.a", "!<arch>\n");
  CHECK_FALSE(ElfFile::open(ar, &error));
  CHECK(error == "'" + ar + "' is not an ELF file (an ar archive)");

  CHECK_FALSE(ElfFile::open((dir.path / "missing").string(), &error));
  CHECK(error.starts_with("cannot open '" + (dir.path / "missing").string() + "': "));

  CHECK_FALSE(ElfFile::open(dir.path.string(), &error));
  CHECK(error == "'" + dir.path.string() + "' is not a regular file");

  auto header = [](unsigned char cls, uint16_t type, uint16_t machine) {
    std::string h;
    if (cls == ELFCLASS64) {
      Elf64_Ehdr e{};
      memcpy(e.e_ident, ELFMAG, SELFMAG);
      e.e_ident[EI_CLASS] = ELFCLASS64, e.e_ident[EI_DATA] = ELFDATA2LSB, e.e_ident[EI_VERSION] = EV_CURRENT;
      e.e_type = type, e.e_machine = machine, e.e_version = EV_CURRENT, e.e_ehsize = sizeof e;
      h.assign(reinterpret_cast<const char*>(&e), sizeof e);
    } else {
      Elf32_Ehdr e{};
      memcpy(e.e_ident, ELFMAG, SELFMAG);
      e.e_ident[EI_CLASS] = ELFCLASS32, e.e_ident[EI_DATA] = ELFDATA2LSB, e.e_ident[EI_VERSION] = EV_CURRENT;
      e.e_type = type, e.e_machine = machine, e.e_version = EV_CURRENT, e.e_ehsize = sizeof e;
      h.assign(reinterpret_cast<const char*>(&e), sizeof e);
    }
    return h;
  };
  std::string arm = dir.write("arm64.so", header(ELFCLASS64, ET_DYN, EM_AARCH64));
  CHECK_FALSE(ElfFile::open(arm, &error));
  CHECK(error == "'" + arm + "' is not an x86-64 ELF file (machine 183)");

  std::string i386 = dir.write("i386", header(ELFCLASS32, ET_EXEC, EM_386));
  CHECK_FALSE(ElfFile::open(i386, &error));
  CHECK(error == "'" + i386 + "' is not an x86-64 ELF file (32-bit)");

  std::string obj = dir.write("x.o", header(ELFCLASS64, ET_REL, EM_X86_64));
  CHECK_FALSE(ElfFile::open(obj, &error));
  CHECK(error == "'" + obj + "' is a relocatable object, not an executable or shared library");

  // find_openssl_probes passes these errors on.
  CHECK_FALSE(find_openssl_probes(text, &error));
  CHECK(error == "'" + text + "' is not an ELF file");
}

TEST_CASE("ElfFile: this binary's own function, vaddr <-> file offset checked against /proc/self/maps",
          "[probe_points]") {
  std::string error;
  auto elf = ElfFile::open("/proc/self/exe", &error);
  REQUIRE(elf);
  INFO(error);
  auto sym = elf->symbol("odigos_probe_points_anchor");
  REQUIRE(sym);
  CHECK(sym->type == STT_FUNC);
  CHECK_FALSE(sym->local);
  CHECK(sym->size > 0);
  CHECK(elf->symbol_at(sym->vaddr) == "odigos_probe_points_anchor");
  CHECK_FALSE(elf->symbol("no_such_symbol_anywhere"));

  auto off = elf->file_offset(sym->vaddr);
  REQUIRE(off);
  CHECK(elf->vaddr_at_offset(*off) == sym->vaddr);
  REQUIRE(elf->segment_at(sym->vaddr));
  CHECK(elf->segment_at(sym->vaddr)->executable);
  CHECK(elf->section_at(sym->vaddr) == ".text");

  // Where the kernel mapped the function: its mapping's file offset must agree.
  auto runtime = reinterpret_cast<uintptr_t>(&odigos_probe_points_anchor);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool found = false;
  while (std::getline(maps, line)) {
    unsigned long long start, end, moff;
    char perms[8];
    if (sscanf(line.c_str(), "%llx-%llx %7s %llx", &start, &end, perms, &moff) != 4) continue;
    if (runtime < start || runtime >= end) continue;
    found = true;
    CHECK(runtime - start + moff == *off);
  }
  CHECK(found);

  // The bytes read from the file are the code that runs.
  auto code = elf->bytes_at(sym->vaddr, 16);
  REQUIRE(code.size() == 16);
  CHECK(memcmp(code.data(), reinterpret_cast<const void*>(runtime), code.size()) == 0);
  CHECK(file_bytes("/proc/self/exe", *off, 16) == std::vector<uint8_t>(code.begin(), code.end()));
  CHECK(elf->bytes_at(sym->vaddr, 0).empty());
  // The first PT_LOAD maps the file from offset 0: the ELF magic.
  const ElfSegment& first = elf->segments().front();
  REQUIRE(first.offset == 0);
  auto magic = elf->bytes_at(first.vaddr, 4);
  CHECK(std::string(magic.begin(), magic.end()) == ELFMAG);
  CHECK(elf->bytes_at(first.vaddr + first.filesz, 4).empty() == !elf->segment_at(first.vaddr + first.filesz));
}

TEST_CASE("ElfFile: versioned symbols of libc, the default version wins", "[probe_points]") {
  if (access(kLibc, R_OK) != 0) {
    WARN(std::string(kLibc) + " not found: case skipped");
    return;
  }
  std::string error;
  auto elf = ElfFile::open(kLibc, &error);
  REQUIRE(elf);
  CHECK(elf->is_dyn());
  // memcpy@@GLIBC_2.14 (an IFUNC) and memcpy@GLIBC_2.2.5 have different addresses.
  auto want = objdump_dynsym(kLibc, "memcpy");
  REQUIRE(want);
  auto got = elf->symbol("memcpy");
  REQUIRE(got);
  CHECK(got->vaddr == want->vaddr);
  CHECK_FALSE(got->ambiguous);
  CHECK(got->type == STT_GNU_IFUNC);
}

TEST_CASE("find_openssl_probes on Debian's libssl.so.3 agrees with objdump", "[probe_points]") {
  if (access(kLibssl, R_OK) != 0) {
    WARN(std::string(kLibssl) + " not found (Debian package libssl3): case skipped");
    return;
  }
  std::string error;
  auto probes = find_openssl_probes(kLibssl, &error);
  INFO(error);
  REQUIRE(probes);
  auto elf = ElfFile::open(kLibssl, &error);
  REQUIRE(elf);

  struct Case {
    const char* wrapper;
    const char* ex;
    const UprobePoint* point;
  };
  for (const Case& c : {Case{"SSL_read", "SSL_read_ex", &probes->read}, Case{"SSL_write", "SSL_write_ex", &probes->write}}) {
    const UprobePoint& p = *c.point;
    INFO(c.wrapper << ": " << p.how << " vaddr " << std::hex << p.vaddr << " offset " << p.file_offset);
    auto wrapper = objdump_dynsym(kLibssl, c.wrapper);
    REQUIRE(wrapper);
    CHECK(elf->symbol(c.wrapper)->vaddr == wrapper->vaddr);
    auto want = objdump_first_call(kLibssl, wrapper->vaddr, wrapper->size);
    REQUIRE(want);
    CHECK(p.vaddr == *want);
    auto ex = objdump_dynsym(kLibssl, c.ex);
    REQUIRE(ex);
    CHECK(objdump_first_call(kLibssl, ex->vaddr, ex->size) == want);
    CHECK(p.how.find(std::string(c.wrapper) + " -> call target") == 0);
    CHECK(p.how.find(c.ex) != std::string::npos);
    CHECK(p.symbol.empty()); // the stripped library does not name it
    // The file offset holds a push: read the file there.
    auto bytes = file_bytes(kLibssl, p.file_offset, 16);
    REQUIRE(bytes.size() == 16);
    CHECK(is_emulated_entry(bytes.data(), bytes.size()));
    CHECK(describe_first_instruction(bytes.data(), bytes.size()).starts_with("push"));
    CHECK(elf->vaddr_at_offset(p.file_offset) == p.vaddr);
  }
  CHECK(probes->read.vaddr != probes->write.vaddr);
}

TEST_CASE("find_openssl_probes: a program without OpenSSL", "[probe_points]") {
  std::string error;
  CHECK_FALSE(find_openssl_probes("/bin/true", &error));
  CHECK(error.find("no OpenSSL in '/bin/true'") == 0);
  CHECK_FALSE(find_openssl_probes("/proc/self/exe", &error));
  CHECK(error.find("no OpenSSL in '/proc/self/exe'") == 0);
}

TEST_CASE("find_openssl_probes on assembled look-alikes: symbols, stripped, PLT calls, unknown layouts",
          "[probe_points]") {
  TempDir dir;
  // Builds `source` with cc; "" when there is no working cc here (the case is skipped).
  auto build = [&](const std::string& name, const Layout& layout, const std::string& flags) -> std::string {
    std::string src = dir.write(name + ".s", openssl_lookalike(layout));
    std::string exe = (dir.path / name).string();
    int status = -1;
    std::string out = run("cc " + flags + " -o '" + exe + "' '" + src + "' 2>&1", &status);
    if (status != 0) {
      WARN("cc failed (" + out + "): case skipped");
      return {};
    }
    return exe;
  };
  const std::string stripped = "-Wl,--export-dynamic -s";
  std::string error;

  SECTION("non-PIE executable with .symtab: the local ssl_*_internal symbols") {
    std::string exe = build("symtab", {}, "-no-pie");
    if (exe.empty()) return;
    auto elf = ElfFile::open(exe, &error);
    REQUIRE(elf);
    CHECK_FALSE(elf->is_dyn());
    auto internal = elf->symbol("ssl_read_internal");
    REQUIRE(internal);
    CHECK(internal->local);
    CHECK(internal->vaddr >= 0x400000); // non-PIE: absolute addresses
    auto probes = find_openssl_probes(exe, &error);
    INFO(error);
    REQUIRE(probes);
    CHECK(probes->read.symbol == "ssl_read_internal");
    CHECK(probes->read.vaddr == internal->vaddr);
    CHECK(probes->read.how == "ssl_read_internal symbol (push %r13)");
    CHECK(probes->write.symbol == "ssl_write_internal");
    CHECK(probes->write.vaddr == elf->symbol("ssl_write_internal")->vaddr);
    for (const UprobePoint* p : {&probes->read, &probes->write}) {
      CHECK(p->file_offset == p->vaddr - elf->segment_at(p->vaddr)->vaddr + elf->segment_at(p->vaddr)->offset);
      CHECK(p->file_offset < p->vaddr);
      auto bytes = file_bytes(exe, p->file_offset, 2);
      CHECK(bytes == std::vector<uint8_t>{0x41, uint8_t(p == &probes->read ? 0x55 : 0x56)});
    }
  }

  SECTION("stripped non-PIE executable: the wrappers' call targets") {
    std::string exe = build("stripped", {}, "-no-pie " + stripped);
    if (exe.empty()) return;
    auto elf = ElfFile::open(exe, &error);
    REQUIRE(elf);
    CHECK_FALSE(elf->symbol("ssl_read_internal"));
    auto probes = find_openssl_probes(exe, &error);
    INFO(error);
    REQUIRE(probes);
    CHECK(probes->read.symbol.empty());
    CHECK(probes->read.how.starts_with("SSL_read -> call target 0x"));
    CHECK(probes->read.how.ends_with(", which SSL_read_ex calls too (push %r13)"));
    CHECK(probes->write.how.ends_with(", which SSL_write_ex calls too (push %r14)"));
    CHECK(file_bytes(exe, probes->read.file_offset, 2) == std::vector<uint8_t>{0x41, 0x55});
    CHECK(file_bytes(exe, probes->write.file_offset, 2) == std::vector<uint8_t>{0x41, 0x56});
  }

  SECTION("stripped PIE whose SSL_read first calls through the PLT") {
    Layout l;
    l.read_call_first = "puts@PLT";
    std::string exe = build("plt", l, "-pie -fPIE " + stripped);
    if (exe.empty()) return;
    auto probes = find_openssl_probes(exe, &error);
    INFO(error);
    REQUIRE(probes);
    CHECK(ElfFile::open(exe, &error)->is_dyn());
    CHECK(file_bytes(exe, probes->read.file_offset, 2) == std::vector<uint8_t>{0x41, 0x55});
    CHECK(probes->read.how.ends_with("(push %r13)"));
  }

  SECTION("SSL_read_ex calls something else: unknown layout") {
    Layout l;
    l.read_ex_callee = "other_internal";
    std::string exe = build("mismatch", l, "-no-pie " + stripped);
    if (exe.empty()) return;
    CHECK_FALSE(find_openssl_probes(exe, &error));
    CHECK(error.starts_with("unknown OpenSSL layout in '" + exe + "': SSL_read calls 0x"));
    CHECK(error.find("but SSL_read_ex calls 0x") != std::string::npos);
  }

  SECTION("the internal function starts with sub: a probe there would be single-stepped") {
    Layout l;
    l.read_first = "sub $0x28,%rsp";
    for (const std::string& flags : {std::string("-no-pie"), "-no-pie " + stripped}) {
      std::string exe = build(flags.size() > 8 ? "sub_stripped" : "sub", l, flags);
      if (exe.empty()) return;
      CHECK_FALSE(find_openssl_probes(exe, &error));
      INFO(error);
      CHECK(error.starts_with("'" + exe + "': the function SSL_read calls (0x"));
      CHECK(error.find("starts with 'sub") != std::string::npos);
      CHECK(error.ends_with("a uprobe there would be single-stepped, not emulated"));
    }
  }
}

// ---- GnuTLS ----

namespace {

const char* const kLibgnutls = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30";

// `text` with {0} and {1} replaced by a and b in hex ("0x3e8b0"), as the messages print them.
std::string fmt_hex(std::string text, uint64_t a, uint64_t b = 0) {
  for (auto [key, value] : {std::pair{"{0}", a}, std::pair{"{1}", b}}) {
    char hex[32];
    snprintf(hex, sizeof hex, "%#llx", (unsigned long long)value);
    for (size_t at; (at = text.find(key)) != std::string::npos;) text.replace(at, 3, hex);
  }
  return text;
}

// Oracle: objdump's instructions in [start, stop): address, mnemonic, operands.
struct ObjdumpInsn {
  uint64_t addr = 0;
  std::string mnemonic;
  std::string operands; // "$0x17,%esi", "3e8b0 <gnutls_transport_get_int@@GNUTLS_3_4+0x31c0>"
};
std::vector<ObjdumpInsn> objdump_insns(const std::string& path, uint64_t start, uint64_t stop) {
  char range[96];
  snprintf(range, sizeof range, "--start-address=0x%llx --stop-address=0x%llx", (unsigned long long)start,
           (unsigned long long)stop);
  std::istringstream lines(run("objdump -d --no-show-raw-insn " + std::string(range) + " '" + path + "'"));
  static const std::regex insn(R"(^\s*([0-9a-f]+):\s+(\S+)\s*(.*?)\s*$)");
  std::vector<ObjdumpInsn> out;
  std::string line;
  std::smatch m;
  while (std::getline(lines, line))
    if (std::regex_match(line, m, insn)) out.push_back({std::stoull(m[1].str(), nullptr, 16), m[2].str(), m[3].str()});
  return out;
}
std::vector<ObjdumpInsn> objdump_function(const std::string& path, const std::string& name) {
  auto sym = objdump_dynsym(path, name);
  if (!sym) return {};
  return objdump_insns(path, sym->vaddr, sym->vaddr + sym->size);
}
// The branch target objdump prints first in the operands ("3e8b0 <...>" -> 0x3e8b0).
std::optional<uint64_t> branch_target(const ObjdumpInsn& in) {
  static const std::regex target(R"(^([0-9a-f]+)(\s|$))");
  std::smatch m;
  if (!std::regex_search(in.operands, m, target)) return std::nullopt;
  return std::stoull(m[1].str(), nullptr, 16);
}
// Whether `code` has a `mnemonic` to `target` with `mov $0x17,%esi` (type 23) among the
// `window` instructions before it.
bool branches_with_app_data(const std::vector<ObjdumpInsn>& code, const std::string& mnemonic, uint64_t target,
                            size_t window) {
  for (size_t i = 0; i < code.size(); i++) {
    if (code[i].mnemonic != mnemonic || branch_target(code[i]) != target) continue;
    for (size_t k = i >= window ? i - window : 0; k < i; k++)
      if (code[k].mnemonic == "mov" && code[k].operands == "$0x17,%esi") return true;
  }
  return false;
}

// GnuTLS look-alikes: a shared library with the exported record functions around local
// record-layer functions, assembled and linked by cc.
struct GnutlsLayout {
  std::string recv_first = "push %r15";     // first instruction of _gnutls_recv_int
  std::string seq_target = "_gnutls_recv_int";
  std::string send_type = "$23";            // the type gnutls_record_send2 passes
  std::string send_jump = "jmp gnutls_record_send2@PLT";
  bool send_range = true;
  std::string recv_int_name = "_gnutls_recv_int"; // the local symbols' names
  std::string other_recv_name = "other_recv";
};
std::string gnutls_lookalike(const GnutlsLayout& l) {
  auto local = [](const std::string& name, const std::string& first) {
    return asm_function(name, false, "  " + first + "\n  xor %eax,%eax\n  ud2\n");
  };
  // the kernel TLS call of gnutls_record_send2: (session, 23, data, size)
  return "  .text\n" +
         asm_function("gnutls_record_recv", true,
                      "  sub $0x8,%rsp\n  mov %rdx,%rcx\n  mov %rsi,%rdx\n  mov $23,%esi\n  xor %r8d,%r8d\n"
                      "  add $0x8,%rsp\n  jmp " + l.recv_int_name + "\n") +
         asm_function("gnutls_record_recv_seq", true,
                      "  mov %rcx,%r8\n  mov %rdx,%rcx\n  mov %rsi,%rdx\n  mov $23,%esi\n  jmp " +
                          (l.seq_target == "_gnutls_recv_int" ? l.recv_int_name : l.seq_target) + "\n") +
         asm_function("gnutls_record_send", true, "  xor %r8d,%r8d\n  xor %ecx,%ecx\n  " + l.send_jump + "\n") +
         asm_function("gnutls_record_send2", true,
                      "  push %rbx\n  mov %rdi,%rbx\n  cmpl $0,(%rdi)\n  jne 1f\n  mov %rdx,%r9\n  mov %rsi,%r8\n"
                      "  mov $-1,%edx\n  mov $0x11171,%ecx\n  mov " + l.send_type + ",%esi\n  mov %rbx,%rdi\n"
                      "  call _gnutls_send_tlen_int\n  pop %rbx\n  ret\n"
                      "1:\n  mov %rdx,%rcx\n  mov %rsi,%rdx\n  mov $23,%esi\n  call ktls_send\n  pop %rbx\n  ret\n") +
         (l.send_range ? asm_function("gnutls_record_send_range", true,
                                      "  push %rbx\n  lea (%rsi,%rdx,1),%r8\n  mov $23,%esi\n"
                                      "  call _gnutls_send_tlen_int\n  pop %rbx\n  ret\n")
                       : std::string()) +
         local(l.recv_int_name, l.recv_first) + local("_gnutls_send_tlen_int", "push %r15") +
         local("ktls_send", "push %r12") + local(l.other_recv_name, "push %r14") +
         "  .section .note.GNU-stack,\"\",@progbits\n";
}

} // namespace

TEST_CASE("find_gnutls_probes on Debian's libgnutls.so.30 agrees with objdump", "[probe_points][gnutls]") {
  if (access(kLibgnutls, R_OK) != 0) {
    WARN(std::string(kLibgnutls) + " not found (Debian package libgnutls30): case skipped");
    return;
  }
  std::string error;
  auto probes = find_gnutls_probes(kLibgnutls, &error);
  INFO(error);
  REQUIRE(probes);
  INFO("recv: " << probes->recv.how << "\nsend: " << probes->send.how);
  auto elf = ElfFile::open(kLibgnutls, &error);
  REQUIRE(elf);

  // The argument layouts the BPF side reads.
  CHECK(probes->recv_args == TlsCallArgs{1, 3, 2, 23});
  CHECK(probes->send_args == TlsCallArgs{1, 5, 2, 23});
  CHECK(probes->count_from_return);

  // Why not the exported functions: their entries would be single-stepped.
  auto recv_code = objdump_function(kLibgnutls, "gnutls_record_recv");
  auto seq_code = objdump_function(kLibgnutls, "gnutls_record_recv_seq");
  auto send_code = objdump_function(kLibgnutls, "gnutls_record_send");
  auto send2_code = objdump_function(kLibgnutls, "gnutls_record_send2");
  auto range_code = objdump_function(kLibgnutls, "gnutls_record_send_range");
  REQUIRE(!recv_code.empty());
  REQUIRE(!seq_code.empty());
  REQUIRE(!send_code.empty());
  REQUIRE(!send2_code.empty());
  REQUIRE(!range_code.empty());
  CHECK(recv_code.front().mnemonic == "sub");
  CHECK(seq_code.front().mnemonic == "mov");
  CHECK(send_code.front().mnemonic == "xor");

  // recv: both wrappers tail-jump to it with type 23.
  CHECK(branches_with_app_data(recv_code, "jmp", probes->recv.vaddr, 4));
  CHECK(branches_with_app_data(seq_code, "jmp", probes->recv.vaddr, 4));
  CHECK(seq_code.size() >= 2);
  // send: gnutls_record_send jumps to gnutls_record_send2's PLT entry, which calls it
  // with type 23, as gnutls_record_send_range does.
  bool to_send2 = false;
  for (const ObjdumpInsn& in : send_code)
    to_send2 |= in.mnemonic == "jmp" && in.operands.find("<gnutls_record_send2@plt>") != std::string::npos;
  CHECK(to_send2);
  CHECK(branches_with_app_data(send2_code, "call", probes->send.vaddr, 10));
  CHECK(branches_with_app_data(range_code, "call", probes->send.vaddr, 10));

  CHECK(probes->recv.how.starts_with("gnutls_record_recv -> jmp 0x"));
  CHECK(probes->recv.how.find("gnutls_record_recv_seq -> jmp 0x") != std::string::npos);
  CHECK(probes->recv.how.find("(session arg 1, type 23 arg 2, buffer arg 3) (push %r15)") != std::string::npos);
  CHECK(probes->send.how.starts_with("gnutls_record_send -> jmp gnutls_record_send2@plt, gnutls_record_send2 -> "
                                     "call 0x"));
  CHECK(probes->send.how.find("which gnutls_record_send_range calls too") != std::string::npos);
  CHECK(probes->send.how.find("(session arg 1, type 23 arg 2, buffer arg 5) (push %r15)") != std::string::npos);

  for (const UprobePoint* p : {&probes->recv, &probes->send}) {
    INFO(std::hex << "vaddr " << p->vaddr << " offset " << p->file_offset);
    CHECK(p->symbol.empty()); // the stripped library does not name them
    // objdump's first instruction there is a push...
    auto entry = objdump_insns(kLibgnutls, p->vaddr, p->vaddr + 16);
    REQUIRE(!entry.empty());
    CHECK(entry.front().addr == p->vaddr);
    CHECK(entry.front().mnemonic == "push");
    // ... and so are the file's bytes at the offset a uprobe takes.
    auto bytes = file_bytes(kLibgnutls, p->file_offset, 16);
    REQUIRE(bytes.size() == 16);
    CHECK(is_emulated_entry(bytes.data(), bytes.size()));
    CHECK(describe_first_instruction(bytes.data(), bytes.size()) == "push " + entry.front().operands);
    CHECK(elf->vaddr_at_offset(p->file_offset) == p->vaddr);
  }
  CHECK(probes->recv.vaddr != probes->send.vaddr);
}

TEST_CASE("find_gnutls_probes: files without GnuTLS", "[probe_points][gnutls]") {
  std::string error;
  CHECK_FALSE(find_gnutls_probes("/bin/true", &error));
  CHECK(error == "no GnuTLS in '/bin/true' (it defines no gnutls_record_recv function)");
  CHECK_FALSE(find_gnutls_probes("/proc/self/exe", &error));
  CHECK(error.starts_with("no GnuTLS in '/proc/self/exe'"));
  if (access(kLibssl, R_OK) == 0) {
    CHECK_FALSE(find_gnutls_probes(kLibssl, &error));
    CHECK(error.starts_with("no GnuTLS in '" + std::string(kLibssl) + "'"));
  }
  TempDir dir;
  std::string text = dir.write("notes.txt", "not an ELF file\n");
  CHECK_FALSE(find_gnutls_probes(text, &error));
  CHECK(error == "'" + text + "' is not an ELF file");
  CHECK_FALSE(find_gnutls_probes(text, nullptr));
}

TEST_CASE("find_gnutls_probes on assembled look-alikes: PLT, GOT, symbols, unknown layouts",
          "[probe_points][gnutls]") {
  TempDir dir;
  // Builds a shared library with cc; "" when there is no working cc here.
  auto build = [&](const std::string& name, const GnutlsLayout& layout, const std::string& flags = "") {
    std::string src = dir.write(name + ".s", gnutls_lookalike(layout));
    std::string lib = (dir.path / (name + ".so")).string();
    int status = -1;
    std::string out = run("cc -shared " + flags + " -o '" + lib + "' '" + src + "' 2>&1", &status);
    if (status != 0) {
      WARN("cc failed (" + out + "): case skipped");
      return std::string();
    }
    return lib;
  };
  std::string error;
  const std::vector<uint8_t> push_r15{0x41, 0x57};

  SECTION("through the PLT, with .symtab: the record layer by its local names") {
    std::string lib = build("plt", {});
    if (lib.empty()) return;
    auto elf = ElfFile::open(lib, &error);
    REQUIRE(elf);
    auto probes = find_gnutls_probes(lib, &error);
    INFO(error);
    REQUIRE(probes);
    INFO(probes->recv.how << "\n" << probes->send.how);
    CHECK(probes->recv.symbol == "_gnutls_recv_int");
    CHECK(probes->recv.vaddr == elf->symbol("_gnutls_recv_int")->vaddr);
    CHECK(probes->send.symbol == "_gnutls_send_tlen_int");
    CHECK(probes->send.vaddr == elf->symbol("_gnutls_send_tlen_int")->vaddr);
    CHECK(probes->recv_args == TlsCallArgs{1, 3, 2, 23});
    CHECK(probes->send_args == TlsCallArgs{1, 5, 2, 23});
    CHECK(file_bytes(lib, probes->recv.file_offset, 2) == push_r15);
    CHECK(file_bytes(lib, probes->send.file_offset, 2) == push_r15);
    CHECK(probes->recv.how == fmt_hex("gnutls_record_recv -> jmp {0}, gnutls_record_recv_seq -> jmp {0} "
                                      "(session arg 1, type 23 arg 2, buffer arg 3) (push %r15)",
                                      probes->recv.vaddr));
    CHECK(probes->send.how ==
          fmt_hex("gnutls_record_send -> jmp gnutls_record_send2@plt, gnutls_record_send2 -> call {0}, which "
                  "gnutls_record_send_range calls too (session arg 1, type 23 arg 2, buffer arg 5) (push %r15); "
                  "not probed: the same call of {1}",
                  probes->send.vaddr, elf->symbol("ktls_send")->vaddr));
  }

  SECTION("stripped, through the GOT (-fno-plt), and bound locally (-Bsymbolic)") {
    struct Variant {
      const char* name;
      std::string jump;
      std::string flags;
      const char* how;
    };
    for (const Variant& v : {Variant{"stripped", "jmp gnutls_record_send2@PLT", "-s", "jmp gnutls_record_send2@plt"},
                             Variant{"got", "jmp *gnutls_record_send2@GOTPCREL(%rip)", "-s",
                                     "jmp *gnutls_record_send2@got"},
                             Variant{"symbolic", "jmp gnutls_record_send2@PLT", "-s -Wl,-Bsymbolic",
                                     "jmp gnutls_record_send2,"}}) {
      GnutlsLayout l;
      l.send_jump = v.jump;
      std::string lib = build(v.name, l, v.flags);
      if (lib.empty()) return;
      auto probes = find_gnutls_probes(lib, &error);
      INFO(v.name << ": " << error);
      REQUIRE(probes);
      INFO(probes->send.how);
      CHECK(probes->recv.symbol.empty());
      CHECK(probes->send.symbol.empty());
      CHECK(probes->send.how.starts_with(std::string("gnutls_record_send -> ") + v.how));
      CHECK(file_bytes(lib, probes->recv.file_offset, 2) == push_r15);
      CHECK(file_bytes(lib, probes->send.file_offset, 2) == push_r15);
      CHECK(probes->send_args == TlsCallArgs{1, 5, 2, 23});
    }
  }

  SECTION("the receiving function starts with sub: a probe there would be single-stepped") {
    GnutlsLayout l;
    l.recv_first = "sub $0x28,%rsp";
    std::string lib = build("sub", l);
    if (lib.empty()) return;
    CHECK_FALSE(find_gnutls_probes(lib, &error));
    CHECK(error.starts_with("'" + lib + "': the function gnutls_record_recv and gnutls_record_recv_seq lead to (0x"));
    CHECK(error.find("starts with 'sub") != std::string::npos);
    CHECK(error.ends_with("a uprobe there would be single-stepped, not emulated"));
  }

  SECTION("gnutls_record_recv_seq goes elsewhere: unknown layout") {
    GnutlsLayout l;
    l.seq_target = "other_recv";
    std::string lib = build("seq", l);
    if (lib.empty()) return;
    CHECK_FALSE(find_gnutls_probes(lib, &error));
    CHECK(error == "unknown GnuTLS layout in '" + lib +
                       "': gnutls_record_recv and gnutls_record_recv_seq pass the caller's session and buffer with "
                       "type 23 (application data) to no common function");
  }

  SECTION("gnutls_record_send2 hands the record layer another type: unknown layout") {
    GnutlsLayout l;
    l.send_type = "$22";
    std::string lib = build("type", l);
    if (lib.empty()) return;
    CHECK_FALSE(find_gnutls_probes(lib, &error));
    // Only the kernel TLS look-alike is left, and gnutls_record_send_range does not call it.
    CHECK(error == "unknown GnuTLS layout in '" + lib +
                       "': gnutls_record_send2 passes the caller's session and buffer with type 23 (application "
                       "data) to no function that gnutls_record_send_range calls too");
  }

  SECTION("without gnutls_record_send_range the record layer and the kernel TLS path look alike") {
    GnutlsLayout l;
    l.send_range = false;
    std::string lib = build("norange", l);
    if (lib.empty()) return;
    auto elf = ElfFile::open(lib, &error);
    REQUIRE(elf);
    CHECK_FALSE(find_gnutls_probes(lib, &error));
    uint64_t a = elf->symbol("_gnutls_send_tlen_int")->vaddr, b = elf->symbol("ktls_send")->vaddr;
    CHECK(error == fmt_hex("unknown GnuTLS layout in '" + lib +
                               "': gnutls_record_send2 passes the caller's session and buffer with type 23 "
                               "(application data) to several functions: {0}, {1}",
                           std::min(a, b), std::max(a, b)));
  }

  SECTION("the file names another function _gnutls_recv_int") {
    GnutlsLayout l;
    l.recv_int_name = "recv_internal";
    l.other_recv_name = "_gnutls_recv_int";
    std::string lib = build("names", l);
    if (lib.empty()) return;
    auto elf = ElfFile::open(lib, &error);
    REQUIRE(elf);
    CHECK_FALSE(find_gnutls_probes(lib, &error));
    CHECK(error == fmt_hex("unknown GnuTLS layout in '" + lib +
                               "': gnutls_record_recv and gnutls_record_recv_seq lead to {0}, but _gnutls_recv_int "
                               "is at {1}",
                           elf->symbol("recv_internal")->vaddr, elf->symbol("_gnutls_recv_int")->vaddr));
  }
}
