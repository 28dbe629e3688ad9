// e2e: safetensors weights back into training: `zerorun ckpt import` and train_gpt --init-from
// start a run at another world size and stage with exactly the consolidated parameters.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "train_gpt_runs.h"

namespace zerorun::testing {
namespace {

// FNV-1a (train_gpt's --print-checksum) over a safetensors file's values widened to fp32, in
// file order (which is the model's order for consolidate's files).
constexpr char kChecksum[] =
    "import json, struct, sys\n"
    "b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
    "h = json.loads(b[8:8 + n]); d = b[8 + n:]\n"
    "x = 1469598103934665603\n"
    "for k, v in sorted(((k, v) for k, v in h.items() if k != '__metadata__'),\n"
    "                   key=lambda kv: kv[1]['data_offsets'][0]):\n"
    "  s, e = v['data_offsets']\n"
    "  if v['dtype'] == 'BF16':\n"
    "    raw = b''.join(struct.pack('<I', u << 16)\n"
    "                   for u in struct.unpack('<%dH' % ((e - s) // 2), d[s:e]))\n"
    "  else:\n"
    "    raw = d[s:e]\n"
    "  for byte in raw: x = ((x ^ byte) * 1099511628211) % (1 << 64)\n"
    "print('%016x' % x)\n";

TEST_CASE(
    "zerorun ckpt import and --init-from start training at another world size and stage from "
    "exactly the consolidated weights, and refuse a file of another model",
    "[e2e][checkpoint]") {
  TempDir dir;
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  const std::string hosts2 = dir.Write("hosts2", "localhost slots=2\n");
  const std::string hosts1 = dir.Write("hosts1", "localhost slots=1\n");
  const std::string stage2 = Config(dir, "s2.json", 8, 2, 2);
  const std::string stage3 = Config(dir, "s3.json", 8, 2, 3);
  const std::string save = dir.path() + "/save";
  auto train = [&](const std::string& hosts, const std::string& config,
                   const std::vector<std::string>& extra) {
    std::vector<std::string> flags = {"--print-checksum"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return Run(TrainGptCommand(hosts, config, {}, flags), env);
  };
  const RunResult trained =
      train(hosts2, stage2, {"--steps", "4", "--save-dir", save, "--save-every", "4"});
  REQUIRE(trained.exit_code == 0);
  const std::string fp32 = dir.path() + "/model.safetensors";
  const std::string bf16 = dir.path() + "/model.bf16.safetensors";
  REQUIRE(Run({ZR_TEST_ZERORUN, "ckpt", "consolidate", save, "--out", fp32}, env).exit_code == 0);
  REQUIRE(Run({ZR_TEST_ZERORUN, "ckpt", "consolidate", save, "--out", bf16, "--dtype", "bf16"}, env)
              .exit_code == 0);

  // import: a checkpoint of initial weights that resumes at world 1, stage 3.
  const std::string imported = dir.path() + "/imported";
  const RunResult made = Run({ZR_TEST_ZERORUN, "ckpt", "import", fp32, "--out", imported}, env);
  INFO(made.err);
  REQUIRE(made.exit_code == 0);
  CHECK(Run({ZR_TEST_ZERORUN, "ckpt", "verify", imported}, env).exit_code == 0);
  const RunResult resumed =
      train(hosts1, stage3, {"--steps", "0", "--save-dir", imported, "--resume"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK_FALSE(Checksum(trained.out).empty());
  CHECK(Checksum(resumed.out) == Checksum(trained.out));
  // And it trains on from there.
  CHECK(train(hosts1, stage3, {"--steps", "2", "--save-dir", imported, "--resume"}).exit_code == 0);

  // An imported file corrupted after the import (one weight byte): refused before any rank reads
  // it, naming the file.
  const std::string spoiled = dir.path() + "/spoiled";
  REQUIRE(Run({ZR_TEST_ZERORUN, "ckpt", "import", fp32, "--out", spoiled}, env).exit_code == 0);
  {
    std::string tag;
    std::ifstream(spoiled + "/latest") >> tag;
    const std::string file = spoiled + "/" + tag + "/weights.safetensors";
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x55');
  }
  const RunResult refused =
      train(hosts2, stage3, {"--steps", "1", "--save-dir", spoiled, "--resume"});
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.err, Catch::Contains("weights.safetensors does not match its sha256"));

  // --init-from a bf16 file: every weight is its bf16 value widened.
  const RunResult from16 = train(hosts2, stage3, {"--steps", "0", "--init-from", bf16});
  REQUIRE(from16.exit_code == 0);
  CHECK_THAT(from16.out, Catch::Contains("initial weights from " + bf16 + " (29 tensors)"));
  const RunResult want16 = Run({"/usr/bin/python3", "-c", kChecksum, bf16});
  REQUIRE(want16.exit_code == 0);
  CHECK(Checksum(from16.out) + "\n" == want16.out);

  // Another model (3 layers): refused on every rank, naming the missing tensor; exit 78.
  const RunResult other =
      train(hosts2, stage2, {"--steps", "1", "--layers", "3", "--init-from", fp32});
  CHECK(other.exit_code == 1);
  CHECK_THAT(other.err,
             Catch::Contains("exited with code 78") && Catch::Contains("has no tensor block.2."));
  // Bad input to import: nothing is written.
  const std::string junk = dir.Write("junk.safetensors", "not a safetensors file at all");
  const RunResult bad =
      Run({ZR_TEST_ZERORUN, "ckpt", "import", junk, "--out", dir.path() + "/j"}, env);
  CHECK(bad.exit_code == 65);
  CHECK_THAT(bad.err, Catch::Contains(junk) && Catch::Contains("is not a safetensors file"));
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/j"));
  const RunResult again = Run({ZR_TEST_ZERORUN, "ckpt", "import", fp32, "--out", imported}, env);
  CHECK(again.exit_code == 73);
  CHECK_THAT(again.err, Catch::Contains("already holds checkpoints"));
}

}  // namespace
}  // namespace zerorun::testing
