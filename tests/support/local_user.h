// Test helper: local accounts a test makes (root only) and removes, and the uid a process runs as.
#ifndef ZERORUN_TESTS_SUPPORT_LOCAL_USER_H_
#define ZERORUN_TESTS_SUPPORT_LOCAL_USER_H_

#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
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

// `binary` where every local user may run it: a copy (0755) in a directory of this process's
// under /tmp, made once per binary. The build tree may be in a folder other users cannot enter
// (a clone under /root or in a 0700 mktemp -d), and what runs as a user (a rank, the supervisor
// zerorund execs after dropping to the user, a launcher or zerorund started as the user) must
// be reachable by that user.
inline std::string UsersCanRun(const std::string& binary) {
  struct Copies {
    std::string dir;
    std::map<std::string, std::string> made;
    ~Copies() {
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  };
  static std::mutex mu;
  static Copies copies;
  std::lock_guard<std::mutex> lock(mu);
  if (copies.dir.empty()) {
    char pattern[] = "/tmp/zr-test-bin-XXXXXX";
    if (mkdtemp(pattern) == nullptr) return binary;
    copies.dir = pattern;
    chmod(copies.dir.c_str(), 0755);
  }
  auto found = copies.made.find(binary);
  if (found != copies.made.end()) return found->second;
  const std::string copy = copies.dir + "/" + std::filesystem::path(binary).filename().string();
  std::error_code ec;
  std::filesystem::copy_file(binary, copy, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return binary;
  chmod(copy.c_str(), 0755);
  copies.made[binary] = copy;
  return copy;
}

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
