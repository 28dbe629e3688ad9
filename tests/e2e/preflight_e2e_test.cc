// e2e: the real zerorun binary on fixture files; exit code, table and JSON. Each run is a child
// process owned by the test (support/subprocess.h).
#include <catch2/catch.hpp>

#include "nlohmann/json.hpp"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

using json = nlohmann::json;

const std::string kNoGpu = "/nonexistent/libnvidia-ml.so.1";

RunResult Preflight(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), "preflight");
  if (env.count("ZR_NVML_LIBRARY") == 0) env["ZR_NVML_LIBRARY"] = kNoGpu;
  if (env.count("CUDA_VISIBLE_DEVICES") == 0) env["CUDA_VISIBLE_DEVICES"] = "";
  return Zerorun(args, env);
}

json PreflightJson(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), "--json");  // Before train_bin: everything after it is the job's.
  const RunResult r = Preflight(args, env);
  INFO(r.out << r.err);
  json j = json::parse(r.out, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  CHECK(j["exit_code"] == r.exit_code);
  CHECK(j["ok"] == (r.exit_code == 0));
  return j;
}

// The rows of `j` for `check`, as "STATUS detail" strings.
std::vector<std::string> Rows(const json& j, const std::string& check) {
  std::vector<std::string> rows;
  for (const json& row : j["checks"]) {
    if (row["check"] == check) {
      rows.push_back(row["status"].get<std::string>() + " " + row["detail"].get<std::string>());
    }
  }
  return rows;
}

const std::string kDemoHosts = SourcePath("hostfiles/local-cpu.txt");
const std::string kDemoConfig = SourcePath("hostfiles/ds_zero2_cpu.json");

TEST_CASE("README demo: CPU preflight on the example hostfile and config exits 0", "[e2e]") {
  const RunResult r = Preflight({"--hostfile", kDemoHosts, "--config", kDemoConfig, "--device",
                                 "cpu", "--params", "10M", ZR_TEST_ZERORUN});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("NODE") && Catch::Contains("STATUS") &&
                        Catch::Contains("localhost[0,1]") &&
                        Catch::Contains("train_batch_size 16 = micro batch 8 x accumulation 1 "
                                        "x 2 ranks") &&
                        Catch::Contains("preflight: OK (exit 0)"));
  CHECK_THAT(r.out, !Catch::Contains("CRITICAL  "));
}

TEST_CASE("JSON output has the documented schema", "[e2e][json]") {
  const json j = PreflightJson({"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu"});
  CHECK(j["schema_version"] == 1);
  CHECK(j["ok"] == true);
  CHECK(j["world_size"] == 2);
  CHECK(j["hosts"] == json::parse(R"([{"name":"localhost","address":"localhost",
                                       "agent_port":29600,"slots":[0,1]}])"));
  CHECK(j["batch"] == json::parse(R"({"train_batch_size":16,"train_micro_batch_size_per_gpu":8,
                                      "gradient_accumulation_steps":1})"));
  REQUIRE(j["checks"].size() > 3);
  for (const json& row : j["checks"]) {
    CHECK(row.contains("node"));
    CHECK(row.contains("check"));
    CHECK(row.contains("detail"));
    const std::string status = row["status"];
    CHECK((status == "OK" || status == "WARN" || status == "CRITICAL" || status == "UNKNOWN"));
  }
}

TEST_CASE("Missing hostfile exits 66 with ok=false and the error as a row", "[e2e][json]") {
  const json j = PreflightJson({"-H", "/nonexistent/hosts", "--config", kDemoConfig});
  CHECK(j["exit_code"] == 66);
  CHECK(j["ok"] == false);
  CHECK(j["world_size"] == 0);
  REQUIRE(Rows(j, "hostfile").size() == 1);
  CHECK_THAT(Rows(j, "hostfile")[0], Catch::StartsWith("CRITICAL hostfile /nonexistent/hosts"));
  CHECK_THAT(Rows(j, "batch")[0], Catch::StartsWith("UNKNOWN"));
}

