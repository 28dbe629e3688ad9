// What checkpoint save and load share: agreeing on an outcome across ranks, shard file names and
// the layout every manifest records.
#ifndef ZERORUN_RUNTIME_CKPT_CHECKPOINT_INTERNAL_H_
#define ZERORUN_RUNTIME_CKPT_CHECKPOINT_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "zerorun/comm.h"
#include "zerorun/zero_engine.h"

namespace zerorun::ckpt {

// Collective. OK when every rank's `mine` is OK, else every rank returns an error with the status
// code of the lowest failing rank (so every rank exits alike), naming the failing ranks and, on
// those ranks, their own reason.
absl::Status Agree(Communicator& comm, const absl::Status& mine, const std::string& what);

// "zero_rank_<rank>.bin".
std::string ShardName(int rank);

// The engine's units and tensors (name, shape, offset, numel, padding, shard size) as JSON.
nlohmann::json LayoutJson(const ZeroEngine& engine);

// A run of floats of this rank's shard file: the fp32 masters of one unit (the engine's masters,
// wherever they live), or Adam's m or v of one chunk of the engine's state store. The file holds
// the masters unit by unit, then m, then v, each in state order.
struct ShardPiece {
  StateArray array;  // kMaster, kM or kV.
  size_t unit;
  size_t at;     // The piece's first element within the unit's owned elements.
  size_t count;  // Floats.
  size_t chunk;  // The state-store chunk (m and v).
};
std::vector<ShardPiece> ShardPieces(const ZeroEngine& engine);
// The piece's floats in memory (writable), or nullptr where they live on NVMe: then ReadPiece /
// WritePiece copy them (WritePiece of masters also rewrites the working weights).
float* PieceData(ZeroEngine& engine, const ShardPiece& piece);
absl::Status ReadPiece(ZeroEngine& engine, const ShardPiece& piece, float* out);
absl::Status WritePiece(ZeroEngine& engine, const ShardPiece& piece, const float* in);

// This rank's shard file as a byte stream over the engine's state (ShardPieces in order), for
// ReadFile / WriteFile: pieces in memory are copied straight, pieces on NVMe pass through one
// piece-sized buffer. Bytes are visited in order of offset (a rewrite from offset 0
// is allowed); not thread-safe.
class ShardStream {
 public:
  explicit ShardStream(ZeroEngine& engine);
  size_t bytes() const { return starts_.back(); }
  // The file's first bytes, up to here: the masters (m and v follow).
  size_t masters_bytes() const;
  // File bytes [offset, offset + n) from the engine's state into `out`.
  absl::Status Fill(char* out, size_t offset, size_t n);
  // File bytes [offset, offset + n) into the engine's state; a piece on NVMe is stored once its
  // last byte arrived.
  absl::Status Drain(const char* in, size_t offset, size_t n);

 private:
  // Calls fn(piece index, piece byte offset, file-relative byte, length) over [offset, offset+n).
  template <typename Fn>
  absl::Status Visit(size_t offset, size_t n, Fn fn);

  ZeroEngine& engine_;
  std::vector<ShardPiece> pieces_;
  std::vector<size_t> starts_;  // Byte offset of each piece, then the total.
  std::vector<float> buffer_;   // The piece on NVMe being read or filled.
  size_t buffered_ = SIZE_MAX;  // Which piece buffer_ holds (Fill).
};

// Fills every piece of this rank's shard (ShardPieces, in order): fill(piece, out) writes its
// count floats to `out`, the state itself where it is in memory, else a buffer then stored with
// WritePiece. Stops at the first error. ZeroEngine::FinishRestore must follow.
absl::Status FillShard(
    ZeroEngine& engine,
    const std::function<absl::Status(const ShardPiece& piece, float* out)>& fill);

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_CHECKPOINT_INTERNAL_H_
