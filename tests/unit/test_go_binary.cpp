// Go executables: build info and pclntab, stripped or not, checked against the Go
// toolchain's own readers (go version -m, go tool nm, go tool objdump), and the
// crypto/tls uprobe points, on tests/fixtures/go/tlsprog built here in several ways.
// Without a Go toolchain these tests warn and pass.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <sys/user.h>
#include <sys/wait.h>
#include <vector>

#include "loader/elf_symbols.hpp"
#include "shell.hpp"
#include "loader/go_binary.hpp"
#include "loader/probe_points.hpp"

using namespace odigos;

namespace {

const char* const kFixture = ODIGOS_FIXTURES_DIR "/go/tlsprog";
const char* const kWrite = "crypto/tls.(*Conn).Write";
const char* const kRead = "crypto/tls.(*Conn).Read";

using odigos::test::run;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

using odigos::test::file_bytes;

std::string hex(const std::vector<uint8_t>& b) {
  std::string s;
  char two[3];
  for (uint8_t c : b) {
    snprintf(two, sizeof two, "%02x", c);
    s += two;
  }
  return s;
}

// The fixture built on demand, once per variant per process, into a temporary
// directory removed at exit. `go` comes from PATH; the build cache is shared.
class GoBuilds {
public:
  static GoBuilds& get() {
    static GoBuilds b;
    return b;
  }
  ~GoBuilds() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  const std::string& skip() const { return skip_; } // why there is no Go to test with
  const std::string& go_version() const { return version_; }

