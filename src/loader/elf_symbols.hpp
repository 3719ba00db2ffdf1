// Symbols, load segments and code bytes of an x86-64 ELF file on disk (libelf), for
// placing uprobes: shared libraries, PIE and non-PIE executables. Uprobe offsets are
// file offsets, so every virtual address found here can be turned into one through
// the PT_LOAD program headers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace odigos {

struct ElfSymbol {
  uint64_t vaddr = 0;
  uint64_t size = 0;       // 0 when the symbol table does not say
  uint8_t type = 0;        // STT_FUNC, STT_OBJECT, STT_NOTYPE, STT_GNU_IFUNC
  bool local = false;      // STB_LOCAL: a static function (kept in .symtab of unstripped files)
  bool ambiguous = false;  // other symbols of this name and the same rank have other addresses
};

struct ElfSegment { // one PT_LOAD program header
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t offset = 0;
  uint64_t filesz = 0;
  bool executable = false; // PF_X
};

class ElfFile {
public:
  // Opens and indexes `path`. Errors name the file: "'/x/y' is not an ELF file",
  // "'/x/y' is not an x86-64 ELF file (machine 183)", "cannot open '/x/y': ...".
  static std::optional<ElfFile> open(const std::string& path, std::string* error);
  ElfFile(ElfFile&&) noexcept;
  ElfFile& operator=(ElfFile&&) noexcept;
  ~ElfFile();

  const std::string& path() const;
  bool is_dyn() const; // ET_DYN (shared library or PIE), else ET_EXEC

  // Defined symbols of .symtab and .dynsym by name, "@VERSION" / "@@VERSION" suffixes
  // stripped. Where names collide the default-version global wins over a non-default
  // version, which wins over a local; equal ranks at other addresses set `ambiguous`.
  std::optional<ElfSymbol> symbol(const std::string& name) const;
  // The name of a symbol that starts exactly at vaddr ("" when none).
  std::string symbol_at(uint64_t vaddr) const;
  size_t symbol_count() const;

  const std::vector<ElfSegment>& segments() const;
  // The PT_LOAD whose file-backed part (filesz) holds vaddr, or nullptr.
  const ElfSegment* segment_at(uint64_t vaddr) const;
  // vaddr -> file offset (what uprobes take) and back, through the PT_LOAD headers.
  std::optional<uint64_t> file_offset(uint64_t vaddr) const;
  std::optional<uint64_t> vaddr_at_offset(uint64_t offset) const;
  // The file's bytes from vaddr to the end of its segment's file-backed part, at most
  // max_len; empty when vaddr is not file-backed. Valid while this ElfFile lives.
  std::span<const uint8_t> bytes_at(uint64_t vaddr, size_t max_len) const;
  // The name of the allocated section holding vaddr ("" when none or no section headers).
  std::string section_at(uint64_t vaddr) const;

private:
  struct Impl;
  explicit ElfFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace odigos
