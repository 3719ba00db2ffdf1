#include "loader/go_binary.hpp"

#include <algorithm>
#include <capstone/capstone.h>
#include <cstddef>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <set>
#include <span>
#include <string_view>
#include <sys/user.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

#include "loader/probe_points.hpp"

namespace odigos {

namespace {

// Formats written by the Go linker (learned from the Go 1.19 sources: runtime/symtab.go,
// debug/gosym/pclntab.go, debug/buildinfo/buildinfo.go, cmd/link).
constexpr uint32_t kMagic116 = 0xfffffffa; // Go 1.16, 1.17
constexpr uint32_t kMagic118 = 0xfffffff0; // Go 1.18, 1.19
constexpr uint32_t kMagic120 = 0xfffffff1; // Go 1.20 and later
constexpr uint32_t kMagic12 = 0xfffffffb;  // Go 1.2 .. 1.15
constexpr std::string_view kBuildInfoMagic{"\xff Go buildinf:", 14};
constexpr size_t kBuildInfoScan = 64 * 1024;
constexpr size_t kMaxFuncs = 10'000'000;

// _func fields after the entry (4 bytes from Go 1.18, a pointer before), 4 bytes each.
enum FuncField { kNameOff = 1, kPcFile = 5, kCuOffset = 8 };

// Bounds-checked little-endian reads of an untrusted byte range.
struct Bytes {
  std::span<const uint8_t> b;
  bool has(uint64_t off, uint64_t len) const { return off <= b.size() && len <= b.size() - off; }
  std::optional<uint32_t> u32(uint64_t off) const {
    if (!has(off, 4)) return std::nullopt;
    uint32_t v;
    std::memcpy(&v, b.data() + off, 4);
    return v;
  }
  std::optional<uint64_t> u64(uint64_t off) const {
    if (!has(off, 8)) return std::nullopt;
    uint64_t v;
    std::memcpy(&v, b.data() + off, 8);
    return v;
  }
  // The NUL-terminated string at off; nullopt when it runs off the end.
  std::optional<std::string_view> cstr(uint64_t off) const {
    if (off >= b.size()) return std::nullopt;
    const auto* p = reinterpret_cast<const char*>(b.data() + off);
    const void* nul = std::memchr(p, 0, b.size() - off);
    if (!nul) return std::nullopt;
    return std::string_view(p, size_t(static_cast<const char*>(nul) - p));
  }
  std::optional<uint32_t> uvarint(uint64_t* off) const {
    uint32_t v = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
      if (*off >= b.size()) return std::nullopt;
      uint8_t c = b[(*off)++];
      v |= uint32_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    return std::nullopt;
  }
};

// What GoBinary::open learns from the file with libelf besides what ElfFile offers.
struct ElfExtras {
  std::optional<std::pair<uint64_t, uint64_t>> pclntab_section; // addr, size
  std::optional<uint64_t> buildinfo_section;
  std::optional<uint64_t> first_data_segment; // first PT_LOAD with PF_W and not PF_X
  std::vector<std::pair<uint64_t, uint64_t>> relative; // R_X86_64_RELATIVE: where, value (sorted)
};

bool read_elf_extras(const std::string& path, ElfExtras* out, std::string* error) {
  if (elf_version(EV_CURRENT) == EV_NONE) {
    *error = "libelf: version mismatch";
    return false;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = fmt::format("cannot open '{}': {}", path, std::strerror(errno));
    return false;
  }
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  GElf_Ehdr eh;
  bool ok = elf && elf_kind(elf) == ELF_K_ELF && gelf_getehdr(elf, &eh);
  if (!ok) *error = fmt::format("'{}' is not an ELF file", path);
  size_t phnum = 0;
  if (ok && elf_getphdrnum(elf, &phnum) == 0) {
    for (size_t i = 0; i < phnum; i++) {
      GElf_Phdr ph;
      if (!gelf_getphdr(elf, int(i), &ph) || ph.p_type != PT_LOAD) continue;
      if ((ph.p_flags & PF_W) && !(ph.p_flags & PF_X) && !out->first_data_segment) out->first_data_segment = ph.p_vaddr;
    }
  }
  size_t shstrndx = 0;
  if (ok && elf_getshdrstrndx(elf, &shstrndx) == 0) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) continue;
      const char* name = elf_strptr(elf, shstrndx, sh.sh_name);
      std::string_view n = name ? name : "";
      if ((n == ".gopclntab" || n == ".data.rel.ro.gopclntab") && sh.sh_type == SHT_PROGBITS)
        out->pclntab_section = {{sh.sh_addr, sh.sh_size}};
      else if (n == ".go.buildinfo" && sh.sh_type == SHT_PROGBITS)
        out->buildinfo_section = sh.sh_addr;
      else if (sh.sh_type == SHT_RELA && eh.e_type == ET_DYN && sh.sh_entsize) {
        Elf_Data* data = elf_getdata(scn, nullptr);
        size_t count = data ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; i < count; i++) {
          GElf_Rela r;
          if (gelf_getrela(data, int(i), &r) && GELF_R_TYPE(r.r_info) == R_X86_64_RELATIVE)
            out->relative.emplace_back(r.r_offset, uint64_t(r.r_addend));
        }
      }
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  std::sort(out->relative.begin(), out->relative.end());
  return ok;
}

// "go1.19.8" -> 19; "devel go1.22-abcdef ..." -> 22; else 0.
int minor_of(const std::string& version) {
  size_t at = version.find("go1.");
  if (at == std::string::npos) return 0;
  int minor = 0;
  for (size_t i = at + 4; i < version.size() && version[i] >= '0' && version[i] <= '9' && minor < 1000; i++)
    minor = minor * 10 + (version[i] - '0');
  return minor;
}

// The "path" line of the module info ("path\tmod/path\nmod\t...").
std::string module_path_of(std::string_view modinfo) {
  // The go command frames the text with 16-byte sentinels ending in '\n'.
  if (modinfo.size() >= 33 && modinfo[modinfo.size() - 17] == '\n')
    modinfo = modinfo.substr(16, modinfo.size() - 32);
  else
    return {};
  while (!modinfo.empty()) {
    size_t nl = modinfo.find('\n');
    std::string_view line = modinfo.substr(0, nl);
    if (line.starts_with("path\t")) return std::string(line.substr(5));
    if (nl == std::string_view::npos) break;
    modinfo.remove_prefix(nl + 1);
  }
  return {};
}

} // namespace