  // Variants: plain, stripped (-s -w), pie, pie-stripped, noinline (-gcflags=all=-l),
  // ext and ext-stripped (cgo, external linker, PIE). "" and *why when it cannot be built.
  std::string bin(const std::string& variant, std::string* why = nullptr) {
    if (auto it = bins_.find(variant); it != bins_.end()) return it->second;
    std::string env = "cd " + quote(kFixture) +
                      " && env GOFLAGS=-mod=mod GOCACHE=/tmp/odigos-gocache GOPATH=/tmp/odigos-gopath GOPROXY=off "
                      "GOTOOLCHAIN=local GO111MODULE=on ";
    std::string flags;
    if (variant == "plain") flags = "";
    else if (variant == "stripped") flags = "-ldflags='-s -w'";
    else if (variant == "pie") flags = "-buildmode=pie";
    else if (variant == "pie-stripped") flags = "-buildmode=pie -ldflags='-s -w'";
    else if (variant == "noinline") flags = "-gcflags=all=-l";
    else if (variant == "ext") flags = "-buildmode=pie -ldflags='-linkmode=external'";
    else if (variant == "ext-stripped") flags = "-buildmode=pie -ldflags='-linkmode=external -s -w'";
    else FAIL("unknown variant " << variant);
    if (variant.starts_with("ext")) {
      int st = 0;
      run("command -v \"$(go env CC)\" >/dev/null 2>&1", &st);
      if (st != 0) {
        if (why) *why = "no C compiler for cgo (go env CC)";
        return {};
      }
      env += "CGO_ENABLED=1 ";
    } else {
      env += "CGO_ENABLED=0 ";
    }
    std::string out = dir_ + "/tlsprog-" + variant;
    int st = 0;
    std::string log = run(env + "go build -buildvcs=false " + flags + " -o " + quote(out) + " . 2>&1", &st);
    INFO(log);
    REQUIRE(st == 0);
    bins_[variant] = out;
    return out;
  }

private:
  GoBuilds() {
    int st = 0;
    std::string v = run("go version 2>/dev/null", &st); // "go version go1.19.8 linux/amd64"
    std::istringstream ws(v);
    std::string w1, w2;
    ws >> w1 >> w2 >> version_;
    if (st != 0 || w2 != "version" || !version_.starts_with("go1.")) {
      skip_ = "no Go toolchain: 'go version' failed (install golang-go)";
      return;
    }
    if (std::atoi(version_.c_str() + 4) < 18) {
      skip_ = "the fixture needs Go >= 1.18 to build (found " + version_ + ")";
      return;
    }
    std::string tmpl = (std::filesystem::temp_directory_path() / "odigos-go-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
  }
  std::string skip_, version_, dir_;
  std::map<std::string, std::string> bins_;
};

#define REQUIRE_GO()                                                                                   \
  do {                                                                                                 \
    if (!GoBuilds::get().skip().empty()) {                                                             \
      WARN("skipped: " << GoBuilds::get().skip());                                                     \
      return;                                                                                          \
    }                                                                                                  \
  } while (0)

// Oracle: `go tool nm -size` -> {address, size} of a text symbol.
struct NmSym {
  uint64_t addr = 0;
  uint64_t size = 0;
};
std::optional<NmSym> go_nm(const std::string& bin, const std::string& name) {
  std::istringstream lines(run("go tool nm -size " + quote(bin) + " 2>/dev/null"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ws(line); // "  5a6100       1022 T crypto/tls.(*Conn).Read"
    std::string addr, size, type, sym;
    ws >> addr >> size >> type;
    std::getline(ws, sym);
    if (!sym.empty() && sym[0] == ' ') sym.erase(0, 1);
    if (sym == name && (type == "T" || type == "t")) return NmSym{std::stoull(addr, nullptr, 16), std::stoull(size)};
  }
  return std::nullopt;
}

// Oracle: `go tool objdump -s FUNC$` -> its instructions.
struct ObjInsn {
  std::string pos; // "conn.go:1301"
  uint64_t addr = 0;
  std::string hex;
  std::string text; // "JBE 0x5a64cc"
};
std::vector<ObjInsn> go_objdump(const std::string& bin, const std::string& func) {
  std::string re;
  for (char c : func) re += std::strchr("()*.", c) ? std::string("\\") + c : std::string(1, c);
  std::istringstream lines(run("go tool objdump -s " + quote(re + "$") + " " + quote(bin)));
  std::vector<ObjInsn> out;
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with("TEXT")) continue;
    std::vector<std::string> f;
    std::istringstream ts(line);
    for (std::string t; std::getline(ts, t, '\t');) {
      while (!t.empty() && t.front() == ' ') t.erase(0, 1);
      while (!t.empty() && t.back() == ' ') t.pop_back();
      if (!t.empty()) f.push_back(t);
    }
    if (f.size() < 4 || !f[1].starts_with("0x")) continue;
    out.push_back({f[0], std::stoull(f[1], nullptr, 16), f[2], f[3]});
  }
  return out;
}

size_t index_at(const std::vector<ObjInsn>& insns, uint64_t addr) {
  for (size_t i = 0; i < insns.size(); i++)
    if (insns[i].addr == addr) return i;
  FAIL("go tool objdump shows no instruction at " << std::hex << addr);
  return 0;
}

// "rcx" -> "CX", "r10" -> "R10" (Go assembler names).
std::string go_reg(const std::string& r) {
  if (r.size() >= 2 && r[0] == 'r' && std::isdigit(static_cast<unsigned char>(r[1]))) return "R" + r.substr(1);
  std::string s = r.substr(1);
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

int pt_regs_offset(const std::string& r) {
  static const std::map<std::string, int> m = {
      {"rax", offsetof(user_regs_struct, rax)}, {"rbx", offsetof(user_regs_struct, rbx)},
      {"rcx", offsetof(user_regs_struct, rcx)}, {"rdx", offsetof(user_regs_struct, rdx)},
      {"rsi", offsetof(user_regs_struct, rsi)}, {"rdi", offsetof(user_regs_struct, rdi)},
      {"r8", offsetof(user_regs_struct, r8)},   {"r9", offsetof(user_regs_struct, r9)},
      {"r10", offsetof(user_regs_struct, r10)}, {"r11", offsetof(user_regs_struct, r11)},
      {"r12", offsetof(user_regs_struct, r12)}, {"r13", offsetof(user_regs_struct, r13)},
      {"r15", offsetof(user_regs_struct, r15)}};
  auto it = m.find(r);
  return it == m.end() ? -100 : it->second;
}

// The point's bytes in the file are the instruction objdump shows at its address, and
// one the kernel emulates.
void check_bytes(const std::string& bin, const GoProbePoint& p, const std::vector<ObjInsn>& insns) {
  INFO(p.description);
  const ObjInsn& in = insns[index_at(insns, p.vaddr)];
  auto b = file_bytes(bin, p.file_offset, in.hex.size() / 2);
  CHECK(hex(b) == in.hex);
  auto more = file_bytes(bin, p.file_offset, 15);
  CHECK(is_emulated_entry(more.data(), more.size()));
}

// An entry point: the JBE right after `CMPQ 0x10(R14), SP|R12`, within the first
// instructions (or the entry itself when it is emulated).
void check_entry(const std::string& bin, const std::string& func, const GoProbePoint& p) {
  INFO(func << ": " << p.description);
  auto insns = go_objdump(bin, func);
  REQUIRE(insns.size() > 4);
  check_bytes(bin, p, insns);
  if (p.vaddr == insns[0].addr) {
    CHECK_FALSE(p.skip_if_cf_or_zf);
    return;
  }
  size_t i = index_at(insns, p.vaddr);
  CHECK(i <= 4);
  REQUIRE(i >= 1);
  CHECK(std::regex_match(insns[i].text, std::regex(R"((JBE|JLS) 0x[0-9a-f]+)")));
  CHECK(std::regex_match(insns[i - 1].text, std::regex(R"(CMPQ 0x10\(R14\), (SP|R12))")));
  CHECK(p.skip_if_cf_or_zf);
  CHECK(p.n_register.empty());
  // The branch goes to the morestack call at the end, which jumps back to the entry.
  auto target = std::stoull(insns[i].text.substr(insns[i].text.find("0x")), nullptr, 16);
  size_t t = index_at(insns, target);
  bool morestack = false;
  for (size_t k = t; k < insns.size(); k++)
    if (insns[k].text.find("CALL runtime.morestack") == 0) morestack = true;
  CHECK(morestack);
  CHECK(insns.back().text == "JMP " + func + "(SB)");
}

// The point after Read's copy: a conditional jump in Read's own code (conn.go), after
// `copy_call` (the last call before it), testing n's register when it says so.
void check_read_copied(const std::string& bin, const GoProbePoint& p, const std::string& copy_call,
                       const std::string& copy_file) {
  INFO(p.description);
  auto insns = go_objdump(bin, kRead);
  check_bytes(bin, p, insns);
  size_t i = index_at(insns, p.vaddr);
  CHECK(std::regex_match(insns[i].text, std::regex(R"(J(E|EQ|NE) 0x[0-9a-f]+)")));
  CHECK(insns[i].pos.starts_with("conn.go:"));
  CHECK(p.n_pt_regs_offset == pt_regs_offset(p.n_register));
  CHECK_FALSE(p.skip_if_cf_or_zf);
  if (p.description.find("after test") != std::string::npos)
    CHECK(insns[i - 1].text == "TESTQ " + go_reg(p.n_register) + ", " + go_reg(p.n_register));
  std::string last_call;
  for (size_t k = 0; k < i; k++)
    if (insns[k].text.starts_with("CALL ")) last_call = insns[k].text + " @" + insns[k].pos;
  CHECK_THAT(last_call, Catch::StartsWith("CALL " + copy_call + "(SB) @" + copy_file + ":"));
}

// Functions a GoBinary must agree with `go tool nm` of `oracle` on.
void check_functions(const GoBinary& g, const std::string& oracle) {
  for (const char* name : {kWrite, kRead, "bytes.(*Reader).Read", "main.main", "runtime.memmove"}) {
    INFO(name);
    auto nm = go_nm(oracle, name);
    REQUIRE(nm);
    auto f = g.function(name);
    REQUIRE(f);
    CHECK(f->entry == nm->addr);
    CHECK(f->end >= nm->addr + nm->size); // end: the next function, after the padding
    CHECK(f->end < nm->addr + nm->size + 64);
    CHECK(g.function_at(f->entry) == name);
    CHECK(g.function_at(f->end - 1) == name);
  }
  CHECK(g.source_file_at(g.function(kRead)->entry).ends_with("/crypto/tls/conn.go"));
  CHECK(g.source_file_at(g.function("main.main")->entry).ends_with("/tlsprog/main.go"));
  CHECK_FALSE(g.function("crypto/tls.(*Conn).NoSuchMethod"));
}

std::string module_of(const std::string& bin) {
  std::istringstream lines(run("go version -m " + quote(bin)));
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("\tpath\t")) return line.substr(6);
  return {};
}

// The same probes, field by field.
void check_same_probes(const GoTlsProbes& a, const GoTlsProbes& b) {
  CHECK(a.write_entry.vaddr == b.write_entry.vaddr);
  CHECK(a.read_entry.vaddr == b.read_entry.vaddr);
  REQUIRE(a.read_copied.size() == b.read_copied.size());
  for (size_t i = 0; i < a.read_copied.size(); i++) {
    CHECK(a.read_copied[i].vaddr == b.read_copied[i].vaddr);
    CHECK(a.read_copied[i].n_register == b.read_copied[i].n_register);
  }
}

} // namespace