TEST_CASE("Malformed hostfiles exit 65 with file:line and DeepSpeed's message", "[e2e]") {
  TempDir dir;
  struct Case {
    std::string text, says;
  };
  for (const Case& c : {Case{"w0 slots=1\nw0\n", ":2: Hostfile contains a bad entry: w0"},
                        Case{"w0 slots=1\nw0 slots=2\n", "multiple entries for w0"},
                        Case{"# nothing\n", "Hostfile is empty or not formatted correctly"}}) {
    const std::string hosts = dir.Write("hosts", c.text);
    const RunResult r = Preflight({"-H", hosts, "--config", kDemoConfig, "--device", "cpu"});
    INFO(r.out);
    CHECK(r.exit_code == 65);
    CHECK_THAT(r.out, Catch::Contains(c.says) && Catch::Contains("nothing was started"));
  }
}

TEST_CASE("Missing config exits 66, malformed config 65, none at all 2", "[e2e]") {
  TempDir dir;
  CHECK(Preflight({"-H", kDemoHosts, "--config", dir.path() + "/ds.json", "--device", "cpu"})
            .exit_code == 66);
  const std::string dup = dir.Write("dup.json",
                                    "{\n\"train_batch_size\": 2,\n"
                                    "\"train_batch_size\": 4\n}\n");
  const RunResult r = Preflight({"-H", kDemoHosts, "--config", dup, "--device", "cpu"});
  CHECK(r.exit_code == 65);
  CHECK_THAT(r.out, Catch::Contains("dup.json:3: Duplicate keys in DeepSpeed config: "
                                    "[train_batch_size]"));
  CHECK(Preflight({"-H", kDemoHosts, "--device", "cpu"}).exit_code == 2);
}

TEST_CASE("The config can come from --deepspeed in the train command", "[e2e]") {
  const json j =
      PreflightJson({"-H", kDemoHosts, "--device", "cpu", "/bin/true", "--deepspeed", kDemoConfig});
  CHECK(j["config"] == kDemoConfig);
  CHECK(j["ok"] == true);
}

TEST_CASE("A value HF Trainer would refuse: CRITICAL 78 for HF's command, WARN for others",
          "[e2e]") {
  TempDir dir;
  const std::string config = dir.Write(
      "ds.json", "{\"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 1}");
  const RunResult hf =
      Preflight({"-H", kDemoHosts, "--device", "cpu", "/bin/true", "--deepspeed", config,
                 "--output_dir", dir.path(), "--per_device_train_batch_size", "2"});
  INFO(hf.out);
  CHECK(hf.exit_code == 78);
  CHECK_THAT(hf.out, Catch::Contains("train_micro_batch_size_per_gpu = 4 but HF Trainer computes "
                                     "2 (from --per_device_train_batch_size 2 in the train "
                                     "command) and would stop every rank at start-up"));
  const RunResult other = Preflight({"-H", kDemoHosts, "--device", "cpu", "/bin/true",
                                     "--deepspeed", config, "--per_device_train_batch_size", "2"});
  INFO(other.out);
  CHECK(other.exit_code == 0);
  CHECK_THAT(other.out, Catch::Contains("if this is HF Trainer, it would stop every rank"));
}

TEST_CASE("Batch mismatch exits 78 with DeepSpeed's string and the values that work", "[e2e]") {
  TempDir dir;
  const std::string hosts = dir.Write("hosts.yaml",
                                      "hosts:\n  - {name: a, address: 127.0.0.1, slots: 2}\n"
                                      "  - {name: b, address: localhost, slots: 4}\n");
  const std::string config =
      dir.Write("ds.json", "{\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4}");
  const RunResult r = Preflight({"-H", hosts, "--config", config, "--device", "cpu"});
  CHECK(r.exit_code == 78);
  CHECK_THAT(r.out, Catch::Contains("Check batch related parameters. train_batch_size is not "
                                    "equal to micro_batch_per_gpu * gradient_acc_step * "
                                    "world_size 32 != 4 * 1 * 6") &&
                        Catch::Contains("with 6 ranks and micro batch 4, train_batch_size must "
                                        "be a multiple of 24"));
  // The same config fits 4 ranks (accumulation 2) once the filter drops host a.
  const RunResult fixed =
      Preflight({"-H", hosts, "--exclude", "a", "--config", config, "--device", "cpu"});
  CHECK(fixed.exit_code == 0);
  CHECK_THAT(fixed.out, Catch::Contains("train_batch_size 32 = micro batch 4 x accumulation 2 x "
                                        "4 ranks"));
  CHECK(Preflight({"-H", hosts, "--num_gpus", "4", "--config", config, "--device", "cpu"})
            .exit_code == 0);
}

