// What a rank's ZeRO engine runs with, read from the effective DeepSpeed config (dsconfig's
// output: DeepSpeed's defaults filled, the batch triple written, "auto" resolved): ZeroOptions
// (stage and its communication / stage-3 / offload keys, fp16 loss scaling or bf16, data_types,
// the optimizer's Adam hyper-parameters, clipping), the learning-rate schedule and the micro
// batch. Every key is honoured, refused with the key, the value and the fix, or reported as a
// note. The one map from config to engine: train programs call it, none copies it. Pure.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_ENGINE_CONFIG_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_ENGINE_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "zerorun/lr_schedule.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

struct EngineConfig {
  ZeroOptions zero;
  LrSchedule lr;                   // scheduler (constant at optimizer.params.lr without one)
  int micro_batch = 8;             // train_micro_batch_size_per_gpu
  std::vector<std::string> notes;  // Keys accepted with a different or no effect, in words.
};

// InvalidArgument naming the key, the value and the fix for what dsconfig::RuntimeSupport
// refuses (and for a key missing from what should be an effective config); RuntimeSupport's
// notes and warnings become `notes`. The caller sets ZeroOptions::swap_tag (its job and rank).
absl::StatusOr<EngineConfig> ReadEngineConfig(const nlohmann::json& effective);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_ENGINE_CONFIG_H_