TEST_CASE("GoBinary: version, module and functions of a normal and a stripped build", "[go]") {
  REQUIRE_GO();
  auto& builds = GoBuilds::get();
  std::string plain = builds.bin("plain"), stripped = builds.bin("stripped");
  CHECK(go_nm(stripped, kRead) == std::nullopt); // really stripped: no symbols for nm
  for (const std::string& bin : {plain, stripped}) {
    INFO(bin);
    std::string error;
    auto g = GoBinary::open(bin, &error);
    INFO(error);
    REQUIRE(g);
    CHECK(g->version() == builds.go_version());
    CHECK(g->module_path() == "odigos.test/tlsprog");
    CHECK(g->module_path() == module_of(bin));
    CHECK(g->minor_version() == std::atoi(builds.go_version().c_str() + 4));
    CHECK(GoBinary::minor_version_of(bin) == g->minor_version()); // build info alone
    CHECK(g->register_abi());
    CHECK((g->pclntab_magic() == 0xfffffff0 || g->pclntab_magic() == 0xfffffff1));
    CHECK(g->function_count() > 1000);
    check_functions(*g, plain); // -s -w moves no code: the unstripped build is the oracle
  }
}

TEST_CASE("GoBinary::minor_version_of: 0 for what is not a Go executable", "[go]") {
  CHECK(GoBinary::minor_version_of("/bin/sh") == 0);
  CHECK(GoBinary::minor_version_of("/etc/hostname") == 0);
  CHECK(GoBinary::minor_version_of("/nonexistent/file") == 0);
}

