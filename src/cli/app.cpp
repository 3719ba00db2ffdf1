#include "cli/app.hpp"

#include <bpf/libbpf.h>
#include <cerrno>
#include <csignal>
#include <dirent.h>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <set>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn/conn_tracker.hpp"
#include "core/clock.hpp"
#include "demo/demo.hpp"
#include "loader/bpf_probes.hpp"
#include "loader/cgroups.hpp"
#include "loader/go_binary.hpp"
#include "loader/launcher.hpp"
#include "loader/privileges.hpp"
#include "loader/procfs.hpp"
#include "loader/tls_attach.hpp"
#include "loader/tracefs.hpp"
#include "export/resource.hpp"
#include "sinks/sink.hpp"
#include "trace/linker.hpp"

namespace odigos {

namespace {

volatile sig_atomic_t g_stop_signal = 0;
void on_signal(int sig) { g_stop_signal = sig; }

int error_exit(const std::string& msg, const std::string& hint = "") {
  fmt::print(stderr, "odigos-trace: error: {}\n", msg);
  if (!hint.empty()) fmt::print(stderr, "hint: {}\n", hint);
  return kExitError;
}

// Starts the demo server as a child (not held: it only listens before tracing
// begins). Returns its pid and port.
bool start_demo_server(const char* self, pid_t* pid, uint16_t* port, std::string* error) {
  int fds[2];
  if (pipe(fds) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }
  pid_t p = fork();
  if (p < 0) {
    *error = std::string("fork: ") + strerror(errno);
    return false;
  }
  if (p == 0) {
    close(fds[0]);
    std::string fd = std::to_string(fds[1]);
    execl(self, self, "__demo-server", "--ready-fd", fd.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(fds[1]);
  char buf[32] = {};
  ssize_t n = 0, got = 0;
  while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - size_t(got))) > 0) got += n;
  close(fds[0]);
  long v = strtol(buf, nullptr, 10);
  if (v <= 0 || v > 65535) {
    *error = "the demo server did not start";
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
    return false;
  }
  *pid = p;
  *port = uint16_t(v);
  return true;
}

} // namespace

