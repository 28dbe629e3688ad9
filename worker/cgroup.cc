// cgroup v2 / v1-freezer job containers.
#include "cgroup.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "proc_util.h"

namespace zerorun::worker {
namespace {

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

bool WriteValue(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value << std::flush;
  return static_cast<bool>(out);
}

std::vector<int> Procs(const std::string& dir) {
  std::vector<int> pids;
  std::ifstream in(dir + "/cgroup.procs");
  int pid = 0;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// Child cgroup directories of `dir`, deepest first.
void Subdirs(const std::string& dir, std::vector<std::string>* out) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> here;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') here.push_back(dir + "/" + e->d_name);
  }
  closedir(d);
  for (const std::string& sub : here) {
    Subdirs(sub, out);
    out->push_back(sub);
  }
}

std::string MountOf(const std::string& fstype, const std::string& option) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 4 || f[2] != fstype) continue;
    if (option.empty()) return f[1];
    for (absl::string_view o : absl::StrSplit(f[3], ',')) {
      if (o == option) return f[1];
    }
  }
  return "";
}

}  // namespace

std::string CgroupRoot(const std::string& override_root) {
  std::string root = override_root;
  if (root.empty()) {
    // v2 (unified, or the hybrid hierarchy at .../unified) has cgroup.kill; else v1's freezer.
    const std::string v2 = MountOf("cgroup2", "");
    const std::string v1 = MountOf("cgroup", "freezer");
    if (!v2.empty() && Exists(v2 + "/cgroup.procs")) {
      root = v2 + "/zerorun";
    } else if (!v1.empty()) {
      root = v1 + "/zerorun";
    } else {
      return "";
    }
  }
  if (mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) return "";
  return access(root.c_str(), W_OK) == 0 ? root : "";
}

std::string AgentCgroupRoot(const std::string& state_dir) {
  const std::string root = CgroupRoot();
  if (root.empty()) return "";
  uint64_t hash = 1469598103934665603ull;  // FNV-1a of the state dir.
  for (unsigned char c : state_dir) hash = (hash ^ c) * 1099511628211ull;
  absl::StatusOr<std::string> dir = MakeCgroup(root, absl::StrCat("agent-", absl::Hex(hash)));
  return dir.ok() ? *dir : "";
}

absl::StatusOr<std::string> MakeCgroup(const std::string& root, const std::string& name) {
  const std::string dir = absl::StrCat(root, "/", name);
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("cannot create cgroup ", dir, ": ", strerror(errno)));
  }
  return dir;
}

absl::Status JoinCgroup(const std::string& dir, int pid) {
  if (!WriteValue(dir + "/cgroup.procs", std::to_string(pid))) {
    return absl::InternalError(absl::StrCat("cannot move pid ", pid, " into ", dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> KillAndRemoveCgroup(const std::string& dir, const std::function<void()>& reap) {
  if (!Exists(dir)) return 0;
  std::vector<std::string> dirs;
  Subdirs(dir, &dirs);
  dirs.push_back(dir);
  std::set<int> found;
  for (const std::string& d : dirs) {
    for (int pid : Procs(d)) found.insert(pid);
  }
  if (Exists(dir + "/cgroup.kill")) {
    WriteValue(dir + "/cgroup.kill", "1");
  } else {
    // v1: freeze so nothing forks while we kill, SIGKILL every member, thaw so they die.
    for (const std::string& d : dirs) WriteValue(d + "/freezer.state", "FROZEN");
    for (const std::string& d : dirs) {
      for (int pid : Procs(d)) kill(pid, SIGKILL);
    }
    for (const std::string& d : dirs) WriteValue(d + "/freezer.state", "THAWED");
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (true) {
    reap();
    bool removed = true;
    for (const std::string& d : dirs) removed &= rmdir(d.c_str()) == 0 || errno == ENOENT;
    if (removed) return static_cast<int>(found.size());
    if (absl::Now() >= deadline) break;
    for (const std::string& d : dirs) {
      for (int pid : Procs(d)) kill(pid, SIGKILL);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::vector<int> left;
  for (const std::string& d : dirs) {
    for (int pid : Procs(d)) left.push_back(pid);
  }
  return absl::InternalError(
      absl::StrCat("cgroup ", dir, " still holds ", left.size(), " process(es) 5 s after SIGKILL"));
}

}  // namespace zerorun::worker