TEST_CASE("GoBinary: PIE, externally linked and section-less files", "[go]") {
  REQUIRE_GO();
  auto& builds = GoBuilds::get();
  SECTION("PIE (internal linking: .data.rel.ro.gopclntab)") {
    std::string pie = builds.bin("pie"), stripped = builds.bin("pie-stripped");
    auto g = GoBinary::open(stripped, nullptr);
    REQUIRE(g);
    CHECK(g->elf().is_dyn());
    check_functions(*g, pie);
    // A relocated word the file leaves 0 (the pclntab's text start): read from its
    // R_X86_64_RELATIVE relocation instead.
    auto bytes = read_file(stripped);
    const uint8_t hdr[8] = {0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8};
    size_t at = 0;
    for (size_t i = 0; i + 64 < bytes.size() && at == 0; i += 8)
      if (std::memcmp(&bytes[i], hdr, sizeof hdr) == 0) at = i;
    if (at == 0) WARN("no Go 1.18/1.19 pclntab header to patch: the relocation fallback is not tested");
    if (at != 0) {
      std::memset(&bytes[at + 24], 0, 8);
      std::string patched = stripped + ".notextstart";
      write_file(patched, bytes);
      std::string error;
      auto p = GoBinary::open(patched, &error);
      INFO(error);
      REQUIRE(p);
      check_functions(*p, pie);
    }
  }
  SECTION("externally linked (cgo): no pclntab section, found by its header") {
    std::string why;
    std::string ext = builds.bin("ext", &why), stripped = builds.bin("ext-stripped", &why);
    if (ext.empty() || stripped.empty()) {
      WARN("externally linked variant skipped: " << why);
      return;
    }
    std::string error;
    auto g = GoBinary::open(stripped, &error);
    INFO(error);
    REQUIRE(g);
    CHECK(g->version() == builds.go_version());
    CHECK(g->module_path() == "odigos.test/tlsprog");
    check_functions(*g, ext);
    auto probes = find_go_tls_probes(stripped, &error);
    INFO(error);
    REQUIRE(probes);
    CHECK(probes->read_copied.size() == 1);
    for (const GoProbePoint* p : {&probes->write_entry, &probes->read_entry}) {
      auto b = file_bytes(stripped, p->file_offset, 15);
      CHECK(is_emulated_entry(b.data(), b.size()));
    }
  }
  SECTION("no section headers at all: build info and pclntab found in the segments") {
    std::string stripped = builds.bin("stripped");
    auto bytes = read_file(stripped);
    REQUIRE(bytes.size() > 64);
    std::memset(&bytes[0x28], 0, 8); // e_shoff
    std::memset(&bytes[0x3c], 0, 4); // e_shnum, e_shstrndx
    std::string bare = stripped + ".nosections";
    write_file(bare, bytes);
    REQUIRE(run("readelf -SW " + quote(bare) + " 2>&1").find("no sections") != std::string::npos);
    std::string error;
    auto g = GoBinary::open(bare, &error);
    INFO(error);
    REQUIRE(g);
    CHECK(g->version() == builds.go_version());
    CHECK(g->module_path() == "odigos.test/tlsprog");
    check_functions(*g, builds.bin("plain"));
    auto a = find_go_tls_probes(bare, &error), b = find_go_tls_probes(stripped, &error);
    REQUIRE(a);
    REQUIRE(b);
    check_same_probes(*a, *b);
  }
}

