// Checkpoint save and load: per-rank shard files written and fsynced in a temporary directory,
// every rank's outcome and sha256 agreed through the communicator, then rank 0 writes the
// manifest and publishes the directory and `latest` by rename.
#include "zerorun/checkpoint.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/version.h"
#include "ckpt/manifest.h"
#include "nlohmann/json.hpp"
#include "zerorun/dtype.h"

namespace zerorun {
namespace {

using json = nlohmann::json;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

absl::Status FsyncPath(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : Errno("cannot fsync", path);
}

// Writes `data` to `path` and fsyncs it; Internal naming the path (ENOSPC included).
absl::Status WriteDurably(const std::string& path, const char* data, size_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", path);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const absl::Status s = Errno("cannot write", path);
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  const absl::Status s = synced ? absl::OkStatus() : Errno("cannot fsync", path);
  close(fd);
  return s;
}

// Agrees on the outcome: OK when every rank's `mine` is OK, else every rank returns an error
// with the status code of the lowest failing rank (so every rank exits alike), naming the failing
// ranks and, on those ranks, their own reason.
absl::Status Agree(Communicator& comm, const absl::Status& mine, const std::string& what) {
  std::vector<float> codes(static_cast<size_t>(comm.world_size()), 0.0f);
  codes[static_cast<size_t>(comm.rank())] = static_cast<float>(mine.code());
  if (absl::Status s = comm.AllReduce(codes.data(), codes.size(), ReduceOp::kSum); !s.ok()) {
    return s;
  }
  std::vector<int> failed;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (size_t r = 0; r < codes.size(); ++r) {
    if (codes[r] == 0.0f) continue;
    if (failed.empty()) code = static_cast<absl::StatusCode>(static_cast<int>(codes[r]));
    failed.push_back(static_cast<int>(r));
  }
  if (failed.empty()) return absl::OkStatus();
  return absl::Status(code, absl::StrCat(what, " failed on rank(s) ", absl::StrJoin(failed, ","),
                                         mine.ok() ? "" : absl::StrCat(": ", mine.message())));
}

std::string ShardName(int rank) { return absl::StrCat("zero_rank_", rank, ".bin"); }

json LayoutJson(const ZeroEngine& engine) {
  json units = json::array();
  for (const UnitLayout& ul : engine.layout().units()) {
    json tensors = json::array();
    for (const TensorLayout& t : ul.tensors) {
      tensors.push_back(
          {{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}, {"numel", t.numel}});
    }
    units.push_back({{"name", ul.name},
                     {"numel", ul.numel},
                     {"padded", ul.padded},
                     {"shard", ul.shard},
                     {"tensors", tensors}});
  }
  return units;
}

// The rank's shard: masters, m, v, each in state order.
std::vector<float> ShardBytes(const ZeroEngine& engine) {
  const ShardState& state = engine.shard_state();
  const size_t n = state.elements();
  std::vector<float> out(3 * n);
  for (size_t ui = 0; ui < engine.layout().units().size(); ++ui) {
    std::copy_n(engine.master(ui), engine.owned_count(ui), out.data() + engine.shard_offset(ui));
  }
  std::copy_n(state.exp_avg(), n, out.data() + n);
  std::copy_n(state.exp_avg_sq(), n, out.data() + 2 * n);
  return out;
}

// Fills this rank's new shard (masters, m, v in its state order) from a checkpoint of another
// world size or stage: per unit, only the elements this rank owns now, from the old shards that
// hold them (`zerorun ckpt verify` checks whole files).
absl::Status Reshard(const ckpt::Manifest& m, const ZeroEngine& engine, std::vector<float>* out) {
  const uint64_t old_elements = m.json.value("state_elements", uint64_t{0});
  for (const ckpt::ShardEntry& shard : m.shards) {
    if (shard.bytes != old_elements * 12) {
      return absl::DataLossError(absl::StrCat(m.dir, "/", shard.file, ": manifest says ",
                                              shard.bytes, " bytes, its state is ", old_elements,
                                              " elements x 12"));
    }
  }
  ckpt::ShardReader reader(m);
  const size_t n = engine.shard_state().elements();
  for (size_t u = 0; u < engine.layout().units().size(); ++u) {
    const uint64_t begin = engine.owned_begin(u), end = begin + engine.owned_count(u);
    for (int array = 0; array < 3; ++array) {
      float* dst = out->data() + array * n + engine.shard_offset(u);
      if (absl::Status s = reader.Read(u, begin, end, array, dst); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// Removes the oldest complete checkpoints of `dir` until `keep` remain (never `current`).
void PruneOld(const std::string& dir, const std::string& current, int keep) {
  std::vector<std::pair<int64_t, std::string>> tags;  // (step, tag dir)
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_directory() || entry.path().filename() == current) continue;
    absl::StatusOr<ckpt::Manifest> m = ckpt::ReadManifest(entry.path().string());
    if (m.ok()) tags.emplace_back(m->last_step, entry.path().string());
  }
  std::sort(tags.rbegin(), tags.rend());  // Newest first.
  for (size_t i = static_cast<size_t>(std::max(0, keep - 1)); i < tags.size(); ++i) {
    std::filesystem::remove_all(tags[i].second, ec);
  }
}

}  // namespace

std::string DefaultTag(int64_t step) { return absl::StrCat("global_step", step); }

absl::Status SaveCheckpoint(ZeroEngine& engine, Communicator& comm, const std::string& dir,
                            const std::string& tag, const std::string& client_state,
                            const std::string& config_json, int keep_last) {
  if (absl::Status s = engine.Sync(); !s.ok()) return s;
  const int rank = comm.rank();
  const std::string final_dir = absl::StrCat(dir, "/", tag);
  const std::string tmp_dir = absl::StrCat(final_dir, ".tmp");
  absl::Status made = absl::OkStatus();
  if (rank == 0) {
    std::error_code ec;
    std::filesystem::remove_all(tmp_dir, ec);  // A crashed earlier save of this tag.
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) made = Errno("cannot create", dir);
    if (made.ok() && mkdir(tmp_dir.c_str(), 0755) != 0) made = Errno("cannot create", tmp_dir);
  }
  if (absl::Status s = Agree(comm, made, "checkpoint " + tmp_dir); !s.ok()) return s;

  const std::vector<float> shard = ShardBytes(engine);
  const size_t bytes = shard.size() * sizeof(float);
  const std::string path = absl::StrCat(tmp_dir, "/", ShardName(rank));
  const absl::Status written =
      WriteDurably(path, reinterpret_cast<const char*>(shard.data()), bytes);
  // A failed save leaves nothing behind: the partial directory goes, earlier tags stay.
  auto discard = [&](absl::Status s) {
    if (rank == 0) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_dir, ec);
    }
    return s;
  };
  if (absl::Status s = Agree(comm, written, "writing checkpoint shards"); !s.ok()) {
    return discard(s);
  }

