// Benchmark (label bench): wall time of `zerorun preflight` on one local node, the demo inputs,
// 30 runs after 3 warm-ups; prints min / median / p90 in ms and the 200 ms goal.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "support/subprocess.h"

int main() {
  using zerorun::testing::Run;
  using zerorun::testing::SourcePath;
  const std::vector<std::string> argv = {ZR_TEST_ZERORUN, "preflight",
                                         "--hostfile",    SourcePath("hostfiles/local-cpu.txt"),
                                         "--config",      SourcePath("hostfiles/ds_zero2_cpu.json"),
                                         "--device",      "cpu",
                                         "--params",      "10M",
                                         ZR_TEST_ZERORUN};
  for (int i = 0; i < 3; ++i) Run(argv);
  std::vector<double> ms;
  for (int i = 0; i < 30; ++i) {
    const auto r = Run(argv);
    if (r.exit_code != 0) {
      std::printf("preflight failed (exit %d):\n%s%s", r.exit_code, r.out.c_str(), r.err.c_str());
      return 1;
    }
    ms.push_back(r.wall_ms);
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  std::printf(
      "zerorun preflight, 1 local node, 2 CPU ranks (process start to exit, incl. sha256 "
      "of train_bin):\n  min %.1f ms  median %.1f ms  p90 %.1f ms  (goal < 200 ms: %s)\n",
      ms.front(), median, ms[ms.size() * 9 / 10], median < 200 ? "met" : "MISSED");
  return 0;
}
