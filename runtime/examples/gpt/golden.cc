// ReadGolden: a bounds-checked cursor over the whole file.
#include "golden.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace zerorun::gpt {
namespace {

class Cursor {
 public:
  Cursor(std::vector<char> bytes, std::string path) : buf_(std::move(bytes)), path_(path) {}
  absl::Status Raw(void* dst, size_t n) {
    if (n > buf_.size() - pos_) {
      return absl::DataLossError(absl::StrCat(path_, ": truncated at byte ", pos_, " (needs ", n,
                                              " more, file has ", buf_.size(), ")"));
    }
    std::memcpy(dst, buf_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Get(T* v) {
    return Raw(v, sizeof(T));
  }
  template <typename T>
  absl::Status Array(std::vector<T>* v, size_t n) {
    v->resize(n);
    return Raw(v->data(), n * sizeof(T));
  }
  bool AtEnd() const { return pos_ == buf_.size(); }
  size_t pos() const { return pos_; }

 private:
  std::vector<char> buf_;
  std::string path_;
  size_t pos_ = 0;
};

#define ZR_GOLDEN_TRY(expr)   \
  do {                        \
    absl::Status s_ = (expr); \
    if (!s_.ok()) return s_;  \
  } while (false)

}  // namespace

absl::StatusOr<Golden> ReadGolden(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("golden file ", path, " cannot be read"));
  Cursor c(std::vector<char>(std::istreambuf_iterator<char>(in), {}), path);
  char magic[8];
  ZR_GOLDEN_TRY(c.Raw(magic, 8));
  if (std::memcmp(magic, "ZRGOLD01", 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a ZRGOLD01 file"));
  }
  Golden g;
  int32_t num_tensors = 0;
  for (int32_t* field :
       {&g.vocab, &g.d_model, &g.heads, &g.layers, &g.seq, &g.batch, &g.num_steps, &num_tensors}) {
    ZR_GOLDEN_TRY(c.Get(field));
  }
  size_t total = 0;
  for (int32_t i = 0; i < num_tensors; ++i) {
    GoldenTensor t;
    int32_t len = 0, ndim = 0;
    ZR_GOLDEN_TRY(c.Get(&len));
    t.name.resize(static_cast<size_t>(len));
    ZR_GOLDEN_TRY(c.Raw(t.name.data(), t.name.size()));
    ZR_GOLDEN_TRY(c.Get(&ndim));
    ZR_GOLDEN_TRY(c.Array(&t.dims, static_cast<size_t>(ndim)));
    for (int32_t d : t.dims) t.numel *= static_cast<size_t>(d);
    total += t.numel;
    g.tensors.push_back(std::move(t));
  }
  ZR_GOLDEN_TRY(c.Array(&g.init_params, total));
  ZR_GOLDEN_TRY(c.Array(&g.tokens, static_cast<size_t>(g.num_steps) * g.batch * (g.seq + 1)));
  ZR_GOLDEN_TRY(c.Get(&g.loss0));
  ZR_GOLDEN_TRY(c.Array(&g.grads0, total));
  ZR_GOLDEN_TRY(c.Get(&g.clip_max_norm));
  for (int32_t k = 0; k < g.num_steps; ++k) {
    float loss = 0, norm = 0;
    ZR_GOLDEN_TRY(c.Get(&loss));
    ZR_GOLDEN_TRY(c.Get(&norm));
    g.losses.push_back(loss);
    g.grad_norms.push_back(norm);
  }
  int32_t snapshots = 0;
  ZR_GOLDEN_TRY(c.Get(&snapshots));
  for (int32_t s = 0; s < snapshots; ++s) {
    int32_t steps = 0;
    std::vector<float> params;
    ZR_GOLDEN_TRY(c.Get(&steps));
    ZR_GOLDEN_TRY(c.Array(&params, total));
    g.snapshots.emplace_back(steps, std::move(params));
  }
  if (!c.AtEnd()) {
    return absl::DataLossError(absl::StrCat(path, ": ", "unexpected bytes after offset ", c.pos()));
  }
  return g;
}

}  // namespace zerorun::gpt
