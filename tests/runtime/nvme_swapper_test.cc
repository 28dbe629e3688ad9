// NvmeSwapper on real files: round trips through io_uring with O_DIRECT at several queue depths,
// a block changed on disk caught by its CRC, a missing nvme_path and bad aio settings refused,
// a full file system refused at creation (a small tmpfs, root), and the file removed at the end.
#include "offload/nvme_swapper.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun {
namespace {

// A 4096-aligned buffer of `n` bytes.
struct Aligned {
  explicit Aligned(size_t n) : size(n) {
    void* p = nullptr;
    REQUIRE(posix_memalign(&p, 4096, n) == 0);
    data = static_cast<char*>(p);
  }
  ~Aligned() { std::free(data); }
  char* data;
  size_t size;
};

void Fill(Aligned& buffer, uint32_t seed) {
  std::mt19937 rng(seed);
  for (size_t i = 0; i < buffer.size; ++i) buffer.data[i] = static_cast<char>(rng());
}

TEST_CASE("NvmeSwapper round-trips blocks through io_uring at several queue depths",
          "[offload][nvme]") {
  testing::TempDir dir;
  for (int depth : {1, 4, 16}) {
    INFO("queue depth " << depth);
    AioOptions aio;
    aio.block_size = 256 * 1024;
    aio.queue_depth = depth;
    const uint64_t bytes = 8 << 20;
    auto swapper = NvmeSwapper::Create(dir.path(), "swap_" + std::to_string(depth), bytes, aio);
    REQUIRE(swapper.ok());
    INFO("O_DIRECT " << (*swapper)->stats().direct);
    Aligned a(3 << 20), b(3 << 20), back(3 << 20);
    Fill(a, 1);
    Fill(b, 2);
    REQUIRE((*swapper)->Write(0, a.data, a.size).ok());
    REQUIRE((*swapper)->Write(4 << 20, b.data, b.size).ok());
    REQUIRE((*swapper)->Read(4 << 20, back.data, back.size).ok());
    CHECK(std::memcmp(back.data, b.data, b.size) == 0);
    REQUIRE((*swapper)->Read(0, back.data, back.size).ok());
    CHECK(std::memcmp(back.data, a.data, a.size) == 0);
    CHECK((*swapper)->stats().bytes_written == 6u << 20);
    CHECK((*swapper)->stats().bytes_read == 6u << 20);  // Before the partial read below.
    // Any page-aligned range works (a CRC per page); misuse is refused, not performed.
    REQUIRE((*swapper)->Read(4096, back.data, 8192).ok());
    CHECK(std::memcmp(back.data, a.data + 4096, 8192) == 0);
    CHECK((*swapper)->Read(100, back.data, 4096).code() == absl::StatusCode::kInvalidArgument);
    CHECK((*swapper)->Read(0, back.data + 1, 4096).code() == absl::StatusCode::kInvalidArgument);
    CHECK((*swapper)->Write(6 << 20, a.data, a.size).code() == absl::StatusCode::kInvalidArgument);
    const std::string path = (*swapper)->path();
    CHECK(std::filesystem::exists(path));
    swapper->reset();
    CHECK_FALSE(std::filesystem::exists(path));  // Removed at the end.
  }
}

TEST_CASE("NvmeSwapper: a block changed on disk is caught by its CRC, naming file and offset",
          "[offload][nvme]") {
  testing::TempDir dir;
  AioOptions aio;
  aio.block_size = 1 << 20;
  auto swapper = NvmeSwapper::Create(dir.path(), "swap", 4 << 20, aio);
  REQUIRE(swapper.ok());
  Aligned data(4 << 20), back(4 << 20);
  Fill(data, 3);
  REQUIRE((*swapper)->Write(0, data.data, data.size).ok());
  {
    const int fd = open((*swapper)->path().c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    const char garbage[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    REQUIRE(pwrite(fd, garbage, sizeof(garbage), (2 << 20) + 100) == 8);
    fsync(fd);
    close(fd);
  }
  const absl::Status read = (*swapper)->Read(0, back.data, back.size);
  CHECK(read.code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(std::string(read.message()), Catch::Contains((*swapper)->path()) &&
                                              Catch::Contains("offset 2097152") &&
                                              Catch::Contains("CRC-32C"));
}

TEST_CASE("NvmeSwapper: a swap file deleted under it is an error naming it, not a silent success",
          "[offload][nvme]") {
  testing::TempDir dir;
  AioOptions aio;
  aio.block_size = 4096;
  auto swapper = NvmeSwapper::Create(dir.path(), "swap", 8192, aio);
  REQUIRE(swapper.ok());
  Aligned data(8192);
  Fill(data, 5);
  REQUIRE((*swapper)->Write(0, data.data, data.size).ok());
  REQUIRE(unlink((*swapper)->path().c_str()) == 0);  // The open descriptor would still work.
  for (const absl::Status& s :
       {(*swapper)->Read(0, data.data, data.size), (*swapper)->Write(0, data.data, data.size)}) {
    CHECK(s.code() == absl::StatusCode::kDataLoss);
    CHECK_THAT(std::string(s.message()),
               Catch::Contains((*swapper)->path()) && Catch::Contains("was deleted"));
  }
}

TEST_CASE("NvmeSwapper refuses a missing nvme_path, bad aio settings and a full file system",
          "[offload][nvme]") {
  testing::TempDir dir;
  const std::string missing = dir.path() + "/not-there";
  auto none = NvmeSwapper::Create(missing, "swap", 1 << 20, AioOptions{});
  CHECK(none.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(none.status().message()), Catch::Contains(missing));
  CHECK_FALSE(std::filesystem::exists(missing));  // Never created.
  AioOptions bad;
  bad.block_size = 1000;
  CHECK(NvmeSwapper::Create(dir.path(), "swap", 1 << 20, bad).status().code() ==
        absl::StatusCode::kInvalidArgument);
  const std::string small = dir.path() + "/small";
  std::filesystem::create_directory(small);
  if (geteuid() != 0 ||
      testing::Run({"/bin/mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", small}).exit_code != 0) {
    WARN("needs root to mount a small tmpfs: the full file system case was not run");
    return;
  }
  auto full = NvmeSwapper::Create(small, "swap", 8 << 20, AioOptions{});
  CHECK(full.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(full.status().message()),
             Catch::Contains(small + "/swap") && Catch::Contains("8388608 bytes"));
  CHECK_FALSE(std::filesystem::exists(small + "/swap"));  // Nothing left behind.
  // What fits works (tmpfs takes O_DIRECT from Linux 6.6 on; before, the swapper runs buffered).
  auto fits = NvmeSwapper::Create(small, "swap", 1 << 20, AioOptions{});
  REQUIRE(fits.ok());
  Aligned data(1 << 20), back(1 << 20);
  Fill(data, 4);
  REQUIRE((*fits)->Write(0, data.data, data.size).ok());
  REQUIRE((*fits)->Read(0, back.data, back.size).ok());
  CHECK(std::memcmp(back.data, data.data, data.size) == 0);
  fits->reset();
  CHECK(testing::Run({"/bin/umount", small}).exit_code == 0);
}

}  // namespace
}  // namespace zerorun