TEST_CASE("Filter errors: malformed spec exits 2, unknown host exits 78", "[e2e][filter]") {
  const RunResult bad = Preflight(
      {"-H", kDemoHosts, "-i", "localhost:a", "--config", kDemoConfig, "--device", "cpu"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.out, Catch::Contains("slot 'a' of host 'localhost' is not a GPU index"));
  const RunResult unknown = Preflight(
      {"-H", kDemoHosts, "--include", "worker-9", "--config", kDemoConfig, "--device", "cpu"});
  CHECK(unknown.exit_code == 78);
  CHECK_THAT(unknown.out, Catch::Contains("Hostname 'worker-9' not found in hostfile"));
  CHECK(Preflight({"-H", kDemoHosts, "-i", "localhost", "-e", "localhost:1", "--config",
                   kDemoConfig, "--device", "cpu"})
            .exit_code == 2);
}

TEST_CASE("HF Trainer zero2/zero3 and Axolotl zero1/2/3 configs are never invalid data",
          "[e2e][auto]") {
  for (const char* name : {"hf_zero2_auto.json", "hf_zero3_auto.json", "axolotl_zero1.json",
                           "axolotl_zero2.json", "axolotl_zero3_bf16.json"}) {
    INFO(name);
    // Without the batch: WARN rows and an UNKNOWN batch, exit 0.
    const json bare =
        PreflightJson({"-H", kDemoHosts, "--config", TestData(name), "--device", "cpu"});
    CHECK(bare["exit_code"] == 0);
    REQUIRE(Rows(bare, "batch").size() == 1);
    CHECK_THAT(Rows(bare, "batch")[0],
               Catch::StartsWith("UNKNOWN") && Catch::Contains("--micro-batch-size"));
    CHECK_FALSE(Rows(bare, "auto").empty());
    for (const std::string& row : Rows(bare, "auto")) CHECK_THAT(row, Catch::StartsWith("WARN"));
    // With HF arguments the batch resolves and checks OK.
    const json hf = PreflightJson({"-H", kDemoHosts, "--config", TestData(name), "--device", "cpu",
                                   "/bin/true", "--per_device_train_batch_size", "4",
                                   "--gradient_accumulation_steps", "2", "--bf16"});
    CHECK(hf["exit_code"] == 0);
    CHECK(hf["batch"]["train_batch_size"] == 16);
    CHECK_THAT(Rows(hf, "batch")[0], Catch::StartsWith("OK"));
    // --strict turns what is left unresolved into exit 78.
    CHECK(PreflightJson({"-H", kDemoHosts, "--config", TestData(name), "--device", "cpu",
                         "--strict"})["exit_code"] == 78);
  }
}

TEST_CASE("HF config fully resolved with zerorun flags and --hidden-size passes --strict",
          "[e2e][auto]") {
  const json j =
      PreflightJson({"-H", kDemoHosts, "--config", TestData("hf_zero3_auto.json"), "--device",
                     "cpu", "--strict", "--micro-batch-size", "2", "--hidden-size", "4096",
                     "/bin/true", "--deepspeed", TestData("hf_zero3_auto.json")});
  CHECK(j["exit_code"] == 0);
  CHECK(j["batch"]["train_batch_size"] == 4);
  bool saw_bucket = false;
  for (const json& v : j["auto"]) {
    CHECK(v["resolved"] == true);
    if (v["key"] == "zero_optimization.stage3_prefetch_bucket_size") {
      CHECK(v["value"] == 15099494);
      saw_bucket = true;
    }
  }
  CHECK(saw_bucket);
}

TEST_CASE("GPU job on this GPU-less machine is CRITICAL 69 before anything starts",
          "[e2e][gpu-less]") {
  const RunResult r = Preflight({"-H", kDemoHosts, "--config", kDemoConfig});
  CHECK(r.exit_code == 69);
  CHECK_THAT(r.out, Catch::Contains("localhost") && Catch::Contains("gpu_count") &&
                        Catch::Contains("--device cpu"));
  const RunResult local = Preflight({"--config", kDemoConfig});
  CHECK(local.exit_code == 69);
  CHECK_THAT(local.out, Catch::Contains("Unable to proceed, no GPU resources available"));
}

TEST_CASE("Fake NVML (test double): no hostfile uses local GPUs and CUDA_VISIBLE_DEVICES",
          "[e2e][fake]") {
  const std::map<std::string, std::string> env = {{"ZR_NVML_LIBRARY", ZR_TEST_FAKE_NVML},
                                                  {"ZR_FAKE_NVML_GPUS", "4"},
                                                  {"CUDA_VISIBLE_DEVICES", "1,3"}};
  TempDir dir;
  const std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 2}");
  const json j = PreflightJson({"--config", config, "--params", "100M"}, env);
  CHECK(j["exit_code"] == 0);
  CHECK(j["hosts"][0]["slots"] == json::array({1, 3}));
  CHECK(j["world_size"] == 2);
  CHECK_THAT(Rows(j, "gpu_topology")[0], Catch::Contains("GPU1[X SYS] GPU3[SYS X]"));
  CHECK_THAT(Rows(j, "gpu_memory")[0], Catch::StartsWith("OK"));
  CHECK(j["nodes"][0]["gpus"].size() == 4);
  // More slots than GPUs on the node is CRITICAL 69.
  const std::string hosts = dir.Write("hosts", "localhost slots=8\n");
  const json over = PreflightJson({"-H", hosts, "--config", config}, env);
  CHECK(over["exit_code"] == 69);
  CHECK_THAT(Rows(over, "gpu_count")[0], Catch::Contains("slot(s) 4,5,6,7"));
}

