// O_DIRECT whole-file transfers through two aligned chunk buffers, with a buffered fallback
// (see direct_io.h).
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
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/mutex.h"

namespace zerorun::ckpt {
namespace {

constexpr size_t kChunk = size_t{16} << 20;

// A missing file is NotFound (a resume exits 66 for it, as `zerorun ckpt verify` does); any
// other failure Internal.
absl::Status Errno(const std::string& what, const std::string& path) {
  const absl::Status s = ErrnoError(what, path);
  return errno == ENOENT ? absl::NotFoundError(s.message()) : s;
}

size_t RoundUp(size_t n) {
  return (n + AlignedBuffer::kAlign - 1) / AlignedBuffer::kAlign * AlignedBuffer::kAlign;
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

// Copies file bytes [offset, offset + n) between `slot` and the pieces.
template <typename PieceT, typename Copy>
void ForRange(const std::vector<PieceT>& pieces, size_t offset, size_t n, Copy copy) {
  size_t base = 0;
  for (const PieceT& p : pieces) {
    const size_t end = base + p.size;
    if (end > offset && base < offset + n) {
      const size_t from = std::max(base, offset), to = std::min(end, offset + n);
      copy(p.data + (from - base), from - offset, to - from);
    }
    base = end;
    if (base >= offset + n) break;
  }
}

// Runs produce(slot, offset, n) on a second thread and consume(slot, offset, n) on this one for
// the chunks of `total` bytes, through two slots: chunk k+1 is produced while k is consumed. The
// first false from either ends both; returns whether every chunk went through.
using ChunkFn = std::function<bool(char* slot, size_t offset, size_t n)>;
bool Pipeline(size_t total, const ChunkFn& produce, const ChunkFn& consume) {
  AlignedBuffer slots[2] = {AlignedBuffer(std::min(total, kChunk)),
                            AlignedBuffer(std::min(total, kChunk))};
  zerorun::Mutex mu;
  bool full[2] = {false, false};
  bool failed = false;
  const size_t chunks = (total + kChunk - 1) / kChunk;
  std::thread producer([&] {
    for (size_t k = 0; k < chunks; ++k) {
      const size_t i = k % 2;
      {
        zerorun::MutexLock lock(&mu);
        std::pair<bool*, bool*> args(&full[i], &failed);
        mu.Await(zerorun::Condition(
            +[](std::pair<bool*, bool*>* a) { return !*a->first || *a->second; }, &args));
        if (failed) return;
      }
      const size_t offset = k * kChunk, n = std::min(kChunk, total - offset);
      const bool ok = produce(slots[i].data(), offset, n);
      zerorun::MutexLock lock(&mu);
      if (!ok) {
        failed = true;
        return;
      }
      full[i] = true;
    }
  });
  bool ok = true;
  for (size_t k = 0; k < chunks && ok; ++k) {
    const size_t i = k % 2;
    {
      zerorun::MutexLock lock(&mu);
      std::pair<bool*, bool*> args(&full[i], &failed);
      mu.Await(zerorun::Condition(
          +[](std::pair<bool*, bool*>* a) { return *a->first || *a->second; }, &args));
      if (failed) break;
    }
    const size_t offset = k * kChunk, n = std::min(kChunk, total - offset);
    ok = consume(slots[i].data(), offset, n);
    zerorun::MutexLock lock(&mu);
    if (!ok) failed = true;
    full[i] = false;
  }
  producer.join();
  return !failed;
}

class Sha256 {
 public:
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  explicit Sha256(unsigned char* out) : out_(out) {
    if (out_ == nullptr) return;
    ctx_ = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  }
  ~Sha256() {
    if (ctx_ != nullptr) EVP_MD_CTX_free(ctx_);
  }
  void Update(const char* data, size_t n) {
    if (ctx_ != nullptr) EVP_DigestUpdate(ctx_, data, n);
  }
  void Final() {
    unsigned int length = 0;
    if (ctx_ != nullptr) EVP_DigestFinal_ex(ctx_, out_, &length);
  }

 private:
  unsigned char* out_;
  EVP_MD_CTX* ctx_ = nullptr;
};

template <typename PieceT>
size_t TotalSize(const std::vector<PieceT>& pieces) {
  size_t total = 0;
  for (const PieceT& p : pieces) total += p.size;
  return total;
}

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

absl::StatusOr<IoResult> WriteFile(const std::string& path, size_t total, const FillFn& fill_in,
                                   bool allow_direct, unsigned char* sha256) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status filled = absl::OkStatus();
  // One attempt: the copy into a slot and its hash run while the other slot is written. O_DIRECT
  // writes whole blocks: the last chunk is zero-padded and the file cut back to size after.
  auto attempt = [&](int fd, bool direct) -> int {
    Sha256 hash(sha256);
    int error = 0;
    const ChunkFn fill = [&](char* slot, size_t offset, size_t n) {
      filled = fill_in(slot, offset, n);
      if (!filled.ok()) return false;
      std::memset(slot + n, 0, RoundUp(n) - n);
      hash.Update(slot, n);
      return true;
    };
    const ChunkFn write_out = [&](char* slot, size_t, size_t n) {
      const size_t want = direct ? RoundUp(n) : n;
      size_t done = 0;
      while (done < want) {
        const ssize_t w = write(fd, slot + done, want - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          error = w == 0 ? EIO : errno;
          return false;
        }
        done += static_cast<size_t>(w);
      }
      return true;
    };
    if (total > 0 && !Pipeline(total, fill, write_out)) return error != 0 ? error : EIO;
    if (direct && ftruncate(fd, static_cast<off_t>(total)) != 0) return errno;
    hash.Final();
    return 0;
  };
  IoResult result;
  int fd = OpenMaybeDirect(path, O_WRONLY | O_CREAT | O_TRUNC, allow_direct, &result.direct);
  if (fd < 0) return Errno("cannot create", path);
  int error = attempt(fd, result.direct);
  if (error == EINVAL && result.direct) {
    // Accepted at open, refused at write (some file systems): buffered from the start.
    close(fd);
    result.direct = false;
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot create", path);
    error = attempt(fd, false);
  }
  if (!filled.ok()) {
    close(fd);
    return filled;
  }
  if (error == 0 && fsync(fd) != 0) {
    const absl::Status s = Errno("cannot fsync", path);
    close(fd);
    return s;
  }
  close(fd);
  if (error != 0) {
    errno = error;
    return Errno("cannot write", path);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

absl::StatusOr<IoResult> ReadFile(const std::string& path, size_t total, const DrainFn& drain_out,
                                  bool allow_direct, unsigned char* sha256) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status drained = absl::OkStatus();
  IoResult result;
  const int fd = OpenMaybeDirect(path, O_RDONLY, allow_direct, &result.direct);
  if (fd < 0) return Errno("cannot open", path);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const absl::Status s = Errno("cannot stat", path);
    close(fd);
    return s;
  }
  if (static_cast<uint64_t>(st.st_size) != total) {
    close(fd);
    return absl::DataLossError(absl::StrCat(path, " is ", st.st_size, " bytes, its manifest says ",
                                            total, " (truncated or overwritten?)"));
  }
  Sha256 hash(sha256);
  int error = 0;
  bool short_read = false;
  // One slot is read (whole blocks with O_DIRECT: the last read stops at the end of the file)
  // while the other is hashed and copied out.
  const ChunkFn read_in = [&](char* slot, size_t, size_t n) {
    const size_t want = result.direct ? RoundUp(n) : n;
    size_t done = 0;
    while (done < n) {
      const ssize_t r = read(fd, slot + done, want - done);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        error = errno;
        return false;
      }
      if (r == 0) {
        short_read = true;
        return false;
      }
      done += static_cast<size_t>(r);
    }
    return true;
  };
  const ChunkFn drain = [&](char* slot, size_t offset, size_t n) {
    hash.Update(slot, n);
    drained = drain_out(slot, offset, n);
    return drained.ok();
  };
  const bool ok = total == 0 || Pipeline(total, read_in, drain);
  close(fd);
  if (!drained.ok()) return drained;
  if (!ok && short_read) {
    return absl::DataLossError(absl::StrCat(path, " ended before ", total, " bytes (truncated?)"));
  }
  if (!ok) {
    errno = error;
    return Errno("cannot read", path);
  }
  hash.Final();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

absl::StatusOr<IoResult> WriteFileFrom(const std::string& path,
                                       const std::vector<ConstPiece>& pieces, bool allow_direct,
                                       unsigned char* sha256) {
  const FillFn fill = [&](char* slot, size_t offset, size_t n) {
    ForRange(pieces, offset, n,
             [&](const char* src, size_t at, size_t len) { std::memcpy(slot + at, src, len); });
    return absl::OkStatus();
  };
  return WriteFile(path, TotalSize(pieces), fill, allow_direct, sha256);
}

absl::StatusOr<IoResult> ReadFileInto(const std::string& path, const std::vector<Piece>& pieces,
                                      bool allow_direct, unsigned char* sha256) {
  const DrainFn drain = [&](const char* slot, size_t offset, size_t n) {
    ForRange(pieces, offset, n,
             [&](char* dst, size_t at, size_t len) { std::memcpy(dst, slot + at, len); });
    return absl::OkStatus();
  };
  return ReadFile(path, TotalSize(pieces), drain, allow_direct, sha256);
}

}  // namespace zerorun::ckpt