TEST_CASE("find_go_tls_probes: Write and Read entries are the jbe after the stack check", "[go]") {
  REQUIRE_GO();
  auto& builds = GoBuilds::get();
  std::string plain = builds.bin("plain"), stripped = builds.bin("stripped");
  std::string error;
  auto p = find_go_tls_probes(plain, &error);
  INFO(error);
  REQUIRE(p);
  CHECK(p->go_version == builds.go_version());
  CHECK(p->register_abi);
  check_entry(plain, kWrite, p->write_entry);
  check_entry(plain, kRead, p->read_entry);
  // The program's net/http client: the trace linker's points, the same kind of entry.
  REQUIRE(p->http_round_trip);
  REQUIRE(p->http_request_write);
  check_entry(plain, "net/http.(*persistConn).roundTrip", *p->http_round_trip);
  check_entry(plain, "net/http.(*Request).write", *p->http_request_write);
  auto ps = find_go_tls_probes(stripped, &error);
  REQUIRE(ps);
  check_same_probes(*p, *ps);
  REQUIRE(ps->http_round_trip);
  CHECK(ps->http_round_trip->file_offset == p->http_round_trip->file_offset);
  CHECK(ps->http_request_write->file_offset == p->http_request_write->file_offset);
  CHECK(ps->write_entry.file_offset == p->write_entry.file_offset);
  CHECK(ps->read_entry.file_offset == p->read_entry.file_offset);
  for (const GoProbePoint* q : {&ps->write_entry, &ps->read_entry}) { // the stripped file's own bytes
    auto b = file_bytes(stripped, q->file_offset, 15);
    CHECK(is_emulated_entry(b.data(), b.size()));
  }
  // The offsets are file offsets: the executable segment maps them back to the address.
  auto elf = ElfFile::open(stripped, &error);
  REQUIRE(elf);
  CHECK(elf->vaddr_at_offset(ps->read_entry.file_offset) == ps->read_entry.vaddr);
}