TEST_CASE("Fake NVML (test double): stage 3 on PCIe-only GPUs while stage 2 fits is WARN",
          "[e2e][fake]") {
  TempDir dir;
  const std::string config =
      dir.Write("ds.json", R"({"train_micro_batch_size_per_gpu": 1, "gradient_clipping": 1.0,
                     "zero_optimization": {"stage": 3}})");
  std::map<std::string, std::string> env = {{"ZR_NVML_LIBRARY", ZR_TEST_FAKE_NVML},
                                            {"ZR_FAKE_NVML_GPUS", "4"},
                                            {"ZR_FAKE_NVML_PCIE_ONLY", "1"}};
  const json pcie = PreflightJson({"--config", config, "--params", "1B"}, env);
  CHECK(pcie["exit_code"] == 0);
  const std::vector<std::string> rows = Rows(pcie, "zero_stage");
  REQUIRE(rows.size() == 1);
  CHECK_THAT(rows[0], Catch::StartsWith("WARN") && Catch::Contains("GPU0-GPU1 PHB") &&
                          Catch::Contains("stage 2 needs 6.05 GiB per GPU of 80.00 GiB") &&
                          Catch::Contains("Fix: \"stage\": 2"));
  // With NVLink pairs, or a model whose stage 2 does not fit 80 GiB, stage 3 is the right call.
  env.erase("ZR_FAKE_NVML_PCIE_ONLY");
  CHECK(Rows(PreflightJson({"--config", config, "--params", "1B"}, env), "zero_stage").empty());
  env["ZR_FAKE_NVML_PCIE_ONLY"] = "1";
  CHECK(Rows(PreflightJson({"--config", config, "--params", "30B"}, env), "zero_stage").empty());
}

TEST_CASE("nvme_path that does not exist exits 66 and is not created", "[e2e][nvme]") {
  TempDir dir;
  const std::string nvme = dir.path() + "/nvme";
  const std::string config =
      dir.Write("ds.json",
                "{\"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": 3,"
                " \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"" +
                    nvme + "\"}}}");
  const std::string before = dir.Listing();
  const RunResult r = Preflight({"-H", kDemoHosts, "--config", config, "--device", "cpu"});
  CHECK(r.exit_code == 66);
  CHECK_THAT(r.out, Catch::Contains("offload_optimizer.nvme_path=" + nvme + " does not exist"));
  CHECK(dir.Listing() == before);
}

