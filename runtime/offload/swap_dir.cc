// SwapDir: make and remove a rank's swap directory under nvme_path.
#include "offload/swap_dir.h"

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
  if (mkdir(dir.c_str(), 0700) == 0) return std::unique_ptr<SwapDir>(new SwapDir(dir));
  if (errno == ENOENT || errno == ENOTDIR) {
    return absl::NotFoundError(absl::StrCat(key, " ", nvme_path,
                                            " is not an existing directory (zerorun never "
                                            "creates it). Fix: create it or name another"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("cannot create ", dir, " under ", key, ": ", strerror(errno),
                   errno == EEXIST ? " (another run with this job id and rank holds it)"
                                   : ". Fix: make nvme_path writable for this user"));
}

SwapDir::~SwapDir() { rmdir(path_.c_str()); }  // Fails, harmlessly, when not empty.

}  // namespace zerorun
