// NvmeSwapper: io_uring O_DIRECT block transfers with per-page CRC-32C (see nvme_swapper.h).
#include "offload/nvme_swapper.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/crc32c.h"

namespace zerorun {
namespace {

constexpr size_t kAlign = 4096;

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<NvmeSwapper>> NvmeSwapper::Create(const std::string& dir,
                                                                 const std::string& file_name,
                                                                 uint64_t bytes,
                                                                 const AioOptions& options) {
  if (options.block_size == 0 || options.block_size % kAlign != 0 || options.queue_depth < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aio.block_size ", options.block_size, " must be a positive multiple of 4096 and ",
        "aio.queue_depth ", options.queue_depth, " at least 1"));
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("nvme_path ", dir,
                                            " is not an existing directory (zerorun never "
                                            "creates it). Fix: create it or name another"));
  }
  const std::string path = absl::StrCat(dir, "/", file_name);
  bool direct = true;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EINVAL) {
    direct = false;  // tmpfs and some overlays refuse O_DIRECT.
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create swap file ", path, ": ", strerror(errno)));
  }
  if (const int e = posix_fallocate(fd, 0, static_cast<off_t>(bytes)); e != 0) {
    close(fd);
    unlink(path.c_str());
    return absl::ResourceExhaustedError(absl::StrCat("cannot reserve ", bytes, " bytes for ", path,
                                                     ": ", strerror(e),
                                                     ". Fix: free space on nvme_path or use "
                                                     "another"));
  }
  std::unique_ptr<NvmeSwapper> swapper(new NvmeSwapper(path, fd, bytes, options));
  zerorun::MutexLock lock(&swapper->stats_mu_);
  swapper->stats_.direct = direct;
  return swapper;
}

NvmeSwapper::NvmeSwapper(std::string path, int fd, uint64_t bytes, const AioOptions& options)
    : path_(std::move(path)), fd_(fd), bytes_(bytes), options_(options) {
  const size_t pages = (bytes + kAlign - 1) / kAlign;
  crc_.assign(pages, 0);
  written_.assign(pages, 0);
  for (Ring& r : rings_) {
    r.ok = io_uring_queue_init(static_cast<unsigned>(options.queue_depth), &r.ring, 0) == 0;
  }
}

NvmeSwapper::~NvmeSwapper() {
  for (Ring& r : rings_) {
    if (r.ok) io_uring_queue_exit(&r.ring);
  }
  close(fd_);
  unlink(path_.c_str());
}

SwapStats NvmeSwapper::stats() const {
  zerorun::MutexLock lock(&stats_mu_);
  return stats_;
}

absl::Status NvmeSwapper::Write(uint64_t offset, const char* data, size_t n) {
  return Transfer(true, offset, const_cast<char*>(data), n);
}

absl::Status NvmeSwapper::Read(uint64_t offset, char* data, size_t n) {
  return Transfer(false, offset, data, n);
}

