// Removal of the shared-memory segments DeepSpeed's CPU collectives leave behind (see header).
#include "shm_leftovers.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace zerorun::worker {
namespace {

std::string EnvValue(const std::vector<std::string>& env, const std::string& key) {
  const std::string prefix = key + "=";
  for (const std::string& kv : env) {
    if (absl::StartsWith(kv, prefix)) return kv.substr(prefix.size());
  }
  return "";
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

std::string DeepSpeedShmPrefix(const std::vector<std::string>& rank_env, uid_t uid) {
  const std::string addr = EnvValue(rank_env, "MASTER_ADDR");
  const std::string port = EnvValue(rank_env, "MASTER_PORT");
  if (addr.empty() || port.empty() || absl::StrContains(addr, '/') || !AllDigits(port)) return "";
  return absl::StrCat("deepspeed_allreduce_buffer_", uid, "_", addr, "_", port, "_");
}

int RemoveShmLeftovers(const std::string& prefix, uid_t uid, const std::string& shm_dir) {
  if (prefix.empty()) return 0;
  DIR* dir = opendir(shm_dir.c_str());
  if (dir == nullptr) return 0;
  int removed = 0;
  const int dir_fd = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (!absl::StartsWith(name, prefix) || !AllDigits(name.substr(prefix.size()))) continue;
    struct stat st;
    if (fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(st.st_mode) || st.st_uid != uid) continue;
    if (unlinkat(dir_fd, entry->d_name, 0) == 0) ++removed;
  }
  closedir(dir);
  return removed;
}

}  // namespace zerorun::worker
