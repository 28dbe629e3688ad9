// Checkpoint saves: the rank's shard copied into an aligned staging buffer and written on a
// thread, or streamed from the engine's state (from its swap files for ZeRO-Infinity), O_DIRECT
// and fsynced, in a temporary directory; every rank's outcome and sha256 agreed through
// the communicator, then rank 0 writes the manifest and publishes the directory and `latest`.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/mutex.h"
#include "base/version.h"
#include "ckpt/checkpoint_internal.h"
#include "ckpt/direct_io.h"
#include "ckpt/manifest.h"
#include "zerorun/checkpoint.h"
#include "zerorun/dtype.h"

namespace zerorun {

using json = nlohmann::json;
using ckpt::Agree;

namespace {

absl::Status FsyncPath(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : ErrnoError("cannot fsync", path);
}

// Small files (manifest, latest): written whole and fsynced.
absl::Status WriteSmallFile(const std::string& path, const std::string& text) {
  return ckpt::WriteFileFrom(path, {{text.data(), text.size()}}, /*allow_direct=*/false).status();
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

// The staging buffer of the last published save, kept for the next one of the same size: a fresh
// buffer costs populating its pages (longer than the copy into it), a kept one only the copy.
zerorun::Mutex staging_mu;
ckpt::AlignedBuffer* kept_staging ABSL_GUARDED_BY(staging_mu) = nullptr;

// A staging buffer being made ahead of the first asynchronous save (PrepareAsyncCheckpoint).
std::future<void> preparing;

ckpt::AlignedBuffer TakeStaging(size_t size) {
  if (preparing.valid()) preparing.wait();
  zerorun::MutexLock lock(&staging_mu);
  if (kept_staging != nullptr && kept_staging->size() == size) {
    ckpt::AlignedBuffer buffer = std::move(*kept_staging);
    delete kept_staging;
    kept_staging = nullptr;
    return buffer;
  }
  return ckpt::AlignedBuffer(size);
}

void KeepStaging(ckpt::AlignedBuffer buffer) {
  zerorun::MutexLock lock(&staging_mu);
  delete kept_staging;
  kept_staging = new ckpt::AlignedBuffer(std::move(buffer));
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

struct PendingSave::Impl {
  ZeroEngine* engine = nullptr;  // Synced before every collective of the save's.
  std::string dir, tag, final_dir, tmp_dir;
  SaveOptions options;
  json manifest;  // Everything but the shards (known at the snapshot).
  ckpt::AlignedBuffer shard;
  SaveStats stats;
  std::thread writer;
  std::atomic<bool> written{false};
  absl::Status write_status;  // Set by the writer before `written`.
  unsigned char digest[32] = {};
  bool finished = false;

  void Join() {
    if (writer.joinable()) writer.join();
  }
  // Collective: every rank's write is done. Agrees, gathers the digests, publishes.
  absl::Status Publish(Communicator& comm);
  absl::Status Discard(absl::Status s, int rank) {
    if (rank == 0) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_dir, ec);  // A failed save leaves nothing behind.
    }
    return s;
  }
};

PendingSave::PendingSave(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PendingSave::~PendingSave() {
  impl_->Join();
  if (impl_->finished && impl_->shard.size() > 0) KeepStaging(std::move(impl_->shard));
}
const SaveStats& PendingSave::stats() const { return impl_->stats; }
const std::string& PendingSave::path() const { return impl_->final_dir; }

absl::StatusOr<bool> PendingSave::Poll(Communicator& comm) {
  if (impl_->finished) return true;
  // The engine's gathers may still run on `comm` (overlap_comm): they go first.
  if (absl::Status s = impl_->engine->Sync(); !s.ok()) return s;
  float done = impl_->written.load() ? 1.0f : 0.0f;
  if (absl::Status s = comm.AllReduce(HostView(&done, 1), ReduceOp::kSum).Wait(); !s.ok()) return s;
  if (done < static_cast<float>(comm.world_size())) return false;
  if (absl::Status s = Wait(comm); !s.ok()) return s;
  return true;
}

absl::Status PendingSave::Wait(Communicator& comm) {
  if (impl_->finished) return absl::OkStatus();
  const PhaseClock::Scope io(&impl_->engine->clock(), Phase::kIo);
  if (absl::Status s = impl_->engine->Sync(); !s.ok()) return s;
  impl_->Join();
  impl_->finished = true;
  return impl_->Publish(comm);
}

absl::Status PendingSave::Impl::Publish(Communicator& comm) {
  const int rank = comm.rank();
  if (absl::Status s = Agree(comm, write_status, "writing checkpoint shards"); !s.ok()) {
    return Discard(s, rank);
  }
  // Every rank's sha256, gathered as bytes in floats (exact below 2^24).
  std::vector<float> digests(static_cast<size_t>(comm.world_size()) * 32, 0.0f);
  for (int i = 0; i < 32; ++i) digests[static_cast<size_t>(rank) * 32 + i] = digest[i];
  if (absl::Status s =
          comm.AllReduce(HostView(digests.data(), digests.size()), ReduceOp::kSum).Wait();
      !s.ok()) {
    return Discard(s, rank);
  }
  absl::Status published = absl::OkStatus();
  if (rank == 0) {
    json shards = json::array();
    for (int r = 0; r < comm.world_size(); ++r) {
      unsigned char d[32];
      for (int i = 0; i < 32; ++i) d[i] = static_cast<unsigned char>(digests[r * 32 + i]);
      shards.push_back({{"rank", r},
                        {"file", ckpt::ShardName(r)},
                        {"bytes", stats.bytes},
                        {"sha256", ckpt::HexDigest(d, 32)}});
    }
    manifest["shards"] = shards;
    published = WriteSmallFile(tmp_dir + "/manifest.json", manifest.dump(2) + "\n");
    if (published.ok()) published = FsyncPath(tmp_dir);
    // Publish: an existing tag is moved aside first, so a crash leaves one of the two whole.
    const std::string old = final_dir + ".old";
    std::error_code ec;
    if (published.ok() && std::filesystem::exists(final_dir)) {
      std::filesystem::remove_all(old, ec);
      if (rename(final_dir.c_str(), old.c_str()) != 0)
        published = ErrnoError("cannot move", final_dir);
    }
    if (published.ok() && rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
      published = ErrnoError("cannot rename", tmp_dir);
    }
    const std::string latest_tmp = dir + "/latest.tmp";
    if (published.ok()) published = WriteSmallFile(latest_tmp, tag);
    if (published.ok() && rename(latest_tmp.c_str(), (dir + "/latest").c_str()) != 0) {
      published = ErrnoError("cannot rename", latest_tmp);
    }
    if (published.ok()) published = FsyncPath(dir);
    std::filesystem::remove_all(old, ec);
    if (published.ok() && options.keep_last > 0) PruneOld(dir, tag, options.keep_last);
  }
  if (absl::Status s = Agree(comm, published, "publishing checkpoint " + final_dir); !s.ok()) {
    return Discard(s, rank);
  }
  return absl::OkStatus();
}

void PrepareAsyncCheckpoint(const ZeroEngine& engine) {
  if (engine.state_on_nvme()) return;  // Its saves stream (StartCheckpoint).
  const size_t bytes = 3 * engine.state_store().layout().elements() * sizeof(float);
  if (preparing.valid()) preparing.wait();
  preparing = std::async(std::launch::async, [bytes] { KeepStaging(ckpt::AlignedBuffer(bytes)); });
}

std::string DefaultTag(int64_t step) { return absl::StrCat("global_step", step); }

namespace {

// StartCheckpoint (async: a snapshot written on a thread) or the first half of SaveCheckpoint
// (written from the engine's state before returning).
absl::StatusOr<std::unique_ptr<PendingSave>> Begin(ZeroEngine& engine, Communicator& comm,
                                                   const std::string& dir, const std::string& tag,
                                                   const std::string& client_state,
                                                   const std::string& config_json,
                                                   const SaveOptions& options, bool async) {
  const PhaseClock::Scope io(&engine.clock(), Phase::kIo);  // The part the caller waits for.
  if (absl::Status s = engine.Sync(); !s.ok()) return s;
  auto impl = std::make_unique<PendingSave::Impl>();
  impl->engine = &engine;
  impl->dir = dir;
  impl->tag = tag;
  impl->options = options;
  impl->final_dir = absl::StrCat(dir, "/", tag);
  impl->tmp_dir = impl->final_dir + ".tmp";
  absl::Status made = absl::OkStatus();
  json frozen;  // Rank 0's frozen.safetensors entry.
  if (comm.rank() == 0) {
    std::error_code ec;
    std::filesystem::remove_all(impl->tmp_dir, ec);  // A crashed earlier save of this tag.
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) made = ErrnoError("cannot create", dir);
    if (made.ok() && mkdir(impl->tmp_dir.c_str(), 0755) != 0) {
      made = ErrnoError("cannot create", impl->tmp_dir);
    }
    if (made.ok() && !options.frozen.empty()) {  // The frozen parameters: small, written now.
      const std::string path = impl->tmp_dir + "/" + ckpt::kFrozenFile;
      made = WriteSmallFile(path, options.frozen);
      absl::StatusOr<std::string> sha = made.ok() ? ckpt::FileSha256(path) : made;
      if (sha.ok()) {
        frozen = {{"file", ckpt::kFrozenFile}, {"bytes", options.frozen.size()}, {"sha256", *sha}};
      }
      made = sha.status();
    }
  }
  if (absl::Status s = Agree(comm, made, "checkpoint " + impl->tmp_dir); !s.ok()) return s;

  // An asynchronous save writes a snapshot (masters, m, v: what training may change from now
  // on); a synchronous one, or one of a state on NVMe (a snapshot would need it all in memory),
  // streams the engine's state to the file before returning.
  auto stream = std::make_shared<ckpt::ShardStream>(engine);
  const size_t bytes = stream->bytes();
  if (engine.state_on_nvme()) async = false;
  impl->stats.streamed = engine.state_on_nvme();
  ckpt::FillFn fill = [stream](char* out, size_t offset, size_t n) {
    return stream->Fill(out, offset, n);
  };
  if (async) {
    const auto start = std::chrono::steady_clock::now();
    impl->shard = TakeStaging(bytes);
    if (absl::Status s = stream->Fill(impl->shard.data(), 0, bytes); !s.ok()) return s;
    impl->stats.snapshot_seconds = Since(start);
    const char* snapshot = impl->shard.data();
    fill = [snapshot](char* out, size_t offset, size_t n) {
      std::memcpy(out, snapshot + offset, n);
      return absl::OkStatus();
    };
  }
  const size_t n = engine.state_store().layout().elements();
  impl->stats.bytes = bytes;
  impl->manifest = {
      {"format", ckpt::kFormat},
      {"format_version", ckpt::kFormatVersion},
      {"zerorun_version", ZR_VERSION},
      {"tag", tag},
      {"world_size", comm.world_size()},
      {"stage", engine.options().stage},
      {"dtype", DTypeName(engine.options().dtype)},
      {"state_elements", n},
      {"arrays", {"master_fp32", "exp_avg_fp32", "exp_avg_sq_fp32"}},
      {"last_step", engine.last_step()},
      {"loss_scaler", engine.scaler().Export()},
      {"units", ckpt::LayoutJson(engine)},
      {"client_state", json::parse(client_state.empty() ? "{}" : client_state, nullptr, false)},
      {"config", json::parse(config_json.empty() ? "{}" : config_json, nullptr, false)}};
  if (!frozen.is_null()) impl->manifest["frozen"] = frozen;

  PendingSave::Impl* p = impl.get();
  const std::string path = absl::StrCat(p->tmp_dir, "/", ckpt::ShardName(comm.rank()));
  auto write = [p, path, bytes, fill] {
    absl::StatusOr<ckpt::IoResult> io =
        ckpt::WriteFile(path, bytes, fill, p->options.direct_io, p->digest);
    if (io.ok()) {
      p->stats.direct = io->direct;
      p->stats.write_seconds = io->seconds;
    }
    p->write_status = io.status();
    p->written.store(true);
  };
  if (async) {
    p->writer = std::thread(write);
  } else {
    write();
  }
  return std::make_unique<PendingSave>(std::move(impl));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PendingSave>> StartCheckpoint(
    ZeroEngine& engine, Communicator& comm, const std::string& dir, const std::string& tag,
    const std::string& client_state, const std::string& config_json, const SaveOptions& options) {
  return Begin(engine, comm, dir, tag, client_state, config_json, options, /*async=*/true);
}

absl::Status SaveCheckpoint(ZeroEngine& engine, Communicator& comm, const std::string& dir,
                            const std::string& tag, const std::string& client_state,
                            const std::string& config_json, const SaveOptions& options,
                            SaveStats* stats) {
  absl::StatusOr<std::unique_ptr<PendingSave>> pending =
      Begin(engine, comm, dir, tag, client_state, config_json, options, /*async=*/false);
  if (!pending.ok()) return pending.status();
  const absl::Status s = (*pending)->Wait(comm);
  if (stats != nullptr) *stats = (*pending)->stats();
  return s;
}

}  // namespace zerorun
