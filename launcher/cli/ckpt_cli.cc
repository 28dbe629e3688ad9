// zerorun ckpt: inspect, verify, consolidate and import.
#include "cli/ckpt_cli.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/exit_codes.h"
#include "base/version.h"
#include "ckpt/consolidate.h"
#include "ckpt/manifest.h"
#include "ckpt/safetensors.h"
#include "zerorun/dtype.h"

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
  if (m->json.value("kind", "") == "weights") {
    out << absl::StrFormat(
        "checkpoint %s (%s)\n  tag %s: initial weights imported from %s (%d tensors, %.1f MiB), "
        "by zerorun %s\n",
        m->dir, m->json.value("format", ""), m->tag, m->json.value("source", "?"),
        m->json.value("tensors", 0), static_cast<double>(bytes) / 1048576.0, m->zerorun_version);
    return kExitOk;
  }
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
  std::vector<ckpt::ShardEntry> files = m->shards;
  if (m->frozen.has_value()) files.push_back(*m->frozen);
  for (const ckpt::ShardEntry& s : files) {
    if (absl::Status status = ckpt::VerifyShard(*m, s); !status.ok()) {
      err << "zerorun ckpt verify: " << status.message() << "\n";
      return ExitFor(status);
    }
  }
  out << "zerorun ckpt verify: " << m->dir << ": " << m->shards.size() << " shard(s)"
      << (m->frozen.has_value() ? " and the frozen tensors" : "")
      << " match their size and sha256\n";
  return kExitOk;
}

int CkptConsolidateCommand(const std::string& dir, const std::string& out_path,
                           const std::string& dtype, std::ostream& out, std::ostream& err) {
  if (dtype != "fp32" && dtype != "bf16") {
    err << "zerorun ckpt consolidate: --dtype " << dtype << " is not fp32 or bf16\n";
    return kExitUsage;
  }
  const bool bf16 = dtype == "bf16";
  absl::StatusOr<ckpt::Manifest> m = ckpt::ReadManifest(dir);
  if (!m.ok()) {
    err << "zerorun ckpt consolidate: " << m.status().message() << "\n";
    return ExitFor(m.status());
  }
  absl::StatusOr<ckpt::Consolidated> weights = ckpt::ConsolidateWeights(*m, bf16);
  if (!weights.ok()) {
    err << "zerorun ckpt consolidate: " << weights.status().message() << "\n";
    return ExitFor(weights.status());
  }
  const std::string& file = weights->file;
  const std::string tmp = out_path + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    o.write(file.data(), static_cast<std::streamsize>(file.size()));
    if (!o.flush()) {
      err << "zerorun ckpt consolidate: cannot write " << tmp << "\n";
      std::remove(tmp.c_str());
      return kExitCantCreate;
    }
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    err << "zerorun ckpt consolidate: cannot rename " << tmp << " to " << out_path << "\n";
    return kExitCantCreate;
  }
  out << "zerorun ckpt consolidate: " << m->dir << " -> " << out_path << " (" << weights->tensors
      << " " << dtype << " tensors, " << weights->data_bytes << " bytes of weights)\n";
  return kExitOk;
}

