// Hostfile grammar: every case of DeepSpeed's table (reference section 2) and the YAML form.
#include "inputs/hostfile.h"

#include <catch2/catch.hpp>

#include "backends/agent_client.h"

namespace zerorun::launcher {
namespace {

Hostfile MustParse(const std::string& text, const std::string& path = "hosts") {
  absl::StatusOr<Hostfile> parsed = ParseHostfile(path, text);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  return *parsed;
}

std::string ErrorOf(const std::string& text, const std::string& path = "hosts") {
  absl::StatusOr<Hostfile> parsed = ParseHostfile(path, text);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST_CASE("Hostfile lines give hosts in node-rank order with slot ids", "[hostfile]") {
  const Hostfile h = MustParse("worker-0 slots=4\nworker-1 slots=2\n");
  REQUIRE(h.hosts.size() == 2);
  CHECK(h.hosts[0].name == "worker-0");
  CHECK(h.hosts[0].slots == std::vector<int>{0, 1, 2, 3});
  CHECK(h.hosts[1].slots == std::vector<int>{0, 1});
  CHECK(h.hosts[1].line == 2);
  CHECK(h.warnings.empty());
}

TEST_CASE("Hostfile accepts surrounding whitespace, tabs, blank and comment lines", "[hostfile]") {
  const Hostfile h = MustParse("# cluster\n\n   w0\tslots=8   \n\t# note\nw1   slots=1\n");
  REQUIRE(h.hosts.size() == 2);
  CHECK(h.hosts[0].slots.size() == 8);
  CHECK(h.hosts[1].line == 5);
}

TEST_CASE("Hostfile trailing comment after slots is accepted without a warning", "[hostfile]") {
  const Hostfile h = MustParse("w0 slots=4 # gpu box\n");
  CHECK(h.hosts[0].slots.size() == 4);
  CHECK(h.warnings.empty());
}

TEST_CASE("Hostfile text after slots=N is ignored like DeepSpeed but warned about", "[hostfile]") {
  const Hostfile a = MustParse("w0 slots=4x\n");
  CHECK(a.hosts[0].slots.size() == 4);
  REQUIRE(a.warnings.size() == 1);
  CHECK_THAT(a.warnings[0], Catch::Contains("hosts:1") && Catch::Contains("'x'"));
  const Hostfile b = MustParse("w0 slots=2 max_slots=8\n");
  CHECK(b.hosts[0].slots.size() == 2);
  REQUIRE(b.warnings.size() == 1);
  CHECK_THAT(b.warnings[0], Catch::Contains("max_slots=8") && Catch::Contains("ignores it"));
}

TEST_CASE("Hostfile slots=0 keeps the host with no slots", "[hostfile]") {
  const Hostfile h = MustParse("w0 slots=0\nw1 slots=1\n");
  REQUIRE(h.hosts.size() == 2);
  CHECK(h.hosts[0].slots.empty());
}

TEST_CASE("Hostfile user@address host names are kept as written", "[hostfile]") {
  const Hostfile h = MustParse("user@1.2.3.4 slots=2\n");
  CHECK(h.hosts[0].name == "user@1.2.3.4");
}

TEST_CASE("Hostfile bad entries are InvalidArgument with DeepSpeed's message and file:line",
          "[hostfile]") {
  for (const std::string line :
       {"w0", "w0 max_slots=4", "this is bad slots=1", "w0 slots=", "w0 slots=-1", "w0slots=2"}) {
    INFO(line);
    const std::string error = ErrorOf("ok slots=1\n" + line + "\n", "cluster.txt");
    CHECK_THAT(error, Catch::Contains("cluster.txt:2: Hostfile contains a bad entry: " + line +
                                      ", unable to proceed with launching"));
    CHECK_THAT(error, Catch::Contains("slots=N"));
  }
}

TEST_CASE("Hostfile duplicate host is InvalidArgument naming both lines", "[hostfile]") {
  const std::string error = ErrorOf("w0 slots=1\nw1 slots=1\nw0 slots=2\n");
  CHECK_THAT(error, Catch::Contains("hosts:3: Hostfile contains multiple entries for w0, unable "
                                    "to proceed with launching") &&
                        Catch::Contains("line 1"));
}

TEST_CASE("Hostfile with no valid lines is InvalidArgument", "[hostfile]") {
  for (const std::string text : {"", "\n\n", "# only comments\n"}) {
    CHECK_THAT(ErrorOf(text), Catch::Contains("Hostfile is empty or not formatted correctly, "
                                              "unable to proceed with launching."));
  }
}

TEST_CASE("Hostfile slots beyond 4096 are rejected, not wrapped", "[hostfile]") {
  CHECK_THAT(ErrorOf("w0 slots=99999999999\n"), Catch::Contains("out of range"));
}

TEST_CASE("Missing hostfile is NotFound naming the path", "[hostfile]") {
  absl::StatusOr<Hostfile> h = LoadHostfile("/nonexistent/zerorun/hosts");
  REQUIRE(h.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(h.status().message()), Catch::Contains("/nonexistent/zerorun/hosts"));
}

TEST_CASE("YAML hostfile gives address, agent port, slot lists and per-host paths",
          "[hostfile][yaml]") {
  const Hostfile h = MustParse(
      "hosts:\n"
      "  - name: a\n"
      "    address: 127.0.0.2\n"
      "    agent_port: 30000\n"
      "    slots: 2\n"
      "  - {name: b, slots: [3, 1], nvme_path: /mnt/nvme}\n",
      "c.yaml");
  REQUIRE(h.hosts.size() == 2);
  CHECK(h.hosts[0].address == "127.0.0.2");
  CHECK(h.hosts[0].agent_port == 30000);
  CHECK(h.hosts[0].slots == std::vector<int>{0, 1});
  CHECK(h.hosts[1].address == "b");
  CHECK(h.hosts[1].agent_port == kDefaultAgentPort);
  CHECK(h.hosts[1].slots == std::vector<int>{1, 3});
  CHECK(h.hosts[1].paths.at("nvme_path") == "/mnt/nvme");
  CHECK(h.hosts[1].line == 6);
}

TEST_CASE("YAML form is detected from the content without a .yaml suffix", "[hostfile][yaml]") {
  const Hostfile h = MustParse("# comment\nhosts:\n  - {name: a, slots: 1}\n", "hostfile");
  CHECK(h.hosts.size() == 1);
}

TEST_CASE("YAML hostfile errors name file:line and the fix", "[hostfile][yaml]") {
  CHECK_THAT(ErrorOf("hosts:\n  - name: a\n    slot: 2\n", "c.yaml"),
             Catch::Contains("c.yaml:3") && Catch::Contains("did you mean 'slots'"));
  CHECK_THAT(ErrorOf("hosts:\n  - name: a\n", "c.yaml"),
             Catch::Contains("c.yaml:2") && Catch::Contains("needs both 'name' and 'slots'"));
  CHECK_THAT(ErrorOf("hosts:\n  - {name: a, slots: two}\n", "c.yaml"),
             Catch::Contains("c.yaml:2") && Catch::Contains("'slots' must be"));
  CHECK_THAT(ErrorOf("hosts:\n  - {name: a, slots: [0, 0]}\n", "c.yaml"),
             Catch::Contains("listed twice"));
  CHECK_THAT(ErrorOf("hosts:\n  - {name: a, slots: 1, agent_port: 70000}\n", "c.yaml"),
             Catch::Contains("not a port number"));
  CHECK_THAT(ErrorOf("hosts:\n  - {name: a, slots: 1}\n  - {name: a, slots: 2}\n", "c.yaml"),
             Catch::Contains("multiple entries for a"));
  CHECK_THAT(ErrorOf("hosts: [\n", "c.yaml"), Catch::Contains("not valid YAML"));
  CHECK_THAT(ErrorOf("hosts: []\n", "c.yaml"), Catch::Contains("non-empty 'hosts:' list"));
}

TEST_CASE("A zerorund UNIX socket is a host of this machine in both forms, its target as written",
          "[hostfile]") {
  const Hostfile text = MustParse("unix:/var/lib/zerorun/zerorund.sock slots=2\n");
  REQUIRE(text.hosts.size() == 1);
  CHECK(text.hosts[0].address == "unix:/var/lib/zerorun/zerorund.sock");
  CHECK(AgentTarget(text.hosts[0]) == "unix:/var/lib/zerorun/zerorund.sock");
  CHECK_FALSE(UsesEmbeddedAgent(text.hosts[0]));  // The resident zerorund, not the embedded one.
  const Hostfile yaml =
      MustParse("hosts:\n  - {name: here, address: unix:/run/zr.sock, slots: 1}\n", "h.yaml");
  REQUIRE(yaml.hosts.size() == 1);
  CHECK(yaml.hosts[0].address == "unix:/run/zr.sock");
  CHECK(IsUnixSocketAddress(yaml.hosts[0].address));
  CHECK(IsLocalAddress(yaml.hosts[0].address));
  Host tcp;
  tcp.address = "10.0.0.7";
  tcp.agent_port = 29601;
  CHECK(AgentTarget(tcp) == "10.0.0.7:29601");
  CHECK_FALSE(IsUnixSocketAddress("10.0.0.7"));
}

TEST_CASE("Loopback addresses and localhost are this machine", "[hostfile]") {
  CHECK(IsLocalAddress("localhost"));
  CHECK(IsLocalAddress("127.0.0.3"));
  CHECK_FALSE(IsLocalAddress("10.1.2.3"));
  CHECK_FALSE(IsLocalAddress("worker-17.example"));
}

}  // namespace
}  // namespace zerorun::launcher