TEST_CASE("nvme_path with room passes and states the swap formula", "[e2e][nvme]") {
  TempDir dir;
  const std::string config =
      dir.Write("ds.json",
                "{\"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": 3,"
                " \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"" +
                    dir.path() + "\"}, \"offload_optimizer\": {\"device\": \"cpu\"}}}");
  const json j =
      PreflightJson({"-H", kDemoHosts, "--config", config, "--device", "cpu", "--params", "1M"});
  REQUIRE(Rows(j, "offload_param.nvme_path").size() == 1);
  const std::string row = Rows(j, "offload_param.nvme_path")[0];
  if (row.find("tmpfs") == std::string::npos) {
    CHECK_THAT(row, Catch::StartsWith("OK") &&
                        Catch::Contains("2 local ranks x max(DeepSpeed's 12P + 2P, libzerorun's "
                                        "layout) / 2 ranks x 1.2"));
  }
}

TEST_CASE("Silently ignored settings are WARN rows and the job still passes", "[e2e][section20]") {
  TempDir dir;
  const std::string config =
      dir.Write("ds.json",
                "{\"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": 2, "
                "\"offload_param\": {\"device\": \"cpu\"}}, \"aio\": {\"thread_count\": 4}, "
                "\"gradient_clip\": 1.0}");
  const json j = PreflightJson({"-H", kDemoHosts, "--config", config, "--device", "cpu"});
  CHECK(j["exit_code"] == 0);
  const auto rows = Rows(j, "config");
  CHECK(std::count_if(rows.begin(), rows.end(),
                      [](const std::string& r) { return r.rfind("WARN", 0) == 0; }) == 4);
  CHECK_THAT(rows[0] + rows[1] + rows[2], Catch::Contains("did you mean 'gradient_clipping'"));
  // The misspelt key leaves clipping to the version's default: said too.
  CHECK_THAT(rows[3], Catch::Contains("gradient_clipping: not set"));
}

TEST_CASE("print-config prints the effective config with defaults", "[e2e]") {
  const RunResult r =
      Preflight({"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu", "--print-config"});
  CHECK(r.exit_code == 0);
  const size_t start = r.out.find("{");
  const size_t end = r.out.find("\n}\n");
  REQUIRE(end != std::string::npos);
  const json config = json::parse(r.out.substr(start, end + 2 - start));
  CHECK(config["zero_optimization"]["overlap_comm"] == true);                // as written
  CHECK(config["zero_optimization"]["allgather_bucket_size"] == 500000000);  // default
  CHECK(config["fp16"]["enabled"] == false);
  CHECK(config["wall_clock_breakdown"] == false);
  const json j = PreflightJson(
      {"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu", "--print-config"});
  CHECK(j["effective_config"]["gradient_clipping"] == 1.0);
}

TEST_CASE("A train_bin that links libzerorun gets the runtime's refusals as rows, others not",
          "[e2e][runtime]") {
  TempDir dir;
  const std::string config = dir.Write("ds.json", R"({"train_batch_size": 16,
      "train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 2,
      "offload_optimizer": {"device": "cpu"}, "reduce_scatter": false},
      "wandb": {"enabled": true}, "csv_monitor": {"enabled": true}})");
  const std::vector<std::string> common = {"--hostfile", kDemoHosts, "--config",
                                           config,       "--device", "cpu"};
  std::vector<std::string> args = common;
  args.push_back(ZR_TEST_TRAIN_GPT);
  const json refused = PreflightJson(args);
  CHECK(refused["exit_code"] == 78);
  const std::vector<std::string> rows = Rows(refused, "runtime");
  REQUIRE(rows.size() == 3);
  CHECK_THAT(rows[0], Catch::StartsWith("CRITICAL") &&
                          Catch::Contains("zero_optimization.reduce_scatter is false") &&
                          Catch::Contains("Fix:"));
  CHECK_THAT(rows[1], Catch::StartsWith("OK") &&
                          Catch::Contains("zero_optimization.offload_optimizer.device \"cpu\"") &&
                          Catch::Contains("host memory already"));
  CHECK_THAT(rows[2], Catch::StartsWith("WARN") && Catch::Contains("wandb.enabled"));
  // The batch the ranks will get is the resolved one (16 = 4 x 2 x 2).
  CHECK(refused["batch"]["gradient_accumulation_steps"] == 2);
  args = common;
  args.push_back(ZR_TEST_ZERORUN);  // Not a libzerorun rank: its own business.
  const json other = PreflightJson(args);
  CHECK(other["exit_code"] == 0);
  CHECK(Rows(other, "runtime").empty());
}

