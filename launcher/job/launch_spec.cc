// BuildLaunchRequests: rank numbering and the per-rank environment.
#include "job/launch_spec.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/rank_env.h"
#include "security/auth.h"

namespace zerorun::launcher {

std::string AgentJobId(const std::string& job_id, int attempt) {
  return attempt == 0 ? job_id : absl::StrCat(job_id, ".restart", attempt);
}

std::vector<v1::LaunchRequest> BuildLaunchRequests(const std::vector<Host>& hosts,
                                                   const LaunchSpec& spec) {
  int world_size = 0;
  for (const Host& host : hosts) world_size += static_cast<int>(host.slots.size());
  const int num_nodes = static_cast<int>(hosts.size());
  std::vector<v1::LaunchRequest> requests;
  int rank = 0;
  for (int node = 0; node < num_nodes; ++node) {
    const Host& host = hosts[node];
    const NodeEndpoints ends = node < static_cast<int>(spec.endpoints.size())
                                   ? spec.endpoints[node]
                                   : NodeEndpoints{"127.0.0.1", spec.coordinator, spec.master_addr};
    v1::LaunchRequest& request = requests.emplace_back();
    request.set_job_id(AgentJobId(spec.job_id, spec.attempt));
    request.set_config_json(spec.config_json);
    request.set_log_dir(spec.log_dir);
    request.set_cwd(spec.cwd);
    request.set_lease_ms(spec.lease_ms);
    request.set_reconnect_window_ms(spec.reconnect_window_ms);
    request.set_grace_ms(spec.grace_ms);
    const int local_size = static_cast<int>(host.slots.size());
    for (int local = 0; local < local_size; ++local, ++rank) {
      v1::RankSpec* r = request.add_ranks();
      r->set_rank(rank);
      r->set_local_rank(local);
      for (const std::string& arg : spec.head) r->add_argv(arg);
      if (!spec.no_local_rank) r->add_argv(absl::StrCat("--local_rank=", local));
      for (const std::string& arg : spec.tail) r->add_argv(arg);
      namespace e = rank_env;
      const std::pair<const char*, std::string> env[] = {
          {e::kRank, absl::StrCat(rank)},
          {e::kLocalRank, absl::StrCat(local)},
          {e::kWorldSize, absl::StrCat(world_size)},
          {e::kLocalSize, absl::StrCat(local_size)},
          {e::kLocalWorldSize, absl::StrCat(local_size)},
          {e::kNodeRank, absl::StrCat(node)},
          {e::kGroupRank, absl::StrCat(node)},
          {e::kCrossRank, absl::StrCat(node)},
          {e::kCrossSize, absl::StrCat(num_nodes)},
          {e::kGroupWorldSize, absl::StrCat(num_nodes)},
          {e::kMasterAddr, ends.master_addr},
          {e::kMasterPort, absl::StrCat(spec.master_port)},
          {e::kJobId, spec.job_id},
          {e::kCoordinator, ends.coordinator},
          {e::kNodeAddr, ends.node_addr},
          {e::kJobSecret,
           spec.job_secret.empty() ? "" : RankToken(spec.job_secret, spec.job_id, rank)},
          {e::kRestartCount, absl::StrCat(spec.attempt)},
          {e::kTorchRestartCount, absl::StrCat(spec.attempt)},
          {e::kMaxRestarts, absl::StrCat(spec.max_restarts)},
          {e::kTorchMaxRestarts, absl::StrCat(spec.max_restarts)},
      };
      std::set<std::string> ours;
      for (const auto& [key, value] : env) {
        r->add_env(absl::StrCat(key, "=", value));
        ours.insert(key);
      }
      if (!spec.zerorun_bin.empty())
        r->add_env(absl::StrCat(e::kZerorunBin, "=", spec.zerorun_bin));
      if (!spec.coordinator_ca.empty()) {
        r->add_env(absl::StrCat(e::kCoordinatorCa, "=", spec.coordinator_ca));
        ours.insert(e::kCoordinatorCa);
      }
      for (const std::string& kv : spec.env) {
        if (ours.count(kv.substr(0, kv.find('='))) == 0) r->add_env(kv);
      }
      if (spec.device == v1::DEVICE_GPU) {
        r->add_env(
            absl::StrCat(rank_env::kCudaVisibleDevices, "=", absl::StrJoin(host.slots, ",")));
      }
    }
  }
  return requests;
}

}  // namespace zerorun::launcher
