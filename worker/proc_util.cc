// /proc parsing, atomic writes, file ages.
#include "proc_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace zerorun::worker {

std::optional<ProcFacts> ReadProcFacts(pid_t pid) {
  std::optional<std::string> stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.has_value()) return std::nullopt;
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the
  // last ')'.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> fields = absl::StrSplit(stat->substr(close + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); field N is fields[N - 3].
  if (fields.size() < 20) return std::nullopt;
  ProcFacts facts;
  facts.state = fields[0].empty() ? '?' : fields[0][0];
  int ppid = 0, pgid = 0;
  if (!absl::SimpleAtoi(fields[1], &ppid) || !absl::SimpleAtoi(fields[2], &pgid) ||
      !absl::SimpleAtoi(fields[19], &facts.start_ticks)) {
    return std::nullopt;
  }
  facts.ppid = ppid;
  facts.pgid = pgid;
  return facts;
}

bool ProcessIs(pid_t pid, uint64_t start_ticks) {
  if (pid <= 0) return false;
  const std::optional<ProcFacts> facts = ReadProcFacts(pid);
  return facts.has_value() && facts->state != 'Z' && facts->state != 'X' &&
         (start_ticks == 0 || facts->start_ticks == start_ticks);
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return children;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::optional<ProcFacts> facts = ReadProcFacts(pid);
    if (facts.has_value() && facts->ppid == parent) children.push_back(pid);
  }
  closedir(proc);
  return children;
}

absl::Status WriteFileAtomic(const std::string& path, const std::string& content, int mode) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", strerror(errno)));
  const bool written =
      write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      fsync(fd) == 0;
  const int saved = errno;
  close(fd);
  if (!written || rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = strerror(written ? errno : saved);
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", why));
  }
  return absl::OkStatus();
}

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<int64_t> FileAgeMs(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  const absl::Time modified = absl::TimeFromTimespec(st.st_mtim);
  return absl::ToInt64Milliseconds(absl::Now() - modified);
}

void TouchFile(const std::string& path) { (void)utimensat(AT_FDCWD, path.c_str(), nullptr, 0); }

std::string SelfExecutable() {
  char self[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  return n > 0 ? std::string(self, static_cast<size_t>(n)) : "";
}

}  // namespace zerorun::worker
