// e2e: zerorun --max-restarts (a failed rank restarts the whole job, which resumes from the
// latest checkpoint) and resuming at other world sizes and stages against a straight run.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "train_gpt_runs.h"

namespace zerorun::testing {
namespace {

// The golden oracle's tolerances (train_gpt.cc): loss relative, parameters absolute, and the key
// part of qkv.bias (a zero true gradient: rounding noise) apart.
constexpr double kLossRelTol = 1e-5;
constexpr double kParamAbsTol = 2e-5;
constexpr double kKeyBiasAbsTol = 1e-4;

struct Job {
  TempDir dir;
  std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};

  RunResult Train(const std::string& hosts, const std::string& config,
                  const std::vector<std::string>& zerorun_flags,
                  const std::vector<std::string>& train_flags) const {
    std::vector<std::string> flags = {"--print-losses", "--print-checksum"};
    flags.insert(flags.end(), train_flags.begin(), train_flags.end());
    return Run(TrainGptCommand(hosts, config, zerorun_flags, flags), env, "", 120);
  }

  nlohmann::json Status(const std::string& job_id) const {
    const RunResult status = Run({ZR_TEST_ZERORUN, "status", job_id, "--json"}, env);
    INFO(status.err);
    REQUIRE(status.exit_code == 0);
    return nlohmann::json::parse(status.out);
  }
};

TEST_CASE(
    "zerorun --max-restarts 2 with a rank that fails once: the job restarts from latest, finishes, "
    "and status keeps the first attempt's root cause",
    "[e2e][restart]") {
  Job job;
  const std::string hosts = job.dir.Write("hosts", "localhost slots=2\n");
  const std::string config = Config(job.dir, "ds.json", 8, 2, 2);
  const std::string save = job.dir.path() + "/save";
  const RunResult straight = job.Train(hosts, config, {}, {"--steps", "10"});
  REQUIRE(straight.exit_code == 0);

  const RunResult restarted = job.Train(
      hosts, config, {"--max-restarts", "2", "--job-id", "restart-once"},
      {"--steps", "10", "--save-dir", save, "--save-every", "4", "--inject-failure", "6:1"});
  INFO(restarted.err);
  REQUIRE(restarted.exit_code == 0);
  // The root cause is the rank that failed, not rank 0, which only lost its peer.
  CHECK_THAT(restarted.err,
             Catch::Contains("attempt 0 failed (exit 1): restarting the job on 1 node(s), "
                             "attempt 1 of 3 (ZERORUN_RESTART_COUNT=1)") &&
                 Catch::Contains("rank 1 (local 1)") && Catch::Contains("exited with code 3") &&
                 Catch::Contains("injected failure after step 6 (attempt 0)") &&
                 Catch::Contains("job restart-once succeeded after 1 restart(s)"));
  CHECK_THAT(restarted.out,
             Catch::Contains("restart attempt 1: resuming from " + save + "/latest") &&
                 Catch::Contains("resumed from " + save + " at step 4"));
  // Steps 5 and 6 are trained twice (lost with the failure, redone from global_step4); every
  // loss and the final parameters are the straight run's, bit for bit.
  CHECK(Losses(restarted.out) == Losses(straight.out));
  CHECK(Losses(straight.out).size() == 10);
  CHECK_FALSE(Checksum(straight.out).empty());
  CHECK(Checksum(restarted.out) == Checksum(straight.out));

  const nlohmann::json status = job.Status("restart-once");
  CHECK(status["state"] == "succeeded");
  CHECK(status["attempt"] == 1);
  CHECK(status["max_restarts"] == 2);
  REQUIRE(status["failed_attempts"].size() == 1);
  CHECK(status["failed_attempts"][0]["attempt"] == 0);
  CHECK(status["failed_attempts"][0]["exit_code"] == 1);
  CHECK_THAT(status["failed_attempts"][0]["root_cause"].get<std::string>(),
             Catch::Contains("rank 1 (local 1)") && Catch::Contains("exited with code 3"));
  const RunResult text = Run({ZR_TEST_ZERORUN, "status", "restart-once"}, job.env);
  CHECK_THAT(text.out, Catch::Contains("attempt 1 of 3 (--max-restarts 2)") &&
                           Catch::Contains("attempt 0 failed (exit 1), restarted"));
}

TEST_CASE(
    "zerorun --max-restarts 1 with a rank that fails every time: exit 1 after two attempts, each "
    "root "
    "cause kept",
    "[e2e][restart]") {
  Job job;
  const std::string hosts = job.dir.Write("hosts", "localhost slots=2\n");
  const std::string config = Config(job.dir, "ds.json", 4, 2, 1);
  const std::string save = job.dir.path() + "/save";
  const RunResult failed = job.Train(
      hosts, config, {"--max-restarts", "1", "--job-id", "restart-always"},
      {"--steps", "6", "--save-dir", save, "--save-every", "2", "--inject-failure", "3:0:99"});
  CHECK(failed.exit_code == 1);
  CHECK_THAT(failed.err,
             Catch::Contains("attempt 0 failed (exit 1)") &&
                 Catch::Contains("FAILED (exit 1) on attempt 1 of 2 (--max-restarts)") &&
                 Catch::Contains("injected failure after step 3 (attempt 1)"));
  CHECK_THAT(failed.err, !Catch::Contains("attempt 1 failed (exit 1): restarting"));
  const nlohmann::json status = job.Status("restart-always");
  CHECK(status["state"] == "failed");
  CHECK(status["attempt"] == 1);
  REQUIRE(status["failed_attempts"].size() == 1);
  CHECK_THAT(status["failed_attempts"][0]["root_cause"].get<std::string>(),
             Catch::Contains("rank 0 (local 0)") && Catch::Contains("exited with code 3"));
  CHECK_THAT(status["root_cause"].get<std::string>(), Catch::Contains("rank 0 (local 0)"));
}

TEST_CASE(
    "ZeRO-Infinity with --max-restarts: a rank SIGKILLed mid-run (an OOM kill) leaves its swap "
    "directory, and the restart reclaims it and finishes bit-identically",
    "[e2e][restart][nvme]") {
  Job job;
  const std::string hosts = job.dir.Write("hosts", "localhost slots=2\n");
  const std::string nvme = job.dir.path() + "/nvme";
  std::filesystem::create_directory(nvme);
  const std::string config = job.dir.Write(
      "ds.json",
      "{\"train_batch_size\": 8, \"train_micro_batch_size_per_gpu\": 2, \"gradient_clipping\": "
      "1.0, \"zero_optimization\": {\"stage\": 3, \"offload_optimizer\": {\"device\": \"nvme\", "
      "\"nvme_path\": \"" +
          nvme +
          "\"}, \"offload_param\": {\"device\": \"nvme\", "
          "\"nvme_path\": \"" +
          nvme + "\"}}}");
  const std::string save = job.dir.path() + "/save";
  const RunResult straight = job.Train(hosts, config, {}, {"--steps", "8"});
  REQUIRE(straight.exit_code == 0);
  const RunResult restarted =
      job.Train(hosts, config, {"--max-restarts", "1", "--job-id", "oom-once"},
                {"--steps", "8", "--save-dir", save, "--save-every", "4", "--inject-failure", "6:1",
                 "--inject-signal", "9"});
  INFO(restarted.out + restarted.err);
  REQUIRE(restarted.exit_code == 0);
  CHECK_THAT(restarted.err, Catch::Contains("attempt 0 failed (exit 137)") &&
                                Catch::Contains("job oom-once succeeded after 1 restart(s)"));
  CHECK(Losses(restarted.out) == Losses(straight.out));
  CHECK(Checksum(restarted.out) == Checksum(straight.out));
  CHECK(std::filesystem::is_empty(nvme));  // Reclaimed, then removed at the end.
}

// Reads two safetensors files of the same model (a reader written against the format spec) and
// prints the largest absolute difference, the key part of every qkv.bias apart.
constexpr char kCompare[] =
    "import json, struct, sys\n"
    "def read(path):\n"
    "  b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
    "  h = json.loads(b[8:8 + n]); d = b[8 + n:]; out = {}\n"
    "  for k, v in h.items():\n"
    "    if k == '__metadata__': continue\n"
    "    s, e = v['data_offsets']; out[k] = struct.unpack('<%df' % ((e - s) // 4), d[s:e])\n"
    "  return out\n"
    "a, b = read(sys.argv[1]), read(sys.argv[2]); d = int(sys.argv[3])\n"
    "assert sorted(a) == sorted(b) and len(a) > 0\n"
    "err = key = 0.0\n"
    "for k in a:\n"
    "  for i, (x, y) in enumerate(zip(a[k], b[k])):\n"
    "    if k.endswith('qkv.bias') and d <= i < 2 * d: key = max(key, abs(x - y))\n"
    "    else: err = max(err, abs(x - y))\n"
    "print(err, key)\n";

// Checks a BF16 safetensors file against the F32 one: same names and shapes, each value the
// round-to-nearest-even of the fp32 one.
constexpr char kBf16Check[] =
    "import json, struct, sys\n"
    "def read(path):\n"
    "  b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
    "  h = json.loads(b[8:8 + n]); return h, b[8 + n:]\n"
    "(h32, d32), (h16, d16) = read(sys.argv[1]), read(sys.argv[2])\n"
    "names = [k for k in h32 if k != '__metadata__']\n"
    "assert sorted(names) == sorted(k for k in h16 if k != '__metadata__')\n"
    "for k in names:\n"
    "  a, b = h32[k], h16[k]\n"
    "  assert b['dtype'] == 'BF16' and a['shape'] == b['shape'], k\n"
    "  s, e = a['data_offsets']; x = struct.unpack('<%dI' % ((e - s) // 4), d32[s:e])\n"
    "  s, e = b['data_offsets']; y = struct.unpack('<%dH' % ((e - s) // 2), d16[s:e])\n"
    "  for u, v in zip(x, y):\n"
    "    assert ((u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff == v, (k, hex(u), hex(v))\n"
    "print('%d tensors rounded' % len(names))\n";

TEST_CASE(
    "Resume at world 2 -> 3 with stage 2 -> 3, then 3 -> 1 back at world 2, matches the "
    "straight run within the golden tolerances",
    "[e2e][restart][checkpoint]") {
  Job job;
  const std::string hosts2 = job.dir.Write("hosts2", "localhost slots=2\n");
  const std::string hosts3 = job.dir.Write("hosts3", "localhost slots=3\n");
  // train_batch_size 12 at every world size (micro batch 2: accumulation 3 at world 2, 2 at 3),
  // so each step trains on the same global batch.
  const std::string stage1 = Config(job.dir, "s1.json", 12, 2, 1);
  const std::string stage2 = Config(job.dir, "s2.json", 12, 2, 2);
  const std::string stage3 = Config(job.dir, "s3.json", 12, 2, 3);
  const std::string straight_dir = job.dir.path() + "/straight";
  const std::string chain_dir = job.dir.path() + "/chain";
  const RunResult straight = job.Train(
      hosts2, stage2, {}, {"--steps", "15", "--save-dir", straight_dir, "--save-every", "15"});
  REQUIRE(straight.exit_code == 0);
  const std::vector<std::string> chain = {"--save-dir", chain_dir, "--save-every", "5"};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.end(), chain.begin(), chain.end());
    return flags;
  };
  const RunResult a = job.Train(hosts2, stage2, {}, with({"--steps", "5"}));
  REQUIRE(a.exit_code == 0);
  const RunResult b = job.Train(hosts3, stage3, {}, with({"--steps", "10", "--resume"}));
  INFO(b.err);
  REQUIRE(b.exit_code == 0);
  CHECK_THAT(b.out, Catch::Contains("ZeRO stage 3, fp32") && Catch::Contains("on 3 rank(s)") &&
                        Catch::Contains("resumed from " + chain_dir + " at step 5"));
  const RunResult c = job.Train(hosts2, stage1, {}, with({"--steps", "15", "--resume"}));
  REQUIRE(c.exit_code == 0);
  CHECK_THAT(c.out, Catch::Contains("ZeRO stage 1") &&
                        Catch::Contains("resumed from " + chain_dir + " at step 10"));

  std::map<int, std::string> resumed = Losses(a.out);
  for (const RunResult* r : {&b, &c}) {
    for (const auto& [step, loss] : Losses(r->out)) resumed[step] = loss;
  }
  const std::map<int, std::string> want = Losses(straight.out);
  REQUIRE(want.size() == 15);
  REQUIRE(resumed.size() == 15);
  for (const auto& [step, loss] : want) {
    INFO("step " << step << ": straight " << loss << ", resumed " << resumed[step]);
    const double x = std::stod(loss), y = std::stod(resumed[step]);
    CHECK(std::fabs(x - y) <= kLossRelTol * std::fabs(x));
  }
  // The final parameters, consolidated from both runs' global_step15.
  for (const std::string& d : {straight_dir, chain_dir}) {
    REQUIRE(Run({ZR_TEST_ZERORUN, "ckpt", "consolidate", d, "--out", d + ".safetensors"}, job.env)
                .exit_code == 0);
  }
  const RunResult compared = Run({"/usr/bin/python3", "-c", kCompare, straight_dir + ".safetensors",
                                  chain_dir + ".safetensors", "64"});
  INFO(compared.err);
  REQUIRE(compared.exit_code == 0);
  const double error = std::stod(compared.out);
  const double key_error = std::stod(compared.out.substr(compared.out.find(' ')));
  INFO("parameters differ by " << error << " (key bias " << key_error << ")");
  CHECK(error <= kParamAbsTol);
  CHECK(key_error <= kKeyBiasAbsTol);
  // --dtype bf16: every weight is its fp32 value rounded to nearest even (NaN-free here).
  const std::string bf16 = chain_dir + ".bf16.safetensors";
  REQUIRE(Run({ZR_TEST_ZERORUN, "ckpt", "consolidate", chain_dir, "--out", bf16, "--dtype", "bf16"},
              job.env)
              .exit_code == 0);
  const RunResult rounded =
      Run({"/usr/bin/python3", "-c", kBf16Check, chain_dir + ".safetensors", bf16});
  INFO(rounded.out << rounded.err);
  CHECK(rounded.exit_code == 0);
  CHECK_THAT(rounded.out, Catch::StartsWith("29 tensors rounded"));
}

}  // namespace
}  // namespace zerorun::testing
