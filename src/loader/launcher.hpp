// Launch mode: fork the command, hold it before exec until the probes are
// attached and its PID is in the traced set, then let it exec. Nothing it
// does, from its first instruction, escapes tracing.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace odigos {

class Launcher {
 public:
  ~Launcher();
  // Forks a child that waits; `user` (may be empty) is looked up now so a bad
  // name fails before anything is loaded.
  bool spawn_held(const std::vector<std::string>& argv, const std::string& user,
                  std::string* error);
  pid_t pid() const { return pid_; }
  // Lets the child exec. Returns false with `error` and `exit_code` (126/127)
  // when exec failed.
  bool release(std::string* error, int* exit_code);
  // Non-blocking reap: the command's exit status as a shell reports it
  // (code, or 128+signal), once it has exited.
  std::optional<int> try_reap();
  int wait_blocking();
  void kill_child(int sig);
  void forward_signal(int sig);

 private:
  pid_t pid_ = -1;
  int go_fd_ = -1;  // parent writes one byte: "exec now"
  int err_fd_ = -1; // child writes errno if exec fails (CLOEXEC: EOF means exec succeeded)
  bool reaped_ = false;
  int status_ = 0;
};

int shell_status(int wait_status);

} // namespace odigos
