// Benchmark (label bench): NvmeSwapper sequential write and read GB/s (O_DIRECT, io_uring) of
// a file in DIR, SIZE MiB in blocks of BLOCK KiB at queue depth DEPTH, median of 3; the shell
// side (nvme_swapper_bench.sh) runs fio with the same parameters next to it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "offload/nvme_swapper.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: zr_nvme_swapper_bench DIR SIZE_MIB BLOCK_KIB DEPTH\n");
    return 2;
  }
  const std::string dir = argv[1];
  const size_t bytes = std::strtoull(argv[2], nullptr, 10) << 20;
  zerorun::AioOptions aio;
  aio.block_size = std::strtoull(argv[3], nullptr, 10) << 10;
  aio.queue_depth = std::atoi(argv[4]);
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) return 1;
  char* data = static_cast<char*>(p);
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 131 + (i >> 12));
  std::vector<double> writes, reads;
  bool direct = false;
  for (int rep = 0; rep < 3; ++rep) {
    auto swapper = zerorun::NvmeSwapper::Create(dir, "zr_swapper_bench", bytes, aio);
    if (!swapper.ok()) {
      std::fprintf(stderr, "%s\n", std::string(swapper.status().message()).c_str());
      return 1;
    }
    if (!(*swapper)->Write(0, data, bytes).ok() || !(*swapper)->Read(0, data, bytes).ok()) {
      std::fprintf(stderr, "transfer failed\n");
      return 1;
    }
    writes.push_back(bytes / (*swapper)->stats().write_seconds / 1e9);
    reads.push_back(bytes / (*swapper)->stats().read_seconds / 1e9);
    direct = (*swapper)->stats().direct;
  }
  std::sort(writes.begin(), writes.end());
  std::sort(reads.begin(), reads.end());
  std::printf("swapper %s: write %.2f GB/s, read %.2f GB/s (%zu MiB, %zu KiB blocks, depth %d)\n",
              direct ? "O_DIRECT io_uring" : "buffered io_uring", writes[1], reads[1], bytes >> 20,
              aio.block_size >> 10, aio.queue_depth);
  std::free(data);
  return 0;
}
