// SwapDir: the per job and rank directory <nvme_path>/zerorun-<tag>/ that holds a rank's NVMe
// swap files (ZeRO-Infinity). Made on construction (nvme_path itself never is) and held with an
// exclusive flock on the directory for the object's life: the kernel drops the lock when the
// process dies, however it dies. A directory no live process holds (a crashed or OOM-killed
// run's) is reclaimed: the swap files zerorun names there are removed and the directory reused; a
// directory a live process holds is refused. Removed when the object goes if it is empty: a file
// zerorun did not create there is never deleted.
//
// One thread owns a SwapDir; path() lives as long as the object.
#ifndef ZERORUN_RUNTIME_OFFLOAD_SWAP_DIR_H_
#define ZERORUN_RUNTIME_OFFLOAD_SWAP_DIR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace zerorun {

class SwapDir {
 public:
  // The swap files a SwapDir reclaims from a dead run (NvmeSwapper's names).
  static constexpr const char* kSwapFiles[] = {"optimizer_state.swap", "params.swap"};

  // `key` names the config key the path came from in errors ("offload_param.nvme_path").
  // NotFound when nvme_path is not an existing directory; PermissionDenied when the directory
  // cannot be made (not writable) or a live process holds it (another run with the same job id
  // and rank), naming it.
  static absl::StatusOr<std::unique_ptr<SwapDir>> Create(const std::string& nvme_path,
                                                         const std::string& tag,
                                                         const std::string& key);
  ~SwapDir();
  SwapDir(const SwapDir&) = delete;
  SwapDir& operator=(const SwapDir&) = delete;

  const std::string& path() const { return path_; }
  // Swap files of a dead run this one removed when it took the directory (0: a fresh one).
  int reclaimed() const { return reclaimed_; }

 private:
  SwapDir(std::string path, int fd, int reclaimed)
      : path_(std::move(path)), fd_(fd), reclaimed_(reclaimed) {}
  const std::string path_;
  const int fd_;  // The directory, flock()ed.
  const int reclaimed_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_SWAP_DIR_H_
