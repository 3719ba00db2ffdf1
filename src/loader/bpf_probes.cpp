#include "loader/bpf_probes.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include "odigos.skel.h"

namespace odigos {

namespace {
bool g_verbose = false;
std::deque<std::string> g_recent;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[2048];
  vsnprintf(buf, sizeof(buf), fmt, args);
  if (g_verbose) fputs(buf, stderr);
  if (level != LIBBPF_DEBUG || g_verbose) {
    g_recent.emplace_back(buf);
    if (g_recent.size() > 40) g_recent.pop_front();
  }
  return 0;
}
} // namespace

std::string libbpf_recent_log() {
  std::string out;
  for (auto& l : g_recent) out += l;
  return out;
}

BpfProbes::~BpfProbes() {
  if (skel_) odigos_bpf__destroy(skel_); // detaches every link
}

std::unique_ptr<BpfProbes> BpfProbes::load(const ProbeConfig& cfg, std::string* error) {
  g_verbose = cfg.verbose;
  libbpf_set_print(libbpf_print);
  std::unique_ptr<BpfProbes> p(new BpfProbes());
  p->skel_ = odigos_bpf__open();
  if (!p->skel_) {
    *error = std::string("cannot open the BPF object: ") + strerror(errno);
    return nullptr;
  }
  auto* ro = p->skel_->rodata;
  ro->cfg_self_tgid = cfg.self_tgid;
  ro->cfg_capture_size = cfg.capture_size;
  ro->cfg_filter_pid = cfg.filter_pid;
  ro->cfg_filter_cgroup = cfg.filter_cgroup;
  ro->cfg_cgroup_levels = cfg.cgroup_levels;
  ro->cfg_filter_port = cfg.filter_port;
  ro->cfg_match_exe = cfg.match_exe;
  ro->tls_probes_wanted = cfg.tls;
  ro->cfg_wakeup_bytes = cfg.ringbuf_bytes / 64 > 4096 ? cfg.ringbuf_bytes / 64 : 4096;
  if (int err = bpf_map__set_max_entries(p->skel_->maps.events, cfg.ringbuf_bytes)) {
    *error = std::string("cannot size the ring buffer: ") + strerror(-err);
    return nullptr;
  }
  if (int ncpu = libbpf_num_possible_cpus(); ncpu > 0)
    bpf_map__set_max_entries(p->skel_->maps.scratch, uint32_t(ncpu));
  if (int err = odigos_bpf__load(p->skel_)) {
    *error = std::string("cannot load the BPF programs into the kernel: ") + strerror(-err);
    return nullptr;
  }
  return p;
}

bool BpfProbes::attach(std::string* error) {
  if (int err = odigos_bpf__attach(skel_)) {
    *error = std::string("cannot attach the BPF programs: ") + strerror(-err);
    return false;
  }
  return true;
}

void BpfProbes::detach() { odigos_bpf__detach(skel_); }

namespace {
struct UprobePointSpec {
  bpf_program* prog;
  uint64_t offset;
  bool retprobe;
  uint64_t cookie; // bpf_get_attach_cookie()
};

// Attaches every point or none: on failure the links made so far are
// destroyed and `error` names the point.
std::vector<bpf_link*> attach_points(int pid, const std::string& path,
                                     const std::vector<UprobePointSpec>& points,
                                     std::string* error) {
  std::vector<bpf_link*> links;
  for (const UprobePointSpec& p : points) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = p.cookie, .retprobe = p.retprobe);
    bpf_link* l = bpf_program__attach_uprobe_opts(p.prog, pid, path.c_str(), p.offset, &opts);
    if (!l) {
      int err = errno;
      *error = fmt::format("cannot attach a uprobe to '{}' at offset {:#x}{}: {}", path, p.offset,
                           pid >= 0 ? fmt::format(" in process {}", pid) : "", strerror(err));
      BpfProbes::destroy_links(links);
      return {};
    }
    links.push_back(l);
  }
  return links;
}
} // namespace

std::vector<bpf_link*> BpfProbes::attach_tls(int lib, int pid, const std::string& path,
                                             uint64_t read_offset, uint64_t write_offset,
                                             std::string* error) {
  const bool gnutls = lib == OT_TLS_GNUTLS;
  auto* p = &skel_->progs;
  return attach_points(
      pid, path,
      {{gnutls ? p->ot_gnutls_recv_enter : p->ot_openssl_read_enter, read_offset, false, 0},
       {p->ot_tls_exit, read_offset, true, 0},
       {gnutls ? p->ot_gnutls_send_enter : p->ot_openssl_write_enter, write_offset, false, 0},
       {p->ot_tls_exit, write_offset, true, 0}},
      error);
}

