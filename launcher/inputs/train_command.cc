// BuildTrainCommand: DeepSpeed's forms, and explicit interpreters parsed as python3 parses its
// own command line (options, then a script, -m module or -c command; the rest is sys.argv).
#include "inputs/train_command.h"

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zerorun::launcher {
namespace {

absl::Status Usage(const std::string& what) { return absl::InvalidArgumentError(what); }

// A cluster of python3's short options ("-u", "-Bc", "-Wignore"): the letter that takes a
// value (c, m, W, X) and whether the value is attached; '\0' when none does.
struct Cluster {
  char valued = '\0';
  bool attached = false;
};
Cluster ReadCluster(const std::string& arg) {
  for (size_t k = 1; k < arg.size(); ++k) {
    const char letter = arg[k];
    if (letter == 'c' || letter == 'm' || letter == 'W' || letter == 'X') {
      return {letter, k + 1 < arg.size()};
    }
  }
  return {};
}

}  // namespace

bool IsPythonInterpreter(const std::string& program) {
  const size_t slash = program.rfind('/');
  const std::string base = slash == std::string::npos ? program : program.substr(slash + 1);
  static const std::regex kPython("python[0-9.]*");
  return std::regex_match(base, kPython);
}

absl::StatusOr<TrainCommand> BuildTrainCommand(const std::string& train_bin,
                                               const std::vector<std::string>& args,
                                               const TrainCommandOptions& options) {
  if (options.no_python && options.module) {
    return Usage("--no_python and --module cannot be used together (DeepSpeed refuses them too)");
  }
  TrainCommand c;
  if (options.module) {  // zerorun --module pkg.train args: python3 -u -m pkg.train ...
    c.program = options.python;
    c.module = train_bin;
    c.head = {options.python, "-u", "-m", train_bin};
    c.tail = args;
    return c;
  }
  if (!options.no_python && absl::EndsWith(train_bin, ".py")) {  // DeepSpeed: python -u script.
    c.program = options.python;
    c.script = train_bin;
    c.head = {options.python, "-u", train_bin};
    c.tail = args;
    return c;
  }
  c.program = train_bin;
  c.head = {train_bin};
  if (options.no_python || !IsPythonInterpreter(train_bin)) {
    c.tail = args;
    return c;
  }
  // An explicit interpreter: its options stay before the script, module or command.
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-" || !absl::StartsWith(a, "-")) {  // The script (or stdin): sys.argv[0].
      c.head.push_back(a);
      if (a != "-") c.script = a;
      ++i;
      break;
    }
    c.head.push_back(a);
    if (absl::StartsWith(a, "--")) {  // Long options; one of them takes a value.
      if (a == "--check-hash-based-pycs") {
        if (i + 1 >= args.size()) return Usage(absl::StrCat(train_bin, " ", a, " needs a value"));
        c.head.push_back(args[++i]);
      }
      continue;
    }
    const Cluster cluster = ReadCluster(a);
    if (cluster.valued == '\0') continue;
    std::string value;
    if (cluster.attached) {
      value = a.substr(a.find(cluster.valued) + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
      c.head.push_back(value);
    } else {
      return Usage(absl::StrCat(train_bin, " -", std::string(1, cluster.valued), " needs ",
                                cluster.valued == 'm'   ? "a module"
                                : cluster.valued == 'c' ? "a command"
                                                        : "a value"));
    }
    if (cluster.valued == 'm') c.module = value;
    if (cluster.valued == 'c' || cluster.valued == 'm') {  // The rest is the program's sys.argv.
      ++i;
      break;
    }
  }
  c.tail.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  return c;
}

absl::Status UseZerorunEngine(TrainCommand* c) {
  if (!c->python() || c->head.size() < 2) {
    return Usage(absl::StrCat(
        "--engine zerorun runs Python training scripts (DeepSpeed's API on zerorun.torch); ",
        c->program,
        " is not one (a .py script, --module, or python [options] script.py). Fix: "
        "drop --engine zerorun for a binary linked with libzerorun"));
  }
  // The script or the module ends the head: "-m", "pkg" (or "-mpkg"), or the script itself.
  size_t at = c->head.size() - 1;
  if (!c->module.empty() && at >= 1 && c->head[at] == c->module && c->head[at - 1] == "-m") --at;
  if (c->module.empty() && c->head[at] != c->script) {
    return Usage(
        absl::StrCat("--engine zerorun: cannot find the script in ", absl::StrJoin(c->head, " ")));
  }
  c->head.insert(c->head.begin() + static_cast<std::ptrdiff_t>(at), {"-m", kEngineRunModule});
  return absl::OkStatus();
}

}  // namespace zerorun::launcher
