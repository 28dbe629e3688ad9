// Agree, shard names, the shard byte stream and the layout JSON shared by checkpoint save and load.
#include "ckpt/checkpoint_internal.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zerorun::ckpt {

absl::Status Agree(Communicator& comm, const absl::Status& mine, const std::string& what) {
  std::vector<float> codes(static_cast<size_t>(comm.world_size()), 0.0f);
  codes[static_cast<size_t>(comm.rank())] = static_cast<float>(mine.code());
  if (absl::Status s = comm.AllReduce(HostView(codes.data(), codes.size()), ReduceOp::kSum).Wait();
      !s.ok()) {
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

std::vector<ShardPiece> ShardPieces(const ZeroEngine& engine) {
  std::vector<ShardPiece> pieces;
  for (size_t ui = 0; ui < engine.layout().units().size(); ++ui) {
    pieces.push_back({StateArray::kMaster, ui, 0, engine.owned_count(ui), 0});
  }
  const StateStore& store = engine.state_store();
  for (StateArray array : {StateArray::kM, StateArray::kV}) {
    for (size_t k = 0; k < store.chunks(); ++k) {
      const StateLayout::Chunk& c = store.layout().chunks[k];
      pieces.push_back({array, c.unit, c.at, c.count, k});
    }
  }
  return pieces;
}

float* PieceData(ZeroEngine& engine, const ShardPiece& piece) {
  if (piece.array == StateArray::kMaster) return engine.MasterData(piece.unit);
  return static_cast<float*>(engine.state_store().Data(piece.chunk, piece.array));
}

absl::Status ReadPiece(ZeroEngine& engine, const ShardPiece& piece, float* out) {
  if (piece.array == StateArray::kMaster) return engine.ReadMasters(piece.unit, out);
  return engine.state_store().Read(piece.chunk, piece.array, out);
}

absl::Status WritePiece(ZeroEngine& engine, const ShardPiece& piece, const float* in) {
  if (piece.array == StateArray::kMaster) return engine.WriteMasters(piece.unit, in);
  return engine.state_store().Write(piece.chunk, piece.array, in);
}

ShardStream::ShardStream(ZeroEngine& engine) : engine_(engine), pieces_(ShardPieces(engine)) {
  starts_.push_back(0);
  for (const ShardPiece& p : pieces_) {
    starts_.push_back(starts_.back() + p.count * sizeof(float));
  }
}

size_t ShardStream::masters_bytes() const {
  size_t i = 0;
  while (i < pieces_.size() && pieces_[i].array == StateArray::kMaster) ++i;
  return starts_[i];
}

template <typename Fn>
absl::Status ShardStream::Visit(size_t offset, size_t n, Fn fn) {
  size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                 starts_.begin()) -
             1;
  for (size_t at = offset; at < offset + n && i < pieces_.size(); ++i) {
    const size_t len = std::min(starts_[i + 1], offset + n) - at;
    if (absl::Status s = fn(i, at - starts_[i], at - offset, len); !s.ok()) return s;
    at += len;
  }
  return absl::OkStatus();
}

absl::Status ShardStream::Fill(char* out, size_t offset, size_t n) {
  return Visit(offset, n, [&](size_t i, size_t within, size_t to, size_t len) {
    const float* src = PieceData(engine_, pieces_[i]);
    if (src == nullptr) {
      if (buffered_ != i) {
        buffer_.resize(pieces_[i].count);
        if (absl::Status s = ReadPiece(engine_, pieces_[i], buffer_.data()); !s.ok()) return s;
        buffered_ = i;
      }
      src = buffer_.data();
    }
    std::memcpy(out + to, reinterpret_cast<const char*>(src) + within, len);
    return absl::OkStatus();
  });
}

absl::Status ShardStream::Drain(const char* in, size_t offset, size_t n) {
  buffered_ = SIZE_MAX;
  return Visit(offset, n, [&](size_t i, size_t within, size_t from, size_t len) {
    if (float* dst = PieceData(engine_, pieces_[i]); dst != nullptr) {
      std::memcpy(reinterpret_cast<char*>(dst) + within, in + from, len);
      return absl::OkStatus();
    }
    buffer_.resize(pieces_[i].count);
    std::memcpy(reinterpret_cast<char*>(buffer_.data()) + within, in + from, len);
    if (starts_[i] + within + len < starts_[i + 1]) return absl::OkStatus();
    return WritePiece(engine_, pieces_[i], buffer_.data());
  });
}

absl::Status FillShard(
    ZeroEngine& engine,
    const std::function<absl::Status(const ShardPiece& piece, float* out)>& fill) {
  std::vector<float> buffer;  // A piece on NVMe.
  for (const ShardPiece& piece : ShardPieces(engine)) {
    float* out = PieceData(engine, piece);
    if (out == nullptr) {
      buffer.resize(piece.count);
      out = buffer.data();
    }
    if (absl::Status s = fill(piece, out); !s.ok()) return s;
    if (out == buffer.data()) {
      if (absl::Status s = WritePiece(engine, piece, out); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

std::string ShardName(int rank) { return absl::StrCat("zero_rank_", rank, ".bin"); }

nlohmann::json LayoutJson(const ZeroEngine& engine) {
  nlohmann::json units = nlohmann::json::array();
  for (const UnitLayout& ul : engine.layout().units()) {
    nlohmann::json tensors = nlohmann::json::array();
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

}  // namespace zerorun::ckpt