  // Every rank's sha256, gathered as bytes in floats (exact below 2^24).
  std::vector<float> digests(static_cast<size_t>(comm.world_size()) * 32, 0.0f);
  {
    unsigned char digest[32];
    unsigned int length = 0;
    EVP_Digest(shard.data(), bytes, digest, &length, EVP_sha256(), nullptr);
    for (int i = 0; i < 32; ++i) digests[static_cast<size_t>(rank) * 32 + i] = digest[i];
  }
  if (absl::Status s = comm.AllReduce(digests.data(), digests.size(), ReduceOp::kSum); !s.ok()) {
    return discard(s);
  }
  absl::Status published = absl::OkStatus();
  if (rank == 0) {
    json shards = json::array();
    for (int r = 0; r < comm.world_size(); ++r) {
      unsigned char d[32];
      for (int i = 0; i < 32; ++i) d[i] = static_cast<unsigned char>(digests[r * 32 + i]);
      shards.push_back({{"rank", r},
                        {"file", ShardName(r)},
                        {"bytes", bytes},
                        {"sha256", ckpt::HexDigest(d, 32)}});
    }
    const ShardState& state = engine.shard_state();
    json manifest = {
        {"format", ckpt::kFormat},
        {"format_version", ckpt::kFormatVersion},
        {"zerorun_version", ZR_VERSION},
        {"tag", tag},
        {"world_size", comm.world_size()},
        {"stage", engine.options().stage},
        {"dtype", DTypeName(engine.options().dtype)},
        {"state_elements", state.elements()},
        {"arrays", {"master_fp32", "exp_avg_fp32", "exp_avg_sq_fp32"}},
        {"last_step", state.last_step()},
        {"loss_scaler", state.scaler().Export()},
        {"units", LayoutJson(engine)},
        {"shards", shards},
        {"client_state", json::parse(client_state.empty() ? "{}" : client_state, nullptr, false)},
        {"config", json::parse(config_json.empty() ? "{}" : config_json, nullptr, false)}};
    const std::string text = manifest.dump(2) + "\n";
    const std::string manifest_path = tmp_dir + "/manifest.json";
    published = WriteDurably(manifest_path, text.data(), text.size());
    if (published.ok()) published = FsyncPath(tmp_dir);
    // Publish: an existing tag is moved aside first, so a crash leaves one of the two whole.
    const std::string old = final_dir + ".old";
    std::error_code ec;
    if (published.ok() && std::filesystem::exists(final_dir)) {
      std::filesystem::remove_all(old, ec);
      if (rename(final_dir.c_str(), old.c_str()) != 0) published = Errno("cannot move", final_dir);
    }
    if (published.ok() && rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
      published = Errno("cannot rename", tmp_dir);
    }
    const std::string latest_tmp = dir + "/latest.tmp";
    if (published.ok()) published = WriteDurably(latest_tmp, tag.data(), tag.size());
    if (published.ok() && rename(latest_tmp.c_str(), (dir + "/latest").c_str()) != 0) {
      published = Errno("cannot rename", latest_tmp);
    }
    if (published.ok()) published = FsyncPath(dir);
    std::filesystem::remove_all(old, ec);
    if (published.ok() && keep_last > 0) PruneOld(dir, tag, keep_last);
  }
  if (absl::Status s = Agree(comm, published, "publishing checkpoint " + final_dir); !s.ok()) {
    return discard(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadCheckpoint(ZeroEngine& engine, Communicator& comm,
                                           const std::string& dir, const std::string& tag_in) {
  struct Loaded {
    std::vector<float> shard;
    LossScaler scaler;
    int64_t last_step = 0;
    std::string client_state;
  };
  auto load = [&]() -> absl::StatusOr<Loaded> {
    absl::StatusOr<ckpt::Manifest> read = ckpt::ReadManifest(dir, tag_in);
    if (!read.ok()) return read.status();
    const json& m = read->json;
    const std::string& where = read->dir;
    const int world = read->world_size, stage = read->stage;
    const bool same = world == comm.world_size() && stage == engine.options().stage;
    // The model must be the same, unit by unit and tensor by tensor (offsets included: they do
    // not depend on the world size); padding and shard sizes may differ (resharding).
    const json want = LayoutJson(engine);
    const json& have = m["units"];
    for (size_t i = 0; i < want.size(); ++i) {
      const bool match = i < have.size() && have[i].value("name", "") == want[i]["name"] &&
                         have[i].value("numel", size_t{0}) == want[i]["numel"] &&
                         have[i]["tensors"] == want[i]["tensors"];
      if (!match) {
        return absl::FailedPreconditionError(absl::StrCat(
            where, " is of another model: unit ", want[i]["name"].get<std::string>(),
            i < have.size() ? absl::StrCat(" (", want[i].dump(), ") differs from the checkpoint's ",
                                           have[i].dump())
                            : " is missing there"));
      }
    }
    if (have.size() != want.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " is of another model: it has ", have.size(), " units, this one ", want.size()));
    }
    const size_t n = engine.shard_state().elements();
    std::vector<float> shard(3 * n, 0.0f);
    if (same) {
      // Same world and stage: this rank's own file, whole, checked against its sha256.
      const ckpt::ShardEntry& shard_entry = read->shards[static_cast<size_t>(comm.rank())];
      const std::string path = absl::StrCat(where, "/", shard_entry.file);
      std::ifstream file(path, std::ios::binary);
      file.read(reinterpret_cast<char*>(shard.data()),
                static_cast<std::streamsize>(shard.size() * 4));
      if (!file || file.gcount() != static_cast<std::streamsize>(shard.size() * 4) ||
          file.peek() != std::char_traits<char>::eof()) {
        return absl::DataLossError(absl::StrCat(path, " is not ", shard.size() * 4,
                                                " bytes as its manifest says (truncated?)"));
      }
      if (ckpt::BytesSha256(shard.data(), shard.size() * 4) != shard_entry.sha256) {
        return absl::DataLossError(absl::StrCat(path, " does not match its sha256 in ", where,
                                                "/manifest.json (corrupt)"));
      }
    } else if (absl::Status s = Reshard(*read, engine, &shard); !s.ok()) {
      return s;
    }
    LossScaler scaler = engine.shard_state().scaler();
    if (!scaler.Import(m.value("loss_scaler", std::vector<double>{}))) {
      return absl::DataLossError(absl::StrCat(where, "/manifest.json: bad loss_scaler"));
    }
    return Loaded{std::move(shard), scaler, read->last_step, m["client_state"].dump()};
  };
  // Every rank checks before any rank restores (RestoreShard is a collective).
  absl::StatusOr<Loaded> loaded = load();
  if (absl::Status s = Agree(comm, loaded.status(), "loading checkpoint"); !s.ok()) return s;
  const size_t n = engine.shard_state().elements();
  const float* data = loaded->shard.data();
  if (absl::Status s =
          engine.RestoreShard(data, data + n, data + 2 * n, loaded->last_step, loaded->scaler);
      !s.ok()) {
    return s;
  }
  return loaded->client_state;
}

}  // namespace zerorun
