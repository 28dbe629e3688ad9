// HostfilePath: which hostfile a run reads.
#include "inputs/preflight_options.h"

#include <sys/stat.h>

namespace zerorun::launcher {

std::string HostfilePath(const PreflightOptions& options) {
  struct stat st {};
  if (options.hostfile.has_value()) return *options.hostfile;
  return stat(options.default_hostfile.c_str(), &st) == 0 ? options.default_hostfile : "";
}

}  // namespace zerorun::launcher
