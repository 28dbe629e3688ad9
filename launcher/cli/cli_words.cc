// Usage messages for words that are not programs.
#include "cli/cli_words.h"

#include <sys/stat.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "dsconfig/suggest.h"

namespace zerorun::launcher {
namespace {

// A file here (e.g. train.py) or a program execvp would find.
bool IsProgram(const std::string& word) {
  struct stat st {};
  if (stat(word.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return true;
  return !FindProgram(word).empty();
}

}  // namespace

const std::vector<std::string>& Subcommands() {
  static const std::vector<std::string> kWords = {"run",    "preflight", "status", "stop",
                                                  "report", "estimate",  "ckpt",   "cluster",
                                                  "logs",   "jobs"};
  return kWords;
}

std::optional<std::string> NotAProgram(const std::string& word) {
  if (word.empty() || word[0] == '-') return std::nullopt;
  const std::string hint = dsconfig::DidYouMean(word, Subcommands());
  if (hint.empty() || IsProgram(word)) return std::nullopt;
  return absl::StrCat("zerorun: '", word, "' is not a zerorun command", hint,
                      " nor a program (not a file, not in $PATH). Run 'zerorun --help' for the "
                      "commands");
}

std::string UnknownFlagMessage(const std::string& flag, const std::vector<std::string>& known) {
  static const std::map<std::string, std::string> kDeepSpeedOnly = {
      {"--launcher_args", "zerorun starts the ranks through zerorund on every node"},
      {"--force_multi", "every host in the hostfile is used as it is"},
      {"--no_ssh", "zerorun needs no ssh unless --launcher ssh: zerorund runs on each node"},
      {"--no_ssh_check", "with --launcher ssh every host is reached over ssh before launch"},
      {"--autotuning", "no autotuner; run `zerorun estimate` for the memory per stage"},
      {"--elastic_training", "no elastic membership yet"},
      {"--save_pid", "`zerorun status` lists every rank's pid"},
      {"--bind_cores_to_rank", "no core binding yet"},
      {"--venv_script", "put the environment in .deepspeed_env or pass --env KEY=VALUE"},
  };
  const std::string name = flag.substr(0, flag.find('='));
  std::string message =
      absl::StrCat("zerorun: unknown option '", name, "' before the training program");
  if (auto it = kDeepSpeedOnly.find(name); it != kDeepSpeedOnly.end()) {
    absl::StrAppend(&message, ": DeepSpeed's ", name, " is not taken here (", it->second, ")");
  } else {
    absl::StrAppend(&message, dsconfig::DidYouMean(name, known));
  }
  absl::StrAppend(&message,
                  ". zerorun's options go before train_bin, the program's own after it; "
                  "'zerorun run --help' lists them");
  return message;
}

}  // namespace zerorun::launcher