absl::Status NvmeSwapper::Transfer(bool write, uint64_t offset, char* data, size_t n) {
  const size_t bs = options_.block_size;
  if (offset % kAlign != 0 || n % kAlign != 0 || reinterpret_cast<uintptr_t>(data) % kAlign != 0 ||
      offset + n > bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": a transfer of ", n, " bytes at ", offset,
                     " is not 4096-aligned or runs past the file's ", bytes_, " bytes"));
  }
  // A swap file unlinked under us (nvme_path or its zerorun-* directory deleted mid-run) would
  // go on working through the open descriptor and vanish at the end: stop instead.
  if (struct stat st{}; fstat(fd_, &st) == 0 && st.st_nlink == 0) {
    return absl::DataLossError(absl::StrCat(
        "swap file ", path_,
        " was deleted while the job ran (nvme_path or its zerorun-* directory removed?); the "
        "state it held is lost. Fix: keep nvme_path in place until the job ends, then rerun or "
        "resume from a checkpoint"));
  }
  const auto start = std::chrono::steady_clock::now();
  // Requests of up to block_size bytes; a CRC-32C per 4096-byte page (so that arrays need only
  // page alignment in the file, not block alignment).
  const size_t first_page = offset / kAlign, count = (n + bs - 1) / bs;
  auto block_len = [&](size_t k) { return std::min(bs, n - k * bs); };
  auto fail = [&](uint64_t at, const std::string& why) {
    return absl::DataLossError(
        absl::StrCat(write ? "writing " : "reading ", path_, " at offset ", at, ": ", why));
  };
  if (write) {
    for (size_t i = 0; i < n / kAlign; ++i)
      crc_[first_page + i] = Crc32c(data + i * kAlign, kAlign);
  }
  // Finishes request k after its transfer: sizes checked, reads checked against their CRCs.
  auto complete = [&](size_t k, int64_t result) -> absl::Status {
    const uint64_t at = offset + k * bs;
    if (result < 0) return fail(at, strerror(static_cast<int>(-result)));
    if (static_cast<size_t>(result) != block_len(k)) {
      return fail(at, absl::StrCat("short transfer, ", result, " of ", block_len(k), " bytes"));
    }
    for (size_t i = k * bs / kAlign; i < (k * bs + block_len(k)) / kAlign; ++i) {
      if (write) {
        written_[first_page + i] = 1;
      } else if (written_[first_page + i] != 0 &&
                 Crc32c(data + i * kAlign, kAlign) != crc_[first_page + i]) {
        return fail(offset + i * kAlign,
                    "the page's CRC-32C does not match what was written (corrupted on disk?)");
      }
    }
    return absl::OkStatus();
  };
  Ring& ring = rings_[write ? 1 : 0];
  zerorun::MutexLock ring_lock(&ring.mu);
  absl::Status status = absl::OkStatus();
  if (!ring.ok) {
    for (size_t k = 0; k < count && status.ok(); ++k) {
      char* p = data + k * bs;
      const off_t at = static_cast<off_t>(offset + k * bs);
      const ssize_t r = write ? pwrite(fd_, p, block_len(k), at) : pread(fd_, p, block_len(k), at);
      status = complete(k, r < 0 ? -errno : r);
    }
  } else {
    size_t submitted = 0, done = 0;
    const size_t depth = static_cast<size_t>(options_.queue_depth);
    while (done < count) {
      // Keep queue_depth requests in flight (no new ones once something failed).
      while (status.ok() && submitted < count && submitted - done < depth) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring.ring);
        if (sqe == nullptr) break;
        char* p = data + submitted * bs;
        const uint64_t at = offset + submitted * bs;
        if (write) {
          io_uring_prep_write(sqe, fd_, p, static_cast<unsigned>(block_len(submitted)), at);
        } else {
          io_uring_prep_read(sqe, fd_, p, static_cast<unsigned>(block_len(submitted)), at);
        }
        io_uring_sqe_set_data64(sqe, submitted);
        ++submitted;
      }
      if (submitted == done) break;  // A failure stopped submission and nothing is in flight.
      if (const int r = io_uring_submit(&ring.ring); r < 0 && status.ok()) {
        status = fail(offset + done * bs, absl::StrCat("io_uring_submit: ", strerror(-r)));
      }
      io_uring_cqe* cqe = nullptr;
      const int r = io_uring_wait_cqe(&ring.ring, &cqe);
      if (r < 0) {
        if (r == -EINTR) continue;
        return fail(offset + done * bs, absl::StrCat("io_uring_wait_cqe: ", strerror(-r)));
      }
      const size_t k = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      const int64_t result = cqe->res;
      io_uring_cqe_seen(&ring.ring, cqe);
      ++done;
      if (status.ok()) status = complete(k, result);
    }
  }
  if (!status.ok()) return status;
  zerorun::MutexLock lock(&stats_mu_);
  (write ? stats_.bytes_written : stats_.bytes_read) += n;
  (write ? stats_.write_seconds : stats_.read_seconds) += Since(start);
  return absl::OkStatus();
}

}  // namespace zerorun