TEST_CASE("find_go_tls_probes: Read's point after the copy, inlined or called", "[go]") {
  REQUIRE_GO();
  auto& builds = GoBuilds::get();
  std::string error;
  SECTION("inlined bytes.(*Reader).Read: after its memmove") {
    std::string plain = builds.bin("plain");
    auto p = find_go_tls_probes(plain, &error);
    INFO(error);
    REQUIRE(p);
    INFO(p->read_copied_why);
    REQUIRE(p->read_copied.size() == 1);
    CHECK(p->read_copied_why.empty());
    check_read_copied(plain, p->read_copied[0], "runtime.memmove", "reader.go");
    CHECK(p->read_copied[0].vaddr > p->read_entry.vaddr);
    auto s = find_go_tls_probes(builds.bin("stripped"), &error);
    REQUIRE(s);
    check_same_probes(*p, *s);
  }
  SECTION("not inlined (-gcflags=all=-l): after the call, n in rax") {
    std::string noinline = builds.bin("noinline");
    auto p = find_go_tls_probes(noinline, &error);
    INFO(error);
    REQUIRE(p);
    INFO(p->read_copied_why);
    REQUIRE(p->read_copied.size() == 1);
    check_read_copied(noinline, p->read_copied[0], "bytes.(*Reader).Read", "conn.go");
    CHECK(p->read_copied[0].n_register == "rax"); // the first result register
    check_entry(noinline, kWrite, p->write_entry);
    check_entry(noinline, kRead, p->read_entry);
  }
}

// Oracle: the offset of `member` in struct `type` from the binary's own DWARF (readelf);
// nullopt when readelf or the DWARF is missing.
std::optional<int> dwarf_member_offset(const std::string& bin, const std::string& type, const std::string& member) {
  int st = 0;
  std::string out = run("readelf --debug-dump=info " + quote(bin) +
                            " 2>/dev/null | awk '/DW_AT_name *: " + type + "$/{getline n; if (n ~ /DW_AT_byte_size/) f=1; next} "
                            "f && /DW_AT_name *: " + member + "$/{m=1; next} "
                            "m && /DW_AT_data_member_location/{print $NF; exit}'",
                        &st);
  if (st != 0 || out.empty()) return std::nullopt;
  return std::atoi(out.c_str());
}

// The goroutine-creation point of a build (find_go_tls_probes' `spawn`), required.
GoSpawnProbe spawn_probe_of(const std::string& bin) {
  std::string error;
  auto p = find_go_tls_probes(bin, &error);
  INFO(error);
  REQUIRE(p);
  INFO(p->spawn_why);
  REQUIRE(p->spawn);
  return *p->spawn;
}

TEST_CASE("find_go_tls_probes: the goroutine-creation point and the runtime's offsets", "[go]") {
  REQUIRE_GO();
  const std::string plain = GoBuilds::get().bin("plain");
  const GoSpawnProbe p = spawn_probe_of(plain);
  // The call to runtime.runqput in runtime.newproc's closure, by Go's own disassembler.
  std::istringstream lines(run("go tool objdump -s '^runtime.newproc.func1$' " + quote(plain) + " 2>/dev/null"));
  std::string line;
  uint64_t call = 0;
  while (std::getline(lines, line))
    if (line.find("CALL runtime.runqput(SB)") != std::string::npos) {
      std::istringstream ws(line); // "  proc.go:4101  0x43c700  e83b410000  CALL runtime.runqput(SB)"
      std::string where, addr;
      ws >> where >> addr;
      call = std::stoull(addr, nullptr, 16);
    }
  REQUIRE(call != 0);
  CHECK(p.point.vaddr == call);
  auto b = file_bytes(plain, p.point.file_offset, 15);
  CHECK(is_emulated_entry(b.data(), b.size()));
  CHECK(b[0] == 0xe8); // call rel32
  // The exit point: runtime.goexit0's entry, the jbe after its stack check.
  check_entry(plain, "runtime.goexit0", p.exit_point);
  // The offsets, against the DWARF of the same build.
  auto g_m = dwarf_member_offset(plain, "runtime.g", "m");
  auto m_curg = dwarf_member_offset(plain, "runtime.m", "curg");
  if (!g_m || !m_curg) {
    WARN("offsets not checked: readelf (binutils) or the build's DWARF is missing");
  } else {
    CHECK(p.g_m_offset == *g_m);
    CHECK(p.m_curg_offset == *m_curg);
  }
  // A stripped build: the same point from the pclntab alone.
  const GoSpawnProbe ps = spawn_probe_of(GoBuilds::get().bin("stripped"));
  CHECK(ps.point.file_offset == p.point.file_offset);
  CHECK(ps.m_curg_offset == p.m_curg_offset);
}

