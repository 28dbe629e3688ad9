// The DeepSpeed config keys train_gpt honours, read into ZeroOptions: ZeRO stage and its
// communication/stage-3 keys, fp16 (loss scaling) / bf16, data_types, optimizer and clipping.
#ifndef ZERORUN_RUNTIME_EXAMPLES_GPT_DS_OPTIONS_H_
#define ZERORUN_RUNTIME_EXAMPLES_GPT_DS_OPTIONS_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "zerorun/zero_engine.h"

namespace zerorun::gpt {

// The node at `path`, or null.
const nlohmann::json* Find(const nlohmann::json& root, std::initializer_list<const char*> path);

// Reads a number at `path` into *out when present; InvalidArgument naming the key otherwise.
template <typename T>
absl::Status ReadNumber(const nlohmann::json& root, std::initializer_list<const char*> path,
                        T* out);

struct DsOptions {
  ZeroOptions zero;
  int micro_batch = 8;             // train_micro_batch_size_per_gpu
  std::vector<std::string> notes;  // Keys accepted with a different or no effect, in words.
};

// Reads an effective config (dsconfig: DeepSpeed's defaults filled, batch triple written; a
// missing key is an error, never a default of ours). InvalidArgument naming the key, the value and
// the fix for what dsconfig::RuntimeSupport refuses (offload, reduce_scatter false, ...); its
// notes and warnings become `notes`.
absl::StatusOr<DsOptions> ReadDsOptions(const nlohmann::json& config);

}  // namespace zerorun::gpt

#endif  // ZERORUN_RUNTIME_EXAMPLES_GPT_DS_OPTIONS_H_
