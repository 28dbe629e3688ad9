// Test helper: a long-running child (zerorund, zerorun) the test owns. Its stdout and stderr are
// collected by a thread; the destructor SIGKILLs it by pid if it is still running and reaps it.
#ifndef ZERORUN_TESTS_SUPPORT_CHILD_PROCESS_H_
#define ZERORUN_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zerorun::testing {

class ChildProcess {
 public:
  // Starts argv with the current environment plus `env`.
  ChildProcess(const std::vector<std::string>& argv,
               const std::map<std::string, std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits up to `timeout_s` until the combined output contains `text`.
  bool WaitForOutput(const std::string& text, double timeout_s);
  // Waits up to `timeout_s` for the exit; returns the exit code (128+N for signal N), or -1.
  int Wait(double timeout_s);
  void Signal(int signal);
  std::string Output();

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  bool reaped_ = false;
  std::mutex mu_;
  std::string output_;
  std::thread reader_;
};

// True when no process with `pid` exists (or it is a zombie awaiting its parent).
bool ProcessGone(pid_t pid);

// Reaps forked children `pids` within `timeout_s` in all: per child its exit code, or minus the
// signal that ended it. A child still running at the deadline (a hang) is SIGKILLed by pid and
// reported as -SIGKILL.
std::vector<int> WaitForChildren(const std::vector<pid_t>& pids, double timeout_s);

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_CHILD_PROCESS_H_
