#include "loader/elf_symbols.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>

namespace odigos {

namespace {

std::string elf_error() {
  const char* m = elf_errmsg(-1);
  return m ? m : "unknown libelf error";
}

// Higher wins when two symbols share a name: a default-version global, then a
// non-default ("hidden", name@VER) version, then a local.
enum Rank { kLocal = 1, kHiddenVersion = 2, kGlobal = 3 };

} // namespace

struct ElfFile::Impl {
  struct Section {
    std::string name;
    uint64_t addr = 0;
    uint64_t size = 0;
  };
  struct Entry {
    ElfSymbol sym;
    int rank = 0;
  };

  std::string path;
  int fd = -1;
  Elf* elf = nullptr;
  const uint8_t* image = nullptr; // the whole file (mapped by libelf)
  size_t image_size = 0;
  bool dyn = false;
  std::vector<ElfSegment> segments;
  std::vector<Section> sections;
  std::unordered_map<std::string, Entry> symbols;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }

  std::string fail(const std::string& what) const { return "'" + path + "' " + what; }

  void add_symbol(std::string name, const ElfSymbol& s, int rank) {
    auto [it, inserted] = symbols.try_emplace(std::move(name), Entry{s, rank});
    if (inserted) return;
    Entry& e = it->second;
    if (e.sym.vaddr == s.vaddr) { // the same symbol seen twice (.symtab and .dynsym)
      if (rank > e.rank) {
        e.rank = rank;
        e.sym.local = s.local;
      }
      if (!e.sym.size) e.sym.size = s.size;
      return;
    }
    if (rank > e.rank)
      e = Entry{s, rank};
    else if (rank == e.rank)
      e.sym.ambiguous = true;
  }

  bool read_symbols(Elf_Scn* scn, const GElf_Shdr& shdr, std::string* error) {
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || shdr.sh_entsize == 0) return true; // empty table
    // .dynsym: the parallel .gnu.version table marks non-default versions.
    Elf_Data* versym = nullptr;
    if (shdr.sh_type == SHT_DYNSYM) {
      Elf_Scn* s = nullptr;
      while ((s = elf_nextscn(elf, s)) != nullptr) {
        GElf_Shdr vh;
        if (gelf_getshdr(s, &vh) && vh.sh_type == SHT_GNU_versym && vh.sh_link == elf_ndxscn(scn)) {
          versym = elf_getdata(s, nullptr);
          break;
        }
      }
    }
    size_t n = shdr.sh_size / shdr.sh_entsize;
    for (size_t i = 1; i < n; i++) {
      GElf_Sym sym;
      if (!gelf_getsym(data, int(i), &sym)) {
        *error = fail("has a bad symbol table: " + elf_error());
        return false;
      }
      unsigned type = GELF_ST_TYPE(sym.st_info), bind = GELF_ST_BIND(sym.st_info);
      if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
      if (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE && type != STT_GNU_IFUNC) continue;
      const char* raw = elf_strptr(elf, shdr.sh_link, sym.st_name);
      if (!raw || !*raw) continue;
      std::string name(raw);
      int rank = bind == STB_LOCAL ? kLocal : kGlobal;
      if (auto at = name.find('@'); at != std::string::npos && at > 0) {
        if (rank == kGlobal && name.compare(at, 2, "@@") != 0) rank = kHiddenVersion;
        name.resize(at);
      }
      if (versym && rank == kGlobal) {
        GElf_Versym v;
        if (gelf_getversym(versym, int(i), &v) && (v & 0x8000)) rank = kHiddenVersion;
      }
      ElfSymbol s;
      s.vaddr = sym.st_value;
      s.size = sym.st_size;
      s.type = uint8_t(type);
      s.local = bind == STB_LOCAL;
      add_symbol(std::move(name), s, rank);
    }
    return true;
  }

  bool load(std::string* error) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *error = "cannot open '" + path + "': " + strerror(errno);
      return false;
    }
    struct stat st{};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      *error = fail("is not a regular file");
      return false;
    }
    if (elf_version(EV_CURRENT) == EV_NONE) {
      *error = "libelf: " + elf_error();
      return false;
    }
    elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
    if (!elf) {
      *error = fail("cannot be read as ELF: " + elf_error());
      return false;
    }
    switch (elf_kind(elf)) {
    case ELF_K_ELF: break;
    case ELF_K_AR: *error = fail("is not an ELF file (an ar archive)"); return false;
    default: *error = fail("is not an ELF file"); return false;
    }
    if (gelf_getclass(elf) != ELFCLASS64) {
      *error = fail("is not an x86-64 ELF file (32-bit)");
      return false;
    }
    GElf_Ehdr eh;
    if (!gelf_getehdr(elf, &eh)) {
      *error = fail("has a bad ELF header: " + elf_error());
      return false;
    }
    if (eh.e_machine != EM_X86_64) {
      *error = fail("is not an x86-64 ELF file (machine " + std::to_string(eh.e_machine) + ")");
      return false;
    }
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
      *error = fail(eh.e_type == ET_REL ? "is a relocatable object, not an executable or shared library"
                                        : "is not an executable or shared library (ELF type " +
                                              std::to_string(eh.e_type) + ")");
      return false;
    }
    dyn = eh.e_type == ET_DYN;
    image = reinterpret_cast<const uint8_t*>(elf_rawfile(elf, &image_size));
    if (!image) {
      *error = fail("cannot be read: " + elf_error());
      return false;
    }

    size_t phnum = 0;
    if (elf_getphdrnum(elf, &phnum) != 0) {
      *error = fail("has bad program headers: " + elf_error());
      return false;
    }
    for (size_t i = 0; i < phnum; i++) {
      GElf_Phdr ph;
      if (!gelf_getphdr(elf, int(i), &ph)) {
        *error = fail("has bad program headers: " + elf_error());
        return false;
      }
      if (ph.p_type != PT_LOAD) continue;
      segments.push_back({ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, (ph.p_flags & PF_X) != 0});
    }
    if (segments.empty()) {
      *error = fail("has no PT_LOAD program headers");
      return false;
    }

    size_t shstrndx = 0;
    bool have_names = elf_getshdrstrndx(elf, &shstrndx) == 0;
    Elf_Scn* scn = nullptr;
    while ((scn = elf_nextscn(elf, scn)) != nullptr) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) continue;
      if ((sh.sh_flags & SHF_ALLOC) && !(sh.sh_flags & SHF_TLS) && have_names) {
        const char* name = elf_strptr(elf, shstrndx, sh.sh_name);
        sections.push_back({name ? name : "", sh.sh_addr, sh.sh_size});
      }
      if ((sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM) && !read_symbols(scn, sh, error))
        return false;
    }
    return true;
  }
};

