// e2e helpers for train_gpt runs through zerorun: DeepSpeed configs, and what train_gpt prints
// (its parameter checksum and, with --print-losses, every step's loss).
#ifndef ZERORUN_TESTS_E2E_TRAIN_GPT_RUNS_H_
#define ZERORUN_TESTS_E2E_TRAIN_GPT_RUNS_H_

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace zerorun::testing {

// "--print-checksum"'s value, or "" when the output has none.
inline std::string Checksum(const std::string& out) {
  std::smatch m;
  return std::regex_search(out, m, std::regex("parameter checksum ([0-9a-f]{16})")) ? m[1].str()
                                                                                    : "";
}

// "--print-losses"' lines: step -> the loss as printed (%.9e) and as a number.
inline std::map<int, std::string> Losses(const std::string& out) {
  std::map<int, std::string> losses;
  const std::regex line("train_gpt: loss (\\d+) (\\S+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator();
       ++it) {
    losses[std::stoi((*it)[1].str())] = (*it)[2].str();
  }
  return losses;
}

// zerorun --hostfile H --config C --device cpu ZERORUN_FLAGS train_gpt TRAIN_FLAGS.
inline std::vector<std::string> TrainGptCommand(const std::string& hosts, const std::string& config,
                                                const std::vector<std::string>& zerorun_flags,
                                                const std::vector<std::string>& train_flags) {
  std::vector<std::string> argv = {ZR_TEST_ZERORUN, "--hostfile", hosts, "--config",
                                   config,          "--device",   "cpu"};
  argv.insert(argv.end(), zerorun_flags.begin(), zerorun_flags.end());
  argv.push_back(ZR_TEST_TRAIN_GPT);
  argv.insert(argv.end(), train_flags.begin(), train_flags.end());
  return argv;
}

// A DeepSpeed config for train_gpt: batch, micro batch, clipping 1.0, the ZeRO stage, bf16.
inline std::string Config(const TempDir& dir, const std::string& name, int batch, int micro,
                          int stage, bool bf16 = false) {
  return dir.Write(name, "{\"train_batch_size\": " + std::to_string(batch) +
                             ", \"train_micro_batch_size_per_gpu\": " + std::to_string(micro) +
                             ", \"gradient_clipping\": 1.0, \"zero_optimization\": {\"stage\": " +
                             std::to_string(stage) + "}" +
                             (bf16 ? ", \"bf16\": {\"enabled\": true}}" : "}"));
}

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_E2E_TRAIN_GPT_RUNS_H_
