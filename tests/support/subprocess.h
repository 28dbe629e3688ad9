// Test helper: runs a real binary as a child the test owns, captures its output, and ends it by
// pid if it outlives the deadline. No shell is involved.
#ifndef ZERORUN_TESTS_SUPPORT_SUBPROCESS_H_
#define ZERORUN_TESTS_SUPPORT_SUBPROCESS_H_

#include <map>
#include <string>
#include <vector>

namespace zerorun::testing {

struct RunResult {
  int exit_code = -1;  // Exit status, or 128+N when killed by signal N.
  std::string out;     // stdout.
  std::string err;     // stderr.
  double wall_ms = 0;
};

// Runs argv[0] with argv, the current environment plus `env` (an empty value unsets a
// variable), in `cwd` when not empty. Kills the child (SIGKILL, by pid) after `timeout_s`.
RunResult Run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env = {}, const std::string& cwd = "",
              double timeout_s = 60);

// The zerorun binary with `args`.
RunResult Zerorun(const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = {});

// Absolute path of a file under tests/testdata or the source tree.
std::string TestData(const std::string& name);
std::string SourcePath(const std::string& relative);

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_SUBPROCESS_H_
