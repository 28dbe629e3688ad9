// SwapDir: the per job and rank directory <nvme_path>/zerorun-<tag>/ that holds a rank's NVMe
// swap files (ZeRO-Infinity). Created on construction (nvme_path itself never is), removed when
// the object goes if it is empty: a file zerorun did not create there is never deleted.
#ifndef ZERORUN_RUNTIME_OFFLOAD_SWAP_DIR_H_
#define ZERORUN_RUNTIME_OFFLOAD_SWAP_DIR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace zerorun {

class SwapDir {
 public:
  // `key` names the config key the path came from in errors ("offload_param.nvme_path").
  // NotFound when nvme_path is not an existing directory, PermissionDenied when the directory
  // cannot be made (not writable, or another run with the same tag holds it).
  static absl::StatusOr<std::unique_ptr<SwapDir>> Create(const std::string& nvme_path,
                                                         const std::string& tag,
                                                         const std::string& key);
  ~SwapDir();
  SwapDir(const SwapDir&) = delete;
  SwapDir& operator=(const SwapDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit SwapDir(std::string path) : path_(std::move(path)) {}
  const std::string path_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_SWAP_DIR_H_
