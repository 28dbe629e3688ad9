// Benchmark (label bench): what mTLS costs the control plane, plaintext and mTLS measured side by
// side in one run on 3 loopback agents (127.0.0.2-4), rounds alternating:
//   launch: `zerorun` start -> all 6 ranks running (2 per agent)
//   status: one agent Status RPC, on a new channel (connect + handshake + call) and on a warm one
// Goal (issue 13): mTLS adds < 20% to the launch.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_agents.h"
#include "security/tls.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

using zerorun::bench::Agents;
using zerorun::bench::Median;
using zerorun::bench::ReadStamp;
using zerorun::bench::RealtimeNs;
using zerorun::testing::ChildProcess;
using zerorun::testing::TempDir;

namespace {

struct Numbers {
  std::vector<double> launch_ms, cold_status_ms, warm_status_ms;
};

double Ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

// One round on `agents`: a launch, then 5 cold and 20 warm Status calls to the first agent.
bool Round(const Agents& agents, Numbers* n) {
  TempDir stamps;
  const int64_t t0 = RealtimeNs();
  ChildProcess zr(agents.Zerorun(stamps.path(), {"--run-ms", "300"}),
                  {{"ZR_HOME", stamps.path() + "/home"}});
  if (zr.Wait(60) != 0) {
    std::printf("launch failed:\n%s", zr.Output().c_str());
    return false;
  }
  int64_t last = 0;
  for (int r = 0; r < 6; ++r) {
    last = std::max(last, ReadStamp(stamps.path() + "/rank_" + std::to_string(r) + ".start"));
  }
  n->launch_ms.push_back((last - t0) / 1e6);
  zerorun::ClientAuth auth;
  if (agents.tls) auth.tls = *zerorun::ReadTlsDir(agents.user_tls_dir());
  auto call = [&](zerorun::v1::NodeAgent::Stub* stub) {
    grpc::ClientContext context;
    zerorun::v1::AgentStatusReply reply;
    return stub->Status(&context, zerorun::v1::AgentStatusRequest(), &reply).ok();
  };
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    grpc::ChannelArguments args;
    args.SetInt("zerorun.bench.fresh", i + static_cast<int>(t0 % 100000));  // No shared channel.
    auto stub = zerorun::v1::NodeAgent::NewStub(
        grpc::CreateCustomChannel(agents.addresses[0], auth.Credentials(), args));
    if (!call(stub.get())) return false;
    n->cold_status_ms.push_back(Ms(start));
  }
  auto warm =
      zerorun::v1::NodeAgent::NewStub(grpc::CreateChannel(agents.addresses[0], auth.Credentials()));
  if (!call(warm.get())) return false;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (!call(warm.get())) return false;
    n->warm_status_ms.push_back(Ms(start));
  }
  return true;
}

}  // namespace

int main() {
  Agents plain(3, 2, false), tls(3, 2, true);
  Numbers p, t;
  for (int round = 0; round < 7; ++round) {
    if (!Round(plain, &p) || !Round(tls, &t)) return 1;
  }
  const double launch_ratio = Median(t.launch_ms) / Median(p.launch_ms);
  std::printf("control plane, plaintext vs mTLS, 3 loopback agents (medians of 7 rounds):\n");
  std::printf("  launch, 6 ranks, zerorun start -> last rank running: %.0f ms vs %.0f ms (%.2fx)\n",
              Median(p.launch_ms), Median(t.launch_ms), launch_ratio);
  std::printf("  agent Status, new channel: %.2f ms vs %.2f ms (%.2fx)\n", Median(p.cold_status_ms),
              Median(t.cold_status_ms), Median(t.cold_status_ms) / Median(p.cold_status_ms));
  std::printf("  agent Status, warm channel: %.3f ms vs %.3f ms (%.2fx)\n",
              Median(p.warm_status_ms), Median(t.warm_status_ms),
              Median(t.warm_status_ms) / Median(p.warm_status_ms));
  std::printf("  goal: mTLS adds < 20%% to the launch: %s\n",
              launch_ratio < 1.2 ? "met" : "NOT met");
  return 0;
}
