// O_DIRECT whole-file transfers with a buffered fallback (see direct_io.h).
#include "ckpt/direct_io.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace zerorun::ckpt {
namespace {

constexpr size_t kChunk = size_t{16} << 20;

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

// Hashes data[0, ready) as `ready` grows, until Finish(): the sha256 of a buffer being filled
// (reads) or of a whole one (writes), on its own thread.
class FollowingSha256 {
 public:
  FollowingSha256(const char* data, unsigned char* out) : data_(data), out_(out) {
    if (out_ != nullptr) thread_ = std::thread([this] { Run(); });
  }
  ~FollowingSha256() { Finish(); }
  void Advance(size_t ready) {
    absl::MutexLock lock(&mu_);
    ready_ = ready;
  }
  void Finish() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    size_t hashed = 0;
    while (true) {
      size_t ready = 0;
      bool done = false;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](FollowingSha256* f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(f->mu_) {
              return f->done_ || f->ready_ > f->hashed_;
            },
            this));
        ready = ready_;
        done = done_;
      }
      if (ready > hashed) EVP_DigestUpdate(ctx, data_ + hashed, ready - hashed);
      hashed = ready;
      {
        absl::MutexLock lock(&mu_);
        hashed_ = hashed;
      }
      if (done && hashed == ready) break;
    }
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx, out_, &length);
    EVP_MD_CTX_free(ctx);
  }

  const char* data_;
  unsigned char* out_;
  std::thread thread_;
  absl::Mutex mu_;
  size_t ready_ ABSL_GUARDED_BY(mu_) = 0;
  size_t hashed_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

void AlignedBuffer::Free::operator()(char* p) const { munmap(p, bytes); }

AlignedBuffer::AlignedBuffer(size_t size)
    : size_(size), capacity_(RoundUp(std::max<size_t>(size, 1))) {
  void* p = mmap(nullptr, capacity_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  if (madvise(p, capacity_, MADV_POPULATE_WRITE) != 0) {
    std::memset(p, 0, capacity_);  // Kernels before 5.14: fault the pages in by touch.
  }
  data_ = std::unique_ptr<char, Free>(static_cast<char*>(p), Free{capacity_});
}

absl::StatusOr<IoResult> WriteWholeFile(const std::string& path, const AlignedBuffer& buffer,
                                        bool allow_direct, unsigned char* sha256) {
  const auto start = std::chrono::steady_clock::now();
  FollowingSha256 hash(buffer.data(), sha256);
  hash.Advance(buffer.size());  // The buffer is whole: hashing runs beside the writes.
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
  hash.Finish();
  result.seconds = Since(start);
  return result;
}

absl::StatusOr<IoResult> ReadWholeFile(const std::string& path, AlignedBuffer* buffer,
                                       bool allow_direct, unsigned char* sha256) {
  const auto start = std::chrono::steady_clock::now();
  FollowingSha256 hash(buffer->data(), sha256);
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
    done += static_cast<size_t>(std::min<size_t>(n, buffer->size() - done));
    hash.Advance(done);
  }
  close(fd);
  hash.Finish();
  if (done != buffer->size()) {
    return absl::DataLossError(
        absl::StrCat(path, ": read ", done, " of ", buffer->size(), " bytes (truncated?)"));
  }
  std::memset(buffer->data() + buffer->size(), 0, buffer->capacity() - buffer->size());
  result.seconds = Since(start);
  return result;
}

}  // namespace zerorun::ckpt
