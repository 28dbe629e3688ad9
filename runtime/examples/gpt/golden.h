// Reader for the PyTorch oracle files of ../shared/golden (format "ZRGOLD01", README there):
// model sizes, initial parameters, token batches, step-0 loss and gradients, per-step losses
// and grad norms, and parameter snapshots.
#ifndef ZERORUN_RUNTIME_EXAMPLES_GPT_GOLDEN_H_
#define ZERORUN_RUNTIME_EXAMPLES_GPT_GOLDEN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun::gpt {

struct GoldenTensor {
  std::string name;
  std::vector<int32_t> dims;
  size_t numel = 1;
};

struct Golden {
  int32_t vocab = 0, d_model = 0, heads = 0, layers = 0, seq = 0, batch = 0, num_steps = 0;
  std::vector<GoldenTensor> tensors;
  std::vector<float> init_params;  // One parameter set: tensors in table order, concatenated.
  std::vector<int32_t> tokens;     // [num_steps][batch][seq + 1]
  float loss0 = 0;
  std::vector<float> grads0;                                      // Parameter set.
  float clip_max_norm = 0;                                        // 0: no clipping.
  std::vector<float> losses, grad_norms;                          // num_steps each.
  std::vector<std::pair<int32_t, std::vector<float>>> snapshots;  // (steps done, params)
};

// Reads and validates `path`: NotFound when missing, DataLoss for a wrong magic, a truncated
// file or trailing bytes (names the offset).
absl::StatusOr<Golden> ReadGolden(const std::string& path);

}  // namespace zerorun::gpt

#endif  // ZERORUN_RUNTIME_EXAMPLES_GPT_GOLDEN_H_
