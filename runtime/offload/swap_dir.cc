// SwapDir: make, lock, reclaim and remove a rank's swap directory under nvme_path.
#include "offload/swap_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun {

absl::StatusOr<std::unique_ptr<SwapDir>> SwapDir::Create(const std::string& nvme_path,
                                                         const std::string& tag,
                                                         const std::string& key) {
  const std::string dir = absl::StrCat(nvme_path, "/zerorun-", tag);
  const bool made = mkdir(dir.c_str(), 0700) == 0;
  if (!made && (errno == ENOENT || errno == ENOTDIR)) {
    return absl::NotFoundError(absl::StrCat(key, " ", nvme_path,
                                            " is not an existing directory (zerorun never "
                                            "creates it). Fix: create it or name another"));
  }
  if (!made && errno != EEXIST) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, " under ", key, ": ",
                                                    strerror(errno),
                                                    ". Fix: make nvme_path writable for this "
                                                    "user"));
  }
  // O_NOFOLLOW: a link planted at the name is not a swap directory.
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open ", dir, " under ", key, ": ",
                                                    strerror(errno),
                                                    ". Fix: remove it, or name another nvme_path"));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    close(fd);
    return absl::PermissionDeniedError(absl::StrCat(
        dir, " under ", key, " is held by a live process (another run with this job id and rank",
        e == EWOULDBLOCK ? "" : absl::StrCat(": ", strerror(e)),
        "). Fix: end that run, or give this one another --job-id"));
  }
  // Ours now. Whatever a dead run left of its swap files goes; anything else stays.
  int reclaimed = 0;
  for (const char* name : kSwapFiles) {
    if (unlinkat(fd, name, 0) == 0) ++reclaimed;
  }
  return std::unique_ptr<SwapDir>(new SwapDir(dir, fd, reclaimed));
}

SwapDir::~SwapDir() {
  rmdir(path_.c_str());  // Fails, harmlessly, when not empty.
  close(fd_);            // Unlocks.
}

}  // namespace zerorun
