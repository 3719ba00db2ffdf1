#include "loader/launcher.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace odigos {

int shell_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 125;
}

Launcher::~Launcher() {
  if (go_fd_ >= 0) close(go_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

bool Launcher::spawn_held(const std::vector<std::string>& argv, const std::string& user,
                          std::string* error) {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user_name;
  bool switch_user = false;
  if (!user.empty()) {
    passwd* pw = getpwnam(user.c_str());
    if (!pw) {
      char* end = nullptr;
      unsigned long v = strtoul(user.c_str(), &end, 10);
      if (end && *end == '\0') pw = getpwuid(uid_t(v));
    }
    if (!pw) {
      *error = "unknown user '" + user + "' (-u)";
      return false;
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    user_name = pw->pw_name;
    switch_user = uid != geteuid();
  }
  int go[2], err[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    return false;
  }
  if (pid == 0) {
    close(go[1]);
    close(err[0]);
    // Die with us if we die before releasing the child.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char c;
    ssize_t n;
    do n = read(go[0], &c, 1); while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);
    prctl(PR_SET_PDEATHSIG, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (switch_user) {
      if (initgroups(user_name.c_str(), gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        int e = errno;
        (void)!write(err[1], &e, sizeof(e));
        _exit(126);
      }
    }
    execvp(cargv[0], cargv.data());
    int e = errno;
    (void)!write(err[1], &e, sizeof(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  close(go[0]);
  close(err[1]);
  pid_ = pid;
  go_fd_ = go[1];
  err_fd_ = err[0];
  return true;
}

bool Launcher::release(std::string* error, int* exit_code) {
  char c = 'x';
  (void)!write(go_fd_, &c, 1);
  close(go_fd_);
  go_fd_ = -1;
  int e = 0;
  ssize_t n;
  do n = read(err_fd_, &e, sizeof(e)); while (n < 0 && errno == EINTR);
  close(err_fd_);
  err_fd_ = -1;
  if (n == sizeof(e)) {
    *error = strerror(e);
    *exit_code = e == ENOENT ? 127 : 126;
    wait_blocking();
    return false;
  }
  return true;
}

std::optional<int> Launcher::try_reap() {
  if (pid_ <= 0) return std::nullopt;
  if (reaped_) return shell_status(status_);
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = st;
    return shell_status(st);
  }
  return std::nullopt;
}

int Launcher::wait_blocking() {
  if (pid_ <= 0) return 125;
  if (!reaped_) {
    int st = 0;
    pid_t r;
    do r = waitpid(pid_, &st, 0); while (r < 0 && errno == EINTR);
    reaped_ = true;
    status_ = st;
  }
  return shell_status(status_);
}

void Launcher::kill_child(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

void Launcher::forward_signal(int sig) { kill_child(sig); }

} // namespace odigos
