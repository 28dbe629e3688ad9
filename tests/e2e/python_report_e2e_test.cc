// e2e: live status from Python trainers (issue 14). Real Python processes (Debian's python3 with
// python3-grpcio/-protobuf) under the real zerorun report through the zerorun package
// (build/python): a plain zerorun.report() loop, a real torch training loop, the HF Trainer and
// Lightning callbacks (against stand-ins with their documented hooks: Debian ships neither
// library), the auto-added callbacks of a pip-installed package; checked in `zerorun status
// --json`. Outside zerorun every call is a no-op.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "nlohmann/json.hpp"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

const char kPython[] = "/usr/bin/python3";

std::string PackagePath() { return std::string(ZR_TEST_BUILD_DIR) + "/python"; }
std::string Fakes() { return SourcePath("tests/testdata/pyfakes"); }

bool HavePythonDeps() {
  return Run({kPython, "-c", "import grpc, google.protobuf"}, {}).exit_code == 0;
}

struct PyJob {
  TempDir dir;
  std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  // Runs `script` (written to the job's directory) on 2 ranks as job `id`; the final status.
  nlohmann::json Run(const std::string& id, const std::string& script,
                     std::map<std::string, std::string> env = {},
                     const std::string& python = kPython) {
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
  if (!HavePythonDeps()) {
    WARN("skipped: python3-grpcio / python3-protobuf missing (deploy/install-deps.sh --test)");
    return;
  }
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
      Run({kPython, "-c",
           "import zerorun\n"
           "print(zerorun.enabled(), zerorun.report(step=1, loss=2.0),\n"
           "      zerorun.stop_requested())\n"},
          {{"PYTHONPATH", PackagePath()}, {"ZERORUN_COORDINATOR", ""}, {"RANK", ""}});
  CHECK(outside.exit_code == 0);
  CHECK(outside.out == "False False False\n");
}

TEST_CASE("A real torch training loop reports its loss through the zerorun package",
          "[e2e][python][torch]") {
  if (!HavePythonDeps() || Run({kPython, "-c", "import torch"}, {}).exit_code != 0) {
    WARN("skipped: python3-torch or python3-grpcio missing (deploy/install-deps.sh --test)");
    return;
  }
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

TEST_CASE(
    "HF Trainer and Lightning callbacks report steps and losses (stand-ins with the libraries' "
    "documented hooks)",
    "[e2e][python]") {
  if (!HavePythonDeps()) {
    WARN("skipped: python3-grpcio / python3-protobuf missing (deploy/install-deps.sh --test)");
    return;
  }
  PyJob job;
  const std::string path = PackagePath() + ":" + Fakes();
  const nlohmann::json hf =
      job.Run("py-hf",
              "from transformers import Trainer\n"
              "from zerorun.hf import ZerorunCallback\n"
              "Trainer(callbacks=[ZerorunCallback()], max_steps=10).train()\n",
              {{"PYTHONPATH", path}});
  CheckRanks(hf, 10, 2.0 / 10);  // on_log at step 10 carried loss 2/10.
  const nlohmann::json pl = job.Run("py-lightning",
                                    "from lightning.pytorch import Trainer\n"
                                    "from zerorun.lightning import ZerorunCallback\n"
                                    "Trainer(callbacks=[ZerorunCallback()], max_steps=8).fit()\n",
                                    {{"PYTHONPATH", path}});
  CheckRanks(pl, 8, 3.0 / 8);
}

TEST_CASE(
    "The pip-installed package adds its callback to every HF and Lightning Trainer when "
    "ZERORUN_AUTO_CALLBACKS=1 (stand-ins with the libraries' documented hooks)",
    "[e2e][python]") {
  if (!HavePythonDeps() || Run({kPython, "-c", "import venv, ensurepip"}, {}).exit_code != 0) {
    WARN("skipped: python3-venv, python3-grpcio or python3-protobuf missing");
    return;
  }
  PyJob job;
  const std::string venv = job.dir.path() + "/venv";
  REQUIRE(Run({kPython, "-m", "venv", "--system-site-packages", venv}, {}).exit_code == 0);
  // A copy of the build tree's package: pip builds in place.
  const std::string source = job.dir.path() + "/pkg";
  std::filesystem::copy(PackagePath(), source, std::filesystem::copy_options::recursive);
  const RunResult pip = Run({venv + "/bin/pip", "install", "--quiet", "--no-build-isolation",
                             "--no-deps", "--no-index", source},
                            {}, "", 120);
  INFO(pip.out + pip.err);
  REQUIRE(pip.exit_code == 0);
  const std::map<std::string, std::string> env = {{"PYTHONPATH", Fakes()},
                                                  {"ZERORUN_AUTO_CALLBACKS", "1"}};
  const nlohmann::json hf = job.Run("py-auto-hf",
                                    "from transformers import Trainer\n"
                                    "Trainer(max_steps=6).train()\n",
                                    env, venv + "/bin/python3");
  CheckRanks(hf, 6, 2.0 / 6);
  const nlohmann::json pl = job.Run("py-auto-pl",
                                    "from lightning.pytorch import Trainer\n"
                                    "Trainer(max_steps=5).fit()\n",
                                    env, venv + "/bin/python3");
  CheckRanks(pl, 5, 3.0 / 5);
  // Without the variable nothing is added.
  const RunResult plain = Run({venv + "/bin/python3", "-c",
                               "from transformers import Trainer\n"
                               "print(len(Trainer().callbacks))\n"},
                              {{"PYTHONPATH", Fakes()}, {"ZERORUN_AUTO_CALLBACKS", ""}});
  CHECK(plain.out == "0\n");
}

}  // namespace
}  // namespace zerorun::testing
