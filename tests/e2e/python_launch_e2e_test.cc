// e2e: real Python programs (Debian's python3) launched by the real zerorun in each DeepSpeed
// launch form; what every rank received (argv, environment) and that `zerorun report` works
// from a rank; words that are not programs are usage errors. With torch 2 (the project venv), an
// env:// all-reduce runs under zerorun in each form.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"
#include "support/python_env.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

using json = nlohmann::json;

const char kPython[] = "/usr/bin/python3";

// Writes <out>/rank_<RANK>.json: argv, the variables asked about, and `zerorun report`'s code.
constexpr char kShowScript[] = R"(import json, os, subprocess, sys
report = subprocess.run(["zerorun", "report", "--step", "1", "--loss", "0.5"]).returncode
names = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "MY_VAR", "FROM_FILE", "NCCL_ZR_TEST", "ZR_SECRET"]
out = {"argv": sys.argv, "env": {n: os.environ.get(n) for n in names}, "report": report}
with open(os.path.join(os.environ["ZR_TEST_OUT"], "rank_%s.json" % os.environ["RANK"]), "w") as f:
    json.dump(out, f)
)";

// torch.distributed over env:// (MASTER_ADDR/PORT, RANK, WORLD_SIZE from zerorun): gloo
// all-reduce of each rank's rank+1; every rank checks the sum.
constexpr char kTorchScript[] = R"(import sys, torch, torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
n = dist.get_world_size()
assert t.item() == n * (n + 1) / 2, t.item()
print("allreduce ok", t.item(), sys.argv[1:], flush=True)
dist.destroy_process_group()
)";

