// MakeDirs: one mkdir per path component, tolerating ones that exist.
#include "base/fs.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun {

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string partial = path.substr(0, i);
    if (mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("mkdir ", partial, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace zerorun
