// `zerorun cluster init DIR --node N... --user U...` (a new cluster CA and certificates) and
// `zerorun cluster issue DIR --node N | --user U [--days D]` (one more from an existing CA) and
// `zerorun cluster revoke DIR --node N | --user U` (into DIR/revoked, for zerorund --revoked).
#ifndef ZERORUN_LAUNCHER_CLI_CLUSTER_CLI_H_
#define ZERORUN_LAUNCHER_CLI_CLUSTER_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace zerorun::launcher {

struct ClusterCli {
  CLI::App* init = nullptr;
  CLI::App* issue = nullptr;
  CLI::App* revoke = nullptr;
  std::string dir;
  std::vector<std::string> nodes, users;
  int days = 365;
};

void AddClusterCommands(CLI::App* app, ClusterCli* cli);

// Runs whichever was parsed: its exit code (0; 2 a bad name; 66 no such certificate to revoke;
// 73 an existing CA or certificate, or a file that cannot be written), or -1 when none was.
int RunClusterCommand(const ClusterCli& cli, std::ostream& out, std::ostream& err);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_CLUSTER_CLI_H_
