// Test helper: local accounts a test makes (root only) and removes, and the uid a process runs as.
#ifndef ZERORUN_TESTS_SUPPORT_LOCAL_USER_H_
#define ZERORUN_TESTS_SUPPORT_LOCAL_USER_H_

#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "support/subprocess.h"

namespace zerorun::testing {

// The test's local account names, unique per process (test cases run in parallel processes,
// each making and removing its own).
inline std::string Alice() { return "zrtest-a" + std::to_string(getpid()); }
inline std::string Bob() { return "zrtest-b" + std::to_string(getpid()); }

// A local account for the test, made with useradd when missing and removed at the end if made.
struct LocalUser {
  explicit LocalUser(std::string n) : name(std::move(n)) {
    if (getpwnam(name.c_str()) == nullptr) {
      made = Run({"/usr/sbin/useradd", "--system", "--no-create-home", "--shell",
                  "/usr/sbin/nologin", name},
                 {})
                 .exit_code == 0;
    }
    const passwd* pw = getpwnam(name.c_str());
    uid = pw != nullptr ? pw->pw_uid : 0;
    gid = pw != nullptr ? pw->pw_gid : 0;
  }
  ~LocalUser() {
    if (made) Run({"/usr/sbin/userdel", name}, {});
  }
  LocalUser(const LocalUser&) = delete;
  LocalUser& operator=(const LocalUser&) = delete;
  // `argv` run as this user (setpriv, with its groups and a clean $HOME-less environment kept).
  std::vector<std::string> As(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid),
                               "--regid=" + std::to_string(gid), "--init-groups", "--"});
    return argv;
  }
  std::string name;
  bool made = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// "Uid:" of /proc/<pid>/status: the real uid.
inline int ProcUid(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) return std::stoi(line.substr(4));
  }
  return -1;
}

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_LOCAL_USER_H_
