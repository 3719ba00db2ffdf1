#include "loader/tls_attach.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <sys/stat.h>

#include "core/text.hpp"
#include "loader/bpf_probes.hpp"
#include "loader/procfs.hpp"

extern "C" {
#include "odigos/abi.h"
}

namespace odigos {

namespace {

// A TLS library by its file name: its functions are expected, and a failure
// to find cheap probe points in it is worth saying.
int tls_library_kind(const std::string& path) {
  std::string_view base = basename_of(path);
  if (base.rfind("libssl.so", 0) == 0) return OT_TLS_OPENSSL;
  if (base.rfind("libgnutls.so", 0) == 0) return OT_TLS_GNUTLS;
  return 0;
}

// 19 for "go1.19.8"; 0 when not of that form.
int go_minor_of(const std::string& v) {
  if (v.rfind("go1.", 0) != 0) return 0;
  return atoi(v.c_str() + 4);
}

// The argument positions bpf/tls.bpf.c's GnuTLS programs read.
constexpr TlsCallArgs kGnutlsRecvArgs{1, 3, 2, 23};
constexpr TlsCallArgs kGnutlsSendArgs{1, 5, 2, 23};

// The path to open for a file a process maps: its own path when it names the
// same file here, else through the process's root (another mount namespace).
std::string openable_path(uint32_t pid, const procfs::FileMapping& m) {
  struct stat st{};
  if (stat(m.path.c_str(), &st) == 0 && uint64_t(st.st_dev) == m.dev && st.st_ino == m.ino)
    return m.path;
  return fmt::format("/proc/{}/root{}", pid, m.path);
}
} // namespace

TlsAttacher::TlsAttacher(BpfProbes& probes) : probes_(probes) {
  reaper_ = std::thread([this] { reaper_main(); });
}

TlsAttacher::~TlsAttacher() {
  for (auto& [pid, list] : procs_)
    for (auto& a : list) reap(std::move(a.links));
  {
    std::lock_guard lk(reap_mu_);
    reaper_stop_ = true;
  }
  reap_cv_.notify_one();
  reaper_.join(); // every link closed: no probe outlives us
}

void TlsAttacher::reap(std::vector<bpf_link*> links) {
  if (links.empty()) return;
  {
    std::lock_guard lk(reap_mu_);
    to_reap_.insert(to_reap_.end(), links.begin(), links.end());
  }
  reap_cv_.notify_one();
}

void TlsAttacher::reaper_main() {
  std::unique_lock lk(reap_mu_);
  while (true) {
    reap_cv_.wait(lk, [&] { return reaper_stop_ || !to_reap_.empty(); });
    std::vector<bpf_link*> batch = std::exchange(to_reap_, {});
    if (batch.empty() && reaper_stop_) return;
    lk.unlock();
    BpfProbes::destroy_links(batch);
    lk.lock();
  }
}

std::vector<std::string> TlsAttacher::take_messages() { return std::exchange(messages_, {}); }
std::vector<std::string> TlsAttacher::take_notes() { return std::exchange(notes_, {}); }

std::vector<std::string> TlsAttacher::system_libraries() {
  std::vector<std::string> out;
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/local/lib",
                          "/usr/lib64", "/usr/lib"}) {
    for (const char* name : {"libssl.so.3", "libgnutls.so.30"}) {
      std::string p = std::string(dir) + "/" + name;
      struct stat st{};
      if (stat(p.c_str(), &st) != 0) continue;
      // One entry per file (/lib is often /usr/lib).
      bool dup = std::any_of(out.begin(), out.end(), [&](const std::string& q) {
        struct stat st2{};
        return stat(q.c_str(), &st2) == 0 && st2.st_dev == st.st_dev && st2.st_ino == st.st_ino;
      });
      if (!dup) out.push_back(p);
    }
  }
  return out;
}

