// Hostfiles: DeepSpeed/MPI text (`host slots=N`) and zerorun's YAML form, parsed into the
// ordered host list whose order is the node rank.
#ifndef ZERORUN_LAUNCHER_INPUTS_HOSTFILE_H_
#define ZERORUN_LAUNCHER_INPUTS_HOSTFILE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorun::launcher {

// Port zerorund listens on unless the hostfile says otherwise.
inline constexpr int kDefaultAgentPort = 29600;

struct Host {
  std::string name;     // Key used by --include/--exclude and shown in every row.
  std::string address;  // Where its agent is reached; defaults to `name`.
  int agent_port = kDefaultAgentPort;
  std::vector<int> slots;                    // Slot (GPU) ids available on the host, ascending.
  std::map<std::string, std::string> paths;  // YAML only: per-host paths, e.g. nvme_path.
  int line = 0;                              // Line in the hostfile, for messages.
};

struct Hostfile {
  std::string path;  // As given; empty for the implicit local host.
  std::vector<Host> hosts;
  std::vector<std::string> warnings;  // Accepted but suspicious lines, with file:line.
};

// Parses `text` read from `path`. The YAML form is chosen when `path` ends in .yaml/.yml or the
// first significant line starts with "hosts:"; otherwise the DeepSpeed grammar applies:
// each stripped line matches ^(\S+)\s+slots=(\d+), '#' lines and blank lines are skipped,
// trailing text after slots=N is ignored with a warning.
// Returns InvalidArgument naming path:line, the DeepSpeed message and the fix for: a bad
// entry, a duplicate host, no valid lines, and any YAML schema error.
absl::StatusOr<Hostfile> ParseHostfile(absl::string_view path, absl::string_view text);

// Reads and parses the file. NotFound when it does not exist or cannot be read.
absl::StatusOr<Hostfile> LoadHostfile(const std::string& path);

// True when `address` names this machine: localhost, 127.0.0.0/8, ::1, this host's name, or
// a UNIX socket.
bool IsLocalAddress(absl::string_view address);

// True when `address` is a zerorund UNIX socket of this machine ("unix:PATH").
bool IsUnixSocketAddress(absl::string_view address);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_INPUTS_HOSTFILE_H_
