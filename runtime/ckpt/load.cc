// Checkpoint loads: the manifest checked against the engine's model, then this rank's own shard
// read whole (same world size and stage) or the byte ranges it owns now read from the old shards
// (resharding; every old shard's sha256 checked by one rank), and the state restored on every
// rank at once.
#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ckpt/checkpoint_internal.h"
#include "ckpt/direct_io.h"
#include "ckpt/manifest.h"
#include "zerorun/checkpoint.h"

namespace zerorun {
namespace {

using json = nlohmann::json;

// Fills this rank's shard (ckpt::ShardPieces) from a checkpoint of another world size or
// stage: per piece, only the elements this rank owns now, from the old shards that hold them.
// Every old shard is first checked whole against its sha256 by one rank (shard j by rank
// j % world), so a corrupt file fails the load on every rank (the caller agrees on it) at the
// cost of reading the checkpoint once more in all.
absl::Status Reshard(const ckpt::Manifest& manifest, ZeroEngine& engine, const Communicator& comm) {
  const uint64_t old_elements = manifest.json.value("state_elements", uint64_t{0});
  for (const ckpt::ShardEntry& shard : manifest.shards) {
    if (shard.bytes != old_elements * 12) {
      return absl::DataLossError(absl::StrCat(manifest.dir, "/", shard.file, ": manifest says ",
                                              shard.bytes, " bytes, its state is ", old_elements,
                                              " elements x 12"));
    }
  }
  for (size_t j = static_cast<size_t>(comm.rank()); j < manifest.shards.size();
       j += static_cast<size_t>(comm.world_size())) {
    if (absl::Status s = ckpt::VerifyShard(manifest, manifest.shards[j]); !s.ok()) return s;
  }
  ckpt::ShardReader reader(manifest);
  return ckpt::FillShard(engine, [&](const ckpt::ShardPiece& piece, float* out) {
    const uint64_t begin = engine.owned_begin(piece.unit) + piece.at;
    return reader.Read(piece.unit, begin, begin + piece.count, static_cast<int>(piece.array), out);
  });
}

}  // namespace

absl::StatusOr<std::string> LoadCheckpoint(ZeroEngine& engine, Communicator& comm,
                                           const std::string& dir, const std::string& tag_in) {
  const PhaseClock::Scope io(&engine.clock(), Phase::kIo);
  struct Loaded {
    LossScaler scaler;
    int64_t last_step = 0;
    std::string client_state;
  };
  // Every rank agrees once that the masters are in (inside the read of its own shard, right after
  // them, or after load() on any other path or error), and then rebuilds and shares the working
  // weights on a thread while m and v are still being read: the all-gather overlaps the disk.
  bool masters_agreed = false;
  absl::Status peers;  // The agreement, where it failed on another rank only.
  std::thread sharing;
  absl::Status shared;
  auto masters_in = [&](const absl::Status& mine, bool overlap) -> absl::Status {
    masters_agreed = true;
    absl::Status s = ckpt::Agree(comm, mine, "loading the masters of checkpoint " + dir);
    if (!s.ok() && mine.ok()) peers = s;
    if (s.ok() && overlap) sharing = std::thread([&] { shared = engine.RestoreWeights(); });
    return s;
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
    const json want = ckpt::LayoutJson(engine);
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
    // Read in place: the engine's own state arrays are the destination (no copy of the shard),
    // or its swap files for state on NVMe.
    if (absl::Status s = engine.Sync(); !s.ok()) return s;
    if (same) {
      // Same world and stage: this rank's own file, whole, checked against its sha256.
      const ckpt::ShardEntry& shard_entry = read->shards[static_cast<size_t>(comm.rank())];
      const std::string path = absl::StrCat(where, "/", shard_entry.file);
      ckpt::ShardStream stream(engine);
      const size_t masters = stream.masters_bytes();
      const ckpt::DrainFn drain = [&](const char* in, size_t offset, size_t n) {
        if (absl::Status s = stream.Drain(in, offset, n); !s.ok()) return s;
        if (masters_agreed || offset + n < masters) return absl::OkStatus();
        return masters_in(absl::OkStatus(), /*overlap=*/true);  // On this thread: the reader's.
      };
      unsigned char digest[32];
      if (absl::StatusOr<ckpt::IoResult> io =
              ckpt::ReadFile(path, stream.bytes(), drain, true, digest);
          !io.ok()) {
        return io.status();
      }
      if (ckpt::HexDigest(digest, 32) != shard_entry.sha256) {
        return absl::DataLossError(absl::StrCat(path, " does not match its sha256 in ", where,
                                                "/manifest.json (corrupt)"));
      }
    } else if (absl::Status s = Reshard(*read, engine, comm); !s.ok()) {
      return s;
    }
    LossScaler scaler = engine.scaler();
    if (!scaler.Import(m.value("loss_scaler", std::vector<double>{}))) {
      return absl::DataLossError(absl::StrCat(where, "/manifest.json: bad loss_scaler"));
    }
    return Loaded{scaler, read->last_step, m["client_state"].dump()};
  };
  // An imported file (zerorun ckpt import): weights (and Adam's state), every rank alike.
  absl::StatusOr<ckpt::Manifest> manifest = ckpt::ReadManifest(dir, tag_in);
  const bool weights = manifest.ok() && manifest->json.value("kind", "") == "weights";
  float votes = weights ? 1.0f : 0.0f;
  if (absl::Status s = comm.AllReduce(HostView(&votes, 1), ReduceOp::kSum).Wait(); !s.ok())
    return s;
  if (votes == static_cast<float>(comm.world_size()) && !manifest->shards.empty()) {
    // The file whole against its sha256 once (rank 0), agreed before any rank reads from it.
    const absl::Status verified = comm.rank() == 0
                                      ? ckpt::VerifyShard(*manifest, manifest->shards.front())
                                      : absl::OkStatus();
    if (absl::Status s = ckpt::Agree(comm, verified, "checking the imported weights"); !s.ok()) {
      return s;
    }
    absl::StatusOr<ImportReport> imported =
        ImportWeights(engine, comm, absl::StrCat(manifest->dir, "/", manifest->shards.front().file),
                      manifest->last_step);
    if (!imported.ok()) return imported.status();
    return manifest->json.value("client_state", nlohmann::json::object()).dump();
  }
  // Every rank's outcome is agreed before any rank finishes the restore (a collective).
  absl::StatusOr<Loaded> loaded = load();
  if (!masters_agreed) {
    const absl::Status s = masters_in(loaded.status(), /*overlap=*/false);
    if (loaded.ok() && !s.ok()) loaded = s;
  }
  const bool weights_restored = sharing.joinable();
  if (weights_restored) {
    sharing.join();
    if (loaded.ok() && !shared.ok()) loaded = shared;
  }
  // A rank stopped only by another's failure votes OK: the failing rank's vote names it.
  const absl::Status vote =
      !peers.ok() && loaded.status() == peers ? absl::OkStatus() : loaded.status();
  if (absl::Status s = ckpt::Agree(comm, vote, "loading checkpoint"); !s.ok()) return s;
  if (!loaded.ok()) return loaded.status();  // Not reached: the failing rank voted so.
  if (absl::Status s = engine.FinishRestore(loaded->last_step, loaded->scaler, weights_restored);
      !s.ok()) {
    return s;
  }
  return loaded->client_state;
}

}  // namespace zerorun