const TlsAttacher::Library& TlsAttacher::library(const FileKey& key, const std::string& path,
                                                 bool expect_tls) {
  auto it = libs_.find(key);
  if (it != libs_.end()) return it->second;
  Library lib;
  const int kind = tls_library_kind(path);
  std::string err;
  if (kind != OT_TLS_GNUTLS) { // libssl, or an executable that may contain OpenSSL
    if (auto p = find_openssl_probes(path, &err)) {
      lib = {true, OT_TLS_OPENSSL, p->read.file_offset, p->write.file_offset};
    } else if (expect_tls || err.rfind("no OpenSSL", 0) != 0) {
      // A libssl (or an executable with OpenSSL in it) we cannot probe cheaply:
      // its connections will be reported as TLS, not decoded.
      messages_.push_back(fmt::format("TLS plaintext of '{}' not traced: {}", path, err));
    }
  }
  if (!lib.usable && kind != OT_TLS_OPENSSL) {
    std::string gerr;
    if (auto p = find_gnutls_probes(path, &gerr)) {
      if (p->recv_args == kGnutlsRecvArgs && p->send_args == kGnutlsSendArgs)
        lib = {true, OT_TLS_GNUTLS, p->recv.file_offset, p->send.file_offset};
      else
        messages_.push_back(fmt::format(
            "TLS plaintext of '{}' not traced: GnuTLS passes its arguments in other registers "
            "than the probes read", path));
    } else if (kind == OT_TLS_GNUTLS || gerr.rfind("no GnuTLS", 0) != 0) {
      messages_.push_back(fmt::format("TLS plaintext of '{}' not traced: {}", path, gerr));
    }
  }
  if (!lib.usable && !kind) { // an executable: Go's crypto/tls?
    std::string goerr;
    if (auto g = find_go_tls_probes(path, &goerr)) {
      if (g->read_copied.empty()) {
        messages_.push_back(fmt::format("TLS plaintext of '{}' ({}) not traced: {}", path,
                                        g->go_version, g->read_copied_why));
      } else {
        lib.usable = true;
        lib.kind = OT_TLS_GO;
        lib.write_offset = g->write_entry.file_offset;
        lib.read_offset = g->read_entry.file_offset;
        lib.copied_offset = g->read_copied.front().file_offset;
        lib.n_regs_offset = g->read_copied.front().n_pt_regs_offset;
        lib.go_minor = go_minor_of(g->go_version);
        if (g->http_round_trip && g->http_request_write) {
          lib.http_round_trip = g->http_round_trip->file_offset;
          lib.http_request_write = g->http_request_write->file_offset;
        }
        if (g->spawn) {
          lib.spawn = g->spawn->point.file_offset;
          lib.spawn_cookie = uint64_t(g->spawn->g_m_offset) | uint64_t(g->spawn->m_curg_offset) << 16;
          lib.spawn_exit = g->spawn->exit_point.file_offset;
        } else {
          messages_.push_back(fmt::format("goroutines started by handlers in '{}' ({}) are not followed "
                                          "for trace linking: {}", path, g->go_version, g->spawn_why));
        }
      }
    } else if (goerr.find("not a Go executable") == std::string::npos &&
               goerr.rfind("no crypto/tls", 0) != 0) {
      messages_.push_back(fmt::format("TLS plaintext of '{}' not traced: {}", path, goerr));
    }
  }
  if (lib.kind == OT_TLS_GO)
    notes_.push_back(fmt::format(
        "TLS probe points of '{}' (Go 1.{}): write {:#x}, read {:#x}, read copied {:#x}{}{}", path,
        lib.go_minor, lib.write_offset, lib.read_offset, lib.copied_offset,
        lib.http_round_trip ? fmt::format(", http round trip {:#x}, http request write {:#x}",
                                          lib.http_round_trip, lib.http_request_write)
                            : "",
        lib.spawn ? fmt::format(", goroutine spawn {:#x}, goroutine exit {:#x} (on demand)",
                                lib.spawn, lib.spawn_exit)
                  : ""));
  else if (lib.usable)
    notes_.push_back(fmt::format("TLS probe points of '{}' ({}): read {:#x}, write {:#x} (entry and "
                                 "return)", path, lib.kind == OT_TLS_GNUTLS ? "GnuTLS" : "OpenSSL",
                                 lib.read_offset, lib.write_offset));
  return libs_.emplace(key, std::move(lib)).first->second;
}

bool TlsAttacher::probed(uint32_t who, const FileKey& key) const {
  if (global_.count(key)) return true;
  auto it = procs_.find(who);
  return it != procs_.end() && std::any_of(it->second.begin(), it->second.end(),
                                           [&](const Attached& a) { return a.file == key; });
}

bool TlsAttacher::attach_file(uint32_t who, const FileKey& key, const std::string& path,
                              bool expect_tls) {
  if (probed(who, key) || failed_.count({who, key})) return false;
  const Library& lib = library(key, path, expect_tls);
  if (!lib.usable) return false;
  const int pid = who == kGlobal ? -1 : int(who);
  std::string err;
  auto links = lib.kind == OT_TLS_GO
                   ? probes_.attach_go(pid, path,
                                       GoPoints{lib.write_offset, lib.read_offset,
                                                lib.copied_offset, lib.n_regs_offset,
                                                lib.go_minor >= 17 && lib.go_minor <= 23,
                                                lib.http_round_trip, lib.http_request_write,
                                                lib.spawn_wanted ? lib.spawn : 0, lib.spawn_cookie,
                                                lib.spawn_exit},
                                       &err)
                   : probes_.attach_tls(lib.kind, pid, path, lib.read_offset, lib.write_offset,
                                        &err);
  if (links.empty()) {
    // Said once, not retried; a process that exited meanwhile is no news.
    failed_.insert({who, key});
    if (err.find("No such process") == std::string::npos) messages_.push_back(err);
    return false;
  }
  procs_[who].push_back({key, path, std::move(links)});
  if (who == kGlobal) global_.insert(key);
  probes_.enable_tls();
  return true;
}

