// zerorun ckpt: inspect and verify.
#include "ckpt_cli.h"

#include "absl/strings/str_format.h"
#include "base/exit_codes.h"
#include "ckpt/manifest.h"

namespace zerorun::launcher {
namespace {

int ExitFor(const absl::Status& status) {
  return status.code() == absl::StatusCode::kNotFound ? kExitNoInput : kExitDataErr;
}

}  // namespace

int CkptInspectCommand(const std::string& dir, std::ostream& out, std::ostream& err) {
  absl::StatusOr<ckpt::Manifest> m = ckpt::ReadManifest(dir);
  if (!m.ok()) {
    err << "zerorun ckpt inspect: " << m.status().message() << "\n";
    return ExitFor(m.status());
  }
  size_t params = 0, units = 0;
  for (const nlohmann::json& unit : m->json.value("units", nlohmann::json::array())) {
    params += unit.value("numel", size_t{0});
    ++units;
  }
  uint64_t bytes = 0;
  for (const ckpt::ShardEntry& s : m->shards) bytes += s.bytes;
  out << absl::StrFormat(
      "checkpoint %s (%s)\n  tag %s, step %d, saved by zerorun %s\n  world size %d, ZeRO stage "
      "%d, working dtype %s, fp32 masters + Adam m, v\n  %zu parameters in %zu unit(s); %d "
      "shard(s), %.1f MiB\n  client state %s\n",
      m->dir, m->json.value("format", ""), m->tag, m->last_step, m->zerorun_version, m->world_size,
      m->stage, m->dtype, params, units, m->world_size, static_cast<double>(bytes) / 1048576.0,
      m->json.value("client_state", nlohmann::json::object()).dump());
  for (const ckpt::ShardEntry& s : m->shards) {
    out << absl::StrFormat("  rank %d: %s %d bytes sha256 %s\n", s.rank, s.file, s.bytes,
                           s.sha256.substr(0, 16));
  }
  return kExitOk;
}

int CkptVerifyCommand(const std::string& dir, std::ostream& out, std::ostream& err) {
  absl::StatusOr<ckpt::Manifest> m = ckpt::ReadManifest(dir);
  if (!m.ok()) {
    err << "zerorun ckpt verify: " << m.status().message() << "\n";
    return ExitFor(m.status());
  }
  for (const ckpt::ShardEntry& s : m->shards) {
    if (absl::Status status = ckpt::VerifyShard(*m, s); !status.ok()) {
      err << "zerorun ckpt verify: " << status.message() << "\n";
      return ExitFor(status);
    }
  }
  out << "zerorun ckpt verify: " << m->dir << ": " << m->shards.size()
      << " shard(s) match their size and sha256\n";
  return kExitOk;
}

}  // namespace zerorun::launcher