TEST_CASE("Missing or non-executable train_bin is CRITICAL", "[e2e]") {
  CHECK(Preflight(
            {"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu", "/nonexistent/train"})
            .exit_code == 66);
  TempDir dir;
  const std::string script = dir.Write("train.py", "print(1)\n");
  // A .py runs under python3 as DeepSpeed runs it (no exec bit needed), unless --no_python.
  const RunResult python =
      Preflight({"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu", script});
  CHECK(python.exit_code == 0);
  CHECK_THAT(python.out, Catch::Contains("runs; " + script + " sha256"));
  const RunResult direct = Preflight(
      {"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu", "--no_python", script});
  CHECK(direct.exit_code == 69);
  CHECK_THAT(direct.out, Catch::Contains("chmod +x"));
  // A script or module that is not there is CRITICAL 66, though the interpreter exists.
  const RunResult missing = Preflight({"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu",
                                       "python3", "-u", dir.path() + "/nosuch.py"});
  CHECK(missing.exit_code == 66);
  CHECK_THAT(missing.out, Catch::Contains("nosuch.py: no such file"));
  const RunResult no_module = Preflight(
      {"-H", kDemoHosts, "--config", kDemoConfig, "--device", "cpu", "--module", "zr_no_such_mod"});
  CHECK(no_module.exit_code == 66);
  CHECK_THAT(no_module.out, Catch::Contains("No module named zr_no_such_mod"));
}

TEST_CASE("YAML hostfile: a node whose agent is unreachable is CRITICAL 69", "[e2e][yaml]") {
  TempDir dir;
  // 127.0.0.9:1 has no zerorund: the connection is refused at once, on loopback.
  const std::string hosts =
      dir.Write("hosts.yaml",
                "hosts:\n  - {name: here, address: 127.0.0.1, slots: 1}\n"
                "  - {name: far, address: 127.0.0.9, agent_port: 1, slots: 1}\n");
  const json j = PreflightJson({"-H", hosts, "--config", kDemoConfig, "--device", "cpu"});
  CHECK(j["exit_code"] == 69);
  CHECK(j["world_size"] == 2);
  CHECK(j["hosts"][1]["address"] == "127.0.0.9");
  bool far_critical = false, here_probed = false;
  for (const json& row : j["checks"]) {
    if (row["node"] == "far" && row["check"] == "agent") {
      far_critical = row["status"] == "CRITICAL";
      CHECK_THAT(
          row["detail"].get<std::string>(),
          Catch::Contains("unreachable") && Catch::Contains("zerorund --listen 127.0.0.9:1"));
    }
    if (row["node"] == "here" && row["check"] == "cpu_slots") here_probed = true;
  }
  CHECK(far_critical);
  CHECK(here_probed);
}

TEST_CASE("Usage errors exit 2", "[e2e]") {
  CHECK(Zerorun({"preflight", "--num_nodes", "x"}).exit_code == 2);
  CHECK(Zerorun({"preflight", "--device", "tpu"}).exit_code == 2);
  CHECK(Zerorun({"launch-everything"}).exit_code == 2);
  CHECK(Zerorun({"--help"}).exit_code == 0);
  CHECK(Zerorun({"--version"}).out.find("0.1.0") != std::string::npos);
}

}  // namespace
}  // namespace zerorun::testing