ElfFile::ElfFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ElfFile::ElfFile(ElfFile&&) noexcept = default;
ElfFile& ElfFile::operator=(ElfFile&&) noexcept = default;
ElfFile::~ElfFile() = default;

std::optional<ElfFile> ElfFile::open(const std::string& path, std::string* error) {
  std::string ignored;
  if (!error) error = &ignored;
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  if (!impl->load(error)) return std::nullopt;
  return ElfFile(std::move(impl));
}

const std::string& ElfFile::path() const { return impl_->path; }
bool ElfFile::is_dyn() const { return impl_->dyn; }

std::optional<ElfSymbol> ElfFile::symbol(const std::string& name) const {
  auto it = impl_->symbols.find(name);
  if (it == impl_->symbols.end()) return std::nullopt;
  return it->second.sym;
}

std::string ElfFile::symbol_at(uint64_t vaddr) const {
  const std::string* best = nullptr;
  int best_rank = 0;
  for (const auto& [name, e] : impl_->symbols)
    if (e.sym.vaddr == vaddr && (e.rank > best_rank || (e.rank == best_rank && name < *best)))
      best = &name, best_rank = e.rank;
  return best ? *best : std::string();
}

size_t ElfFile::symbol_count() const { return impl_->symbols.size(); }

const std::vector<ElfSegment>& ElfFile::segments() const { return impl_->segments; }

const ElfSegment* ElfFile::segment_at(uint64_t vaddr) const {
  for (const ElfSegment& s : impl_->segments)
    if (vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz) return &s;
  return nullptr;
}

std::optional<uint64_t> ElfFile::file_offset(uint64_t vaddr) const {
  const ElfSegment* s = segment_at(vaddr);
  if (!s) return std::nullopt;
  return vaddr - s->vaddr + s->offset;
}

std::optional<uint64_t> ElfFile::vaddr_at_offset(uint64_t offset) const {
  for (const ElfSegment& s : impl_->segments)
    if (offset >= s.offset && offset - s.offset < s.filesz) return offset - s.offset + s.vaddr;
  return std::nullopt;
}

std::span<const uint8_t> ElfFile::bytes_at(uint64_t vaddr, size_t max_len) const {
  const ElfSegment* s = segment_at(vaddr);
  if (!s) return {};
  uint64_t off = vaddr - s->vaddr + s->offset;
  if (off >= impl_->image_size) return {};
  uint64_t len = std::min<uint64_t>({max_len, s->vaddr + s->filesz - vaddr, impl_->image_size - off});
  return {impl_->image + off, size_t(len)};
}

std::string ElfFile::section_at(uint64_t vaddr) const {
  for (const auto& sec : impl_->sections)
    if (vaddr >= sec.addr && vaddr - sec.addr < sec.size) return sec.name;
  return {};
}

} // namespace odigos
