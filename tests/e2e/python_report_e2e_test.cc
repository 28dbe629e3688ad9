// e2e: live status from Python loops (issue 14). Real Python processes (the project venv's
// interpreter, grpcio/protobuf/torch from PyPI) under the real zerorun report through the zerorun
// package (build/python): a plain zerorun.report() loop and a real torch training loop, checked
// in `zerorun status --json`. Outside zerorun every call is a no-op. The HF Trainer and Lightning
// callbacks, inside the real libraries, are tests/python's (test_hf_trainer, test_lightning,
// test_package).

#include <catch2/catch.hpp>
#include <string>

#include "nlohmann/json.hpp"
#include "support/python_env.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

std::string PackagePath() { return std::string(ZR_TEST_BUILD_DIR) + "/python"; }

struct PyJob {
  TempDir dir;
  std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  // Runs `script` (written to the job's directory) on 2 ranks as job `id`; the final status.
  nlohmann::json Run(const std::string& id, const std::string& script,
                     std::map<std::string, std::string> env = {}) {
    const std::string python = VenvPython();
    const std::string path = dir.Write(id + ".py", script);
    env["ZR_HOME"] = dir.path() + "/home";
    if (env.count("PYTHONPATH") == 0) env["PYTHONPATH"] = PackagePath();
    const RunResult run =
        testing::Run({ZR_TEST_ZERORUN, "--hostfile", TestData("local2.txt"), "--config", config,
                      "--device", "cpu", "--job-id", id, "--python", python, path},
                     env, "", 120);
    INFO(run.out + run.err);
    REQUIRE(run.exit_code == 0);
    const RunResult status =
        testing::Run({ZR_TEST_ZERORUN, "status", id, "--json"}, {{"ZR_HOME", env["ZR_HOME"]}});
    INFO(status.out + status.err);
    REQUIRE(status.exit_code == 0);
    return nlohmann::json::parse(status.out);
  }
};

void CheckRanks(const nlohmann::json& status, int64_t step, double loss) {
  INFO(status.dump(2));
  REQUIRE(status["ranks"].size() == 2);
  for (const nlohmann::json& rank : status["ranks"]) {
    CHECK(rank["step"].get<int64_t>() == step);
    CHECK(rank["loss"].get<double>() == Approx(loss));
    CHECK(rank["memory_bytes"].get<int64_t>() > 0);  // The package reports RSS by default.
  }
}

TEST_CASE("zerorun.report from a Python loop shows step, loss and tokens/s in zerorun status",
          "[e2e][python]") {
  PyJob job;
  const nlohmann::json status = job.Run("py-plain",
                                        "import zerorun\n"
                                        "assert zerorun.enabled()\n"
                                        "for step in range(1, 13):\n"
                                        "    zerorun.report(step=step, loss=1.0 / step,\n"
                                        "                   tokens_per_second=10.0 * step)\n");
  CheckRanks(status, 12, 1.0 / 12);
  CHECK(status["ranks"][0]["tokens_per_second"].get<double>() == Approx(120.0));
  // Outside zerorun: no-ops, no connection, no error.
  const RunResult outside =
      Run({VenvPython(), "-c",
           "import zerorun\n"
           "print(zerorun.enabled(), zerorun.report(step=1, loss=2.0),\n"
           "      zerorun.stop_requested())\n"},
          {{"PYTHONPATH", PackagePath()}, {"ZERORUN_COORDINATOR", ""}, {"RANK", ""}});
  CHECK(outside.exit_code == 0);
  CHECK(outside.out == "False False False\n");
}

TEST_CASE("A real torch training loop reports its loss through the zerorun package",
          "[e2e][python][torch]") {
  PyJob job;
  const nlohmann::json status =
      job.Run("py-torch",
              "import torch, zerorun\n"
              "torch.manual_seed(0)\n"
              "x = torch.randn(64, 4); y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])\n"
              "w = torch.zeros(4, requires_grad=True)\n"
              "opt = torch.optim.SGD([w], lr=0.1)\n"
              "first = None\n"
              "for step in range(1, 21):\n"
              "    loss = ((x @ w - y) ** 2).mean()\n"
              "    opt.zero_grad(); loss.backward(); opt.step()\n"
              "    first = first or loss.item()\n"
              "    zerorun.report(step=step, loss=loss.item())\n"
              "assert loss.item() < first / 10, (first, loss.item())\n"
              "open(__file__ + '.loss', 'w').write(repr(loss.item()))\n");
  INFO(status.dump(2));
  for (const nlohmann::json& rank : status["ranks"]) {
    CHECK(rank["step"].get<int64_t>() == 20);
    CHECK(rank["loss"].get<double>() > 0);
    CHECK(rank["loss"].get<double>() < 1.0);
  }
}

}  // namespace
}  // namespace zerorun::testing