int TlsAttacher::scan(uint32_t pid) {
  const std::string exe = procfs::exe_path(pid);
  int added = 0;
  for (const auto& m : procfs::executable_mappings(pid)) {
    const bool tls_lib = tls_library_kind(m.path) != 0;
    if (!tls_lib && m.path != exe) continue; // a TLS library, or one linked into the executable
    FileKey key{m.dev, m.ino};
    if (probed(pid, key)) continue; // before openable_path's stat: rescans are frequent
    if (attach_file(pid, key, openable_path(pid, m), tls_lib)) added++;
  }
  return added;
}

bool TlsAttacher::follow_goroutines(uint32_t pid) {
  // pid's executable, when it is a Go program probed here.
  struct stat st{};
  if (stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) != 0) return false;
  const FileKey key{uint64_t(st.st_dev), uint64_t(st.st_ino)};
  auto lib = libs_.find(key);
  if (lib == libs_.end() || lib->second.kind != OT_TLS_GO || !lib->second.spawn ||
      lib->second.spawn_wanted)
    return false;
  // Every attachment of that file (its processes, or everyone).
  bool added = false;
  for (auto& [who, list] : procs_)
    for (auto& a : list) {
      if (a.file != key) continue;
      std::string err;
      auto links = probes_.attach_go_spawn(who == kGlobal ? -1 : int(who), a.path, lib->second.spawn,
                                           lib->second.spawn_cookie, lib->second.spawn_exit, &err);
      if (links.empty()) {
        if (err.find("No such process") == std::string::npos) messages_.push_back(err);
        continue;
      }
      a.links.insert(a.links.end(), links.begin(), links.end());
      added = true;
    }
  // From now on with the other probes too (processes started later).
  if (added) lib->second.spawn_wanted = true;
  return added;
}

void TlsAttacher::on_fork(uint32_t parent) {
  auto it = procs_.find(parent);
  if (it == procs_.end()) return;
  std::vector<Attached> files; // copies of (file, path): attaching changes procs_
  for (const auto& a : it->second) files.push_back({a.file, a.path, {}});
  for (const auto& f : files) {
    if (!attach_file(kGlobal, f.file, f.path, false)) continue;
    // Per-process links of this file would run the programs a second time.
    for (auto& [who, list] : procs_) {
      if (who == kGlobal) continue;
      for (auto a = list.begin(); a != list.end();) {
        if (a->file == f.file) {
          reap(std::move(a->links));
          a = list.erase(a);
        } else {
          ++a;
        }
      }
    }
  }
  for (auto p = procs_.begin(); p != procs_.end();)
    p = p->second.empty() ? procs_.erase(p) : std::next(p);
}

int TlsAttacher::attach_paths(uint32_t who, const std::vector<std::string>& paths) {
  int added = 0;
  for (const auto& path : paths) {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) continue;
    FileKey key{uint64_t(st.st_dev), uint64_t(st.st_ino)};
    if (attach_file(who, key, path, tls_library_kind(path) != 0)) added++;
  }
  return added;
}

int TlsAttacher::attach_files(uint32_t pid, const std::vector<std::string>& paths) {
  return attach_paths(pid, paths);
}

int TlsAttacher::attach_global_files(const std::vector<std::string>& paths) {
  return attach_paths(kGlobal, paths);
}

int TlsAttacher::scan_global(const std::vector<uint32_t>& pids) {
  int added = 0;
  for (uint32_t pid : pids)
    for (const auto& m : procfs::executable_mappings(pid)) {
      FileKey key{m.dev, m.ino};
      if (tls_library_kind(m.path) && !probed(kGlobal, key) &&
          attach_file(kGlobal, key, openable_path(pid, m), true))
        added++;
    }
  return added;
}

void TlsAttacher::forget(uint32_t pid) {
  for (auto f = failed_.lower_bound({pid, FileKey{}}); f != failed_.end() && f->first == pid;)
    f = failed_.erase(f);
  auto it = procs_.find(pid);
  if (it == procs_.end()) return;
  for (auto& a : it->second) reap(std::move(a.links));
  procs_.erase(it);
}

} // namespace odigos
