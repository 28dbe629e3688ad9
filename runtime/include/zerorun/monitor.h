// DeepSpeed's csv_monitor and tensorboard monitors for libzerorun programs: the same events
// (Train/Samples/train_loss, lr, loss_scale against samples seen) in the same files, written by
// rank 0 only, as DeepSpeed does. No TensorBoard or protobuf dependency: the event files are
// TFRecord framing (masked CRC32C) around hand-encoded tensorboard Event messages.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_MONITOR_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_MONITOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun {

struct MonitorEvent {
  std::string name;  // "Train/Samples/train_loss".
  double value = 0;
  int64_t step = 0;  // DeepSpeed's x axis: samples seen (global_samples).
};

class TrainingMonitor {
 public:
  // Monitors for the directories dsconfig::TrainingConfig names ("" for an off one). Rank 0
  // creates the directories (as DeepSpeed's os.makedirs); other ranks get a monitor that writes
  // nothing. The error names the directory and the key.
  static absl::StatusOr<std::unique_ptr<TrainingMonitor>> Create(const std::string& csv_dir,
                                                                 const std::string& tensorboard_dir,
                                                                 int rank);
  ~TrainingMonitor();
  bool enabled() const { return !csv_dir_.empty() || tensorboard_fd_ >= 0; }

  // csv_monitor: one <csv_dir>/<name, '/' and ' ' as '_'>.csv per event name, rows "step,value"
  // appended under a "step,<last part of name>" header (written when the file is new or empty,
  // so a resumed run appends to the same table). tensorboard: one scalar per event in
  // <dir>/events.out.tfevents.<unix time>.<host>.<pid>.0, flushed with each call.
  absl::Status Write(const std::vector<MonitorEvent>& events);

  // The events DeepSpeed's engine writes at an optimizer step (1-based `step`, `batch`
  // samples a step): the loss at the samples before the step, the learning rate (and fp16's loss
  // scale) after it.
  static std::vector<MonitorEvent> StepEvents(int64_t step, int64_t batch, double loss, double lr,
                                              bool fp16, double loss_scale);

 private:
  TrainingMonitor() = default;
  absl::Status WriteCsv(const MonitorEvent& e);
  absl::Status WriteTensorboard(const std::vector<MonitorEvent>& events);
  std::string csv_dir_;
  std::string tensorboard_path_;
  int tensorboard_fd_ = -1;
};

// TFRecord's masked CRC-32C of `data`.
uint32_t MaskedCrc32c(const void* data, size_t size);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_MONITOR_H_
