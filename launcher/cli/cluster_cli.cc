// The `zerorun cluster` subcommands over cluster_ca (see cluster_cli.h).
#include "cli/cluster_cli.h"

#include "base/exit_codes.h"
#include "cluster/cluster_ca.h"

namespace zerorun::launcher {
namespace {

int ExitOf(const absl::Status& s, std::ostream& err) {
  if (s.ok()) return kExitOk;
  err << "zerorun cluster: " << s.message() << "\n";
  if (s.code() == absl::StatusCode::kNotFound) return kExitNoInput;
  return s.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitCantCreate;
}

}  // namespace

void AddClusterCommands(CLI::App* app, ClusterCli* cli) {
  CLI::App* cluster = app->add_subcommand("cluster", "mTLS set-up: a cluster CA and certificates");
  cluster->require_subcommand(1);
  cli->init = cluster->add_subcommand(
      "init", "Create a cluster CA in DIR and certificates for the nodes and users named");
  cli->issue = cluster->add_subcommand("issue", "Issue one more certificate from DIR's CA");
  cli->revoke = cluster->add_subcommand(
      "revoke", "Revoke certificates: their serials go into DIR/revoked (zerorund --revoked)");
  for (CLI::App* sub : {cli->init, cli->issue, cli->revoke}) {
    sub->add_option("dir", cli->dir, "The cluster directory (0700; ca.key stays here)")->required();
    sub->add_option("--node", cli->nodes,
                    "A node's name as hostfiles dial it (host name or IP address); repeatable")
        ->allow_extra_args(false);
    sub->add_option("--user", cli->users, "A user's name (the job owner zerorund sees)")
        ->allow_extra_args(false);
    sub->add_option("--days", cli->days, "Validity of the certificates issued (default 365)")
        ->check(CLI::Range(1, 36500));
  }
}

int RunClusterCommand(const ClusterCli& cli, std::ostream& out, std::ostream& err) {
  if (cli.init == nullptr ||
      (!cli.init->parsed() && !cli.issue->parsed() && !cli.revoke->parsed())) {
    return -1;
  }
  if (cli.revoke->parsed()) {
    for (const auto& [names, kind] : {std::make_pair(&cli.nodes, CertKind::kNode),
                                      std::make_pair(&cli.users, CertKind::kUser)}) {
      for (const std::string& name : *names) {
        if (int code = ExitOf(RevokeCertificate(cli.dir, kind, name), err); code != 0) {
          return code;
        }
        out << "revoked " << name << " in " << cli.dir << "/revoked (copy it to the nodes)\n";
      }
    }
    return kExitOk;
  }
  Validity validity;
  validity.not_after = int64_t{cli.days} * 86400;
  if (cli.init->parsed()) {
    if (int code = ExitOf(InitCluster(cli.dir, {}, {}), err); code != kExitOk) return code;
    out << "cluster CA: " << cli.dir << "/ca.crt (its key ca.key: keep it on this host only)\n";
  } else if (cli.nodes.size() + cli.users.size() == 0) {
    err << "zerorun cluster issue: name a --node or a --user\n";
    return kExitUsage;
  }
  for (const auto& [names, kind, where] : {std::make_tuple(&cli.nodes, CertKind::kNode, "nodes"),
                                           std::make_tuple(&cli.users, CertKind::kUser, "users")}) {
    for (const std::string& name : *names) {
      if (int code = ExitOf(IssueCertificate(cli.dir, kind, name, validity), err); code != 0) {
        return code;
      }
      out << (kind == CertKind::kNode ? "node " : "user ") << name << ": " << cli.dir << "/"
          << where << "/" << name << "/ (copy it to "
          << (kind == CertKind::kNode ? "the node: zerorund --tls-dir"
                                      : "the user: zerorun --tls-dir")
          << ")\n";
    }
  }
  return kExitOk;
}

}  // namespace zerorun::launcher
