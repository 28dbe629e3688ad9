// The typed keys of a job's effective DeepSpeed config that every training loop needs (the batch
// triple, stage, overlap_comm, clipping, precision, monitors): what InitFromEnv hands a rank and
// dsconfig::ReadTrainingConfig (runtime/dsconfig/effective.h) reads. Plain data.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_TRAINING_CONFIG_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_TRAINING_CONFIG_H_

#include <cstdint>
#include <string>

namespace zerorun::dsconfig {

struct BatchTriple {
  int64_t train_batch_size = 0;
  int64_t micro_batch_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;
};

// Every field comes from the effective config.
struct TrainingConfig {
  BatchTriple batch;
  int stage = 0;
  bool overlap_comm = false;
  double gradient_clipping = 0;  // 0: no clipping.
  bool fp16 = false;
  bool bf16 = false;
  // DeepSpeed's monitors that libzerorun writes (zerorun/monitor.h): the directory, as DeepSpeed
  // joins output_path and job_name (relative to the working directory when output_path is ""),
  // or "" when the block is absent or disabled.
  std::string csv_monitor_dir;
  std::string tensorboard_dir;
};

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_TRAINING_CONFIG_H_
