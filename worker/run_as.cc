// Local accounts, checks as the user and the privilege drop (see run_as.h).
#include "run_as.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun::worker {

std::string UserNameOf(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
    return absl::StrCat("#", uid);
  }
  return pw.pw_name;
}

absl::StatusOr<RunAs> LookUpUser(const std::string& name, const std::string& node) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no user '", name, "' on node ", node,
        ": ranks run as the user the client certificate (or the UNIX socket) names. Fix: create "
        "the account there, "
        "or issue the certificate for an existing one"));
  }
  RunAs user;
  user.name = name;
  user.uid = pw.pw_uid;
  user.gid = pw.pw_gid;
  user.home = pw.pw_dir != nullptr ? pw.pw_dir : "/";
  user.shell = pw.pw_shell != nullptr && pw.pw_shell[0] != '\0' ? pw.pw_shell : "/bin/sh";
  int count = 64;
  user.groups.resize(static_cast<size_t>(count));
  if (getgrouplist(name.c_str(), user.gid, user.groups.data(), &count) < 0) {
    user.groups.resize(static_cast<size_t>(count));
    getgrouplist(name.c_str(), user.gid, user.groups.data(), &count);
  }
  user.groups.resize(static_cast<size_t>(std::max(count, 0)));
  return user;
}

bool DropTo(const RunAs& user) {
  if (setgroups(user.groups.size(), user.groups.data()) != 0) return false;
  if (setresgid(user.gid, user.gid, user.gid) != 0) return false;
  if (setresuid(user.uid, user.uid, user.uid) != 0) return false;
  if (getuid() != user.uid || geteuid() != user.uid || getgid() != user.gid ||
      getegid() != user.gid) {
    return false;
  }
  // Slurm bug 8084's lesson: verify the drop took (a non-root user cannot become root again).
  return user.uid == 0 || setuid(0) != 0;
}

absl::Status PrepareAs(const RunAs& user, const std::vector<std::string>& dirs,
                       const std::string& cwd) {
  // Every path the child tries, parents first; it reports the index that failed and its errno.
  std::vector<std::string> paths;
  for (const std::string& dir : dirs) {
    for (size_t slash = dir.find('/', 1); slash != std::string::npos;
         slash = dir.find('/', slash + 1)) {
      paths.push_back(dir.substr(0, slash));
    }
    paths.push_back(dir);
  }
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  const pid_t pid = fork();
  if (pid == 0) {
    int result[2] = {-1, 0};  // {failed path index or -2 (the drop) or -3 (cwd), errno}
    if (!DropTo(user)) {
      result[0] = -2;
      result[1] = errno;
    } else {
      for (size_t i = 0; i < paths.size() && result[0] == -1; ++i) {
        if (mkdir(paths[i].c_str(), 0700) == 0 || errno == EEXIST) continue;
        result[0] = static_cast<int>(i);
        result[1] = errno;
      }
      for (size_t i = 0; i < paths.size() && result[0] == -1; ++i) {
        if (access(paths[i].c_str(), X_OK) != 0) {
          result[0] = static_cast<int>(i);
          result[1] = errno;
        }
      }
      for (const std::string& dir : dirs) {
        if (result[0] == -1 && access(dir.c_str(), W_OK | X_OK) != 0) {
          result[0] = static_cast<int>(std::find(paths.begin(), paths.end(), dir) - paths.begin());
          result[1] = errno;
        }
      }
      if (result[0] == -1 && !cwd.empty() && access(cwd.c_str(), X_OK) != 0) {
        result[0] = -3;
        result[1] = errno;
      }
    }
    (void)!write(report[1], result, sizeof(result));
    _exit(0);
  }
  close(report[1]);
  int result[2] = {-1, 0};
  const bool got = pid > 0 && read(report[0], result, sizeof(result)) == sizeof(result);
  close(report[0]);
  if (pid > 0) waitpid(pid, nullptr, 0);
  if (!got) return absl::InternalError(absl::StrCat("cannot check paths as user ", user.name));
  if (result[0] == -1) return absl::OkStatus();
  if (result[0] == -2) {
    return absl::InternalError(
        absl::StrCat("cannot become user ", user.name, ": ", strerror(result[1])));
  }
  const std::string what =
      result[0] == -3 ? absl::StrCat("the working directory ", cwd)
                      : absl::StrCat("log_dir path ", paths[static_cast<size_t>(result[0])]);
  return absl::PermissionDeniedError(
      absl::StrCat("user ", user.name, " may not use ", what, ": ", strerror(result[1]),
                   ". Fix: a --log-dir and working directory that user can write and enter"));
}

}  // namespace zerorun::worker
