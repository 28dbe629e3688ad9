// e2e: train_gpt checkpoints through zerorun (issue 11, first part): 10 steps straight and
// 5 + save + resume 5 end with bit-identical parameters; another world size is refused.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "ckpt/manifest.h"
#include "nlohmann/json.hpp"
#include "support/child_process.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "train_gpt_runs.h"

namespace zerorun::testing {
namespace {

TEST_CASE(
    "train_gpt: save at step 5 and resume to 10 is bit-identical to 10 steps straight, "
    "and another world size resumes",
    "[e2e][checkpoint]") {
  TempDir dir;
  const std::string hosts2 = dir.Write("hosts2", "localhost slots=2\n");
  const std::string hosts1 = dir.Write("hosts1", "localhost slots=1\n");
  for (const char* stage : {"2", "3"}) {
    INFO("stage " << stage);
    const std::string config =
        Config(dir, std::string("ds") + stage + ".json", 8, 2, std::atoi(stage), true);
    const std::string save = dir.path() + "/save" + stage;
    auto run = [&](const std::string& hosts, const std::vector<std::string>& extra) {
      std::vector<std::string> argv = {
          ZR_TEST_ZERORUN,   "--hostfile",      hosts, "--config", config, "--device", "cpu",
          ZR_TEST_TRAIN_GPT, "--print-checksum"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      return Run(argv, {{"ZR_HOME", dir.path() + "/home"}});
    };
    const RunResult straight = run(hosts2, {"--steps", "10"});
    REQUIRE(straight.exit_code == 0);
    const RunResult first = run(hosts2, {"--steps", "5", "--save-dir", save, "--save-every", "5"});
    REQUIRE(first.exit_code == 0);
    // Pre-flight's space check uses the writer's formula: at least what was written, < 1.3x.
    uint64_t written = 0;
    for (const auto& entry : std::filesystem::directory_iterator(save + "/global_step5")) {
      written += entry.file_size();
    }
    std::smatch params;
    REQUIRE(std::regex_search(first.out, params, std::regex("train_gpt: (\\d+) parameters")));
    const uint64_t estimate = ckpt::CheckpointBytesEstimate(std::stod(params[1].str()));
    INFO("written " << written << " bytes, estimate " << estimate);
    CHECK(estimate >= written);
    CHECK(static_cast<double>(estimate) <= 1.3 * static_cast<double>(written));
    CHECK_THAT(first.out, Catch::Contains("saved " + save + "/global_step5"));
    // consolidate: one safetensors file; read back by a reader written against the format spec
    // (8-byte little-endian header size, JSON header, contiguous data), its weights' bits are
    // the gathered parameters train_gpt checksummed at the save.
    const std::string model = dir.path() + "/model" + stage + ".safetensors";
    const RunResult consolidated =
        Run({ZR_TEST_ZERORUN, "ckpt", "consolidate", save, "--out", model},
            {{"ZR_HOME", dir.path() + "/home"}});
    REQUIRE(consolidated.exit_code == 0);
    const char* reader =
        "import json, struct, sys\n"
        "b = open(sys.argv[1], 'rb').read()\n"
        "n = struct.unpack('<Q', b[:8])[0]\n"
        "h = json.loads(b[8:8 + n]); data = b[8 + n:]\n"
        "spans = sorted(v['data_offsets'] for k, v in h.items() if k != '__metadata__')\n"
        "assert all(v['dtype'] == 'F32' for k, v in h.items() if k != '__metadata__')\n"
        "for k, v in h.items():\n"
        "  if k == '__metadata__': continue\n"
        "  count = 1\n"
        "  for d in v['shape']: count *= d\n"
        "  assert v['data_offsets'][1] - v['data_offsets'][0] == 4 * count, k\n"
        "assert spans[0][0] == 0 and spans[-1][1] == len(data)\n"
        "assert all(a[1] == c[0] for a, c in zip(spans, spans[1:]))\n"
        "x = 1469598103934665603\n"
        "for byte in data: x = ((x ^ byte) * 1099511628211) % (1 << 64)\n"
        "print('%016x %d %s' % (x, len(spans), h['__metadata__']['step']))\n";
    const RunResult read = Run({"/usr/bin/python3", "-c", reader, model});
    INFO(read.err);
    REQUIRE(read.exit_code == 0);
    CHECK(read.out == Checksum(first.out) + " 29 5\n");
    const RunResult resumed = run(hosts2, {"--steps", "10", "--save-dir", save, "--resume"});
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.out, Catch::Contains("resumed from " + save + " at step 5"));
    CHECK_FALSE(Checksum(straight.out).empty());
    CHECK(Checksum(resumed.out) == Checksum(straight.out));
    // Another world size reshards on load: one rank picks up both shards and trains on.
    const RunResult other = run(hosts1, {"--steps", "8", "--save-dir", save, "--resume"});
    CHECK(other.exit_code == 0);
    CHECK_THAT(other.out, Catch::Contains("resumed from " + save + " at step 5"));
  }
}

TEST_CASE("zerorun ckpt inspect and verify, and a corrupt shard is refused by verify and by resume",
          "[e2e][checkpoint]") {
  TempDir dir;
  const std::string hosts = dir.Write("hosts", "localhost slots=2\n");
  const std::string config = Config(dir, "ds.json", 4, 2, 1);
  const std::string save = dir.path() + "/save";
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  auto train = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {ZR_TEST_ZERORUN, "--hostfile", hosts, "--config",
                                     config,          "--device",   "cpu", ZR_TEST_TRAIN_GPT,
                                     "--save-dir",    save};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Run(argv, env);
  };
  REQUIRE(train({"--steps", "4", "--save-every", "2"}).exit_code == 0);
  const RunResult inspect = Run({ZR_TEST_ZERORUN, "ckpt", "inspect", save}, env);
  CHECK(inspect.exit_code == 0);
  CHECK_THAT(inspect.out, Catch::Contains("tag global_step4, step 4") &&
                              Catch::Contains("world size 2, ZeRO stage 1") &&
                              Catch::Contains("rank 1: zero_rank_1.bin"));
  CHECK(Run({ZR_TEST_ZERORUN, "ckpt", "verify", save}, env).exit_code == 0);
  const std::string shard = save + "/global_step4/zero_rank_1.bin";
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(64);
    f.put('\x55');
  }
  const RunResult verify = Run({ZR_TEST_ZERORUN, "ckpt", "verify", save}, env);
  CHECK(verify.exit_code == 65);
  CHECK_THAT(verify.err, Catch::Contains(shard + " does not match its sha256"));
  const RunResult resume = train({"--steps", "6", "--resume"});
  CHECK(resume.exit_code == 1);
  CHECK_THAT(resume.err + resume.out,
             Catch::Contains("zero_rank_1.bin does not match its sha256") &&
                 Catch::Contains("exited with code 65"));
  // The earlier tag is whole: resuming from it works.
  CHECK(train({"--steps", "6", "--resume", "global_step2"}).exit_code == 0);
}

