// e2e: ZeRO-Offload and ZeRO-Infinity through zerorun (issue 12): offload to cpu, optimizer state
// and stage-3 parameters on nvme train bit-identically to the in-memory run, checkpoint from the
// swap files, and pre-flight's nvme space estimate covers what the ranks write.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "train_gpt_runs.h"

namespace zerorun::testing {
namespace {

// "placed on device D MiB, host H MiB" from train_gpt's summary: {D, H}.
std::pair<double, double> Placement(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m,
                         std::regex("placed on device ([0-9.]+) MiB, host ([0-9.]+) MiB"))) {
    return {-1, -1};
  }
  return {std::stod(m[1].str()), std::stod(m[2].str())};
}

// A job directory: ZR_HOME, a hostfile of `slots` local ranks, an empty nvme_path.
struct OffloadJob {
  explicit OffloadJob(int slots)
      : env{{"ZR_HOME", dir.path() + "/home"}},
        hosts(dir.Write("hosts", "localhost slots=" + std::to_string(slots) + "\n")),
        nvme(dir.path() + "/nvme") {
    std::filesystem::create_directory(nvme);
  }
  TempDir dir;
  const std::map<std::string, std::string> env;
  const std::string hosts, nvme;
};

TEST_CASE(
    "Offload of the optimizer (and stage 3's parameters) to cpu trains bit-identically to the "
    "in-memory run at stages 1-3 and worlds 1-3, the state placed on the host",
    "[e2e][offload]") {
  TempDir dir;
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  for (int world = 1; world <= 3; ++world) {
    const std::string hosts = dir.Write("hosts" + std::to_string(world),
                                        "localhost slots=" + std::to_string(world) + "\n");
    for (int stage = 1; stage <= 3; ++stage) {
      INFO("world " << world << ", stage " << stage);
      const std::string zero = "\"stage\": " + std::to_string(stage);
      const std::string offload =
          zero + ", \"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true}" +
          (stage == 3 ? ", \"offload_param\": {\"device\": \"cpu\"}" : "");
      auto train = [&](const std::string& name, const std::string& zero_json) {
        const std::string config =
            dir.Write(name,
                      "{\"train_batch_size\": 12, \"train_micro_batch_size_per_gpu\": 2, "
                      "\"gradient_clipping\": 1.0, \"zero_optimization\": {" +
                          zero_json + "}}");
        return Run(TrainGptCommand(hosts, config, {}, {"--steps", "4", "--print-checksum"}), env);
      };
      const RunResult plain = train("plain.json", zero);
      const RunResult offloaded = train("offload.json", offload);
      INFO(offloaded.err);
      REQUIRE(plain.exit_code == 0);
      REQUIRE(offloaded.exit_code == 0);
      CHECK_FALSE(Checksum(plain.out).empty());
      CHECK(Checksum(offloaded.out) == Checksum(plain.out));
      CHECK_THAT(offloaded.out, Catch::Contains("optimizer state is in host memory already"));
      const auto [plain_device, plain_host] = Placement(plain.out);
      const auto [device, host] = Placement(offloaded.out);
      CHECK(plain_host == 0);
      CHECK(host > 0);  // Adam m and v (and stage 3's parameter shards) on the host.
      CHECK(device + host == Approx(plain_device).margin(0.15));  // Same bytes, elsewhere.
    }
  }
}

TEST_CASE(
    "Optimizer state on nvme trains bit-identically to the in-memory run at stages 1-3, and a "
    "missing nvme_path stops the job before anything starts",
    "[e2e][offload][nvme]") {
  OffloadJob job(2);
  TempDir& dir = job.dir;
  const std::map<std::string, std::string>& env = job.env;
  const std::string &hosts = job.hosts, &nvme = job.nvme;
  auto train = [&](const std::string& name, const std::string& zero_json) {
    const std::string config = dir.Write(
        name,
        "{\"train_batch_size\": 12, \"train_micro_batch_size_per_gpu\": 2, "
        "\"gradient_clipping\": 1.0, \"aio\": {\"block_size\": 65536, \"queue_depth\": 4}, "
        "\"zero_optimization\": {" +
            zero_json + "}}");
    return Run(TrainGptCommand(hosts, config, {}, {"--steps", "4", "--print-checksum"}), env);
  };
  for (int stage = 1; stage <= 3; ++stage) {
    INFO("stage " << stage);
    const std::string zero = "\"stage\": " + std::to_string(stage);
    const RunResult plain = train("plain.json", zero);
    const RunResult swapped =
        train("nvme.json", zero +
                               ", \"sub_group_size\": 3000, \"offload_optimizer\": "
                               "{\"device\": \"nvme\", \"nvme_path\": \"" +
                               nvme + "\"}");
    INFO(swapped.err);
    REQUIRE(plain.exit_code == 0);
    REQUIRE(swapped.exit_code == 0);
    CHECK_FALSE(Checksum(plain.out).empty());
    CHECK(Checksum(swapped.out) == Checksum(plain.out));
    std::smatch m;
    REQUIRE(std::regex_search(swapped.out, m, std::regex("nvme ([0-9.]+) MiB")));
    CHECK(std::stod(m[1].str()) > 0);
    CHECK(std::filesystem::is_empty(nvme));  // Every rank's swap directory removed.
  }
  const std::string missing = dir.path() + "/not-there";
  const RunResult refused = train("missing.json",
                                  "\"stage\": 2, \"offload_optimizer\": {\"device\": \"nvme\", "
                                  "\"nvme_path\": \"" +
                                      missing + "\"}");
  CHECK(refused.exit_code == 66);
  CHECK_THAT(refused.out + refused.err,
             Catch::Contains(missing) && Catch::Contains("does not exist"));
  CHECK_FALSE(std::filesystem::exists(missing));
}

