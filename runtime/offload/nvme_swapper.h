// NvmeSwapper: one rank's swap file under nvme_path (ZeRO-Infinity), read and written
// asynchronously with O_DIRECT through io_uring in requests of DeepSpeed's aio.block_size, at
// most aio.queue_depth in flight, every 4096-byte page's CRC-32C kept in memory and checked on
// read: a short read, an I/O error or a page changed behind our back is an error naming the file
// and offset, never silent. The building block of optimizer-state and parameter offload to NVMe
// (issue 12).
#ifndef ZERORUN_RUNTIME_OFFLOAD_NVME_SWAPPER_H_
#define ZERORUN_RUNTIME_OFFLOAD_NVME_SWAPPER_H_

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"

namespace zerorun {

// DeepSpeed's "aio" block (its defaults). thread_count / intra_op_parallelism, single_submit and
// overlap_events are accepted for compatibility: one io_uring does what DeepSpeed's threads do.
struct AioOptions {
  size_t block_size = 1 << 20;  // Bytes per request; a multiple of 4096.
  int queue_depth = 8;          // Requests in flight.
  bool single_submit = false;
  bool overlap_events = true;
  int thread_count = 1;
};

struct SwapStats {
  uint64_t bytes_written = 0, bytes_read = 0;
  double write_seconds = 0, read_seconds = 0;  // Submit to last completion, summed per call.
  bool direct = false;                         // O_DIRECT (else buffered: the fs refused it).
};

class NvmeSwapper {
 public:
  // Creates `dir`/`file_name` (never `dir` itself: a missing nvme_path is NotFound naming it)
  // and reserves `bytes` with fallocate, so a full file system fails here (ResourceExhausted
  // naming the path and the bytes needed), not mid-run. InvalidArgument for a block size that is
  // not a positive multiple of 4096 or a queue depth < 1.
  static absl::StatusOr<std::unique_ptr<NvmeSwapper>> Create(const std::string& dir,
                                                             const std::string& file_name,
                                                             uint64_t bytes,
                                                             const AioOptions& options);
  ~NvmeSwapper();  // Removes the file.
  NvmeSwapper(const NvmeSwapper&) = delete;
  NvmeSwapper& operator=(const NvmeSwapper&) = delete;

  // Writes / reads [offset, offset + n) of the file from / into `data`; `offset`, `data` and n
  // must be multiples of 4096 (the swapped arrays are padded so). Thread-safe: reads and writes
  // go through their own io_uring and run concurrently (on disjoint ranges: the caller's duty),
  // reads among themselves and writes among themselves one at a time. Blocking: returns once every
  // block completed and (reads) its CRC matched.
  absl::Status Write(uint64_t offset, const char* data, size_t n);
  absl::Status Read(uint64_t offset, char* data, size_t n);

  const std::string& path() const { return path_; }
  uint64_t bytes() const { return bytes_; }
  SwapStats stats() const;

 private:
  NvmeSwapper(std::string path, int fd, uint64_t bytes, const AioOptions& options);
  struct Ring {
    zerorun::Mutex mu;  // One transfer at a time on this ring.
    io_uring ring{};
    bool ok = false;  // Without io_uring (the kernel's policy) transfers are pread/pwrite.
  };
  absl::Status Transfer(bool write, uint64_t offset, char* data, size_t n);

  const std::string path_;
  const int fd_;
  const uint64_t bytes_;
  const AioOptions options_;
  Ring rings_[2];  // Reads, writes.
  // Per 4096-byte page of the file (bytes, not vector<bool>: concurrent transfers touch
  // neighbouring pages); crc_ is valid where written_.
  std::vector<uint32_t> crc_;
  std::vector<uint8_t> written_;
  mutable zerorun::Mutex stats_mu_;
  SwapStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_NVME_SWAPPER_H_