TEST_CASE(
    "zerorun ckpt consolidate checks what a load checks: another run's shard, swapped shards, a "
    "flipped byte, an absurd size and a name outside the checkpoint are refused, and a missing "
    "shard "
    "is 66 for resume as for verify",
    "[e2e][checkpoint]") {
  TempDir dir;
  const std::string hosts = dir.Write("hosts", "localhost slots=2\n");
  const std::string config = Config(dir, "ds.json", 4, 2, 2);
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  auto train = [&](const std::string& save, const std::vector<std::string>& extra) {
    std::vector<std::string> flags = {"--save-dir", save};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return Run(TrainGptCommand(hosts, config, {}, flags), env);
  };
  const std::string a = dir.path() + "/a", b = dir.path() + "/b";
  REQUIRE(train(a, {"--steps", "2", "--save-every", "2"}).exit_code == 0);
  REQUIRE(train(b, {"--steps", "2", "--save-every", "2", "--seed", "7"}).exit_code == 0);
  const std::string tag = a + "/global_step2";
  const std::string out = dir.path() + "/model.safetensors";
  auto consolidate = [&] {
    return Run({ZR_TEST_ZERORUN, "ckpt", "consolidate", a, "--out", out}, env);
  };
  REQUIRE(consolidate().exit_code == 0);
  std::filesystem::remove(out);
  auto copy = [](const std::string& from, const std::string& to) {
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  };
  const std::string shard0 = tag + "/zero_rank_0.bin", shard1 = tag + "/zero_rank_1.bin";
  const std::string keep0 = dir.path() + "/keep0", keep1 = dir.path() + "/keep1";
  copy(shard0, keep0);
  copy(shard1, keep1);
  auto refused = [&](const std::string& what, int code, const std::string& says) {
    INFO(what);
    const RunResult r = consolidate();
    CHECK(r.exit_code == code);
    CHECK_THAT(r.err, Catch::Contains(says));
    CHECK_FALSE(std::filesystem::exists(out));  // Nothing written.
  };
  copy(b + "/global_step2/zero_rank_1.bin", shard1);  // Another run's shard.
  refused("another run's shard", 65, shard1 + " does not match its sha256");
  copy(keep1, shard0);  // Swapped.
  copy(keep0, shard1);
  refused("swapped shards", 65, "does not match its sha256");
  copy(keep0, shard0);
  copy(keep1, shard1);
  {
    std::fstream f(shard1, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    const char c = static_cast<char>(f.peek());
    f.seekp(100);
    f.put(static_cast<char>(c ^ 0x01));  // One bit of one weight.
  }
  refused("a flipped bit", 65, shard1 + " does not match its sha256");
  copy(keep1, shard1);
  // A manifest edited: an absurd tensor size, a shard named outside the checkpoint.
  std::string manifest;
  {
    std::ifstream in(tag + "/manifest.json");
    manifest.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string text = manifest;
    const size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    std::ofstream(tag + "/manifest.json", std::ios::trunc) << text;
  };
  edited("\"numel\": 4160", "\"numel\": 4611686018427387904");
  refused("an absurd numel", 65, "corrupt manifest");
  edited("\"zero_rank_1.bin\"", "\"../../x\"");
  refused("a name outside the checkpoint", 65, "is not a plain file name");
  std::ofstream(tag + "/manifest.json", std::ios::trunc) << manifest;
  REQUIRE(consolidate().exit_code == 0);

  // A missing shard: 66 for verify, and for the ranks of a resume.
  std::filesystem::remove(shard1);
  CHECK(Run({ZR_TEST_ZERORUN, "ckpt", "verify", a}, env).exit_code == 66);
  const RunResult resume = train(a, {"--steps", "3", "--resume"});
  CHECK(resume.exit_code == 1);
  CHECK_THAT(resume.err + resume.out,
             Catch::Contains("zero_rank_1.bin") && Catch::Contains("exited with code 66"));
}

TEST_CASE(
    "A save that runs out of disk fails with the rank and path named, leaving the "
    "previous checkpoint and latest whole",
    "[e2e][checkpoint]") {
  TempDir dir;
  const std::string small = dir.path() + "/small";
  std::filesystem::create_directories(small);
  // Room for one checkpoint of this model (1.4 MB) but not two.
  if (geteuid() != 0 ||
      Run({"/bin/mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", small}).exit_code != 0) {
    WARN("needs root to mount a small tmpfs: disk-full case not run");
    return;
  }
  const std::string hosts = dir.Write("hosts", "localhost slots=2\n");
  const std::string config = Config(dir, "ds.json", 4, 2, 2);
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  const RunResult r =
      Run({ZR_TEST_ZERORUN, "--hostfile", hosts, "--config", config, "--device", "cpu",
           ZR_TEST_TRAIN_GPT, "--steps", "6", "--save-dir", small + "/ckpt", "--save-every", "2"},
          env);
  const std::string all = r.out + r.err;
  CHECK(r.exit_code == 1);
  CHECK_THAT(all, Catch::Contains("saved " + small + "/ckpt/global_step2") &&
                      Catch::Contains("writing checkpoint shards failed on rank(s)") &&
                      Catch::Contains("No space left on device") &&
                      Catch::Contains(small + "/ckpt/global_step4.tmp/zero_rank_") &&
                      Catch::Contains("exited with code 73"));
  {
    std::ifstream latest(small + "/ckpt/latest");  // Closed before the unmount.
    std::string tag;
    CHECK((latest >> tag && tag == "global_step2"));
  }
  CHECK_FALSE(std::filesystem::exists(small + "/ckpt/global_step4.tmp"));
  CHECK(Run({ZR_TEST_ZERORUN, "ckpt", "verify", small + "/ckpt"}, env).exit_code == 0);
  const RunResult unmounted = Run({"/bin/umount", small});
  INFO(unmounted.err);
  CHECK(unmounted.exit_code == 0);
}

TEST_CASE("A rank SIGKILLed while a checkpoint is being written leaves latest naming a whole one",
          "[e2e][checkpoint]") {
  TempDir dir;
  const std::string hosts = dir.Write("hosts", "localhost slots=2\n");
  const std::string config = Config(dir, "ds.json", 2, 1, 2);
  const std::string save = dir.path() + "/save";
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  // A bigger model (about 3M parameters, 18 MB per shard) so a save takes a while.
  const std::vector<std::string> big = {
      "--random-tokens", "--vocab", "256",        "--d-model", "256", "--layers", "4",
      "--seq",           "16",      "--save-dir", save};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.begin(), big.begin(), big.end());
    return flags;
  };
  ChildProcess zr(TrainGptCommand(hosts, config, {"--job-id", "kill-in-save"},
                                  with({"--steps", "1000", "--save-every", "1"})),
                  env);
  REQUIRE(zr.WaitForOutput("saved " + save + "/global_step2", 120));
  const RunResult status = Run({ZR_TEST_ZERORUN, "status", "kill-in-save", "--json"}, env);
  const nlohmann::json j = nlohmann::json::parse(status.out, nullptr, false);
  REQUIRE(j.is_object());
  const pid_t victim = j["ranks"][1]["pid"].get<int>();
  // Kill rank 1 the moment a new save's temporary directory appears.
  bool killed = false;
  for (int i = 0; i < 20000 && !killed; ++i) {
    for (const auto& entry : std::filesystem::directory_iterator(save)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
        kill(victim, SIGKILL);
        killed = true;
        break;
      }
    }
    if (!killed) usleep(200);
  }
  REQUIRE(killed);
  CHECK(zr.Wait(60) == 128 + SIGKILL);
  // Whatever the moment, latest names a complete checkpoint that verifies and resumes.
  const RunResult verify = Run({ZR_TEST_ZERORUN, "ckpt", "verify", save}, env);
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  const RunResult resume =
      Run(TrainGptCommand(hosts, config, {}, with({"--resume", "--steps", "0"})), env);
  CHECK_THAT(resume.out, Catch::Contains("resumed from " + save + " at step"));
}

}  // namespace
}  // namespace zerorun::testing