TEST_CASE(
    "A ZeRO-Infinity run checkpoints from its swap files and resumes bit-identically, on nvme "
    "or in memory",
    "[e2e][offload][nvme][checkpoint]") {
  OffloadJob job(2);
  TempDir& dir = job.dir;
  const std::string save = dir.path() + "/ckpt", params = dir.path() + "/nvme-params";
  std::filesystem::create_directory(params);
  auto train = [&](const std::string& name, const std::string& offload,
                   std::vector<std::string> flags) {
    const std::string config = dir.Write(
        name,
        "{\"train_batch_size\": 12, \"train_micro_batch_size_per_gpu\": 2, "
        "\"gradient_clipping\": 1.0, \"aio\": {\"block_size\": 65536}, \"zero_optimization\": "
        "{\"stage\": 3, \"stage3_param_persistence_threshold\": 1000, \"sub_group_size\": 5000" +
            offload + "}}");
    flags.insert(flags.end(), {"--print-checksum", "--save-dir", save});
    return Run(TrainGptCommand(job.hosts, config, {}, flags), job.env);
  };
  const std::string infinity =
      ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"" + job.nvme +
      "\"}, \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"" + params + "\"}";
  const RunResult straight = train("plain.json", "", {"--steps", "6"});
  REQUIRE(straight.exit_code == 0);
  std::filesystem::remove_all(save);
  // Asynchronous saves asked for: streamed from the swap instead (no snapshot in memory).
  const RunResult first =
      train("infinity.json", infinity, {"--steps", "4", "--save-every", "2", "--async-save"});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.out, Catch::Contains("streamed from the nvme swap, no snapshot"));
  CHECK(std::filesystem::exists(save + "/global_step4/manifest.json"));
  const RunResult resumed = train("infinity.json", infinity, {"--steps", "6", "--resume"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(Checksum(resumed.out) == Checksum(straight.out));
  const RunResult in_memory = train("plain.json", "", {"--steps", "6", "--resume", "global_step4"});
  REQUIRE(in_memory.exit_code == 0);
  CHECK(Checksum(in_memory.out) == Checksum(straight.out));
  CHECK(std::filesystem::is_empty(job.nvme));
  CHECK(std::filesystem::is_empty(params));
}

TEST_CASE(
    "ZeRO-Infinity at stage 3 (optimizer state and parameter shards on nvme) trains "
    "bit-identically to the in-memory run at worlds 1-3, its files removed at the end",
    "[e2e][offload][nvme]") {
  TempDir dir;
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  const std::string nvme = dir.path() + "/nvme", params = dir.path() + "/nvme-params";
  std::filesystem::create_directory(nvme);
  std::filesystem::create_directory(params);
  for (int world = 1; world <= 3; ++world) {
    INFO("world " << world);
    const std::string hosts = dir.Write("hosts" + std::to_string(world),
                                        "localhost slots=" + std::to_string(world) + "\n");
    auto train = [&](const std::string& name, const std::string& zero_json) {
      const std::string config =
          dir.Write(name,
                    "{\"train_batch_size\": 12, \"train_micro_batch_size_per_gpu\": 2, "
                    "\"gradient_clipping\": 1.0, \"aio\": {\"block_size\": 65536}, "
                    "\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": true, "
                    "\"stage3_param_persistence_threshold\": 1000" +
                        zero_json + "}}");
      return Run(TrainGptCommand(hosts, config, {}, {"--steps", "4", "--print-checksum"}), env);
    };
    const RunResult plain = train("plain.json", "");
    const RunResult swapped =
        train("infinity.json",
              ", \"sub_group_size\": 5000, \"offload_optimizer\": {\"device\": \"nvme\", "
              "\"nvme_path\": \"" +
                  nvme + "\"}, \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"" +
                  params + "\", \"buffer_count\": 2, \"max_in_cpu\": 100000}");
    INFO(swapped.err);
    REQUIRE(plain.exit_code == 0);
    REQUIRE(swapped.exit_code == 0);
    CHECK_FALSE(Checksum(plain.out).empty());
    CHECK(Checksum(swapped.out) == Checksum(plain.out));
    CHECK_THAT(swapped.out, Catch::Contains("shards of units above param_persistence_threshold"));
    std::smatch m;
    REQUIRE(std::regex_search(swapped.out, m, std::regex("nvme ([0-9.]+) MiB")));
    CHECK(std::stod(m[1].str()) > 0);
    CHECK(std::filesystem::is_empty(nvme));
    CHECK(std::filesystem::is_empty(params));
  }
}

TEST_CASE(
    "Pre-flight's nvme space and host memory estimates cover the swap files and the read-ahead "
    "ring the ranks hold, for "
    "every dtype and placement",
    "[e2e][offload][nvme]") {
  OffloadJob job(2);
  TempDir& dir = job.dir;
  const std::map<std::string, std::string>& env = job.env;
  const std::string &hosts = job.hosts, &nvme = job.nvme;
  const std::vector<std::string> model = {
      "--random-tokens", "--vocab", "4096",  "--layers", "4",       "--d-model", "256",
      "--heads",         "4",       "--seq", "32",       "--steps", "2"};
  struct Case {
    const char* name;
    std::string json;
  };
  const std::string both = ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"" +
                           nvme + "\"}, \"offload_param\": {\"device\": \"nvme\", " +
                           "\"nvme_path\": \"" + nvme + "\"}";
  const std::vector<Case> cases = {
      {"bf16, optimizer + parameters",
       "\"bf16\": {\"enabled\": true}, \"zero_optimization\": "
       "{\"stage\": 3" +
           both + "}"},
      {"bf16, fp32 accumulation",
       "\"bf16\": {\"enabled\": true}, \"data_types\": "
       "{\"grad_accum_dtype\": \"fp32\"}, \"zero_optimization\": "
       "{\"stage\": 3" +
           both + "}"},
      {"fp32, optimizer + parameters", "\"zero_optimization\": {\"stage\": 3" + both + "}"},
      {"bf16 stage 2, optimizer",
       "\"bf16\": {\"enabled\": true}, \"zero_optimization\": "
       "{\"stage\": 2, \"offload_optimizer\": {\"device\": "
       "\"nvme\", \"nvme_path\": \"" +
           nvme + "\"}}"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string config =
        dir.Write("ds.json", "{\"train_batch_size\": 2, \"train_micro_batch_size_per_gpu\": 1, " +
                                 c.json + "}");
    const RunResult trained = Run(TrainGptCommand(hosts, config, {}, model), env);
    INFO(trained.out + trained.err);
    REQUIRE(trained.exit_code == 0);
    std::smatch m;
    REQUIRE(std::regex_search(trained.out, m, std::regex("train_gpt: ([0-9]+) parameters")));
    const std::string params = m[1].str();
    REQUIRE(std::regex_search(
        trained.out, m,
        std::regex("nvme swap per rank: files ([0-9.]+) MiB, buffers ([0-9.]+) MiB")));
    const double written = 2 * std::stod(m[1].str());  // Two ranks on the node, equal shards.
    const double buffers = 2 * std::stod(m[2].str());
    const RunResult preflight =
        Run({ZR_TEST_ZERORUN, "preflight", "--json", "--hostfile", hosts, "--config", config,
             "--device", "cpu", "--params", params, ZR_TEST_TRAIN_GPT},
            env);
    INFO(preflight.out);
    REQUIRE(std::regex_search(
        preflight.out, m,
        std::regex("\"offload_optimizer.nvme_path\"[^}]*needs ([0-9.]+) MiB[^}]*\"OK\"|"
                   "\"OK\"[^}]*offload_optimizer.nvme_path=[^}]*needs ([0-9.]+) MiB")));
    const std::string needs = m[1].matched ? m[1].str() : m[2].str();
    const double estimate = std::stod(needs);
    CHECK(estimate >= written);
    CHECK(estimate <= 1.3 * written);
    // The host-memory estimate counts the ring the ranks hold (largest layer unknown: the chunk
    // bound is the shard, so the estimate may exceed what they hold, never fall short).
    REQUIRE(std::regex_search(preflight.out, m,
                              std::regex("NVMe read-ahead ring ([0-9.]+) (MiB|KiB|GiB)")));
    const double scale = m[2].str() == "KiB" ? 1.0 / 1024 : m[2].str() == "GiB" ? 1024 : 1;
    CHECK(std::stod(m[1].str()) * scale >= 0.99 * buffers);
  }
}

}  // namespace
}  // namespace zerorun::testing
