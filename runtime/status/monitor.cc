// TrainingMonitor: DeepSpeed's csv_monitor tables and TensorBoard event files (TFRecord framing,
// hand-encoded tensorboard.Event protos: wall_time, step, summary.value{tag, simple_value}).
#include "zerorun/monitor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/crc32c.h"

namespace zerorun {
namespace {

absl::Status MakeDir(const std::string& dir, const char* block) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(block, ": cannot create ", dir, ": ",
                                                      ec.message(), " (fix ", block,
                                                      ".output_path, or its permissions)"));
  }
  return absl::OkStatus();
}

// As Python's str(float): the shortest form that reads back, with ".0" on whole numbers.
std::string PyFloat(double v) {
  if (v != v) return "nan";
  if (v > 1e308) return "inf";
  if (v < -1e308) return "-inf";
  char buffer[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", digits, v);
    if (std::strtod(buffer, nullptr) == v) break;
  }
  std::string out = buffer;
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void Fixed(const void* bytes, size_t n, std::string* out) {  // Little-endian hosts only.
  out->append(static_cast<const char*>(bytes), n);
}

void LengthDelimited(int field, const std::string& bytes, std::string* out) {
  Varint(static_cast<uint64_t>(field) << 3 | 2, out);
  Varint(bytes.size(), out);
  out->append(bytes);
}

// tensorboard.Event: 1 wall_time (double), 2 step (int64), 3 file_version, 5 summary.
std::string Event(double wall_time, int64_t step, const std::string& file_version,
                  const std::string& summary) {
  std::string e;
  Varint(1 << 3 | 1, &e);
  Fixed(&wall_time, 8, &e);
  if (step != 0) {
    Varint(2 << 3 | 0, &e);
    Varint(static_cast<uint64_t>(step), &e);
  }
  if (!file_version.empty()) LengthDelimited(3, file_version, &e);
  if (!summary.empty()) LengthDelimited(5, summary, &e);
  return e;
}

// Summary{value: [Value{1 tag, 2 simple_value (float)}]}.
std::string ScalarSummary(const std::string& tag, float value) {
  std::string v;
  LengthDelimited(1, tag, &v);
  Varint(2 << 3 | 5, &v);
  Fixed(&value, 4, &v);
  std::string summary;
  LengthDelimited(1, v, &summary);
  return summary;
}

// TFRecord: uint64 length, masked CRC of it, the data, masked CRC of the data.
std::string Record(const std::string& data) {
  std::string r;
  const uint64_t length = data.size();
  const uint32_t length_crc = MaskedCrc32c(&length, 8);
  const uint32_t data_crc = MaskedCrc32c(data.data(), data.size());
  Fixed(&length, 8, &r);
  Fixed(&length_crc, 4, &r);
  r += data;
  Fixed(&data_crc, 4, &r);
  return r;
}

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t MaskedCrc32c(const void* data, size_t size) {
  const uint32_t crc = Crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

absl::StatusOr<std::unique_ptr<TrainingMonitor>> TrainingMonitor::Create(
    const std::string& csv_dir, const std::string& tensorboard_dir, int rank) {
  std::unique_ptr<TrainingMonitor> m(new TrainingMonitor());
  if (rank != 0) return m;
  if (!csv_dir.empty()) {
    if (absl::Status s = MakeDir(csv_dir, "csv_monitor"); !s.ok()) return s;
    m->csv_dir_ = csv_dir;
  }
  if (!tensorboard_dir.empty()) {
    if (absl::Status s = MakeDir(tensorboard_dir, "tensorboard"); !s.ok()) return s;
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    m->tensorboard_path_ =
        absl::StrCat(tensorboard_dir, "/events.out.tfevents.", static_cast<int64_t>(WallTime()),
                     ".", host, ".", getpid(), ".0");
    m->tensorboard_fd_ =
        open(m->tensorboard_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (m->tensorboard_fd_ < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tensorboard: cannot create ", m->tensorboard_path_, ": ", std::strerror(errno)));
    }
    const std::string header = Record(Event(WallTime(), 0, "brain.Event:2", ""));
    if (write(m->tensorboard_fd_, header.data(), header.size()) !=
        static_cast<ssize_t>(header.size())) {
      return absl::DataLossError(absl::StrCat("tensorboard: cannot write ", m->tensorboard_path_,
                                              ": ", std::strerror(errno)));
    }
  }
  return m;
}

TrainingMonitor::~TrainingMonitor() {
  if (tensorboard_fd_ >= 0) close(tensorboard_fd_);
}

absl::Status TrainingMonitor::WriteCsv(const MonitorEvent& e) {
  const std::string file = absl::StrReplaceAll(e.name, {{"/", "_"}, {" ", "_"}});
  const std::string path = absl::StrCat(csv_dir_, "/", file, ".csv");
  std::error_code ec;
  const bool fresh =
      !std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0;
  std::ofstream out(path, std::ios::app);
  if (fresh) out << "step," << e.name.substr(e.name.rfind('/') + 1) << "\n";
  out << e.step << "," << PyFloat(e.value) << "\n";
  out.flush();
  if (!out) {
    return absl::DataLossError(absl::StrCat("csv_monitor: cannot write ", path));
  }
  return absl::OkStatus();
}

absl::Status TrainingMonitor::WriteTensorboard(const std::vector<MonitorEvent>& events) {
  std::string bytes;
  const double now = WallTime();
  for (const MonitorEvent& e : events) {
    bytes += Record(Event(now, e.step, "", ScalarSummary(e.name, static_cast<float>(e.value))));
  }
  if (bytes.empty()) return absl::OkStatus();
  if (write(tensorboard_fd_, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    return absl::DataLossError(
        absl::StrCat("tensorboard: cannot write ", tensorboard_path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status TrainingMonitor::Write(const std::vector<MonitorEvent>& events) {
  if (!csv_dir_.empty()) {
    for (const MonitorEvent& e : events) {
      if (absl::Status s = WriteCsv(e); !s.ok()) return s;
    }
  }
  if (tensorboard_fd_ >= 0) return WriteTensorboard(events);
  return absl::OkStatus();
}

std::vector<MonitorEvent> TrainingMonitor::StepEvents(int64_t step, int64_t batch, double loss,
                                                      double lr, bool fp16, double loss_scale) {
  std::vector<MonitorEvent> events = {{"Train/Samples/train_loss", loss, (step - 1) * batch},
                                      {"Train/Samples/lr", lr, step * batch}};
  if (fp16) events.push_back({"Train/Samples/loss_scale", loss_scale, step * batch});
  return events;
}

}  // namespace zerorun
