// Whole-file writes and reads for checkpoint shards: large sequential O_DIRECT transfers through
// two 4 KiB-aligned 16 MiB buffers (one is filled or drained, and hashed, while the other is on
// its way to or from the disk), buffered I/O where the file system refuses O_DIRECT (tmpfs, some
// overlays), every size checked.
#ifndef ZERORUN_RUNTIME_CKPT_DIRECT_IO_H_
#define ZERORUN_RUNTIME_CKPT_DIRECT_IO_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerorun::ckpt {

// A zeroed host buffer of size() bytes whose start and capacity are multiples of kAlign, as
// O_DIRECT needs: its own mapping, populated up front (one call instead of a page fault per
// 4 KiB: on a VM, faults made a 640 MiB snapshot copy take ~2 s, populating takes 0.1-0.4 s and
// the copy then runs at memcpy speed; huge pages were slower to populate, 0.8 s).
class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;
  AlignedBuffer() = default;
  // Aborts only if the memory cannot be had, like std::vector.
  explicit AlignedBuffer(size_t size);
  AlignedBuffer(AlignedBuffer&& other) noexcept { *this = std::move(other); }
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    return *this;
  }

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    size_t bytes;  // The mapping's length (value-initialized: 0).
    void operator()(char* p) const;
  };
  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// A file's bytes in memory, in pieces: the file is their concatenation.
struct Piece {
  char* data;
  size_t size;
};
struct ConstPiece {
  const char* data;
  size_t size;
};

struct IoResult {
  bool direct = false;  // O_DIRECT was used (else buffered: the file system refused it).
  double seconds = 0;   // Open to fsync (writes) or to the last byte (reads).
};

// A file's bytes [offset, offset + n) produced (FillFn: into `data`) or consumed (DrainFn) in
// order of offset, one call at a time, on a thread of the transfer's (not the caller's); an error
// ends the transfer and is returned from it.
using FillFn = std::function<absl::Status(char* data, size_t offset, size_t n)>;
using DrainFn = std::function<absl::Status(const char* data, size_t offset, size_t n)>;

// Writes `total` bytes from `fill` to `path` (created 0644 or truncated) and fsyncs it; the file
// is exactly `total` bytes (with O_DIRECT the padded last block is written and the file truncated
// back). Where O_DIRECT is refused at the first write the file is written again buffered, from
// offset 0. With `sha256` (32 bytes) the digest of the bytes written. Internal naming the path
// (ENOSPC included) on failure.
absl::StatusOr<IoResult> WriteFile(const std::string& path, size_t total, const FillFn& fill,
                                   bool allow_direct = true, unsigned char* sha256 = nullptr);
// Reads `path`, which must be exactly `total` bytes (else DataLoss naming the path and both
// sizes: a truncated or overlong shard), into `drain`; with `sha256` the digest of what was read.
absl::StatusOr<IoResult> ReadFile(const std::string& path, size_t total, const DrainFn& drain,
                                  bool allow_direct = true, unsigned char* sha256 = nullptr);

// Writes the concatenation of `pieces` to `path` (created 0644 or truncated) and fsyncs it; the
// file is exactly their total size (with O_DIRECT the padded last block is written and the file
// truncated back). With `sha256` (32 bytes) the digest of the bytes written. Internal naming the
// path (ENOSPC included) on failure.
absl::StatusOr<IoResult> WriteFileFrom(const std::string& path,
                                       const std::vector<ConstPiece>& pieces,
                                       bool allow_direct = true, unsigned char* sha256 = nullptr);

// Reads `path`, which must be exactly the pieces' total size (else DataLoss naming the path and
// both sizes: a truncated or overlong shard), into `pieces`; with `sha256` the digest of what was
// read. On error the pieces hold part of the file.
absl::StatusOr<IoResult> ReadFileInto(const std::string& path, const std::vector<Piece>& pieces,
                                      bool allow_direct = true, unsigned char* sha256 = nullptr);

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_DIRECT_IO_H_