struct GoBinary::Impl {
  struct Func {
    uint64_t entry = 0;
    uint64_t end = 0;
    uint64_t off = 0; // of its _func in the pclntab
  };

  ElfFile elf;
  std::vector<std::pair<uint64_t, uint64_t>> relative;
  std::string version;
  std::string module_path;
  int minor = 0;

  Bytes tab;       // the pclntab, from its header to the end of its segment's file-backed part
  uint64_t tab_vaddr = 0;
  uint32_t magic = 0;
  uint32_t quantum = 1;
  uint64_t text_start = 0;
  uint64_t funcnametab = 0, cutab = 0, filetab = 0, pctab = 0, functab = 0; // offsets in tab
  std::vector<Func> funcs;

  explicit Impl(ElfFile&& e) : elf(std::move(e)) {}

  std::string fail(const std::string& what) const { return "'" + elf.path() + "' " + what; }

  // A pointer-sized word at vaddr of the file, its R_X86_64_RELATIVE value when the file
  // holds 0 there (position-independent files may leave relocated words unfilled).
  std::optional<uint64_t> word_at(uint64_t vaddr) const {
    auto b = elf.bytes_at(vaddr, 8);
    if (b.size() < 8) return std::nullopt;
    uint64_t v;
    std::memcpy(&v, b.data(), 8);
    if (v == 0 && !relative.empty()) {
      auto it = std::lower_bound(relative.begin(), relative.end(), std::make_pair(vaddr, uint64_t(0)));
      if (it != relative.end() && it->first == vaddr) v = it->second;
    }
    return v;
  }

  bool go118() const { return magic == kMagic118 || magic == kMagic120; }
  uint64_t entry_size() const { return go118() ? 4 : 8; }

  std::optional<uint32_t> field(const Func& f, int n) const { return tab.u32(f.off + entry_size() + uint64_t(n - 1) * 4); }

  std::optional<std::string_view> name(const Func& f) const {
    auto off = field(f, kNameOff);
    if (!off) return std::nullopt;
    return tab.cstr(funcnametab + *off);
  }

  // The pc-value table at pctab+off, run from the function's entry to pc.
  std::optional<int32_t> pcvalue(uint32_t off, uint64_t entry, uint64_t pc) const {
    uint64_t p = pctab + off;
    int32_t val = -1;
    uint64_t at = entry;
    for (bool first = true;; first = false) {
      auto uv = tab.uvarint(&p);
      if (!uv || (*uv == 0 && !first)) return std::nullopt;
      auto delta = (*uv & 1) ? int32_t(~(*uv >> 1)) : int32_t(*uv >> 1);
      auto pcdelta = tab.uvarint(&p);
      if (!pcdelta) return std::nullopt;
      at += uint64_t(*pcdelta) * quantum;
      val += delta;
      if (pc < at) return val;
    }
  }

  const Func* func_at(uint64_t pc) const {
    auto it = std::upper_bound(funcs.begin(), funcs.end(), pc, [](uint64_t v, const Func& f) { return v < f.entry; });
    if (it == funcs.begin()) return nullptr;
    --it;
    return pc < it->end ? &*it : nullptr;
  }

  bool read_build_info(const ElfExtras& x, std::string* error);
  // Parses the pclntab header at vaddr; "" when it is one, else why not.
  std::string parse_pclntab(uint64_t vaddr, uint64_t size);
  bool find_pclntab(const ElfExtras& x, std::string* error);
};

