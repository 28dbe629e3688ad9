// DeepSpeed's launch forms turned into the argv every rank runs: a binary, a `.py` script under
// python3 (`-u`, as DeepSpeed), `python3 [interpreter options] script.py` or `python3 -m mod`
// given explicitly, `--module`, `--no_python`. --local_rank=N goes after the script or module,
// never to the interpreter.
#ifndef ZERORUN_LAUNCHER_INPUTS_TRAIN_COMMAND_H_
#define ZERORUN_LAUNCHER_INPUTS_TRAIN_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun::launcher {

struct TrainCommandOptions {
  bool no_python = false;          // DeepSpeed's --no_python: execute train_bin as it is.
  bool module = false;             // DeepSpeed's --module: train_bin is a module for python -m.
  std::string python = "python3";  // The interpreter for .py and --module (--python).
};

struct TrainCommand {
  std::vector<std::string> head;  // argv up to where --local_rank=N goes.
  std::vector<std::string> tail;  // The program's own arguments (HF-style flags are read here).
  std::string program;            // What runs: the binary or the interpreter (checked, hashed).
  std::string script;             // The Python script, when there is one (checked, hashed).
  std::string module;             // The Python module of -m / --module.
  bool python() const { return !script.empty() || !module.empty(); }
};

// --engine zerorun: the ranks' `import deepspeed` is zerorun's DeepSpeed-compatible package. Set
// in every rank's environment; the Python program runs under `python -m zerorun.engine_run`,
// which puts that package first on the path and execs the program as it was.
inline constexpr char kEnvEngine[] = "ZERORUN_ENGINE";
inline constexpr char kEngineZerorun[] = "zerorun";
inline constexpr char kEngineRunModule[] = "zerorun.engine_run";

// Rewrites a Python command to start through kEngineRunModule (after the interpreter and its
// options, before the script or -m module). InvalidArgument (usage) naming the program for a
// command that is not a Python script or module (a binary, `python -c`, stdin).
absl::Status UseZerorunEngine(TrainCommand* command);

// True for python, python3, python3.11, ... (by basename).
bool IsPythonInterpreter(const std::string& program);

// InvalidArgument (usage, exit 2) for --no_python with --module (DeepSpeed's ValueError), for
// `python3 -m` without a module, and for an interpreter option that needs a value it lacks.
absl::StatusOr<TrainCommand> BuildTrainCommand(const std::string& train_bin,
                                               const std::vector<std::string>& args,
                                               const TrainCommandOptions& options);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_INPUTS_TRAIN_COMMAND_H_
