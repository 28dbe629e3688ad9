// ShardState: one rank's dense optimizer-side state, owned in one place so that checkpoints
// serialize it (and Offload/Infinity place it) without reaching into ZeroEngine: fp32 masters
// (with a 16-bit working dtype), Adam's m and v, the stage 2-3 gradient accumulator, the last
// optimizer step and the loss scaler.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_SHARD_STATE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_SHARD_STATE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "zerorun/loss_scaler.h"

namespace zerorun {

// Where model state lives: kDevice, the rank's compute memory (a GPU's, or host memory on a CPU
// rank); kHost, host memory next to the device (ZeRO-Offload's "cpu", pinned with pin_memory),
// on a CPU rank the very memory kDevice is; kNvme, files under nvme_path (ZeRO-Infinity). The
// seam offload plugs into: placement is a memory space, not a branch in the engine.
enum class MemorySpace { kDevice, kHost, kNvme };
const char* MemorySpaceName(MemorySpace space);  // "device", "host", "nvme"

// What accumulates a rank's reduced gradient shard between micro-steps.
enum class Accumulator { kNone, kFp32, kSixteen };

// Arrays are in "state order": unit by unit, the elements this rank owns (ZeroEngine::Owned).
// Not thread-safe; the engine's caller serializes access.
class ShardState {
 public:
  ShardState() = default;
  // `separate_master`: the working weights are 16-bit, so fp32 masters are kept here; with fp32
  // weights the masters are the working weights themselves (ZeroEngine::Master).
  // `space`: where masters, m and v live; `accumulator_space`: where the accumulator does (the
  // engine's swap file holds what is on kNvme).
  ShardState(size_t elements, bool separate_master, Accumulator accumulator,
             MemorySpace space = MemorySpace::kDevice,
             MemorySpace accumulator_space = MemorySpace::kDevice);

  size_t elements() const { return elements_; }
  MemorySpace space() const { return space_; }
  bool has_master() const { return separate_master_; }
  Accumulator accumulator() const { return accumulator_; }

  // nullptr where their space is kNvme (the engine swaps them).
  float* master() { return master_.data(); }
  float* exp_avg() { return exp_avg_.data(); }
  float* exp_avg_sq() { return exp_avg_sq_.data(); }
  const float* master() const { return master_.data(); }
  const float* exp_avg() const { return exp_avg_.data(); }
  const float* exp_avg_sq() const { return exp_avg_sq_.data(); }
  // nullptr unless accumulator() is kFp32 / kSixteen.
  float* acc32() { return acc32_.empty() ? nullptr : acc32_.data(); }
  uint16_t* acc16() { return acc16_.empty() ? nullptr : acc16_.data(); }
  void ZeroAccumulator();

  // The step number of the last optimizer step that updated the weights (0 before any); skipped
  // (overflow) steps do not count.
  int64_t last_step() const { return last_step_; }
  void set_last_step(int64_t step) { last_step_ = step; }
  LossScaler& scaler() { return scaler_; }
  const LossScaler& scaler() const { return scaler_; }

  // Bytes held, by kind, wherever they live.
  size_t master_bytes() const { return separate_master_ ? elements_ * sizeof(float) : 0; }
  // Adam m and v, wherever they live (kNvme: in the engine's swap file, not in exp_avg()).
  size_t optimizer_bytes() const { return 2 * elements_ * sizeof(float); }
  size_t accumulator_bytes() const {
    return accumulator_ == Accumulator::kFp32      ? elements_ * sizeof(float)
           : accumulator_ == Accumulator::kSixteen ? elements_ * sizeof(uint16_t)
                                                   : 0;
  }

 private:
  size_t elements_ = 0;
  bool separate_master_ = false;
  MemorySpace space_ = MemorySpace::kDevice;
  Accumulator accumulator_ = Accumulator::kNone;
  std::vector<float> master_, exp_avg_, exp_avg_sq_, acc32_;
  std::vector<uint16_t> acc16_;
  int64_t last_step_ = 0;
  LossScaler scaler_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_SHARD_STATE_H_
