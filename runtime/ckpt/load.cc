// Checkpoint loads: the manifest checked against the engine's model, then this rank's own shard
// read whole (same world size and stage) or the byte ranges it owns now read from the old shards
// (resharding), and the state restored on every rank at once.
#include "absl/strings/str_cat.h"
#include "ckpt/checkpoint_internal.h"
#include "ckpt/direct_io.h"
#include "ckpt/manifest.h"
#include "zerorun/checkpoint.h"

namespace zerorun {
namespace {

using json = nlohmann::json;

// Fills this rank's new shard (masters, m, v in its state order) from a checkpoint of another
// world size or stage: per unit, only the elements this rank owns now, from the old shards that
// hold them (`zerorun ckpt verify` checks whole files).
absl::Status Reshard(const ckpt::Manifest& m, const ZeroEngine& engine, float* out) {
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
      float* dst = out + array * n + engine.shard_offset(u);
      if (absl::Status s = reader.Read(u, begin, end, array, dst); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> LoadCheckpoint(ZeroEngine& engine, Communicator& comm,
                                           const std::string& dir, const std::string& tag_in) {
  struct Loaded {
    ckpt::AlignedBuffer shard;
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
    const size_t n = engine.shard_state().elements();
    ckpt::AlignedBuffer shard(3 * n * sizeof(float));
    if (same) {
      // Same world and stage: this rank's own file, whole, checked against its sha256.
      const ckpt::ShardEntry& shard_entry = read->shards[static_cast<size_t>(comm.rank())];
      const std::string path = absl::StrCat(where, "/", shard_entry.file);
      unsigned char digest[32];
      if (absl::StatusOr<ckpt::IoResult> io = ckpt::ReadWholeFile(path, &shard, true, digest);
          !io.ok()) {
        return io.status();
      }
      if (ckpt::HexDigest(digest, 32) != shard_entry.sha256) {
        return absl::DataLossError(absl::StrCat(path, " does not match its sha256 in ", where,
                                                "/manifest.json (corrupt)"));
      }
    } else if (absl::Status s = Reshard(*read, engine, reinterpret_cast<float*>(shard.data()));
               !s.ok()) {
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
  if (absl::Status s = ckpt::Agree(comm, loaded.status(), "loading checkpoint"); !s.ok()) return s;
  const size_t n = engine.shard_state().elements();
  const float* data = reinterpret_cast<const float*>(loaded->shard.data());
  if (absl::Status s =
          engine.RestoreShard(data, data + n, data + 2 * n, loaded->last_step, loaded->scaler);
      !s.ok()) {
    return s;
  }
  return loaded->client_state;
}

}  // namespace zerorun
