// GPU benchmark (labels bench, gpu): the CUDA AdamW step against the device's copy bandwidth
// measured in the same run (cudaMemcpy device-to-device, read + write counted), both as GB/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "zerorun/build_info.h"
#include "zerorun/cuda_kernels.h"

namespace {

template <typename Fn>
double MedianSeconds(int reps, Fn&& fn) {
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (!fn()) return -1;
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main() {
  namespace cuda = zerorun::cuda;
  absl::StatusOr<int> gpus = cuda::DeviceCount();
  if (!gpus.ok() || *gpus == 0) {
    std::fprintf(stderr, "gpu_adamw_bench: no CUDA device\n");
    return 1;
  }
  const size_t n = size_t{256} << 20;  // 256M parameters: 1 GiB per array.
  std::vector<float*> d(5);
  for (float*& ptr : d) {
    absl::StatusOr<float*> a = cuda::Alloc(n);
    if (!a.ok()) return 1;
    ptr = *a;
  }
  std::vector<float> init(n, 0.01f);
  for (float* ptr : d) (void)cuda::CopyToDevice(init.data(), ptr, n);
  zerorun::AdamWHyper hyper;
  int64_t step = 0;
  const double adam_s = MedianSeconds(
      21, [&] { return cuda::AdamWStepDevice(hyper, ++step, n, d[0], d[1], d[2], d[3]).ok(); });
  const double copy_s = MedianSeconds(
      21, [&] { return cuda::CopyDeviceToDevice(d[0], d[4], n).ok() && cuda::Synchronize().ok(); });
  const double adam_gbs = 28.0 * n / adam_s / 1e9, copy_gbs = 8.0 * n / copy_s / 1e9;
  std::printf("GPU AdamW step on %s, %zu M params (medians of 21):\n",
              cuda::DeviceName().value_or("?").c_str(), n >> 20);
  std::printf("  zerorun AdamW kernel:  %.0f G params/s, %.0f GB/s at 28 B/param\n",
              n / adam_s / 1e9, adam_gbs);
  std::printf("  D2D copy ceiling:      %.0f GB/s (read + write)\n", copy_gbs);
  std::printf("  ratio: %.2f of the copy bandwidth; NCCL %s\n", adam_gbs / copy_gbs,
              zerorun::GetBuildInfo().nccl_version.c_str());
  for (float* ptr : d) (void)cuda::Free(ptr);
  return 0;
}