int run_tracer(const Options& opt_in, const char* self_exe) {
  Options opt = opt_in;
  WallClock clock;
  const uint64_t t0 = WallClock::monotonic_now_ns();

  // ---- checks that need nothing loaded ------------------------------------
  for (uint32_t pid : opt.pids)
    if (!procfs::pid_exists(pid))
      return error_exit(fmt::format("no process with PID {}", pid));
  std::vector<ot_exe_key> exe_keys;
  for (auto& path : opt.exes) {
    std::string why;
    auto key = procfs::exe_key(path, &why);
    if (!key) return error_exit("--exe " + why);
    exe_keys.push_back(*key);
  }
  std::vector<cgroups::Target> cgroup_targets;
  for (auto& u : opt.units) opt.cgroups.push_back(cgroups::unit_path(u));
  for (auto& c : opt.cgroups) {
    std::string why;
    cgroups::Target t;
    if (!cgroups::resolve(c, &t, &why))
      return error_exit(why, "--cgroup takes a cgroup v2 directory, e.g. " +
                                 (cgroups::cgroup2_mount().empty() ? std::string("/sys/fs/cgroup")
                                                                   : cgroups::cgroup2_mount()) +
                                 "/system.slice/nginx.service");
    cgroup_targets.push_back(t);
  }
  auto priv = check_privileges();
  if (!priv.ok)
    return error_exit("missing capabilities: " + priv.missing,
                      "run as root (sudo odigos-trace ...), or grant them: setcap "
                      "cap_bpf,cap_perfmon,cap_dac_read_search,cap_sys_ptrace+ep odigos-trace "
                      "(and CAP_SYS_ADMIN if tracefs must be mounted)");
  if (!kernel_has_btf())
    return error_exit(fmt::format("this kernel has no BTF ({} is missing)", kernel_btf_path()),
                      "odigos-trace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's kernels are)");
  {
    std::string err, hint;
    if (!ensure_tracefs(&err, &hint)) return error_exit(err, hint);
  }

  // ---- outputs: opened before anything runs, so a bad path costs nothing ----
  FILE* out_file = nullptr;
  bool output_created = false;
  int output_fd = -1;
  if (!opt.output.empty()) {
    // Not truncated until the probes are attached: a failure before that
    // leaves an existing file as it was, and removes one we created.
    struct stat before{};
    output_created = stat(opt.output.c_str(), &before) != 0;
    // O_APPEND: a file truncated behind our back (logrotate copytruncate)
    // continues at its new end instead of becoming sparse.
    int fd = open(opt.output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return error_exit(fmt::format("cannot write '{}': {}", opt.output, strerror(errno)));
    struct stat st{};
    // Only a regular file is made private and truncated: -o /dev/null or a
    // FIFO must keep its mode (as root, chmod of /dev/null breaks the host).
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      output_fd = fd;
      fchmod(fd, 0600); // an existing file keeps its mode otherwise
    }
    out_file = fdopen(fd, "w");
    static char buf[1 << 16];
    setvbuf(out_file, buf, _IOFBF, sizeof(buf));
  }
  std::vector<std::unique_ptr<Sink>> sinks;
  if (opt.json) sinks.push_back(make_ndjson_sink(stdout, false, "standard output"));
  if (out_file)
    sinks.push_back(opt.otlp_file ? make_otlp_file_sink(out_file, true, opt.output)
                                  : make_ndjson_sink(out_file, true, opt.output));
  if (opt.traces) {
    sinks.push_back(make_waterfall_sink(stdout, !opt.color_never && want_color(stdout)));
  } else if (!opt.json && !opt.quiet) {
    TerminalOptions t;
    t.color = !opt.color_never && want_color(stdout);
    t.show_headers = opt.show_headers;
    t.show_body = opt.show_body > 0;
    sinks.push_back(make_terminal_sink(stdout, t));
  }

  auto fail_before_tracing = [&](const std::string& msg, const std::string& hint = "") {
    if (output_created) unlink(opt.output.c_str());
    return error_exit(msg, hint);
  };
  // OTLP/HTTP export (--otlp-endpoint or OTEL_EXPORTER_OTLP_*); its thread runs
  // in this process, whose own traffic the kernel never traces (pc.self_tgid).
  bool otlp_resources = opt.otlp_file; // OTLP sinks read /proc/PID/{exe,environ} of traced processes
  {
    std::string otlp_err;
    auto otlp = make_otlp_http_sink(opt.otlp_endpoint, &otlp_err);
    if (!otlp_err.empty()) return fail_before_tracing(otlp_err);
    if (otlp) {
      otlp_resources = true;
      sinks.push_back(std::move(otlp));
    }
  }
  // Spans are for the sinks that write them (NDJSON, OTLP, --traces); the
  // terminal lines alone need no linking (and are then never held back).
  const bool link_spans = opt.json || out_file || opt.traces || otlp_resources;

  // ---- launch mode / demo: create the held children -----------------------
  Launcher launcher;
  pid_t demo_server = -1;
  std::vector<std::string> command = opt.command;
  std::string user = opt.user;
  if (!opt.user_given && geteuid() == 0)
    if (const char* su = getenv("SUDO_USER"); su && *su && strcmp(su, "root") != 0) user = su;
  if (opt.demo) {
    uint16_t port = 0;
    std::string err;
    if (!start_demo_server(self_exe, &demo_server, &port, &err)) return fail_before_tracing(err);
    opt.pids.push_back(uint32_t(demo_server));
    command = {self_exe, "__demo-client", "--port", std::to_string(port), "--seconds",
               fmt::format("{}", opt.demo_seconds)};
    user.clear();
    fmt::print(stderr, "odigos-trace: demo server listening on 127.0.0.1:{} (pid {})\n", port, demo_server);
  }
  auto stop_demo = [&] {
    if (demo_server > 0) {
      kill(demo_server, SIGTERM);
      waitpid(demo_server, nullptr, 0);
      demo_server = -1;
    }
  };
  bool launching = !command.empty();
  if (launching) {
    std::string err;
    if (!launcher.spawn_held(command, user, &err)) {
      stop_demo();
      return fail_before_tracing(err);
    }
  }

  // ---- load and attach ------------------------------------------------------
  ProbeConfig pc;
  pc.self_tgid = uint32_t(getpid());
  pc.capture_size = opt.capture_size;
  pc.ringbuf_bytes = opt.ringbuf_bytes;
  pc.filter_pid = !opt.pids.empty() || !exe_keys.empty() || launching;
  pc.match_exe = !exe_keys.empty();
  pc.filter_port = !opt.ports.empty();
  pc.filter_cgroup = !cgroup_targets.empty();
  for (auto& t : cgroup_targets) pc.cgroup_levels |= 1u << std::min<uint32_t>(t.level, 31);
  pc.tls = opt.tls;
  pc.verbose = opt.verbose;
  std::string err;
  auto probes = BpfProbes::load(pc, &err);
  auto abort_children = [&] {
    launcher.kill_child(SIGKILL);
    if (launching) launcher.wait_blocking();
    stop_demo();
  };
  if (!probes) {
    abort_children();
    std::string log = libbpf_recent_log();
    if (!log.empty() && !opt.verbose) fmt::print(stderr, "{}", log);
    return fail_before_tracing(err, "run with -v for libbpf's full log");
  }
  size_t initial = 0;
  std::vector<uint32_t> traced_now;
  for (uint32_t pid : opt.pids)
    for (uint32_t p : procfs::with_descendants(pid))
      if (probes->add_tgid(p, true)) traced_now.push_back(p);
  for (auto& k : exe_keys) {
    probes->add_exe(k);
    for (uint32_t p : procfs::pids_running(k))
      if (p != uint32_t(getpid()) && probes->add_tgid(p, true)) traced_now.push_back(p);
  }
  initial = traced_now.size();
  // Servers already listening: their requests are timed from arrival (sk_data_ready),
  // and their connections opened before tracing (no accept seen) are known as
  // server side by the local port.
  std::vector<uint16_t> listening = pc.filter_pid ? procfs::listening_ports(traced_now)
                                                  : procfs::all_listening_ports();
  for (uint16_t port : listening) probes->add_listen_port(port);
  if (launching && probes->add_tgid(uint32_t(launcher.pid()), true)) initial++;
  for (auto port : opt.ports) probes->add_port(port);
  for (auto& t : cgroup_targets) probes->add_cgroup(t.id);
  if (!probes->attach(&err)) {
    abort_children();
    std::string log = libbpf_recent_log();
    if (!log.empty() && !opt.verbose) fmt::print(stderr, "{}", log);
    return fail_before_tracing(err);
  }

  // TLS plaintext: uprobes on the TLS libraries of the traced processes (or,
  // tracing everything, of every process that maps one).
  std::unique_ptr<TlsAttacher> tls;
  // What the TLS attacher has to say: problems always, probe points with -v.
  // `clear`: erase the status line first (once tracing).
  auto report_tls = [&](bool clear) {
    const char* pre = clear ? "\r\033[K" : "";
    for (auto& m : tls->take_messages()) fmt::print(stderr, "{}odigos-trace: warning: {}\n", pre, m);
    for (auto& m : tls->take_notes())
      if (opt.verbose) fmt::print(stderr, "{}odigos-trace: {}\n", pre, m);
  };
  if (opt.tls) {
    tls = std::make_unique<TlsAttacher>(*probes);
    if (pc.filter_pid) {
      tls->attach_global_files(opt.exes);
      for (uint32_t p : traced_now) tls->scan(p);
      if (launching) {
        // Before exec: what the command will map (the kernel installs the
        // probes when it does).
        auto files = TlsAttacher::system_libraries();
        std::string exe = procfs::resolve_command(command[0]);
        if (!exe.empty()) files.push_back(exe);
        tls->attach_files(uint32_t(launcher.pid()), files);
      }
    } else if (cgroup_targets.empty()) {
      tls->scan_global(procfs::all_pids());
    }
    report_tls(false);
  }

  if (output_fd >= 0 && ftruncate(output_fd, 0) != 0) {
    abort_children();
    return fail_before_tracing(fmt::format("cannot write '{}': {}", opt.output, strerror(errno)));
  }

  // ---- describe what is traced: scripts wait for this line -----------------
  std::vector<std::string> what;
  for (auto p : opt_in.pids) what.push_back(fmt::format("pid {}", p));
  for (auto& e : opt.exes) what.push_back("exe " + e);
  if (opt.demo) what.push_back("demo server and client");
  else if (launching) what.push_back(fmt::format("command '{}' (pid {})", command[0], launcher.pid()));
  if (opt.all || (!pc.filter_pid)) what.push_back("all processes");
  for (auto p : opt.ports) what.push_back(fmt::format("port {}", p));
  for (auto& c : opt.cgroups) what.push_back("cgroup " + c);
  std::string desc;
  for (auto& w : what) desc += (desc.empty() ? "" : ", ") + w;
  // --duration, the status line and the summary count tracing time, from here.
  const uint64_t t_traced = WallClock::monotonic_now_ns();
  double attach_ms = double(t_traced - t0) / 1e6;
  if (pc.filter_pid)
    fmt::print(stderr, "odigos-trace: attached {} probes in {:.0f} ms; tracing {} ({} processes)\n",
               probes->bpf_program_count(), attach_ms, desc, initial);
  else
    fmt::print(stderr, "odigos-trace: attached {} probes in {:.0f} ms; tracing {}\n",
               probes->bpf_program_count(), attach_ms, desc);

  // ---- run ---------------------------------------------------------------
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  std::set<uint32_t> processes_seen;
  // Processes whose maps changed (fork, exec, mmap): pid -> 0 (scan now) or
  // the time of the follow-up scan.
  std::map<uint32_t, uint64_t> tls_rescan;
  constexpr uint64_t kTlsRescanNs = 30'000'000;
  uint64_t records = 0;
  auto emit = [&](const Record& r) {
    records++;
    if (r.pid) processes_seen.insert(r.pid);
    for (auto& s : sinks) s->write(r);
  };
  TrackerOptions topt;
  topt.record.show_headers = opt.show_headers;
  topt.record.show_body = opt.show_body;
  topt.record.redact = opt.redact;
  topt.http_limits.max_body_keep = std::max<size_t>(opt.show_body, 0);
  topt.max_connections = opt.max_connections;
  topt.server_ports = listening;
  topt.detect = opt.detect;
  // Request records become spans: the linker gives them their trace and
  // parent, and hands them to the sinks (a trace root first).
  // Go >= 1.17 keeps the goroutine in R14: its unit of work. Asked once per
  // process, answered once per executable (prefork servers: many processes).
  std::map<std::pair<uint64_t, uint64_t>, bool> go_by_exe;
  std::optional<trace::Linker> linker;
  if (link_spans)
    linker.emplace(trace::LinkerOptions{}, emit, [&](uint32_t pid) {
      const std::string exe = fmt::format("/proc/{}/exe", pid);
      struct stat st{};
      if (stat(exe.c_str(), &st) != 0) return false;
      if (go_by_exe.size() >= 4096) go_by_exe.clear(); // before the lookup: `it` stays valid
      auto [it, fresh] = go_by_exe.try_emplace({uint64_t(st.st_dev), uint64_t(st.st_ino)}, false);
      if (fresh) it->second = GoBinary::minor_version_of(exe) >= 17;
      return it->second;
    });
  ConnTracker tracker(
      topt, clock,
      [&](Record& r) {
        if (linker) linker->add(r);
        else emit(r);
      },
      [&](uint64_t cookie) { probes->ignore_conn(cookie); },
      [&](const ot_proc_event& ev) {
        // (Not on exit: records of its connections may still come.)
        if (linker && ev.hdr.type == OT_EV_PROC_EXEC) linker->process_changed(ev.hdr.tgid);
        if (!tls) return;
        if (ev.hdr.type == OT_EV_PROC_FORK) tls->on_fork(ev.ppid);
        if (ev.hdr.type == OT_EV_PROC_EXIT) tls->forget(ev.hdr.tgid);
        // Now (after this round) and once more a little later: an mmap event
        // comes at the call's entry, before the mapping exists.
        else tls_rescan[ev.hdr.tgid] = 0;
      });
  if (linker) tracker.set_observer(&*linker);
  // Go processes whose goroutine creations the linker asked for (attached
  // after the reader round).
  std::vector<std::pair<uint32_t, std::string>> spawns_wanted; // pid, the call that asked
  if (tls && linker) {
    linker->on_need_spawns([&](uint32_t pid, const Record& call) {
      std::string what = call.protocol;
      if (auto m = call.get_view("http.request.method"); !m.empty())
        what += fmt::format(" {} {}", m, call.get_view("url.path"));
      else if (auto q = call.get_view("db.operation.name"); !q.empty())
        what += fmt::format(" {}", q);
      spawns_wanted.emplace_back(pid, fmt::format("{} to {}:{}", what, call.get_view("server.address"),
                                                  call.get_int("server.port")));
    });
    linker->set_spawn_lost_counter([&] { return probes->go_spawn_lost(); });
  }

  // libbpf keeps consuming for as long as the kernel keeps producing; a
  // budget per call hands control back so signals, --duration and output
  // flushing are served under steady load. Returning a negative value stops
  // consumption after the current record (which is consumed).
  struct ReaderCtx {
    ConnTracker* tracker;
    size_t budget;
    bool draining; // the final drain ignores the stop signal
  } reader{&tracker, 0, false};
  constexpr int kBudgetSpent = -EALREADY;
  ring_buffer* rb = ring_buffer__new(
      probes->events_fd(),
      [](void* ctx, void* data, size_t size) -> int {
        auto* r = static_cast<ReaderCtx*>(ctx);
        r->tracker->handle(data, size);
        if (--r->budget == 0 || (g_stop_signal && !r->draining)) return kBudgetSpent;
        return 0;
      },
      &reader, nullptr);
  if (!rb) {
    abort_children();
    return error_exit(std::string("cannot open the ring buffer: ") + strerror(errno));
  }
  // Least privilege: everything from here on works through open fds, except
  // attaching TLS probes to processes that appear later (forks, execs of
  // --exe targets, a launched command's children).
  uint64_t keep_caps = tls && pc.filter_pid ? runtime_attach_capabilities() : 0;
  if (otlp_resources) keep_caps |= otlp::resource_capabilities();
  if (!drop_capabilities_except(keep_caps, &err))
    fmt::print(stderr, "odigos-trace: warning: could not drop capabilities: {}\n", err);
  if (launching) {
    int code = 0;
    if (!launcher.release(&err, &code)) {
      ring_buffer__free(rb);
      stop_demo();
      fmt::print(stderr, "odigos-trace: error: cannot run '{}': {}\n", command[0], err);
      return code;
    }
  }

  const bool ends_with_targets = pc.filter_pid && exe_keys.empty();
  const bool status_line = !opt.quiet && isatty(STDERR_FILENO) && !opt.verbose;
  uint64_t last_status = 0, last_drop_check = 0, dropped_reported = 0, last_target_check = 0;
  std::vector<uint64_t> dropped_per_cpu;
  std::optional<int> child_status;
  std::string end_reason = "interrupted";
  const char* stop_reason = nullptr;
  // A reader of our stdout pipe that went away (`| head -1`) is otherwise only
  // noticed at the next write, which may never come on an idle host: a pipe
  // whose read end is closed reports POLLERR, checked every 100 ms.
  struct stat out_st{};
  const bool watch_stdout = (opt.json || opt.traces || !opt.quiet) && fstat(STDOUT_FILENO, &out_st) == 0 &&
                            S_ISFIFO(out_st.st_mode);
  bool stdout_gone = false;
  uint64_t last_stdout_check = 0;
  while (true) {
    reader.budget = 8192;
    int n = ring_buffer__poll(rb, tls_rescan.empty() ? 100 : 10);
    // Events are submitted without a wakeup below the backlog threshold, so
    // epoll may report nothing: consume what is there on every round.
    if (n >= 0 && reader.budget > 0) n = ring_buffer__consume(rb);
    if (n == kBudgetSpent || n == -EINTR) n = 0;
    if (n < 0) {
      fmt::print(stderr, "odigos-trace: error: reading the ring buffer: {}\n", strerror(-n));
      break;
    }
    for (auto& s : sinks) s->flush();
    bool sink_failed = false;
    for (auto& s : sinks)
      if (!s->ok()) sink_failed = true;
    if (sink_failed) {
      stop_reason = "output closed";
      break;
    }
    uint64_t now = WallClock::monotonic_now_ns();
    if (watch_stdout && now - last_stdout_check > 100'000'000ull) {
      last_stdout_check = now; // a syscall: not on every round under load
      pollfd pfd{STDOUT_FILENO, 0, 0};
      if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP))) {
        stdout_gone = true;
        stop_reason = "output closed";
        break;
      }
    }
    tracker.tick(now);
    if (linker) linker->tick(now);
    if (tls && !spawns_wanted.empty()) {
      for (auto& [pid, call] : spawns_wanted)
        if (tls->follow_goroutines(pid) && opt.verbose)
          fmt::print(stderr, "odigos-trace: following the goroutines of process {} (a call came "
                             "from a goroutine serving no request: {})\n", pid, call);
      spawns_wanted.clear();
      report_tls(true);
    }
    if (tls && !tls_rescan.empty()) {
      for (auto it = tls_rescan.begin(); it != tls_rescan.end();) {
        if (it->second > now) {
          ++it;
          continue;
        }
        uint64_t t_scan = WallClock::monotonic_now_ns();
        int added = tls->scan(it->first);
        if (opt.verbose && added)
          fmt::print(stderr, "odigos-trace: TLS probes attached to process {} in {:.2f} ms\n",
                     it->first, double(WallClock::monotonic_now_ns() - t_scan) / 1e6);
        if (it->second == 0) (it++)->second = now + kTlsRescanNs;
        else it = tls_rescan.erase(it);
      }
      report_tls(true);
    }
    if (now - last_drop_check > 250'000'000ull) {
      last_drop_check = now;
      std::vector<uint64_t> per_cpu = probes->drops_per_cpu(OT_DROP_RINGBUF);
      uint64_t d = 0;
      for (auto v : per_cpu) d += v;
      if (d > dropped_reported) {
        Record r;
        r.kind = RecordKind::kLoss;
        r.start_ns = clock.to_wall_ns(now);
        r.set("odigos.lost_events", int64_t(d - dropped_reported));
        r.set("odigos.lost_events_total", int64_t(d));
        // Which CPUs lost them (the events of a connection come from the CPUs its
        // process ran on): "cpu0=12 cpu1=3", since the previous loss record.
        std::string cpus;
        for (size_t c = 0; c < per_cpu.size(); c++) {
          uint64_t before = c < dropped_per_cpu.size() ? dropped_per_cpu[c] : 0;
          if (per_cpu[c] > before)
            cpus += fmt::format("{}cpu{}={}", cpus.empty() ? "" : " ", c, per_cpu[c] - before);
        }
        r.set("odigos.lost_events_cpus", cpus);
        dropped_per_cpu = per_cpu;
        if (linker) linker->events_lost();
        emit(r);
        records--; // not a decoded record
        fmt::print(stderr, "odigos-trace: warning: {} events lost (ring buffer full); "
                           "affected connections resynchronise\n", d - dropped_reported);
        dropped_reported = d;
      }
    }
    if (g_stop_signal) {
      stop_reason = g_stop_signal == SIGTERM ? "terminated" : "interrupted";
      break;
    }
    if (opt.duration_s > 0 && !opt.demo && double(now - t_traced) / 1e9 >= opt.duration_s) {
      stop_reason = "duration reached";
      break;
    }
    if (launching && !child_status) child_status = launcher.try_reap();
    if (opt.demo && child_status) {
      stop_reason = "demo finished";
      break;
    }
    if (ends_with_targets && (!launching || child_status) && now - last_target_check > 200'000'000ull) {
      last_target_check = now; // walking the map costs a syscall per entry: not every round
      if (probes->traced_tgid_count() == 0) {
        stop_reason = "traced processes exited";
        break;
      }
    }
    if (status_line && now - last_status > 1'000'000'000ull) {
      last_status = now;
      fmt::print(stderr, "\r\033[K[{:.0f}s] {} records, {} connections open, {} events lost",
                 double(now - t_traced) / 1e9, records, tracker.open_connections(), dropped_reported);
    }
  }
  if (status_line) fmt::print(stderr, "\r\033[K");

  // ---- drain, detach, flush, summarise ---------------------------------------
  probes->detach(); // nothing new arrives while we drain
  tls.reset();
  reader.draining = true;
  while (true) {
    reader.budget = SIZE_MAX;
    int n = ring_buffer__consume(rb);
    if (n != kBudgetSpent && n <= 0) break;
  }
  tracker.finish(WallClock::monotonic_now_ns(), "incomplete");
  if (linker) linker->finish();
  uint64_t drops = probes->drops(OT_DROP_RINGBUF);
  uint64_t table_drops = probes->drops(OT_DROP_CONN_TABLE);
  uint64_t tls_unbound = probes->drops(OT_DROP_TLS_NO_SOCKET);
  ring_buffer__free(rb);
  probes.reset(); // detach
  std::string sink_error;
  bool broken_pipe = stdout_gone;
  for (auto& s : sinks) {
    s->flush();
    if (!s->ok() && sink_error.empty()) {
      sink_error = s->error();
      broken_pipe = s->broken_pipe();
    }
  }
  sinks.clear();
  stop_demo();

  const auto& st = tracker.stats();
  double secs = double(WallClock::monotonic_now_ns() - t_traced) / 1e9;
  if (!broken_pipe || opt.verbose)
    fmt::print(stderr,
               "odigos-trace: {} ({:.1f} s): {} records from {} processes; {} connections, "
               "{} not decoded (ignored); {} events, {} events lost{}{}{}{}\n",
               stop_reason ? stop_reason : "stopped", secs, st.records, processes_seen.size(),
               st.connections, st.not_decoded, st.events, drops,
               table_drops ? fmt::format(", {} connections untracked (table full)", table_drops) : "",
               st.evicted ? fmt::format(", {} connections evicted (--max-connections {})",
                                        st.evicted, opt.max_connections)
                          : "",
               st.gaps ? fmt::format(", {} stream gaps", st.gaps) : "",
               st.tls_connections || st.tls_not_decoded || tls_unbound
                   ? fmt::format("; TLS: {} connections decoded, {} not decoded, {} calls "
                                 "without a known socket",
                                 st.tls_connections, st.tls_not_decoded, tls_unbound)
                   : "");
  const trace::LinkerStats ls = linker ? linker->stats() : trace::LinkerStats{};
  if ((!broken_pipe || opt.verbose) && ls.spans)
    fmt::print(stderr,
               "odigos-trace: traces: {} spans, {} linked ({} across processes, {} in a process{}), "
               "{} joined a traceparent, {} roots, {} left unlinked ({} ambiguous, {} failed the "
               "checks, {} waited in vain{}{})\n",
               ls.spans, ls.cross_process + ls.in_process, ls.cross_process, ls.in_process,
               ls.in_process_spawned
                   ? fmt::format(", {} of them from goroutines a handler started", ls.in_process_spawned)
                   : "",
               ls.from_header, ls.roots, ls.unlinked(), ls.unlinked_ambiguous,
               ls.unlinked_mismatch, ls.unlinked_timeout,
               ls.unlinked_ended
                   ? fmt::format(", {} made by a goroutine after its request ended", ls.unlinked_ended)
                   : "",
               ls.unlinked_outlived
                   ? fmt::format(", {} by a goroutine that outlived its request", ls.unlinked_outlived)
                   : "");
  if (!sink_error.empty() && !broken_pipe) {
    fmt::print(stderr, "odigos-trace: error: {}\n", sink_error);
    if (launching) launcher.kill_child(SIGTERM);
    return kExitError;
  }
  if (launching) {
    if (!child_status) {
      if (g_stop_signal) launcher.forward_signal(g_stop_signal);
      child_status = launcher.wait_blocking();
    }
    if (!opt.demo) return *child_status;
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  ParseOutcome po = parse_options(argc, argv);
  if (!po.options) return po.exit_code;
  const Options& o = *po.options;
  // Name the demo processes so the records say which is which.
  if (o.demo_server) {
    prctl(PR_SET_NAME, "demo-server");
    return demo::run_server(o.demo_port, o.demo_ready_fd);
  }
  if (o.demo_client) {
    prctl(PR_SET_NAME, "demo-client");
    return demo::run_client(o.demo_port, o.demo_seconds, o.demo_print);
  }
  char self[4096] = {};
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return error_exit("cannot find my own executable (/proc/self/exe)");
  return run_tracer(o, self);
}

} // namespace odigos
