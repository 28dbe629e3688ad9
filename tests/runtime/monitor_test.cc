// DeepSpeed's monitors written by libzerorun: csv_monitor's file names, headers and rows (and a
// resumed run appending to them), TensorBoard event files read back by an independent reader
// (tests/testdata/read_tfevents.py: the real protobuf library, its own CRC-32C), rank 0 only,
// and the config keys' directories.
#include "zerorun/monitor.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/crc32c.h"
#include "dsconfig/effective.h"
#include "support/python_env.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun {
namespace {

using testing::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_CASE("CRC-32C matches the standard check value, and TFRecord's mask", "[monitor]") {
  CHECK(Crc32c("123456789", 9) == 0xE3069283u);
  CHECK(Crc32c("", 0) == 0);
  const uint32_t crc = Crc32c("123456789", 9);
  CHECK(MaskedCrc32c("123456789", 9) == ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
  CHECK(Crc32cPortable("123456789", 9) == 0xE3069283u);
}

TEST_CASE("CRC-32C: the SSE4.2 path and the table agree at every length and alignment",
          "[monitor]") {
  std::vector<unsigned char> bytes(4096 + 64);
  uint32_t x = 12345;
  for (unsigned char& b : bytes)
    b = static_cast<unsigned char>((x = x * 1103515245u + 12345u) >> 24);
  for (size_t at = 0; at < 9; ++at) {
    for (size_t n : {0, 1, 7, 8, 9, 15, 16, 63, 4096}) {
      INFO("offset " << at << ", " << n << " bytes");
      CHECK(Crc32c(bytes.data() + at, n) == Crc32cPortable(bytes.data() + at, n));
    }
  }
  // One flipped bit changes a page's checksum (what the NVMe swap file's check relies on).
  const uint32_t page = Crc32c(bytes.data(), 4096);
  bytes[2000] ^= 0x10;
  CHECK(Crc32c(bytes.data(), 4096) != page);
}

TEST_CASE("csv_monitor writes DeepSpeed's files, and a resumed run appends under one header",
          "[monitor]") {
  TempDir dir;
  const std::string csv = dir.path() + "/out/job";
  {
    auto m = TrainingMonitor::Create(csv, "", 0);
    REQUIRE(m.ok());
    REQUIRE((*m)->enabled());
    REQUIRE((*m)->Write(TrainingMonitor::StepEvents(1, 8, 2.5, 1e-3, true, 65536)).ok());
    REQUIRE((*m)->Write(TrainingMonitor::StepEvents(2, 8, 2.25, 0.0009, true, 32768)).ok());
  }
  CHECK(Slurp(csv + "/Train_Samples_train_loss.csv") == "step,train_loss\n0,2.5\n8,2.25\n");
  CHECK(Slurp(csv + "/Train_Samples_lr.csv") == "step,lr\n8,0.001\n16,0.0009\n");
  CHECK(Slurp(csv + "/Train_Samples_loss_scale.csv") == "step,loss_scale\n8,65536.0\n16,32768.0\n");
  {
    auto resumed = TrainingMonitor::Create(csv, "", 0);
    REQUIRE(resumed.ok());
    REQUIRE((*resumed)->Write(TrainingMonitor::StepEvents(3, 8, 2.125, 0.0008, false, 1)).ok());
  }
  CHECK(Slurp(csv + "/Train_Samples_train_loss.csv") ==
        "step,train_loss\n0,2.5\n8,2.25\n16,2.125\n");
  // Other ranks write nothing and create nothing.
  TempDir other;
  auto silent = TrainingMonitor::Create(other.path() + "/csv", other.path() + "/tb", 1);
  REQUIRE(silent.ok());
  CHECK(!(*silent)->enabled());
  REQUIRE((*silent)->Write(TrainingMonitor::StepEvents(1, 8, 1, 1, false, 1)).ok());
  CHECK(other.Listing().empty());
}

TEST_CASE("TensorBoard event files read back with protobuf and their CRCs checked", "[monitor]") {
  TempDir dir;
  const std::string tb = dir.path() + "/tb/run";
  {
    auto m = TrainingMonitor::Create("", tb, 0);
    REQUIRE(m.ok());
    REQUIRE((*m)->Write(TrainingMonitor::StepEvents(1, 4, 3.5, 0.25, true, 1024)).ok());
    REQUIRE((*m)->Write(TrainingMonitor::StepEvents(2, 4, 3.25, 0.125, true, 512)).ok());
  }
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(tb)) {
    files.push_back(entry.path().filename().string());
  }
  REQUIRE(files.size() == 1);
  CHECK_THAT(files[0], Catch::StartsWith("events.out.tfevents."));
  const testing::RunResult read = testing::Run(
      {testing::VenvPython(), testing::TestData("read_tfevents.py"), tb + "/" + files[0]});
  INFO(read.err);
  REQUIRE(read.exit_code == 0);
  CHECK(read.out ==
        "file_version brain.Event:2\n"
        "scalar Train/Samples/train_loss 0 3.5\n"
        "scalar Train/Samples/lr 4 0.25\n"
        "scalar Train/Samples/loss_scale 4 1024.0\n"
        "scalar Train/Samples/train_loss 4 3.25\n"
        "scalar Train/Samples/lr 8 0.125\n"
        "scalar Train/Samples/loss_scale 8 512.0\n");
}

TEST_CASE("The monitors' directories come from output_path and job_name, as DeepSpeed joins them",
          "[monitor][effective]") {
  auto typed = [](const std::string& text) {
    absl::StatusOr<dsconfig::JsonDocument> doc = dsconfig::ParseConfigJson("ds.json", text);
    REQUIRE(doc.ok());
    dsconfig::AutoInputs inputs;
    inputs.world_size = 1;
    absl::StatusOr<nlohmann::json> effective = dsconfig::ResolveEffectiveConfig(*doc, inputs);
    REQUIRE(effective.ok());
    return dsconfig::ReadTrainingConfig(*effective);
  };
  absl::StatusOr<dsconfig::TrainingConfig> t = typed(R"({"train_micro_batch_size_per_gpu": 1,
      "csv_monitor": {"enabled": true, "output_path": "/logs/", "job_name": "run1"},
      "tensorboard": {"enabled": true}})");
  REQUIRE(t.ok());
  CHECK(t->csv_monitor_dir == "/logs/run1");
  CHECK(t->tensorboard_dir == "DeepSpeedJobName");  // os.path.join("", job_name).
  t = typed(R"({"train_micro_batch_size_per_gpu": 1, "csv_monitor": {"enabled": false,
      "output_path": "/logs"}})");
  REQUIRE(t.ok());
  CHECK(t->csv_monitor_dir.empty());
  t = typed(R"({"train_micro_batch_size_per_gpu": 1, "csv_monitor": {"enabled": true,
      "job_name": ""}})");
  REQUIRE(!t.ok());
  CHECK_THAT(std::string(t.status().message()), Catch::Contains("csv_monitor.job_name"));
}

}  // namespace
}  // namespace zerorun
