// BuildLaunchRequests: rank numbering and the per-rank environment.
#include "rank_env.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zerorun::launcher {

std::vector<v1::LaunchRequest> BuildLaunchRequests(const std::vector<Host>& hosts,
                                                   const LaunchSpec& spec) {
  int world_size = 0;
  for (const Host& host : hosts) world_size += static_cast<int>(host.slots.size());
  const int num_nodes = static_cast<int>(hosts.size());
  std::vector<v1::LaunchRequest> requests;
  int rank = 0;
  for (int node = 0; node < num_nodes; ++node) {
    const Host& host = hosts[node];
    v1::LaunchRequest& request = requests.emplace_back();
    request.set_job_id(spec.job_id);
    request.set_config_json(spec.config_json);
    request.set_log_dir(spec.log_dir);
    request.set_cwd(spec.cwd);
    const int local_size = static_cast<int>(host.slots.size());
    for (int local = 0; local < local_size; ++local, ++rank) {
      v1::RankSpec* r = request.add_ranks();
      r->set_rank(rank);
      r->set_local_rank(local);
      r->add_argv(spec.train_bin);
      if (!spec.no_local_rank) r->add_argv(absl::StrCat("--local_rank=", local));
      for (const std::string& arg : spec.train_args) r->add_argv(arg);
      const std::pair<const char*, std::string> env[] = {
          {"RANK", absl::StrCat(rank)},
          {"LOCAL_RANK", absl::StrCat(local)},
          {"WORLD_SIZE", absl::StrCat(world_size)},
          {"LOCAL_SIZE", absl::StrCat(local_size)},
          {"LOCAL_WORLD_SIZE", absl::StrCat(local_size)},
          {"NODE_RANK", absl::StrCat(node)},
          {"GROUP_RANK", absl::StrCat(node)},
          {"CROSS_RANK", absl::StrCat(node)},
          {"CROSS_SIZE", absl::StrCat(num_nodes)},
          {"GROUP_WORLD_SIZE", absl::StrCat(num_nodes)},
          {"MASTER_ADDR", spec.master_addr},
          {"MASTER_PORT", absl::StrCat(spec.master_port)},
          {"ZERORUN_JOB_ID", spec.job_id},
          {"ZERORUN_COORDINATOR", spec.coordinator},
          {"ZERORUN_JOB_SECRET", spec.job_secret},
      };
      for (const auto& [key, value] : env) r->add_env(absl::StrCat(key, "=", value));
      if (spec.device == v1::DEVICE_GPU) {
        r->add_env(absl::StrCat("CUDA_VISIBLE_DEVICES=", absl::StrJoin(host.slots, ",")));
      }
    }
  }
  return requests;
}

}  // namespace zerorun::launcher
