// InitFromEnv: rank facts, effective config, store, address and communicator for a rank.
#include "zerorun/init.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/env.h"
#include "base/rank_env.h"
#include "dsconfig/config_json.h"
#include "dsconfig/effective.h"
#include "zerorun/flight_recorder.h"

namespace zerorun {
namespace {

using json = nlohmann::json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// The integer in `name`, or `fallback` when unset.
absl::StatusOr<int> IntEnv(const char* name, int fallback) {
  const std::string text = Env(name);
  if (text.empty()) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "=", text, " is not a non-negative integer"));
  }
  return value;
}

absl::Status Breadcrumb(const absl::Status& s, int rank, const std::string& step) {
  return absl::Status(s.code(), absl::StrCat("rank ", rank, ": ", step, ": ", s.message()));
}

// Under zerorun the file is the launcher's effective config (unless the caller's wins, then
// zerorun_config is empty here); otherwise the user's, resolved.
absl::StatusOr<json> ReadConfig(const std::string& zerorun_config, const std::string& user_path,
                                const std::vector<std::string>& train_args, int world_size,
                                std::string* used) {
  if (!zerorun_config.empty()) {
    *used = zerorun_config;
    std::ifstream in(zerorun_config);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", zerorun_config));
    std::stringstream text;
    text << in.rdbuf();
    json effective = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (!effective.is_object()) {
      return absl::DataLossError(
          absl::StrCat(zerorun_config, " is not the JSON object zerorun wrote"));
    }
    return effective;
  }
  dsconfig::AutoInputs inputs;
  inputs.world_size = world_size;
  inputs.train_args = train_args;
  dsconfig::JsonDocument doc;
  if (!user_path.empty()) {
    *used = user_path;
    absl::StatusOr<dsconfig::JsonDocument> loaded = dsconfig::LoadConfigJson(user_path);
    if (!loaded.ok()) return loaded.status();
    doc = *std::move(loaded);
  } else {
    *used = "(no config)";
    doc.path = "(no --deepspeed_config and no ZERORUN_CONFIG)";
    doc.root = json::object();
  }
  return dsconfig::ResolveEffectiveConfig(doc, inputs);
}

}  // namespace

// Found by the node probe in any binary that links the rank entry point (base/runtime_marker.h).
extern "C" __attribute__((used)) const char zerorun_runtime_marker[] =
    "zerorun-libzerorun-rank-entry:1";

absl::StatusOr<std::string> InterfaceAddress(const std::string& ifnames) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return absl::InternalError("getifaddrs failed");
  std::set<std::string> present;
  std::string found;
  for (absl::string_view want : absl::StrSplit(ifnames, ',', absl::SkipEmpty())) {
    for (ifaddrs* a = list; a != nullptr && found.empty(); a = a->ifa_next) {
      if (a->ifa_name != nullptr) present.insert(a->ifa_name);
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || want != a->ifa_name) {
        continue;
      }
      char text[INET_ADDRSTRLEN] = {};
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != nullptr) found = text;
    }
    if (!found.empty()) break;
  }
  freeifaddrs(list);
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no IPv4 address on interface(s) ", ifnames,
                                            "; this node has: ", absl::StrJoin(present, ", ")));
  }
  return found;
}

absl::StatusOr<absl::Duration> CommTimeoutFromEnv() {
  double value = 0;
  const std::string seconds = GetEnv(kEnvCommTimeout);
  if (!seconds.empty()) {
    if (!absl::SimpleAtod(seconds, &value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("ZR_COMM_TIMEOUT=", seconds, " is not a positive number of seconds"));
    }
    return absl::Seconds(value);
  }
  const std::string minutes = Env("DEEPSPEED_TIMEOUT");
  if (!minutes.empty()) {
    if (!absl::SimpleAtod(minutes, &value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("DEEPSPEED_TIMEOUT=", minutes, " is not a positive number of minutes"));
    }
    return absl::Minutes(value);
  }
  return absl::Minutes(5);
}

