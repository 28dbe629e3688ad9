// Agree, shard names and the layout JSON shared by checkpoint save and load.
#include "ckpt/checkpoint_internal.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zerorun::ckpt {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

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

std::vector<float*> UnitMasters(const ZeroEngine& engine,
                                const std::vector<ZeroEngine::Span>& spans) {
  const size_t units = engine.layout().units().size();
  std::vector<size_t> order;  // The units that own elements, by state offset: the spans' order.
  for (size_t u = 0; u < units; ++u) {
    if (engine.owned_count(u) > 0) order.push_back(u);
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return engine.shard_offset(a) < engine.shard_offset(b); });
  std::vector<float*> masters(units, nullptr);
  for (size_t k = 0; k < order.size(); ++k) masters[order[k]] = spans[k].data;
  return masters;
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
