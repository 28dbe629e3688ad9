// Checkpoints of the ZeRO engine: bit-identical resume at every stage and dtype, asynchronous
// saves, corrupt shards and other models refused (resharding too), keep_last, and loading at
// another world size, stage and working dtype (resharding), with ranks as threads over a real
// Gloo communicator.
#include "zerorun/checkpoint.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine_harness.h"
#include "support/temp_dir.h"

namespace zerorun {
namespace {

using engine_harness::Drive;
using engine_harness::kUnits;
using engine_harness::Run;
using engine_harness::RunEngine;
using engine_harness::Stage3;

TEST_CASE(
    "Save at step 3 and resume to step 6 is bit-identical to 6 steps straight, every "
    "stage and dtype",
    "[zero][checkpoint]") {
  for (const DType dtype : {DType::kFp32, DType::kBf16, DType::kFp16}) {
    for (int stage = 0; stage <= 3; ++stage) {
      INFO("stage " << stage << " " << DTypeName(dtype));
      ZeroOptions options;
      options.stage = stage;
      options.dtype = dtype;
      options.gradient_accumulation_steps = 2;
      options.gradient_clipping = 1.0f;
      options.param_persistence_threshold = 20;  // Stage 3: persistent and partitioned units.
      testing::TempDir dir;
      const Run straight = RunEngine(2, options, 6);
      Drive save;
      save.ckpt_dir = dir.path() + "/ckpt";
      save.save_at = 3;
      RunEngine(2, options, 3, save);
      std::ifstream latest(save.ckpt_dir + "/latest");
      std::string tag;
      REQUIRE(latest >> tag);
      CHECK(tag == "global_step3");
      Drive resume;
      resume.ckpt_dir = save.ckpt_dir;
      resume.resume = true;
      const Run resumed = RunEngine(2, options, 6, resume);
      CHECK(resumed.params == straight.params);
      REQUIRE(resumed.norms.size() == 3);
      for (int k = 0; k < 3; ++k) CHECK(resumed.norms[k] == straight.norms[3 + k]);
    }
  }
}

TEST_CASE(
    "An asynchronous save at step 3 holds step 3's state while training goes on, and resumes "
    "bit-identically",
    "[zero][checkpoint]") {
  for (int stage : {1, 3}) {
    INFO("stage " << stage);
    ZeroOptions options;
    options.stage = stage;
    options.gradient_clipping = 1.0f;
    testing::TempDir dir;
    const Run straight = RunEngine(2, options, 6);
    Drive save;
    save.ckpt_dir = dir.path() + "/ckpt";
    save.save_at = 3;
    save.async_save = true;
    const Run saving = RunEngine(2, options, 6, save);
    CHECK(saving.params == straight.params);  // The save changed nothing of the training.
    std::ifstream latest(save.ckpt_dir + "/latest");
    std::string tag;
    REQUIRE(latest >> tag);
    CHECK(tag == "global_step3");
    CHECK_FALSE(std::filesystem::exists(save.ckpt_dir + "/global_step3.tmp"));
    Drive resume;
    resume.ckpt_dir = save.ckpt_dir;
    resume.resume = true;
    const Run resumed = RunEngine(2, options, 6, resume);
    CHECK(resumed.params == straight.params);
  }
}

// A 2-rank run of `options` that checkpoints into `ckpt_dir` at step 2.
Drive SaveAtStep2(const ZeroOptions& options, const std::string& ckpt_dir) {
  Drive save;
  save.ckpt_dir = ckpt_dir;
  save.save_at = 2;
  RunEngine(2, options, 2, save);
  return save;
}

// Each of `world` ranks (threads) loads the latest checkpoint of `ckpt_dir`; their statuses.
std::vector<absl::Status> LoadOnRanks(int world, const ZeroOptions& options,
                                      const std::string& ckpt_dir) {
  InMemoryKvStore store;
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, world, {});
      auto engine = ZeroEngine::Create(kUnits, options, comm->get());
      status[r] = LoadCheckpoint(**engine, **comm, ckpt_dir, "").status();
    });
  }
  for (std::thread& t : threads) t.join();
  return status;
}

