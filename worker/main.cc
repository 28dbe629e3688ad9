// zerorund: the per-node daemon. This version answers the node probe on the command line;
// serving NodeAgent over gRPC (Launch, Signal, Watch, Status) is tracked in issue #3.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/version.h"
#include "google/protobuf/util/json_util.h"
#include "node_agent.h"

int main(int argc, char** argv) {
  CLI::App app{"zerorund: zerorun's per-node agent (probe this node: --probe)"};
  app.set_version_flag("--version", ZR_VERSION);
  bool probe = false;
  std::string device = "gpu";
  std::vector<int> slots;
  std::string train_bin;
  app.add_flag("--probe", probe, "Print this node's facts and checks as JSON, then exit");
  app.add_option("--device", device, "gpu or cpu: what the probed job runs on")
      ->check(CLI::IsMember({"gpu", "cpu"}));
  app.add_option("--slots", slots, "Slot ids the job would use (default: none)")->delimiter(',');
  app.add_option("--train-bin", train_bin, "Training binary to look for and hash");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? zerorun::kExitOk : zerorun::kExitUsage;
  }
  if (!probe) {
    std::cerr << "zerorund: serving the NodeAgent gRPC service is not in this version yet "
                 "(issue #3); run 'zerorund --probe' to probe this node\n";
    return zerorun::kExitUsage;
  }
  zerorun::v1::ProbeRequest request;
  request.set_node("localhost");
  request.set_device(device == "cpu" ? zerorun::v1::DEVICE_CPU : zerorun::v1::DEVICE_GPU);
  for (int slot : slots) request.add_slots(slot);
  request.set_train_bin(train_bin);
  const zerorun::worker::NodeAgent agent(zerorun::GetEnv(zerorun::kEnvNvmlLibrary));
  const zerorun::v1::ProbeReply reply = agent.Probe(request);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(reply, &json, options);
  std::cout << json;
  return zerorun::kExitOk;
}