TEST_CASE("GoBinary and find_go_tls_probes: what they refuse", "[go]") {
  std::string error;
  SECTION("not ELF, not Go") {
    CHECK_FALSE(GoBinary::open(ODIGOS_FIXTURES_DIR "/go/tlsprog/main.go", &error));
    CHECK_THAT(error, Catch::Contains("not an ELF file"));
    CHECK_FALSE(find_go_tls_probes("/proc/self/exe", &error)); // this C++ test binary
    CHECK_THAT(error, Catch::Contains("is not a Go executable (no Go build info)"));
    CHECK_FALSE(GoBinary::open("/nonexistent/x", &error));
    CHECK_THAT(error, Catch::Contains("/nonexistent/x"));
  }
  REQUIRE_GO();
  auto& builds = GoBuilds::get();
  std::string stripped = builds.bin("stripped");
  auto bytes = read_file(stripped);
  auto find = [&](const std::string& needle, size_t align, size_t from = 0) {
    for (size_t i = from; i + needle.size() <= bytes.size(); i += align)
      if (std::memcmp(&bytes[i], needle.data(), needle.size()) == 0) return i;
    return size_t(0);
  };
  SECTION("Go without crypto/tls") {
    std::string tool = run("go env GOTOOLDIR");
    while (!tool.empty() && tool.back() == '\n') tool.pop_back();
    tool += "/buildid";
    if (!std::filesystem::exists(tool)) {
      WARN("no " << tool << ": Go-without-TLS case skipped");
      return;
    }
    auto g = GoBinary::open(tool, &error);
    INFO(error);
    REQUIRE(g);
    CHECK_FALSE(g->function(kRead));
    CHECK_FALSE(find_go_tls_probes(tool, &error));
    CHECK_THAT(error, Catch::Contains("no crypto/tls in"));
  }
  SECTION("Go before 1.17: stack-based calling convention") {
    // The inline build info string: "go1.19.8" becomes "go1.16.8" (same length).
    std::string v = builds.go_version();
    size_t at = find(std::string("\xff Go buildinf:", 14), 16);
    REQUIRE(at != 0);
    size_t vat = find(v, 1, at);
    REQUIRE(vat > at);
    REQUIRE(vat < at + 64);
    size_t dot = v.find('.', 4);
    std::string old = "go1.16" + (dot == std::string::npos ? std::string() : v.substr(dot));
    old.resize(v.size(), ' ');
    std::memcpy(&bytes[vat], old.data(), old.size());
    std::string patched = stripped + ".go116";
    write_file(patched, bytes);
    auto g = GoBinary::open(patched, &error);
    INFO(error);
    REQUIRE(g);
    CHECK(g->minor_version() == 16);
    CHECK_FALSE(g->register_abi());
    CHECK_FALSE(find_go_tls_probes(patched, &error));
    CHECK_THAT(error, Catch::Contains("Go before 1.17 passes arguments on the stack"));
  }
  SECTION("pclntab of Go before 1.16, and no pclntab at all") {
    const uint8_t tail[4] = {0, 0, 1, 8};
    size_t at = 0;
    for (size_t i = 0; i + 8 < bytes.size(); i += 8)
      if (bytes[i + 1] == 0xff && bytes[i + 2] == 0xff && bytes[i + 3] == 0xff &&
          (bytes[i] == 0xf0 || bytes[i] == 0xf1) && std::memcmp(&bytes[i + 4], tail, 4) == 0) {
        at = i;
        break;
      }
    REQUIRE(at != 0);
    bytes[at] = 0xfb;
    std::string old = stripped + ".pcln12";
    write_file(old, bytes);
    CHECK_FALSE(GoBinary::open(old, &error));
    CHECK_THAT(error, Catch::Contains("Go before 1.16 (magic 0xfffffffb) is not supported"));
    bytes[at] = 0x00; // no valid header anywhere, no section headers to name it
    std::memset(&bytes[0x28], 0, 8);
    std::memset(&bytes[0x3c], 0, 4);
    std::string none = stripped + ".nopclntab";
    write_file(none, bytes);
    CHECK_FALSE(GoBinary::open(none, &error));
    CHECK_THAT(error, Catch::Contains("no pclntab found"));
  }
}