TEST_CASE("A corrupt shard or another model is refused, naming it", "[zero][checkpoint]") {
  ZeroOptions options;
  options.stage = 2;
  testing::TempDir dir;
  const Drive save = SaveAtStep2(options, dir.path() + "/ckpt");
  // Another model: FailedPrecondition naming the unit.
  {
    InMemoryKvStore store;
    auto comm = CreateGlooCommunicator(store, 0, 1, {});
    REQUIRE(comm.ok());
    std::vector<UnitSpec> other = kUnits;
    other[1].tensors[0].shape = {34};
    auto engine = ZeroEngine::Create(other, options, comm->get());
    REQUIRE(engine.ok());
    absl::StatusOr<std::string> loaded = LoadCheckpoint(**engine, **comm, save.ckpt_dir, "");
    CHECK(loaded.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(loaded.status().message()),
               Catch::Contains("is of another model: unit block"));
  }
  {
    const std::string shard = save.ckpt_dir + "/global_step2/zero_rank_1.bin";
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.put('\x7f');
  }
  const std::vector<absl::Status> status = LoadOnRanks(2, options, save.ckpt_dir);
  for (int r = 0; r < 2; ++r) {
    CHECK(status[r].code() != absl::StatusCode::kOk);
    CHECK_THAT(std::string(status[r].message()), Catch::Contains("rank(s) 1"));
  }
  CHECK_THAT(std::string(status[1].message()),
             Catch::Contains("zero_rank_1.bin does not match its sha256"));
  // A shard gone: its rank fails before its masters are in, while rank 0 reads on and waits to
  // share its weights; both stop (no hang) naming rank 1 alone.
  std::filesystem::remove(save.ckpt_dir + "/global_step2/zero_rank_1.bin");
  const std::vector<absl::Status> missing = LoadOnRanks(2, options, save.ckpt_dir);
  for (int r = 0; r < 2; ++r) {
    CHECK(missing[r].code() != absl::StatusCode::kOk);
    CHECK_THAT(std::string(missing[r].message()), Catch::Contains("failed on rank(s) 1"));
  }
  CHECK_THAT(std::string(missing[1].message()), Catch::Contains("zero_rank_1.bin"));
}

TEST_CASE("keep_last keeps the newest checkpoints, and latest names the newest",
          "[zero][checkpoint]") {
  ZeroOptions options;
  options.stage = 3;
  testing::TempDir dir;
  Drive drive;
  drive.ckpt_dir = dir.path() + "/ckpt";
  drive.save_every_step = true;
  drive.keep_last = 2;
  RunEngine(2, options, 5, drive);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(drive.ckpt_dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"global_step4", "global_step5", "latest"});
}

TEST_CASE("A checkpoint loads at another world size, stage and working dtype (resharding)",
          "[zero][checkpoint]") {
  ZeroOptions saved;
  saved.stage = 2;
  saved.dtype = DType::kBf16;
  testing::TempDir dir;
  Drive save;
  save.ckpt_dir = dir.path() + "/ckpt";
  save.save_at = 3;
  const Run at_save = RunEngine(2, saved, 3, save);
  struct Target {
    int world, stage;
    DType dtype;
  };
  for (const Target& t : {Target{3, 3, DType::kBf16}, Target{1, 1, DType::kFp32},
                          Target{4, 0, DType::kFp16}, Target{3, 2, DType::kFp32}}) {
    INFO("world " << t.world << ", stage " << t.stage << ", " << DTypeName(t.dtype));
    ZeroOptions options = saved;
    options.stage = t.stage;
    options.dtype = t.dtype;
    options.param_persistence_threshold = 20;
    Drive resume;
    resume.ckpt_dir = save.ckpt_dir;
    resume.resume = true;
    // No step after the load: the parameters are the saved fp32 masters, exactly.
    const Run loaded = RunEngine(t.world, options, 3, resume);
    CHECK(loaded.params == at_save.params);
    // And training goes on from there.
    const Run trained = RunEngine(t.world, options, 5, resume);
    CHECK(trained.norms.size() == 2);
  }
}