bool GoBinary::Impl::read_build_info(const ElfExtras& x, std::string* error) {
  std::optional<uint64_t> start = x.buildinfo_section ? x.buildinfo_section : x.first_data_segment;
  std::span<const uint8_t> data;
  if (start) data = elf.bytes_at(*start, kBuildInfoScan);
  // The blob: the magic, 16-byte aligned, then pointer size, flags, and either two
  // pointers to Go strings (version, module info) or, flag 2 (Go >= 1.18), the two
  // strings inline after the 32-byte header, each prefixed with its uvarint length.
  size_t at = std::string_view::npos;
  for (size_t i = 0; i + 32 <= data.size(); i += 16) {
    if (std::memcmp(data.data() + i, kBuildInfoMagic.data(), kBuildInfoMagic.size()) == 0) {
      at = i;
      break;
    }
  }
  if (at == std::string_view::npos) {
    *error = fail("is not a Go executable (no Go build info)");
    return false;
  }
  Bytes blob{data.subspan(at)};
  uint8_t ptr_size = blob.b[14], flags = blob.b[15];
  std::string modinfo;
  if (flags & 2) {
    uint64_t p = 32;
    for (std::string* out : {&version, &modinfo}) {
      uint64_t len = 0;
      for (unsigned shift = 0; shift < 64; shift += 7) { // a 64-bit uvarint
        if (p >= blob.b.size()) break;
        uint8_t c = blob.b[p++];
        len |= uint64_t(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
      }
      if (!blob.has(p, len)) break;
      out->assign(reinterpret_cast<const char*>(blob.b.data() + p), len);
      p += len;
    }
  } else if (ptr_size == 8 && (flags & 1) == 0) {
    // Pointers to string headers {data, len} elsewhere in the file.
    auto read_string = [&](uint64_t header_ptr, std::string* out) {
      auto hdr = word_at(header_ptr);
      if (!hdr) return;
      auto ptr = word_at(*hdr), len = word_at(*hdr + 8);
      if (!ptr || !len || *len > (1u << 20)) return;
      auto s = elf.bytes_at(*ptr, *len);
      if (s.size() == *len) out->assign(reinterpret_cast<const char*>(s.data()), s.size());
    };
    uint64_t blob_vaddr = *start + at;
    read_string(blob_vaddr + 16, &version);
    read_string(blob_vaddr + 24, &modinfo);
  } else {
    *error = fail(fmt::format("has Go build info for another architecture (pointer size {}, flags {:#x})",
                              ptr_size, flags));
    return false;
  }
  if (version.empty()) {
    *error = fail("has unreadable Go build info (no version string)");
    return false;
  }
  module_path = module_path_of(modinfo);
  minor = minor_of(version);
  return true;
}

std::string GoBinary::Impl::parse_pclntab(uint64_t vaddr, uint64_t size) {
  tab = Bytes{elf.bytes_at(vaddr, size)};
  tab_vaddr = vaddr;
  funcs.clear();
  auto m = tab.u32(0);
  if (!m || !tab.has(0, 8)) return "too short";
  magic = *m;
  if (magic == kMagic12) return "pclntab of Go before 1.16 (magic 0xfffffffb) is not supported";
  if (magic != kMagic116 && magic != kMagic118 && magic != kMagic120)
    return fmt::format("unknown pclntab magic {:#x}", magic);
  if (tab.b[4] != 0 || tab.b[5] != 0 || tab.b[7] != 8) return "not an x86-64 pclntab header";
  quantum = tab.b[6];
  if (quantum != 1) return fmt::format("pc quantum {} (not x86)", quantum);
  // Header words after the first 8 bytes: nfunc, nfiles, [textStart (1.18+)],
  // funcnametab, cutab, filetab, pctab, functab offsets (from the header).
  auto word = [&](int i) { return tab.u64(8 + uint64_t(i) * 8); };
  int w = 2;
  auto nfunc = word(0);
  if (go118()) {
    auto ts = word(w++);
    if (ts && *ts == 0) ts = word_at(vaddr + 8 + 2 * 8); // an unfilled relocated word
    if (!ts || *ts == 0) return "no text start in the pclntab header";
    text_start = *ts;
  }
  auto a = word(w), b = word(w + 1), c = word(w + 2), d = word(w + 3), e = word(w + 4);
  if (!nfunc || !e) return "truncated header";
  if (*nfunc == 0 || *nfunc > kMaxFuncs) return fmt::format("implausible function count {}", *nfunc);
  funcnametab = *a;
  cutab = *b;
  filetab = *c;
  pctab = *d;
  functab = *e;
  for (uint64_t off : {funcnametab, cutab, filetab, pctab, functab})
    if (off < 8 || off >= tab.b.size()) return "header offsets outside the table";
  // functab: nfunc+1 {entry, _func offset from functab} pairs; the last entry is the end
  // of the text. Entries are 4-byte offsets from text_start (1.18+) or pointers.
  const uint64_t esz = entry_size();
  if (!tab.has(functab, (*nfunc + 1) * 2 * esz)) return "function table runs off the end";
  auto entry_at = [&](uint64_t off) -> std::optional<uint64_t> {
    if (go118()) {
      auto v = tab.u32(off);
      return v ? std::optional<uint64_t>(text_start + *v) : std::nullopt;
    }
    return word_at(tab_vaddr + off);
  };
  funcs.reserve(*nfunc);
  for (uint64_t i = 0; i <= *nfunc; i++) {
    uint64_t at = functab + i * 2 * esz;
    auto entry = entry_at(at);
    if (!entry) return "unreadable function table";
    if (!funcs.empty()) {
      if (*entry < funcs.back().entry) return "function table not sorted";
      funcs.back().end = *entry;
    }
    if (i == *nfunc) break;
    uint64_t fo = go118() ? uint64_t(*tab.u32(at + esz)) : *tab.u64(at + esz);
    if (!tab.has(functab + fo, esz + 8 * 4)) return "a function record runs off the end";
    funcs.push_back({*entry, 0, functab + fo});
  }
  // Cross-checks: each _func starts with its own entry; the names are strings.
  for (size_t i : {size_t(0), funcs.size() / 2, funcs.size() - 1}) {
    const Func& f = funcs[i];
    auto own = entry_at(f.off);
    if (!own || *own != f.entry) return "function records do not match the function table";
    if (!name(f)) return "unreadable function name";
  }
  return {};
}

bool GoBinary::Impl::find_pclntab(const ElfExtras& x, std::string* error) {
  if (x.pclntab_section) {
    std::string why = parse_pclntab(x.pclntab_section->first, x.pclntab_section->second);
    if (why.empty()) return true;
    *error = fail("has a .gopclntab section that cannot be read: " + why);
    return false;
  }
  // No section (external linking merges it into .data.rel.ro; strip --strip-sections):
  // look for a valid header, 8-byte aligned, in the non-executable segments.
  std::string last_why;
  for (const ElfSegment& seg : elf.segments()) {
    if (seg.executable || seg.filesz < 64) continue;
    auto bytes = elf.bytes_at(seg.vaddr, seg.filesz);
    for (uint64_t off = (8 - seg.vaddr % 8) % 8; off + 64 <= bytes.size(); off += 8) {
      const uint8_t* p = bytes.data() + off;
      if (p[1] != 0xff || p[2] != 0xff || p[3] != 0xff || p[4] != 0 || p[5] != 0 || p[6] != 1 || p[7] != 8) continue;
      if (p[0] != 0xfa && p[0] != 0xf0 && p[0] != 0xf1 && p[0] != 0xfb) continue;
      std::string why = parse_pclntab(seg.vaddr + off, bytes.size() - off);
      if (why.empty()) return true;
      last_why = why;
    }
  }
  funcs.clear();
  *error = fail("has Go build info but no pclntab found (no .gopclntab section, no valid header in its "
                "segments" + (last_why.empty() ? std::string(")") : "; last candidate: " + last_why + ")"));
  return false;
}

GoBinary::GoBinary(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GoBinary::GoBinary(GoBinary&&) noexcept = default;
GoBinary& GoBinary::operator=(GoBinary&&) noexcept = default;
GoBinary::~GoBinary() = default;

std::optional<GoBinary> GoBinary::open(const std::string& path, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  auto elf = ElfFile::open(path, error);
  if (!elf) return std::nullopt;
  ElfExtras x;
  if (!read_elf_extras(path, &x, error)) return std::nullopt;
  auto impl = std::make_unique<Impl>(std::move(*elf));
  impl->relative = std::move(x.relative);
  if (!impl->read_build_info(x, error) || !impl->find_pclntab(x, error)) return std::nullopt;
  return GoBinary(std::move(impl));
}

int GoBinary::minor_version_of(const std::string& path) {
  std::string error;
  auto elf = ElfFile::open(path, &error);
  if (!elf) return 0;
  ElfExtras x;
  if (!read_elf_extras(path, &x, &error)) return 0;
  Impl impl(std::move(*elf));
  impl.relative = std::move(x.relative);
  return impl.read_build_info(x, &error) ? impl.minor : 0;
}

const ElfFile& GoBinary::elf() const { return impl_->elf; }
const std::string& GoBinary::version() const { return impl_->version; }
const std::string& GoBinary::module_path() const { return impl_->module_path; }
int GoBinary::minor_version() const { return impl_->minor; }
bool GoBinary::register_abi() const { return impl_->minor >= 17; }
uint32_t GoBinary::pclntab_magic() const { return impl_->magic; }
size_t GoBinary::function_count() const { return impl_->funcs.size(); }

std::optional<GoFunc> GoBinary::function(const std::string& name) const {
  for (const Impl::Func& f : impl_->funcs)
    if (impl_->name(f) == std::string_view(name)) return GoFunc{f.entry, f.end};
  return std::nullopt;
}

std::string GoBinary::function_at(uint64_t pc) const {
  const Impl::Func* f = impl_->func_at(pc);
  auto n = f ? impl_->name(*f) : std::nullopt;
  return n ? std::string(*n) : std::string();
}

std::string GoBinary::source_file_at(uint64_t pc) const {
  const Impl& m = *impl_;
  const Impl::Func* f = m.func_at(pc);
  if (!f) return {};
  auto pcfile = m.field(*f, kPcFile), cu = m.field(*f, kCuOffset);
  if (!pcfile || !cu) return {};
  auto fileno = m.pcvalue(*pcfile, f->entry, pc);
  if (!fileno || *fileno < 0) return {};
  auto fnoff = m.tab.u32(m.cutab + (uint64_t(*cu) + uint64_t(*fileno)) * 4);
  if (!fnoff || *fnoff == 0xffffffff) return {};
  auto s = m.tab.cstr(m.filetab + *fnoff);
  return s ? std::string(*s) : std::string();
}

// ---- crypto/tls probe points -------------------------------------------------

namespace {

// The 16 general-purpose registers in encoding order; their struct pt_regs offsets.
constexpr const char* kGpr[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                  "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
constexpr int kPtRegsOffset[16] = {
    offsetof(user_regs_struct, rax), offsetof(user_regs_struct, rcx), offsetof(user_regs_struct, rdx),
    offsetof(user_regs_struct, rbx), offsetof(user_regs_struct, rsp), offsetof(user_regs_struct, rbp),
    offsetof(user_regs_struct, rsi), offsetof(user_regs_struct, rdi), offsetof(user_regs_struct, r8),
    offsetof(user_regs_struct, r9),  offsetof(user_regs_struct, r10), offsetof(user_regs_struct, r11),
    offsetof(user_regs_struct, r12), offsetof(user_regs_struct, r13), offsetof(user_regs_struct, r14),
    offsetof(user_regs_struct, r15)};
enum { kRax = 0, kRcx = 1, kRbx = 3, kRsp = 4, kR12 = 12, kR14 = 14 };

// Functions of one disassembled Go function (capstone, AT&T syntax, details on).
class GoCode {
public:
  GoCode(csh h, const ElfFile& elf, uint64_t entry, uint64_t end) : h_(h) {
    auto code = elf.bytes_at(entry, end - entry);
    n_ = cs_disasm(h_, code.data(), code.size(), entry, 0, &insns_);
    for (size_t i = 0; i < n_; i++) {
      index_[insns_[i].address] = i;
      if (auto t = direct_target(i); t && is_jump(i)) targets_.insert(*t);
    }
  }
  GoCode(const GoCode&) = delete;
  GoCode& operator=(const GoCode&) = delete;
  ~GoCode() {
    if (insns_) cs_free(insns_, n_);
  }

  size_t size() const { return n_; }
  const cs_insn& at(size_t i) const { return insns_[i]; }
  std::optional<size_t> index_of(uint64_t addr) const {
    auto it = index_.find(addr);
    return it == index_.end() ? std::nullopt : std::optional<size_t>(it->second);
  }
  bool is_target(uint64_t addr) const { return targets_.count(addr) != 0; }

  bool in_group(size_t i, uint8_t g) const {
    const cs_detail* d = insns_[i].detail;
    for (uint8_t k = 0; d && k < d->groups_count; k++)
      if (d->groups[k] == g) return true;
    return false;
  }
  bool is_jump(size_t i) const { return in_group(i, X86_GRP_JUMP); }
  bool is_jcc(size_t i) const { return is_jump(i) && insns_[i].id != X86_INS_JMP && direct_target(i); }
  bool is_control(size_t i) const {
    return is_jump(i) || in_group(i, X86_GRP_CALL) || in_group(i, X86_GRP_RET) || in_group(i, X86_GRP_INT) ||
           in_group(i, X86_GRP_IRET) || insns_[i].id == X86_INS_UD2 || insns_[i].id == X86_INS_HLT;
  }
  std::optional<uint64_t> direct_target(size_t i) const {
    const cs_x86& x = insns_[i].detail->x86;
    if (x.op_count != 1 || x.operands[0].type != X86_OP_IMM) return std::nullopt;
    if (!is_jump(i) && !in_group(i, X86_GRP_CALL)) return std::nullopt;
    return uint64_t(x.operands[0].imm);
  }
  // The general-purpose register family (kGpr index) of a capstone register, or -1.
  int family(unsigned reg) const {
    if (reg == X86_REG_INVALID) return -1;
    static const std::unordered_map<std::string_view, int> names = [] {
      std::unordered_map<std::string_view, int> m;
      static const char* const low[8][4] = {{"eax", "ax", "al", "ah"},   {"ecx", "cx", "cl", "ch"},
                                            {"edx", "dx", "dl", "dh"},   {"ebx", "bx", "bl", "bh"},
                                            {"esp", "sp", "spl", ""},    {"ebp", "bp", "bpl", ""},
                                            {"esi", "si", "sil", ""},    {"edi", "di", "dil", ""}};
      static const char* const high[8][3] = {{"r8d", "r8w", "r8b"},     {"r9d", "r9w", "r9b"},
                                             {"r10d", "r10w", "r10b"},  {"r11d", "r11w", "r11b"},
                                             {"r12d", "r12w", "r12b"},  {"r13d", "r13w", "r13b"},
                                             {"r14d", "r14w", "r14b"},  {"r15d", "r15w", "r15b"}};
      for (int f = 0; f < 16; f++) m[kGpr[f]] = f;
      for (int f = 0; f < 8; f++) {
        for (const char* n : low[f])
          if (*n) m[n] = f;
        for (const char* n : high[f]) m[n] = f + 8;
      }
      return m;
    }();
    const char* n = cs_reg_name(h_, reg);
    if (!n) return -1;
    auto it = names.find(n);
    return it == names.end() ? -1 : it->second;
  }
  std::string text(size_t i) const {
    std::string s = insns_[i].mnemonic;
    if (s == "callq" || s == "jmpq" || s == "retq") s.pop_back();
    if (insns_[i].op_str[0]) s += std::string(" ") + insns_[i].op_str;
    return s;
  }
  // Families of the registers instruction i writes (explicitly or not).
  std::vector<int> written(size_t i) const {
    cs_regs rd, wr;
    uint8_t nrd = 0, nwr = 0;
    std::vector<int> out;
    if (cs_regs_access(h_, &insns_[i], rd, &nrd, wr, &nwr) != CS_ERR_OK) return {-2}; // unknown: all
    for (uint8_t k = 0; k < nwr; k++)
      if (int f = family(wr[k]); f >= 0) out.push_back(f);
    return out;
  }
  // A register operand of the full 64-bit register: its family, else -1.
  int reg64(const cs_x86_op& op) const { return op.type == X86_OP_REG && op.size == 8 ? family(op.reg) : -1; }
  // An [rsp + disp] operand (no index, no segment): disp, else nullopt.
  std::optional<int64_t> rsp_slot(const cs_x86_op& op) const {
    if (op.type != X86_OP_MEM || family(op.mem.base) != kRsp || op.mem.index != X86_REG_INVALID ||
        op.mem.segment != X86_REG_INVALID)
      return std::nullopt;
    return op.mem.disp;
  }

private:
  csh h_;
  cs_insn* insns_ = nullptr;
  size_t n_ = 0;
  std::unordered_map<uint64_t, size_t> index_;
  std::unordered_set<uint64_t> targets_;
};

std::string offset_name(const std::string& fn, uint64_t entry, uint64_t addr) {
  return fmt::format("{}+{:#x}", fn, addr - entry);
}

GoProbePoint make_point(const GoBinary& bin, uint64_t vaddr, std::string description) {
  GoProbePoint p;
  p.vaddr = vaddr;
  p.file_offset = *bin.elf().file_offset(vaddr);
  p.description = std::move(description);
  return p;
}

bool emulated_at(const ElfFile& elf, uint64_t vaddr) {
  auto b = elf.bytes_at(vaddr, 15);
  return is_emulated_entry(b.data(), b.size());
}

// The cheap entry of a Go function: the first instruction when the kernel emulates it,
// else the jbe that follows the stack-bound check (`cmp 0x10(%r14), %rsp`, or of %r12
// after `lea -N(%rsp), %r12` for bigger frames), where no argument register has changed.
std::optional<GoProbePoint> entry_point(const GoBinary& bin, const GoCode& code, const std::string& fn,
                                        const GoFunc& f, std::string* error) {
  const ElfFile& elf = bin.elf();
  if (code.size() == 0) {
    *error = fmt::format("'{}': {} at {:#x} cannot be disassembled", elf.path(), fn, f.entry);
    return std::nullopt;
  }
  if (emulated_at(elf, f.entry))
    return make_point(bin, f.entry, fmt::format("{}: entry ({})", fn, code.text(0)));
  for (size_t i = 0; i + 1 < code.size() && i < 6; i++) {
    const cs_insn& in = code.at(i);
    const cs_x86& x = in.detail->x86;
    if (in.id == X86_INS_CMP && x.op_count == 2) {
      const cs_x86_op* mem = nullptr;
      const cs_x86_op* reg = nullptr;
      for (int k = 0; k < 2; k++) {
        if (x.operands[k].type == X86_OP_MEM) mem = &x.operands[k];
        if (x.operands[k].type == X86_OP_REG) reg = &x.operands[k];
      }
      bool stack_check = mem && reg && code.family(mem->mem.base) == kR14 && mem->mem.disp == 0x10 &&
                         mem->mem.index == X86_REG_INVALID && mem->mem.segment == X86_REG_INVALID &&
                         (code.family(reg->reg) == kRsp || code.family(reg->reg) == kR12);
      if (!stack_check) break;
      const cs_insn& jbe = code.at(i + 1);
      auto target = code.direct_target(i + 1);
      if (jbe.id != X86_INS_JBE || !target || *target <= jbe.address || *target >= f.end) {
        *error = fmt::format("'{}': unknown prologue of {}: '{}' after the stack check", elf.path(), fn,
                             code.text(i + 1));
        return std::nullopt;
      }
      if (!emulated_at(elf, jbe.address)) {
        *error = fmt::format("'{}': {}: the stack-check branch '{}' would be single-stepped", elf.path(), fn,
                             code.text(i + 1));
        return std::nullopt;
      }
      GoProbePoint p = make_point(bin, jbe.address,
                                  fmt::format("{}: {} after {} (stack check)", offset_name(fn, f.entry, jbe.address),
                                              code.text(i + 1), code.text(i)));
      p.skip_if_cf_or_zf = true;
      return p;
    }
    // Before the check only the bound's computation (into r12; a jcc to morestack for huge
    // frames): nothing may touch an argument register or leave the function.
    if (code.is_control(i) && !(code.is_jcc(i) && code.direct_target(i) > in.address)) break;
    bool only_r12 = true;
    for (int w : code.written(i))
      if (w != kR12) only_r12 = false;
    if (!only_r12) break;
  }
  *error = fmt::format("'{}': unknown prologue of {} at {:#x}: starts with '{}', which would be single-stepped, and "
                       "no stack check (cmp 0x10(%r14), ...; jbe) follows",
                       elf.path(), fn, f.entry, code.text(0));
  return std::nullopt;
}

// Where n, a value being followed through straight-line code, lives: registers (kGpr
// families) and 8-byte stack slots ([rsp + disp]).
struct Holders {
  std::set<int> regs;
  std::set<int64_t> slots;
  void kill_slots(int64_t disp, int64_t size) {
    for (auto it = slots.begin(); it != slots.end();)
      it = (*it < disp + size && disp < *it + 8) ? slots.erase(it) : std::next(it);
  }
};

// Follows instruction i's effect on where n is (i: not a control transfer).
void step(const GoCode& code, size_t i, Holders* h) {
  const cs_insn& in = code.at(i);
  const cs_x86& x = in.detail->x86;
  if (in.id == X86_INS_MOV && x.op_count == 2) {
    const cs_x86_op* dst = nullptr;
    const cs_x86_op* src = nullptr;
    for (int k = 0; k < 2; k++) (x.operands[k].access & CS_AC_WRITE ? dst : src) = &x.operands[k];
    if (dst && src) {
      int d = code.reg64(*dst), s = code.reg64(*src);
      auto dslot = code.rsp_slot(*dst), sslot = code.rsp_slot(*src);
      if (d >= 0 && (s >= 0 || (sslot && src->size == 8))) { // reg <- reg, reg <- [rsp+disp]
        bool holds = s >= 0 ? h->regs.count(s) != 0 : h->slots.count(*sslot) != 0;
        if (holds)
          h->regs.insert(d);
        else
          h->regs.erase(d);
        return;
      }
      if (dslot && dst->size == 8 && s >= 0) { // [rsp+disp] <- reg
        h->kill_slots(*dslot, 8);
        if (h->regs.count(s)) h->slots.insert(*dslot);
        return;
      }
    }
  }
  for (int f : code.written(i)) {
    if (f == -2) { // capstone could not say: assume everything changed
      h->regs.clear();
      h->slots.clear();
      return;
    }
    if (f == kRsp) h->slots.clear();
    h->regs.erase(f);
  }
  for (uint8_t k = 0; k < x.op_count; k++) {
    const cs_x86_op& op = x.operands[k];
    if (op.type != X86_OP_MEM || (op.access && !(op.access & CS_AC_WRITE))) continue;
    if (auto slot = code.rsp_slot(op))
      h->kill_slots(*slot, op.size ? op.size : 64);
    else if (code.family(op.mem.base) != -1 || op.mem.index != X86_REG_INVALID)
      h->slots.clear(); // a store through a pointer might hit the frame
  }
}

// The stack slots that hold %rcx's value at the call at index `call` (stores of %rcx
// into [rsp+disp] in the straight-line code just before it).
std::set<int64_t> rcx_slots_before(const GoCode& code, size_t call) {
  std::set<int64_t> slots;
  Holders later; // slots overwritten between a store and the call
  if (code.is_target(code.at(call).address)) return slots;
  for (size_t j = call; j-- > 0 && call - j <= 16;) {
    if (code.is_control(j)) break;
    const cs_x86& x = code.at(j).detail->x86;
    bool store = code.at(j).id == X86_INS_MOV && x.op_count == 2;
    std::optional<int64_t> slot;
    if (store) {
      const cs_x86_op* dst = nullptr;
      const cs_x86_op* src = nullptr;
      for (int k = 0; k < 2; k++) (x.operands[k].access & CS_AC_WRITE ? dst : src) = &x.operands[k];
      store = dst && src && code.reg64(*src) == kRcx && dst->size == 8 && (slot = code.rsp_slot(*dst));
    }
    if (store) {
      bool overwritten = false;
      for (int64_t s : later.slots)
        if (s < *slot + 8 && *slot < s + 8) overwritten = true;
      if (!overwritten) slots.insert(*slot);
    } else {
      auto w = code.written(j);
      if (std::find(w.begin(), w.end(), kRcx) != w.end() || std::find(w.begin(), w.end(), kRsp) != w.end() ||
          std::find(w.begin(), w.end(), -2) != w.end())
        break;
      for (uint8_t k = 0; k < x.op_count; k++)
        if (auto s = code.rsp_slot(x.operands[k]); s && x.operands[k].access & CS_AC_WRITE)
          later.slots.insert(*s); // conservative: a store of any size at disp
    }
    if (code.is_target(code.at(j).address)) break; // other paths join here
  }
  return slots;
}

// From the copy at index `call` (n in `h` right after it), straight-line code up to the
// first conditional jump: that jcc, if n is still in a register there.
std::optional<GoProbePoint> after_copy(const GoBinary& bin, const GoCode& code, const std::string& fn,
                                       const GoFunc& f, size_t call, Holders h, const std::string& copy,
                                       std::string* why) {
  const std::string entry_file = bin.source_file_at(f.entry);
  size_t i = call + 1;
  constexpr size_t kNone = SIZE_MAX;
  size_t prev = kNone; // the instruction walked just before i
  // Walked through a branch target: other paths merge in.
  bool joined = i < code.size() && code.is_target(code.at(i).address);
  for (int steps = 0; steps < 64 && i < code.size(); steps++) {
    const cs_insn& in = code.at(i);
    if (code.is_jcc(i)) {
      if (code.is_target(in.address)) {
        *why = fmt::format("the first conditional jump after {} ({:#x}) is itself a branch target", copy, in.address);
        return std::nullopt;
      }
      // Best: the jcc tests n itself (`test %r, %r`), whatever path led here, since the
      // compiler tests one value in one register on every path into it.
      int n = -1;
      if (prev != kNone && code.at(prev).id == X86_INS_TEST) {
        const cs_x86& t = code.at(prev).detail->x86;
        int a = t.op_count == 2 ? code.reg64(t.operands[0]) : -1;
        if (a >= 0 && a == code.reg64(t.operands[1]) && h.regs.count(a)) n = a;
      }
      if (n < 0 && !joined && !h.regs.empty()) n = h.regs.count(kRax) ? kRax : *h.regs.begin();
      if (n < 0) {
        *why = fmt::format("n, the count {} returns, is not known to be in a register at the first conditional "
                           "jump after it ({:#x}: {})",
                           copy, in.address, code.text(i));
        return std::nullopt;
      }
      if (bin.source_file_at(in.address) != entry_file) {
        *why = fmt::format("the first conditional jump after {} ({:#x}) is not in {}'s own code ({})", copy,
                           in.address, fn, bin.source_file_at(in.address));
        return std::nullopt;
      }
      if (!emulated_at(bin.elf(), in.address)) {
        *why = fmt::format("the jump after {} ({:#x}: {}) would be single-stepped", copy, in.address, code.text(i));
        return std::nullopt;
      }
      GoProbePoint p = make_point(
          bin, in.address,
          fmt::format("{}: {}{}, after {} at {:#x}; n in %{}", offset_name(fn, f.entry, in.address), code.text(i),
                      prev != kNone ? " after " + code.text(prev) : std::string(), copy, code.at(call).address, kGpr[n]));
      p.n_register = kGpr[n];
      p.n_pt_regs_offset = kPtRegsOffset[n];
      return p;
    }
    if (in.id == X86_INS_JMP && code.direct_target(i)) {
      auto next = code.index_of(*code.direct_target(i));
      if (!next) break;
      prev = kNone;
      i = *next;
      joined |= code.is_target(code.at(i).address);
      continue;
    }
    if (code.is_control(i)) {
      *why = fmt::format("{} is followed by '{}' ({:#x}) before any conditional jump", copy, code.text(i), in.address);
      return std::nullopt;
    }
    step(code, i, &h);
    prev = i;
    i++;
    if (i < code.size()) joined |= code.is_target(code.at(i).address);
  }
  *why = fmt::format("no conditional jump found in the straight-line code after {}", copy);
  return std::nullopt;
}

// (*Conn).Read does `n, _ := c.input.Read(b)` (c.input: a bytes.Reader over the
// decrypted record), then `if n != 0 && ...`. The copy is a call to bytes.(*Reader).Read
// (n in rax after it) or, inlined, a call to runtime.memmove from bytes/reader.go (n in
// rcx at the call, kept across it only in the stack slots it was stored to).
std::vector<GoProbePoint> read_copied(const GoBinary& bin, const GoCode& code, const std::string& fn,
                                      const GoFunc& f, std::string* why) {
  auto reader_read = bin.function("bytes.(*Reader).Read");
  auto memmove = bin.function("runtime.memmove");
  std::vector<GoProbePoint> out;
  int sites = 0;
  for (size_t i = 0; i < code.size(); i++) {
    if (!code.in_group(i, X86_GRP_CALL)) continue;
    auto target = code.direct_target(i);
    if (!target) continue;
    Holders h;
    std::string copy;
    if (reader_read && *target == reader_read->entry) {
      h.regs.insert(kRax);
      copy = "the call to bytes.(*Reader).Read";
    } else if (memmove && *target == memmove->entry && bin.source_file_at(code.at(i).address).ends_with("/bytes/reader.go")) {
      h.slots = rcx_slots_before(code, i);
      copy = "the memmove of the inlined bytes.(*Reader).Read";
    } else {
      continue;
    }
    sites++;
    auto p = after_copy(bin, code, fn, f, i, h, copy, why);
    if (!p) return {};
    if (std::none_of(out.begin(), out.end(), [&](const GoProbePoint& q) { return q.vaddr == p->vaddr; }))
      out.push_back(*p);
  }
  if (sites == 0)
    *why = fmt::format("{} neither calls bytes.(*Reader).Read nor has an inlined copy of it (a call to "
                       "runtime.memmove from bytes/reader.go)",
                       fn);
  return out;
}


// runtime.newproc.func1: the call to runqput after the call to newproc1 (see GoSpawnProbe).
std::optional<GoSpawnProbe> spawn_point(const GoBinary& bin, csh h, std::string* why) {
  const std::string fn = "runtime.newproc.func1";
  auto f = bin.function(fn);
  auto newproc1 = bin.function("runtime.newproc1"), runqput = bin.function("runtime.runqput");
  if (!f || !newproc1 || !runqput) {
    *why = fmt::format("no {}", !f ? fn : !newproc1 ? "runtime.newproc1" : "runtime.runqput");
    return std::nullopt;
  }
  GoCode code(h, bin.elf(), f->entry, f->end);
  std::optional<size_t> call1;
  for (size_t i = 0; i < code.size(); i++)
    if (code.in_group(i, X86_GRP_CALL) && code.direct_target(i) == newproc1->entry) {
      if (call1) {
        *why = fmt::format("{} calls runtime.newproc1 more than once", fn);
        return std::nullopt;
      }
      call1 = i;
    }
  if (!call1) {
    *why = fmt::format("{} does not call runtime.newproc1", fn);
    return std::nullopt;
  }
  // Straight-line code from there to the call to runqput: newg (RAX after newproc1)
  // followed into RBX, and the loads of g.m and m.p.
  Holders newg;
  newg.regs.insert(kRax);
  int m_reg = -1;
  int64_t g_m = -1, m_p = -1;
  for (size_t i = *call1 + 1; i < code.size(); i++) {
    const cs_insn& in = code.at(i);
    if (code.is_target(in.address)) break; // other paths join: not straight-line
    if (code.in_group(i, X86_GRP_CALL) && code.direct_target(i) == runqput->entry) {
      if (!newg.regs.count(kRbx)) {
        *why = fmt::format("{}: newg is not in %rbx at the call to runtime.runqput ({:#x})", fn, in.address);
        return std::nullopt;
      }
      if (g_m < 0 || g_m > 0xffff || m_p < 16 || m_p - 16 > 0xffff) {
        *why = fmt::format("{}: no load of getg().m.p before the call to runtime.runqput", fn);
        return std::nullopt;
      }
      if (!emulated_at(bin.elf(), in.address)) {
        *why = fmt::format("{}: the call to runtime.runqput ({:#x}) would be single-stepped", fn, in.address);
        return std::nullopt;
      }
      auto exit_fn = bin.function("runtime.goexit0");
      if (!exit_fn) {
        *why = "no runtime.goexit0";
        return std::nullopt;
      }
      GoCode exit_code(h, bin.elf(), exit_fn->entry, exit_fn->end);
      auto exit_point = entry_point(bin, exit_code, "runtime.goexit0", *exit_fn, why);
      if (!exit_point) return std::nullopt;
      GoSpawnProbe p;
      p.exit_point = std::move(*exit_point);
      p.point = make_point(bin, in.address,
                           fmt::format("{}: {} (newg in %rbx; g.m at {:#x}, m.p at {:#x})",
                                       offset_name(fn, f->entry, in.address), code.text(i), g_m, m_p));
      p.g_m_offset = int(g_m);
      p.m_curg_offset = int(m_p - 16);
      return p;
    }
    if (code.is_control(i)) break;
    // A load `mov disp(%base), %reg` (8 bytes, no index): the g.m and m.p loads.
    const cs_x86& x = in.detail->x86;
    bool load = false;
    if (in.id == X86_INS_MOV && x.op_count == 2) {
      const cs_x86_op* dst = nullptr;
      const cs_x86_op* src = nullptr;
      for (int k = 0; k < 2; k++) (x.operands[k].access & CS_AC_WRITE ? dst : src) = &x.operands[k];
      if (dst && src && src->type == X86_OP_MEM && src->size == 8 && src->mem.index == X86_REG_INVALID &&
          src->mem.segment == X86_REG_INVALID && code.reg64(*dst) >= 0) {
        int base = code.family(src->mem.base), d = code.reg64(*dst);
        if (base == kR14 && g_m < 0) {
          g_m = src->mem.disp;
          m_reg = d;
          load = true;
        } else if (m_reg >= 0 && base == m_reg && m_p < 0) {
          m_p = src->mem.disp;
          load = true;
        }
      }
    }
    if (!load && m_p < 0 && m_reg >= 0)
      for (int w : code.written(i))
        if (w == m_reg || w == -2) { // m overwritten before m.p was loaded from it
          m_reg = -1;
          g_m = -1;
        }
    step(code, i, &newg);
  }
  *why = fmt::format("{}: no call to runtime.runqput in the straight-line code after runtime.newproc1", fn);
  return std::nullopt;
}
} // namespace

std::optional<GoTlsProbes> find_go_tls_probes(const std::string& path, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  auto bin = GoBinary::open(path, error);
  if (!bin) return std::nullopt;
  if (!bin->register_abi()) {
    *error = fmt::format("'{}' was built by {}: Go before 1.17 passes arguments on the stack, which is not supported",
                         path, bin->version());
    return std::nullopt;
  }
  const std::string write_name = "crypto/tls.(*Conn).Write", read_name = "crypto/tls.(*Conn).Read";
  auto write = bin->function(write_name), read = bin->function(read_name);
  if (!write || !read) {
    *error = fmt::format("no crypto/tls in '{}' ({} has no function {})", path, bin->version(),
                         write ? read_name : write_name);
    return std::nullopt;
  }
  csh h = 0;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK) {
    *error = "capstone: cannot open an x86-64 disassembler";
    return std::nullopt;
  }
  cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
  cs_option(h, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
  std::optional<GoTlsProbes> out{GoTlsProbes{}};
  {
    GoCode wcode(h, bin->elf(), write->entry, write->end), rcode(h, bin->elf(), read->entry, read->end);
    auto w = entry_point(*bin, wcode, write_name, *write, error);
    auto r = w ? entry_point(*bin, rcode, read_name, *read, error) : std::nullopt;
    if (!w || !r) {
      out.reset();
    } else {
      out->go_version = bin->version();
      out->register_abi = true;
      out->write_entry = std::move(*w);
      out->read_entry = std::move(*r);
      out->read_copied = read_copied(*bin, rcode, read_name, *read, &out->read_copied_why);
      if (!out->read_copied.empty()) out->read_copied_why.clear();
    }
  }
  const std::string rt_name = "net/http.(*persistConn).roundTrip", rw_name = "net/http.(*Request).write";
  auto rt = bin->function(rt_name), rw = bin->function(rw_name);
  if (out && rt && rw) {
    GoCode rtcode(h, bin->elf(), rt->entry, rt->end), rwcode(h, bin->elf(), rw->entry, rw->end);
    std::string why; // not an error: linking of Go HTTP client calls is then per goroutine only
    auto a = entry_point(*bin, rtcode, rt_name, *rt, &why);
    auto b = a ? entry_point(*bin, rwcode, rw_name, *rw, &why) : std::nullopt;
    if (a && b) {
      out->http_round_trip = std::move(*a);
      out->http_request_write = std::move(*b);
    }
  }
  if (out) {
    // Refused before the disassembly of spawn_point, which these make moot.
    // Goroutines created elsewhere than runtime.newproc would take over a g
    // struct unseen, keeping what was known of its previous goroutine.
    if (bin->function("runtime.newcoro")) {
      out->spawn_why = "it uses coroutines (runtime.newcoro creates their goroutines without runtime.newproc)";
    } else if (rt && rw && !(out->http_round_trip && out->http_request_write)) {
      // The transport's own goroutines (dialConnFor, readLoop, writeLoop) are
      // started while a request is handled: without the client points saying
      // whose request a writeLoop writes, they would be taken for that request's.
      out->spawn_why = "net/http's client is in it but its probe points were not found";
    } else {
      out->spawn = spawn_point(*bin, h, &out->spawn_why);
    }
  }
  cs_close(&h);
  return out;
}

} // namespace odigos
