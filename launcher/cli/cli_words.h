// Words on zerorun's command line that are not a training program: a misspelled subcommand, a
// subcommand not built yet, an unknown flag before train_bin. Each is a usage error (exit 2)
// with a did-you-mean, never a launch or a pre-flight row.
#ifndef ZERORUN_LAUNCHER_CLI_CLI_WORDS_H_
#define ZERORUN_LAUNCHER_CLI_CLI_WORDS_H_

#include <optional>
#include <string>
#include <vector>

namespace zerorun::launcher {

// The subcommands zerorun has.
const std::vector<std::string>& Subcommands();

// For the first word after `zerorun` when it is not a subcommand: the usage message when it is
// `logs` (not built yet) or close to a subcommand and is no program (not a path, not in $PATH);
// nullopt when it is to be run as train_bin.
std::optional<std::string> NotAProgram(const std::string& word);

// The message for `flag`, unknown to zerorun, found before train_bin: did-you-mean among
// `known` (zerorun's flag names), and DeepSpeed's own launcher flags that zerorun does not take
// are named with what to do instead.
std::string UnknownFlagMessage(const std::string& flag, const std::vector<std::string>& known);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_CLI_WORDS_H_