TEST_CASE("Resharding refuses a corrupt old shard on every rank, naming it", "[zero][checkpoint]") {
  ZeroOptions options;
  options.stage = 2;
  testing::TempDir dir;
  const Drive save = SaveAtStep2(options, dir.path() + "/ckpt");
  {
    // One byte near the end of rank 1's file: a range only some new ranks read.
    const std::string shard = save.ckpt_dir + "/global_step2/zero_rank_1.bin";
    const auto size = std::filesystem::file_size(shard);
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size - 3));
    const char was = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(size - 3));
    f.put(static_cast<char>(was ^ 0x40));
  }
  for (int world : {3, 1}) {
    INFO("world " << world);
    const std::vector<absl::Status> status = LoadOnRanks(world, options, save.ckpt_dir);
    // Shard 1 is checked by rank 1 % world; every rank fails with it.
    const int checker = 1 % world;
    for (int r = 0; r < world; ++r) {
      CHECK(status[r].code() != absl::StatusCode::kOk);
      CHECK_THAT(std::string(status[r].message()),
                 Catch::Contains("rank(s) " + std::to_string(checker)));
    }
    CHECK_THAT(std::string(status[checker].message()),
               Catch::Contains("zero_rank_1.bin does not match its sha256"));
  }
}

// Optimizer state (and stage-3 parameters) on NVMe: sub-groups that cut through units.
ZeroOptions OnNvme(ZeroOptions options, const std::string& path, bool params) {
  options.optimizer_space = MemorySpace::kNvme;
  options.nvme_path = path;
  options.sub_group_size = 7;
  options.aio.block_size = 4096;
  if (params) {
    options.param_space = MemorySpace::kNvme;
    options.param_nvme_path = path;
  }
  return options;
}

TEST_CASE(
    "A run with state on NVMe checkpoints from its swap files and resumes bit-identically, on "
    "NVMe or in memory, at its world size or another",
    "[zero][checkpoint][nvme]") {
  for (const DType dtype : {DType::kFp32, DType::kBf16}) {
    for (int stage = 1; stage <= 3; ++stage) {
      INFO("stage " << stage << " " << DTypeName(dtype));
      ZeroOptions options = stage < 3 ? ZeroOptions{} : Stage3(true);
      options.stage = stage;
      options.dtype = dtype;
      options.gradient_clipping = 1.0f;
      options.gradient_accumulation_steps = 2;
      testing::TempDir dir;
      const std::string nvme = dir.path() + "/nvme";
      std::filesystem::create_directory(nvme);
      const ZeroOptions swapped = OnNvme(options, nvme, stage == 3);
      const Run straight = RunEngine(2, options, 6);
      for (bool async : {false, true}) {
        INFO("async " << async);
        Drive save;
        save.ckpt_dir = dir.path() + (async ? "/async" : "/sync");
        save.save_at = 3;
        save.async_save = async;  // Streamed from the swap all the same.
        const Run saving = RunEngine(2, swapped, 6, save);
        CHECK(saving.params == straight.params);
        Drive resume;
        resume.ckpt_dir = save.ckpt_dir;
        resume.resume = true;
        CHECK(RunEngine(2, swapped, 6, resume).params == straight.params);
        CHECK(RunEngine(2, options, 6, resume).params == straight.params);  // Into memory.
      }
      // An in-memory checkpoint into NVMe state; resharding onto 3 ranks on NVMe (no step
      // after the load: the saved masters, exactly).
      Drive save;
      save.ckpt_dir = dir.path() + "/memory";
      save.save_at = 3;
      const Run at_save = RunEngine(2, options, 3, save);
      Drive resume;
      resume.ckpt_dir = save.ckpt_dir;
      resume.resume = true;
      CHECK(RunEngine(2, swapped, 6, resume).params == straight.params);
      ZeroOptions three = OnNvme(Stage3(false), nvme, true);
      three.dtype = dtype;
      CHECK(RunEngine(3, three, 3, resume).params == at_save.params);
      CHECK(std::filesystem::is_empty(nvme));  // Every swap directory went with its rank.
    }
  }
}

}  // namespace
}  // namespace zerorun