json ReadRank(const TempDir& dir, int rank) {
  std::ifstream in(dir.path() + "/out/rank_" + std::to_string(rank) + ".json");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

struct Form {
  const char* name;
  std::vector<std::string> command;    // After zerorun's flags; "<S>" is the script's path.
  std::vector<std::string> argv_head;  // sys.argv before --local_rank ("<S>" likewise).
};

std::vector<std::string> Substitute(std::vector<std::string> words, const std::string& script) {
  for (std::string& w : words) {
    if (w == "<S>") w = script;
  }
  return words;
}

TEST_CASE("Every DeepSpeed launch form passes env and --local_rank as DeepSpeed does",
          "[e2e][python]") {
  TempDir dir;
  const std::string script = dir.Write("show.py", kShowScript);
  const std::string direct =
      dir.Write("show_direct.py", std::string("#!") + kPython + "\n" + kShowScript);
  REQUIRE(chmod(direct.c_str(), 0755) == 0);
  dir.Write("pkg/__init__.py", "");
  const std::string module_file = dir.Write("pkg/show.py", kShowScript);
  dir.Write(".deepspeed_env", "# read from ./ as DeepSpeed does\nFROM_FILE = from file\n");
  dir.Write("ds.json", R"({"train_micro_batch_size_per_gpu": 1})");
  REQUIRE(Run({"/bin/mkdir", "-p", dir.path() + "/out"}).exit_code == 0);
  const Form forms[] = {
      {".py under python3", {"--python", kPython, "<S>", "--a", "1"}, {"<S>"}},
      {"python3 with options", {kPython, "-u", "-B", "<S>", "--a", "1"}, {"<S>"}},
      {"--module", {"--python", kPython, "--module", "pkg.show", "--a", "1"}, {module_file}},
      {"python3 -m", {kPython, "-m", "pkg.show", "--a", "1"}, {module_file}},
      {"--no_python (shebang)", {"--no_python", direct, "--a", "1"}, {direct}},
  };
  for (const Form& form : forms) {
    INFO(form.name);
    std::vector<std::string> args = {"--hostfile", TestData("local2.txt"),
                                     "--config",   dir.path() + "/ds.json",
                                     "--device",   "cpu",
                                     "--env",      "MY_VAR=flag"};
    for (const std::string& w : Substitute(form.command, script)) args.push_back(w);
    const RunResult r = Run(
        [&] {
          std::vector<std::string> argv = {ZR_TEST_ZERORUN};
          argv.insert(argv.end(), args.begin(), args.end());
          return argv;
        }(),
        {{"ZR_TEST_OUT", dir.path() + "/out"},
         {"ZR_SECRET", "cluster-secret"},
         {"NCCL_ZR_TEST", "nccl"},
         {"ZR_HOME", dir.path() + "/home"},
         {"PATH", "/usr/bin:/bin"}},
        dir.path());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    for (int rank = 0; rank < 2; ++rank) {
      const json j = ReadRank(dir, rank);
      std::vector<std::string> want = Substitute(form.argv_head, script);
      want.push_back("--local_rank=" + std::to_string(rank));
      want.push_back("--a");
      want.push_back("1");
      CHECK(j["argv"].get<std::vector<std::string>>() == want);
      CHECK(j["env"]["RANK"] == std::to_string(rank));
      CHECK(j["env"]["WORLD_SIZE"] == "2");
      CHECK(j["env"]["MY_VAR"] == "flag");          // --env
      CHECK(j["env"]["FROM_FILE"] == "from file");  // ./.deepspeed_env
      CHECK(j["env"]["NCCL_ZR_TEST"] == "nccl");    // DeepSpeed's NCCL* prefix
      CHECK(j["env"]["ZR_SECRET"].is_null());       // never zerorun's secret
      CHECK(j["report"] == 0);                      // zerorun on PATH from the rank
    }
  }
}

TEST_CASE("Words that are not programs are usage errors with a did-you-mean", "[e2e][python]") {
  const RunResult typo = Zerorun({"stauts"});
  CHECK(typo.exit_code == 2);
  CHECK_THAT(typo.err, Catch::Contains("did you mean 'status'?"));
  const RunResult logs = Zerorun({"logs"});
  CHECK(logs.exit_code == 2);
  CHECK_THAT(logs.err, Catch::Contains("job is required"));
  const RunResult launcher =
      Zerorun({"--launcher", "openmpi", "--hostfile", TestData("local2.txt"), "train.py"});
  CHECK(launcher.exit_code == 2);
  CHECK_THAT(launcher.err, Catch::Contains("--launcher openmpi is not taken here"));
  const RunResult flag = Zerorun({"preflight", "--hostfil", TestData("local2.txt"), "t.py"});
  CHECK(flag.exit_code == 2);
  CHECK_THAT(flag.err, Catch::Contains("did you mean '--hostfile'?"));
  const RunResult both = Zerorun({"--no_python", "--module", "m"});
  CHECK(both.exit_code == 2);
  CHECK_THAT(both.err, Catch::Contains("cannot be used together"));
}

TEST_CASE("torch env:// all-reduce under zerorun in each launch form", "[e2e][python][torch]") {
  const std::string python = VenvPython();  // torch 2 from PyPI (deploy/requirements.txt).
  TempDir dir;
  const std::string script = dir.Write("allreduce.py", kTorchScript);
  const std::string direct = dir.Write("allreduce_direct.py", "#!" + python + "\n" + kTorchScript);
  REQUIRE(chmod(direct.c_str(), 0755) == 0);
  dir.Write("tpkg/__init__.py", "");
  dir.Write("tpkg/allreduce.py", kTorchScript);
  dir.Write("ds.json", R"({"train_micro_batch_size_per_gpu": 1})");
  const std::vector<std::vector<std::string>> forms = {
      {"--python", python, script, "--x"},
      {python, "-u", script, "--x"},
      {"--python", python, "--module", "tpkg.allreduce", "--x"},
      {python, "-m", "tpkg.allreduce", "--x"},
      {"--no_python", direct, "--x"},
  };
  for (const auto& form : forms) {
    std::vector<std::string> argv = {
        ZR_TEST_ZERORUN, "--hostfile", TestData("local3.txt"), "--config", dir.path() + "/ds.json",
        "--device",      "cpu",        "--master_port",        "29517"};
    argv.insert(argv.end(), form.begin(), form.end());
    const RunResult r = Run(argv, {{"ZR_HOME", dir.path() + "/home"}}, dir.path(), 120);
    INFO(form[form.size() - 2] << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    for (int rank = 0; rank < 3; ++rank) {
      CHECK_THAT(r.out, Catch::Contains("[rank " + std::to_string(rank) +
                                        " localhost] allreduce ok 6.0 ['--local_rank=" +
                                        std::to_string(rank) + "', '--x']"));
    }
  }
}

}  // namespace
}  // namespace zerorun::testing
