// Partition layout properties over world sizes 1-8 and uneven tensor sizes.
#include "zerorun/partition.h"

#include <catch2/catch.hpp>
#include <random>

namespace zerorun {
namespace {

std::vector<UnitSpec> RandomUnits(std::mt19937& rng) {
  std::uniform_int_distribution<int> units(1, 5), tensors(1, 6), dim(1, 97), rank2(0, 1);
  std::vector<UnitSpec> out;
  const int nu = units(rng);
  for (int u = 0; u < nu; ++u) {
    UnitSpec spec{"u" + std::to_string(u), {}};
    const int nt = tensors(rng);
    for (int t = 0; t < nt; ++t) {
      std::vector<int64_t> shape = {dim(rng)};
      if (rank2(rng)) shape.push_back(dim(rng));
      spec.tensors.push_back({"t" + std::to_string(t), shape});
    }
    out.push_back(spec);
  }
  return out;
}

TEST_CASE("Partition: aligned tensors, padded units, every element owned exactly once",
          "[partition]") {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 80; ++trial) {
    const std::vector<UnitSpec> units = RandomUnits(rng);
    for (int world = 1; world <= 8; ++world) {
      for (size_t align : {size_t{1}, size_t{4}, size_t{16}}) {
        absl::StatusOr<Layout> layout = Layout::Build(units, world, align);
        REQUIRE(layout.ok());
        size_t state = 0;
        for (const UnitLayout& u : layout->units()) {
          REQUIRE(u.padded % (world * align) == 0);
          REQUIRE(u.shard * world == u.padded);
          REQUIRE(u.shard % align == 0);
          REQUIRE(u.state_offset == state);
          state += u.shard;
          size_t end = 0;
          for (const TensorLayout& t : u.tensors) {
            REQUIRE(t.offset % align == 0);
            REQUIRE(t.offset >= end);  // No overlap, registration order.
            end = t.offset + t.numel;
          }
          REQUIRE(end <= u.padded);
          REQUIRE(u.padded - end < world * align + align * u.tensors.size());
        }
        REQUIRE(layout->state_size() == state);
        // Every tensor element is owned by exactly one rank, at distinct state indices.
        std::vector<std::vector<int>> owner(layout->units().size());
        for (size_t ui = 0; ui < layout->units().size(); ++ui) {
          owner[ui].assign(layout->units()[ui].padded, -1);
        }
        size_t owned_total = 0;
        for (int r = 0; r < world; ++r) {
          size_t last_state = 0;
          bool first = true;
          for (const OwnedSlice& s : layout->Owned(r)) {
            const UnitLayout& u = layout->units()[s.unit];
            const TensorLayout& t = u.tensors[s.tensor];
            REQUIRE(s.begin < s.end);
            REQUIRE(s.end <= t.numel);
            REQUIRE((first || s.state_index >= last_state));
            first = false;
            last_state = s.state_index + (s.end - s.begin);
            REQUIRE(s.state_index - u.state_offset ==
                    t.offset + s.begin - static_cast<size_t>(r) * u.shard);
            for (size_t e = s.begin; e < s.end; ++e) {
              REQUIRE(owner[s.unit][t.offset + e] == -1);
              owner[s.unit][t.offset + e] = r;
            }
            owned_total += s.end - s.begin;
          }
        }
        REQUIRE(owned_total == layout->num_params());
      }
    }
  }
}

TEST_CASE("Partition rejects bad input with InvalidArgument", "[partition]") {
  CHECK(Layout::Build({}, 2, 16).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Layout::Build({{"u", {}}}, 2, 16).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Layout::Build({{"u", {{"w", {0}}}}}, 2, 16).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Layout::Build({{"u", {{"w", {2}}, {"w", {3}}}}}, 2, 16).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Layout::Build({{"u", {{"w", {2}}}}}, 0, 16).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace zerorun
