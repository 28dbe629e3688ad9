// O_DIRECT whole-file transfers with a buffered fallback (see direct_io.h).
#include "ckpt/direct_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun::ckpt {
namespace {

constexpr size_t kChunk = size_t{64} << 20;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

size_t RoundUp(size_t n) {
  return (n + AlignedBuffer::kAlign - 1) / AlignedBuffer::kAlign * AlignedBuffer::kAlign;
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Opens with O_DIRECT when allowed and accepted; *direct says which it got.
int OpenMaybeDirect(const std::string& path, int flags, bool allow_direct, bool* direct) {
  *direct = false;
  if (allow_direct) {
    const int fd = open(path.c_str(), flags | O_DIRECT | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EINVAL) {
      *direct = fd >= 0;
      return fd;
    }
  }
  return open(path.c_str(), flags | O_CLOEXEC, 0644);
}

// Writes [data, data + size) at offset 0 onwards; false with errno set on failure.
bool WriteAll(int fd, const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, std::min(kChunk, size - done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

void AlignedBuffer::Free::operator()(char* p) const { std::free(p); }

AlignedBuffer::AlignedBuffer(size_t size)
    : size_(size), capacity_(RoundUp(std::max<size_t>(size, 1))) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, capacity_) != 0) std::abort();
  data_.reset(static_cast<char*>(p));
  std::memset(data_.get() + size_, 0, capacity_ - size_);
}

absl::StatusOr<IoResult> WriteWholeFile(const std::string& path, const AlignedBuffer& buffer,
                                        bool allow_direct) {
  const auto start = std::chrono::steady_clock::now();
  IoResult result;
  int fd = OpenMaybeDirect(path, O_WRONLY | O_CREAT | O_TRUNC, allow_direct, &result.direct);
  if (fd < 0) return Errno("cannot create", path);
  // O_DIRECT writes whole blocks: the padded capacity, then the file is cut to size.
  bool ok = WriteAll(fd, buffer.data(), result.direct ? buffer.capacity() : buffer.size());
  if (!ok && result.direct && errno == EINVAL) {
    // Accepted at open, refused at write (some file systems): buffered from the start.
    close(fd);
    result.direct = false;
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot create", path);
    ok = WriteAll(fd, buffer.data(), buffer.size());
  }
  if (ok && result.direct && ftruncate(fd, static_cast<off_t>(buffer.size())) != 0) ok = false;
  if (!ok) {
    const absl::Status s = Errno("cannot write", path);
    close(fd);
    return s;
  }
  if (fsync(fd) != 0) {
    const absl::Status s = Errno("cannot fsync", path);
    close(fd);
    return s;
  }
  close(fd);
  result.seconds = Since(start);
  return result;
}

absl::StatusOr<IoResult> ReadWholeFile(const std::string& path, AlignedBuffer* buffer,
                                       bool allow_direct) {
  const auto start = std::chrono::steady_clock::now();
  IoResult result;
  const int fd = OpenMaybeDirect(path, O_RDONLY, allow_direct, &result.direct);
  if (fd < 0) return Errno("cannot open", path);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const absl::Status s = Errno("cannot stat", path);
    close(fd);
    return s;
  }
  if (static_cast<uint64_t>(st.st_size) != buffer->size()) {
    close(fd);
    return absl::DataLossError(absl::StrCat(path, " is ", st.st_size, " bytes, its manifest says ",
                                            buffer->size(), " (truncated or overwritten?)"));
  }
  // O_DIRECT reads whole blocks into the padded buffer; the last read stops at the end.
  const size_t want = result.direct ? buffer->capacity() : buffer->size();
  size_t done = 0;
  while (done < buffer->size()) {
    const ssize_t n = read(fd, buffer->data() + done, std::min(kChunk, want - done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const absl::Status s = Errno("cannot read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  if (done != buffer->size()) {
    return absl::DataLossError(
        absl::StrCat(path, ": read ", done, " of ", buffer->size(), " bytes (truncated?)"));
  }
  std::memset(buffer->data() + buffer->size(), 0, buffer->capacity() - buffer->size());
  result.seconds = Since(start);
  return result;
}

}  // namespace zerorun::ckpt