namespace {

// Runs `python -m zerorun.torch.deepspeed_ckpt dir out` (its stdout and stderr are ours); returns
// its exit status, 127 when it cannot be started.
int ConvertDeepSpeed(const std::string& python, const std::string& dir, const std::string& out) {
  std::vector<std::string> args = {python, "-m", "zerorun.torch.deepspeed_ckpt", dir, out};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int CkptImportCommand(const std::string& source, const std::string& out_dir, const std::string& tag,
                      const std::string& python, std::ostream& out, std::ostream& err) {
  const std::string what = "zerorun ckpt import: ";
  std::error_code ec;
  const bool deepspeed = std::filesystem::is_directory(source, ec);
  if (!deepspeed) {  // A safetensors file: checked before anything is made.
    absl::StatusOr<ckpt::SafetensorsFile> weights = ckpt::SafetensorsFile::Open(source);
    if (!weights.ok()) {
      err << what << weights.status().message() << "\n";
      return ExitFor(weights.status());
    }
  }
  if (std::filesystem::exists(out_dir + "/latest", ec)) {
    err << what << out_dir << " already holds checkpoints (it has a latest); nothing was written. "
        << "Fix: import into a new or empty directory\n";
    return kExitCantCreate;
  }
  const std::string final_dir = out_dir + "/" + tag, tmp = final_dir + ".tmp";
  if (std::filesystem::exists(final_dir, ec)) {
    err << what << final_dir << " exists; nothing was written. Fix: --tag another name\n";
    return kExitCantCreate;
  }
  std::filesystem::create_directories(out_dir, ec);
  std::filesystem::remove_all(tmp, ec);
  const std::string copy = tmp + "/weights.safetensors";
  if (!std::filesystem::create_directory(tmp, ec)) {
    err << what << "cannot create " << tmp << ": " << ec.message() << "\n";
    return kExitCantCreate;
  }
  if (deepspeed) {  // Torch pickles: read by the zerorun package in the user's Python.
    const int rc = ConvertDeepSpeed(python, source, copy);
    if (rc != 0) {
      std::filesystem::remove_all(tmp, ec);
      if (rc == kExitNoInput || rc == kExitDataErr) return rc;
      err << what << "reading the DeepSpeed checkpoint " << source << " with " << python
          << " failed (exit " << rc << "); nothing was written. Fix: --python an interpreter "
          << "with torch and the zerorun package (pip install build/python, or "
          << "PYTHONPATH=build/python)\n";
      return kExitSoftware;
    }
  } else if (!std::filesystem::copy_file(source, copy, ec)) {
    std::filesystem::remove_all(tmp, ec);
    err << what << "cannot write " << copy << ": " << ec.message() << "\n";
    return kExitCantCreate;
  }
  absl::StatusOr<ckpt::SafetensorsFile> weights = ckpt::SafetensorsFile::Open(copy);
  absl::StatusOr<std::string> sha =
      weights.ok() ? ckpt::FileSha256(copy) : absl::StatusOr<std::string>(weights.status());
  if (!sha.ok()) {
    std::filesystem::remove_all(tmp, ec);
    err << what << sha.status().message() << "\n";
    return ExitFor(sha.status());
  }
  // A DeepSpeed checkpoint's step and client state (the converter's metadata).
  const std::map<std::string, std::string>& meta = weights->metadata();
  int64_t step = 0;
  nlohmann::json client = nlohmann::json::object();
  if (auto it = meta.find("step"); it != meta.end() && !absl::SimpleAtoi(it->second, &step)) {
    step = 0;
  }
  if (auto it = meta.find("client_state"); it != meta.end()) {
    client = nlohmann::json::parse(it->second, nullptr, false);
    if (client.is_discarded() || !client.is_object()) client = nlohmann::json::object();
  }
  const size_t tensors = weights->entries().size();
  nlohmann::json manifest = {{"format", ckpt::kFormat},
                             {"format_version", ckpt::kFormatVersion},
                             {"zerorun_version", ZR_VERSION},
                             {"kind", "weights"},
                             {"tag", tag},
                             {"source", source},
                             {"world_size", 1},
                             {"stage", 0},
                             {"dtype", "fp32"},
                             {"last_step", step},
                             {"tensors", tensors},
                             {"shards",
                              {{{"rank", 0},
                                {"file", "weights.safetensors"},
                                {"bytes", weights->file_bytes()},
                                {"sha256", *sha}}}},
                             {"client_state", client}};
  const std::string latest_tmp = out_dir + "/latest.tmp";
  bool ok = true;
  {
    std::ofstream m(tmp + "/manifest.json", std::ios::trunc);
    m << manifest.dump(2) << "\n";
    ok = static_cast<bool>(m.flush());
  }
  if (ok) ok = std::rename(tmp.c_str(), final_dir.c_str()) == 0;
  if (ok) {
    std::ofstream l(latest_tmp, std::ios::trunc);
    l << tag;
    ok = static_cast<bool>(l.flush()) &&
         std::rename(latest_tmp.c_str(), (out_dir + "/latest").c_str()) == 0;
  }
  if (!ok) {
    std::filesystem::remove_all(tmp, ec);
    err << what << "cannot write " << final_dir
        << (ec ? absl::StrCat(": ", ec.message()) : std::string()) << "\n";
    return kExitCantCreate;
  }
  out << what << source << " -> " << final_dir << " ("
      << (deepspeed ? absl::StrCat(tensors / 3, " tensors with Adam's state, step ", step)
                    : absl::StrCat(tensors, " tensors"))
      << "; train from it with --save-dir " << out_dir << " --resume)\n";
  return kExitOk;
}

}  // namespace zerorun::launcher
