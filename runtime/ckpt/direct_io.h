// Whole-file writes and reads for checkpoint shards: large sequential O_DIRECT transfers from
// 4 KiB-aligned host buffers where the file system accepts O_DIRECT, buffered I/O where it does
// not (tmpfs, some overlays), every size checked.
#ifndef ZERORUN_RUNTIME_CKPT_DIRECT_IO_H_
#define ZERORUN_RUNTIME_CKPT_DIRECT_IO_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace zerorun::ckpt {

// A host buffer of size() bytes whose start and capacity are multiples of kAlign (the padding
// past size() is zero), as O_DIRECT needs.
class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;
  AlignedBuffer() = default;
  // InternalError-free: aborts only if the allocation fails, like std::vector.
  explicit AlignedBuffer(size_t size);

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(char* p) const;
  };
  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

struct IoResult {
  bool direct = false;  // O_DIRECT was used (else buffered, the file system refused it).
  double seconds = 0;   // Open to fsync (writes) or to the last byte (reads).
};

// Writes `buffer` to `path` (created 0644 or truncated) in chunks of up to 64 MiB and fsyncs it;
// the file is exactly buffer.size() bytes. With O_DIRECT the padded last block is written and
// the file truncated back. Internal naming the path (ENOSPC included) on failure.
absl::StatusOr<IoResult> WriteWholeFile(const std::string& path, const AlignedBuffer& buffer,
                                        bool allow_direct = true);

// Reads all of `path` into `buffer`, which must be exactly buffer->size() bytes long: DataLoss
// naming the path and both sizes otherwise (a truncated or overlong shard).
absl::StatusOr<IoResult> ReadWholeFile(const std::string& path, AlignedBuffer* buffer,
                                       bool allow_direct = true);

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_DIRECT_IO_H_