absl::StatusOr<RankContext> InitFromEnv(const InitOptions& options) {
  RankContext ctx;
  absl::StatusOr<int> facts[5] = {
      IntEnv(rank_env::kRank, 0), IntEnv(rank_env::kLocalRank, 0), IntEnv(rank_env::kWorldSize, 1),
      IntEnv(rank_env::kLocalWorldSize, 1), IntEnv(rank_env::kNodeRank, 0)};
  for (const auto& f : facts) {
    if (!f.ok()) return Breadcrumb(f.status(), 0, "rank environment");
  }
  ctx.rank = *facts[0];
  ctx.local_rank = *facts[1];
  ctx.world_size = *facts[2];
  ctx.local_world_size = *facts[3];
  ctx.node_rank = *facts[4];
  if (ctx.world_size < 1 || ctx.rank >= ctx.world_size) {
    return Breadcrumb(absl::InvalidArgumentError(absl::StrCat(
                          "RANK ", ctx.rank, " is outside WORLD_SIZE ", ctx.world_size)),
                      ctx.rank, "rank environment");
  }
  ctx.job_id = Env(rank_env::kJobId).empty() ? "local" : Env(rank_env::kJobId);

  const bool mine = options.config_path_wins && !options.config_path.empty();
  absl::StatusOr<json> config = ReadConfig(mine ? "" : Env(rank_env::kConfig), options.config_path,
                                           options.train_args, ctx.world_size, &ctx.config_path);
  if (!config.ok()) return Breadcrumb(config.status(), ctx.rank, "config");
  ctx.config = *std::move(config);
  absl::StatusOr<dsconfig::TrainingConfig> typed = dsconfig::ReadTrainingConfig(ctx.config);
  if (!typed.ok()) return Breadcrumb(typed.status(), ctx.rank, ctx.config_path);
  ctx.training = *typed;

  if (!Env(rank_env::kCoordinator).empty()) {
    auto client = CoordinatorClient::FromEnv();
    if (!client.ok()) return Breadcrumb(client.status(), ctx.rank, "coordinator");
    ctx.coordinator = *std::move(client);
    ctx.coordinator->StartHeartbeat(options.heartbeat);
    ctx.store = std::make_unique<CoordinatorKvStore>(ctx.coordinator.get());
  } else if (const std::string dir = GetEnv(kEnvStoreDir); !dir.empty()) {
    ctx.store = std::make_unique<FileKvStore>(dir);
  } else if (ctx.world_size == 1) {
    ctx.store = std::make_unique<InMemoryKvStore>();
  } else {
    return Breadcrumb(absl::FailedPreconditionError(
                          "more than one rank but no rendezvous: start the ranks with zerorun "
                          "(or set ZR_STORE_DIR to a shared directory)"),
                      ctx.rank, "rendezvous");
  }

  ctx.address = "127.0.0.1";
  const std::string ifname = !Env(rank_env::kGlooSocketIfname).empty()
                                 ? Env(rank_env::kGlooSocketIfname)
                                 : Env(rank_env::kNcclSocketIfname);
  if (!ifname.empty()) {
    absl::StatusOr<std::string> address = InterfaceAddress(ifname);
    if (!address.ok()) return Breadcrumb(address.status(), ctx.rank, "GLOO_SOCKET_IFNAME");
    ctx.address = *address;
  } else if (!Env(rank_env::kNodeAddr).empty()) {
    ctx.address = Env(rank_env::kNodeAddr);
  }

  CommOptions comm_options;
  absl::StatusOr<absl::Duration> timeout = CommTimeoutFromEnv();
  if (!timeout.ok()) return Breadcrumb(timeout.status(), ctx.rank, "communicator");
  comm_options.timeout = *timeout;
  comm_options.hostname = ctx.address;
  comm_options.name = absl::StrCat(ctx.job_id, "/world");
  absl::StatusOr<std::unique_ptr<Communicator>> comm =
      CreateCommunicator(options.device, *ctx.store, ctx.rank, ctx.world_size, comm_options);
  if (!comm.ok()) {
    return Breadcrumb(
        comm.status(), ctx.rank,
        absl::StrCat("communicator for ", options.device.ToString(), " on ", ctx.address));
  }
  ctx.comm = *std::move(comm);  // Its collectives are in the flight recorder: hang reports.
  return ctx;
}

}  // namespace zerorun