std::vector<bpf_link*> BpfProbes::attach_go(int pid, const std::string& path, const GoPoints& g,
                                            std::string* error) {
  auto* p = &skel_->progs;
  uint64_t copied_cookie = uint64_t(g.n_regs_offset) | (g.layout_known ? 1u << 16 : 0);
  std::vector<UprobePointSpec> points = {{p->ot_go_write_enter, g.write, false, 0},
                                         {p->ot_go_read_enter, g.read, false, 0},
                                         {p->ot_go_read_copied, g.copied, false, copied_cookie}};
  const bool http = g.http_round_trip && g.http_request_write;
  if (http) {
    points.push_back({p->ot_go_http_round_trip, g.http_round_trip, false, 0});
    points.push_back({p->ot_go_http_request_write, g.http_request_write, false, 0});
  }
  if (g.spawn && g.exit) {
    points.push_back({p->ot_go_spawn, g.spawn, false, g.spawn_cookie});
    points.push_back({p->ot_go_exit, g.exit, false, 0});
  }
  auto links = attach_points(pid, path, points, error);
  if (!links.empty() && skel_->bss) {
    skel_->bss->go_probes_active = 1;
    if (http) skel_->bss->go_http_probes_active = 1;
  }
  return links;
}

uint64_t BpfProbes::go_spawn_lost() const {
  return skel_->bss ? uint64_t(__atomic_load_n(&skel_->bss->go_spawn_lost, __ATOMIC_RELAXED)) : 0;
}

std::vector<bpf_link*> BpfProbes::attach_go_spawn(int pid, const std::string& path, uint64_t offset,
                                                  uint64_t cookie, uint64_t exit_offset,
                                                  std::string* error) {
  return attach_points(pid, path,
                       {{skel_->progs.ot_go_spawn, offset, false, cookie},
                        {skel_->progs.ot_go_exit, exit_offset, false, 0}},
                       error);
}

void BpfProbes::destroy_links(std::vector<bpf_link*>& links) {
  for (bpf_link* l : links) bpf_link__destroy(l);
  links.clear();
}

void BpfProbes::enable_tls() {
  if (skel_->bss) skel_->bss->tls_probes_active = 1;
}

bool BpfProbes::add_tgid(uint32_t tgid, bool follow_forks) {
  uint32_t v = follow_forks ? OT_PROC_FOLLOW_FORKS : 0;
  return bpf_map__update_elem(skel_->maps.traced_tgids, &tgid, sizeof(tgid), &v, sizeof(v),
                              BPF_ANY) == 0;
}

bool BpfProbes::add_exe(const ot_exe_key& key) {
  uint32_t v = 1;
  return bpf_map__update_elem(skel_->maps.exe_targets, &key, sizeof(key), &v, sizeof(v),
                              BPF_ANY) == 0;
}

bool BpfProbes::add_cgroup(uint64_t id) {
  uint32_t v = 1;
  return bpf_map__update_elem(skel_->maps.traced_cgroups, &id, sizeof(id), &v, sizeof(v),
                              BPF_ANY) == 0;
}

bool BpfProbes::add_port(uint16_t port) {
  uint32_t v = 1;
  return bpf_map__update_elem(skel_->maps.traced_ports, &port, sizeof(port), &v, sizeof(v),
                              BPF_ANY) == 0;
}

bool BpfProbes::add_listen_port(uint16_t port) {
  uint8_t v = 1;
  uint32_t key = port;
  return bpf_map__update_elem(skel_->maps.listen_ports, &key, sizeof(key), &v, sizeof(v),
                              BPF_ANY) == 0;
}

void BpfProbes::ignore_conn(uint64_t cookie) {
  ot_conn_state st{};
  if (bpf_map__lookup_elem(skel_->maps.conns, &cookie, sizeof(cookie), &st, sizeof(st), 0) != 0)
    return;
  st.flags |= OT_CONN_IGNORE;
  // Racing kernel updates of pos[] can be lost here; the connection is ignored from now on.
  bpf_map__update_elem(skel_->maps.conns, &cookie, sizeof(cookie), &st, sizeof(st), BPF_EXIST);
}

size_t BpfProbes::traced_tgid_count() const {
  size_t n = 0;
  uint32_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.traced_tgids, prev, &next, sizeof(next)) == 0) {
    n++;
    key = next;
    prev = &key;
  }
  return n;
}

std::vector<uint64_t> BpfProbes::drops_per_cpu(ot_drop_kind kind) const {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return {};
  std::vector<uint64_t> vals(size_t(ncpu), 0);
  uint32_t k = kind;
  if (bpf_map__lookup_elem(skel_->maps.drops, &k, sizeof(k), vals.data(),
                           vals.size() * sizeof(uint64_t), 0) != 0)
    return {};
  return vals;
}

uint64_t BpfProbes::drops(ot_drop_kind kind) const {
  uint64_t sum = 0;
  for (auto v : drops_per_cpu(kind)) sum += v;
  return sum;
}

int BpfProbes::events_fd() const { return bpf_map__fd(skel_->maps.events); }

int BpfProbes::bpf_program_count() const {
  int n = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) n++;
  return n;
}

} // namespace odigos
