// Links libzerorun from an install: prints its build facts, checks one AdamW step of the
// installed reference optimizer against the formula in its header and one task on a CPU stream
// (exit 1 on a mismatch). Includes every public header: they stand alone under include/zerorun.
#include <cmath>
#include <cstdio>

#include "zerorun/adamw.h"
#include "zerorun/build_info.h"
#include "zerorun/checkpoint.h"
#include "zerorun/comm.h"
#include "zerorun/device.h"
#include "zerorun/engine_config.h"
#include "zerorun/flight_recorder.h"
#include "zerorun/init.h"
#include "zerorun/optimizer.h"
#include "zerorun/state_store.h"
#include "zerorun/zero_engine.h"

int main() {
  const zerorun::BuildInfo info = zerorun::GetBuildInfo();
  float param = 1.0f, grad = 0.5f, m = 0.0f, v = 0.0f;
  const zerorun::AdamWHyper hyper;
  zerorun::AdamWStepReference(hyper, 1, 1, &param, &grad, &m, &v);
  // Step 1: m^ = g, v^ = g^2, so p = 1 * (1 - lr wd) - lr * g / (|g| + eps).
  const float expected =
      (1.0f - hyper.lr * hyper.weight_decay) - hyper.lr * 0.5f / (0.5f + hyper.eps);
  int ran = 0;
  std::unique_ptr<zerorun::Stream> stream = zerorun::CreateCpuStream(true);
  stream->Enqueue([&ran] {
    ++ran;
    return absl::OkStatus();
  });
  const bool ok = std::fabs(param - expected) < 1e-6f && stream->Synchronize().ok() && ran == 1;
  std::printf("libzerorun %s (cuda %s): adamw step %s (%.7f, expected %.7f)\n",
              info.version.c_str(), info.with_cuda ? "on" : "off", ok ? "ok" : "WRONG", param,
              expected);
  return ok ? 0 : 1;
}
