// Node agent probe: GPUs through NVML (none here; a fake NVML stands in for GPU nodes), memory,
// paths (never created), O_DIRECT, free space and the training binary.
#include "node_agent.h"

#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "node_probe.h"
#include "nvml.h"
#include "support/temp_dir.h"

namespace zerorun::worker {
namespace {

using testing::TempDir;

v1::ProbeRequest Request(v1::Device device, std::vector<int> slots) {
  v1::ProbeRequest r;
  r.set_node("node-a");
  r.set_device(device);
  for (int s : slots) r.add_slots(s);
  return r;
}

const v1::Check& Row(const v1::ProbeReply& reply, const std::string& check) {
  for (const v1::Check& row : reply.checks()) {
    if (row.check() == check) return row;
  }
  FAIL("no row " << check);
  return reply.checks(0);
}

TEST_CASE("Without an NVIDIA driver NVML gives zero GPUs, not a crash", "[nvml]") {
  const GpuFacts facts = ProbeGpus("/nonexistent/libnvidia-ml.so.1");
  CHECK(facts.gpus.empty());
  CHECK_FALSE(facts.nvml_loaded);
  CHECK_THAT(facts.note, Catch::Contains("no NVIDIA driver"));
}

TEST_CASE("GPU job on a GPU-less node is CRITICAL 69 naming --device cpu", "[agent]") {
  const NodeAgent agent("/nonexistent/libnvidia-ml.so.1");
  const v1::ProbeReply reply = agent.Probe(Request(v1::DEVICE_GPU, {0, 1}));
  const v1::Check& row = Row(reply, "gpu_count");
  CHECK(row.status() == v1::CHECK_STATUS_CRITICAL);
  CHECK(row.exit_code() == 69);
  CHECK(row.node() == "node-a");
  CHECK_THAT(row.detail(), Catch::Contains("--device cpu"));
}

TEST_CASE("CPU job needs no GPU and warns when ranks outnumber cores", "[agent]") {
  const NodeAgent agent("/nonexistent/libnvidia-ml.so.1");
  const v1::ProbeReply ok = agent.Probe(Request(v1::DEVICE_CPU, {0}));
  CHECK(Row(ok, "cpu_slots").status() == v1::CHECK_STATUS_OK);
  std::vector<int> many(static_cast<size_t>(sysconf(_SC_NPROCESSORS_ONLN)) + 1);
  const v1::ProbeReply over = agent.Probe(Request(v1::DEVICE_CPU, many));
  CHECK(Row(over, "cpu_slots").status() == v1::CHECK_STATUS_WARN);
  CHECK(ok.host_memory_total_bytes() > 0);
  CHECK(ok.cpu_count() >= 1);
}

TEST_CASE("Fake NVML (test double): GPU count, model and NVLink/PCIe matrix", "[agent][fake]") {
  setenv("ZR_FAKE_NVML_GPUS", "4", 1);
  const GpuFacts facts = ProbeGpus(ZR_TEST_FAKE_NVML);
  REQUIRE(facts.gpus.size() == 4);
  CHECK(facts.driver_version == "fake-550.54");
  CHECK(facts.gpus[2].memory_total_bytes() == 80ull << 30);
  REQUIRE(facts.topology.size() == 4);
  CHECK(facts.topology[0].links(0) == "X");
  CHECK(facts.topology[0].links(1) == "NV4");
  CHECK(facts.topology[1].links(0) == "NV4");
  CHECK(facts.topology[0].links(2) == "SYS");
  CHECK(facts.topology[2].links(3) == "NV4");

  const NodeAgent agent(ZR_TEST_FAKE_NVML);
  const v1::ProbeReply pair = agent.Probe(Request(v1::DEVICE_GPU, {0, 1}));
  CHECK(Row(pair, "gpu_count").status() == v1::CHECK_STATUS_OK);
  CHECK(Row(pair, "gpu_topology").detail() == "GPU0[X NV4] GPU1[NV4 X]");
  CHECK(Row(pair, "gpu_topology").status() == v1::CHECK_STATUS_OK);
  const v1::ProbeReply cross = agent.Probe(Request(v1::DEVICE_GPU, {1, 2}));
  CHECK(Row(cross, "gpu_topology").status() == v1::CHECK_STATUS_WARN);

  const v1::ProbeReply missing = agent.Probe(Request(v1::DEVICE_GPU, {0, 5, 6}));
  CHECK(Row(missing, "gpu_count").status() == v1::CHECK_STATUS_CRITICAL);
  CHECK_THAT(Row(missing, "gpu_count").detail(), Catch::Contains("slot(s) 5,6"));
}

TEST_CASE("Fake NVML (test double): GPU memory against the per-GPU estimate", "[agent][fake]") {
  setenv("ZR_FAKE_NVML_GPUS", "2", 1);
  const NodeAgent agent(ZR_TEST_FAKE_NVML);
  v1::ProbeRequest r = Request(v1::DEVICE_GPU, {0, 1});
  r.set_gpu_memory_required_bytes(100ull << 30);
  CHECK(Row(agent.Probe(r), "gpu_memory").status() == v1::CHECK_STATUS_CRITICAL);
  r.set_gpu_memory_required_bytes(10ull << 30);
  CHECK(Row(agent.Probe(r), "gpu_memory").status() == v1::CHECK_STATUS_OK);
}

TEST_CASE("Host memory: UNKNOWN without an estimate, CRITICAL when short", "[agent]") {
  const NodeAgent agent("/nonexistent");
  v1::ProbeRequest r = Request(v1::DEVICE_CPU, {0});
  CHECK(Row(agent.Probe(r), "host_memory").status() == v1::CHECK_STATUS_UNKNOWN);
  r.set_host_memory_required_bytes(1ull << 50);
  const v1::Check row = Row(agent.Probe(r), "host_memory");
  CHECK(row.status() == v1::CHECK_STATUS_CRITICAL);
  CHECK(row.exit_code() == 69);
  r.set_host_memory_required_bytes(1 << 20);
  CHECK(Row(agent.Probe(r), "host_memory").status() == v1::CHECK_STATUS_OK);
}

v1::ProbeReply ProbeNvme(const std::string& path, uint64_t required) {
  v1::ProbeRequest r = Request(v1::DEVICE_CPU, {0});
  v1::PathRequirement* p = r.add_paths();
  p->set_key("nvme_path");
  p->set_path(path);
  p->set_must_exist(true);
  p->set_needs_o_direct(true);
  p->set_required_bytes(required);
  p->set_size_formula("test formula");
  return NodeAgent("/nonexistent").Probe(r);
}

TEST_CASE("Missing nvme_path is CRITICAL 66 and is not created", "[agent][paths]") {
  TempDir dir;
  const std::string path = dir.path() + "/nvme/swap";
  const v1::Check row = Row(ProbeNvme(path, 0), "nvme_path");
  CHECK(row.status() == v1::CHECK_STATUS_CRITICAL);
  CHECK(row.exit_code() == 66);
  CHECK_THAT(row.detail(), Catch::Contains("never creates it"));
  struct stat st {};
  CHECK(stat(path.c_str(), &st) != 0);
  CHECK(dir.Listing().empty());
}

TEST_CASE("nvme_path that is a file, or unwritable, is CRITICAL", "[agent][paths]") {
  TempDir dir;
  const std::string file = dir.Write("not-a-dir", "x");
  CHECK_THAT(Row(ProbeNvme(file, 0), "nvme_path").detail(), Catch::Contains("not a directory"));
  if (geteuid() != 0) {  // root writes anywhere; the check is meaningful for other users.
    const std::string ro = dir.path() + "/ro";
    REQUIRE(mkdir(ro.c_str(), 0500) == 0);
    CHECK_THAT(Row(ProbeNvme(ro, 0), "nvme_path").detail(), Catch::Contains("not writable"));
  }
}

TEST_CASE("nvme_path on ext4 with room is OK, too little room CRITICAL, and the probe file removed",
          "[agent][paths]") {
  TempDir dir;
  const PathFacts facts = ProbePath(dir.path(), true);
  REQUIRE(facts.writable);
  if (facts.fs_type == "tmpfs") return;  // TMPDIR on RAM: covered by the tmpfs case below.
  CHECK(facts.o_direct);
  CHECK(Row(ProbeNvme(dir.path(), 1 << 20), "nvme_path").status() == v1::CHECK_STATUS_OK);
  const v1::Check big = Row(ProbeNvme(dir.path(), 1ull << 60), "nvme_path");
  CHECK(big.status() == v1::CHECK_STATUS_CRITICAL);
  CHECK_THAT(big.detail(), Catch::Contains("test formula"));
  CHECK(Row(ProbeNvme(dir.path(), 0), "nvme_path").status() == v1::CHECK_STATUS_UNKNOWN);
  CHECK(dir.Listing().empty());
}

TEST_CASE("nvme_path on tmpfs is a WARN: it swaps to RAM", "[agent][paths]") {
  struct stat st {};
  if (stat("/dev/shm", &st) != 0) return;
  const v1::Check row = Row(ProbeNvme("/dev/shm", 1 << 20), "nvme_path");
  if (ProbePath("/dev/shm", false).fs_type != "tmpfs") return;
  CHECK(row.status() == v1::CHECK_STATUS_WARN);
  CHECK_THAT(row.detail(), Catch::Contains("RAM"));
}

TEST_CASE("nvme_path on a filesystem without O_DIRECT (ramfs, as root) is CRITICAL",
          "[agent][paths]") {
  if (geteuid() != 0) {
    WARN("not root: cannot mount ramfs, O_DIRECT rejection not exercised");
    return;
  }
  TempDir dir;
  REQUIRE(mount("ramfs", dir.path().c_str(), "ramfs", 0, nullptr) == 0);
  const v1::Check row = Row(ProbeNvme(dir.path(), 0), "nvme_path");
  umount(dir.path().c_str());
  CHECK(row.status() == v1::CHECK_STATUS_CRITICAL);
  CHECK_THAT(row.detail(), Catch::Contains("O_DIRECT") && Catch::Contains("ramfs"));
}

TEST_CASE("Checkpoint dir that does not exist yet is OK with its filesystem's space",
          "[agent][paths]") {
  TempDir dir;
  v1::ProbeRequest r = Request(v1::DEVICE_CPU, {0});
  v1::PathRequirement* p = r.add_paths();
  p->set_key("checkpoint_dir");
  p->set_path(dir.path() + "/out/ckpt");
  const v1::Check row = Row(NodeAgent("/nonexistent").Probe(r), "checkpoint_dir");
  CHECK(row.status() == v1::CHECK_STATUS_OK);
  CHECK_THAT(row.detail(), Catch::Contains("does not exist yet") && Catch::Contains("free"));
  CHECK(dir.Listing().empty());
}

TEST_CASE("train_bin: missing is CRITICAL 66, not executable CRITICAL 69, else its sha256",
          "[agent][train_bin]") {
  TempDir dir;
  const NodeAgent agent("/nonexistent");
  v1::ProbeRequest r = Request(v1::DEVICE_CPU, {0});
  r.set_train_bin(dir.path() + "/train");
  CHECK(Row(agent.Probe(r), "train_bin").exit_code() == 66);
  r.set_train_bin("definitely-not-a-command-zr");
  CHECK_THAT(Row(agent.Probe(r), "train_bin").detail(), Catch::Contains("not found in $PATH"));
  const std::string script = dir.Write("train.sh", "#!/bin/sh\nexit 0\n");
  r.set_train_bin(script);
  chmod(script.c_str(), 0644);  // No x bit at all: not executable, even for root.
  CHECK(Row(agent.Probe(r), "train_bin").status() == v1::CHECK_STATUS_CRITICAL);
  CHECK_THAT(Row(agent.Probe(r), "train_bin").detail(), Catch::Contains("chmod +x"));
  chmod(script.c_str(), 0755);
  const v1::ProbeReply reply = agent.Probe(r);
  CHECK(Row(reply, "train_bin").status() == v1::CHECK_STATUS_OK);
  // sha256("#!/bin/sh\nexit 0\n")
  CHECK(reply.train_bin_sha256() ==
        "306c6ca7407560340797866e077e053627ad409277d1b9da58106fce4cf717cb");
}

}  // namespace
}  // namespace zerorun::worker
