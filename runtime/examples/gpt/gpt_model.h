// The example GPT of ../shared/golden/README.md on CPU: token + position embeddings, pre-LN
// blocks (causal multi-head attention, exact-GELU MLP), final LayerNorm, untied head; forward
// and backward by hand (llm.c style) with OpenBLAS GEMMs. Parameters live in ZeroEngine units:
// "embed" (tok, pos), "block.<i>" (12 tensors), "head" (ln_f.w, ln_f.b, head.w).
#ifndef ZERORUN_RUNTIME_EXAMPLES_GPT_GPT_MODEL_H_
#define ZERORUN_RUNTIME_EXAMPLES_GPT_GPT_MODEL_H_

#include <string>
#include <vector>

#include "zerorun/partition.h"

namespace zerorun::gpt {

struct GptConfig {
  int vocab = 64;
  int d_model = 64;
  int heads = 4;
  int layers = 2;
  int seq = 32;
};

// The engine units, tensors in the golden file's order within each unit.
std::vector<UnitSpec> GptUnits(const GptConfig& config);

// The golden file's tensor names in table order ("tok.weight", ..., "head.weight") with the unit
// and tensor index each maps to.
struct TensorRef {
  std::string name;
  size_t unit = 0;
  size_t tensor = 0;
};
std::vector<TensorRef> GoldenTensorOrder(const GptConfig& config);

// Pointers to one unit's tensors (parameters or their gradients, same layout).
using TensorPtrs = std::vector<float*>;

// Unit `unit`'s tensors inside a flat buffer `base` laid out like the unit (params or grads).
TensorPtrs UnitViews(const Layout& layout, size_t unit, float* base);

// How the model reaches its parameters: Acquire(u) returns unit u's tensor pointers, valid until
// the matching Release(u). Forward takes each unit in turn and lets it go (stage 3 gathers and
// frees it); backward does the same in reverse (the embeddings need no parameters there).
class ParamSource {
 public:
  virtual ~ParamSource() = default;
  virtual TensorPtrs Acquire(size_t unit) = 0;
  virtual void Release(size_t unit) = 0;
};

// Forward + backward for `batch` sequences of tokens[b][0..seq] (inputs t < seq, targets t+1).
// Activations are sized on first use. Grad pointers are accumulated into (+=), scaled so the
// gradient is that of the mean loss over batch x seq positions.
class GptModel {
 public:
  explicit GptModel(const GptConfig& config) : c_(config) {}

  // Returns the mean cross-entropy. params[u] / grads[u] hold unit u's tensor pointers.
  // The head's backward runs here already, chunk by chunk, so the batch's logits never exist at
  // once; gradients are those of loss_scale x the mean loss (fp16 loss scaling).
  float Forward(ParamSource& params, const int* tokens, int batch, float loss_scale = 1);
  // Must follow Forward() with the same parameters. Calls `ready(u)` once unit u's gradients are
  // complete (head first, embeddings last) so the engine can reduce them while backward goes on.
  template <typename GradsFor, typename Ready>
  void Backward(ParamSource& params, GradsFor&& grads_for, Ready&& ready);

  const GptConfig& config() const { return c_; }

 private:
  void HeadForwardBackward(const TensorPtrs& head, float loss_scale, double* loss);
  void BackwardHead(const TensorPtrs& p, const TensorPtrs& g);
  void BackwardBlock(int layer, const TensorPtrs& p, const TensorPtrs& g);
  void BackwardEmbed(const TensorPtrs& g);

  GptConfig c_;
  int batch_ = 0;
  std::vector<int> inputs_, targets_;
  // Activations (llm.c naming), sized batch x seq x ...
  // LayerNorm outputs are not kept: backward recomputes them into ln_ from the kept statistics.
  std::vector<float> encoded_, ln1_mean_, ln1_rstd_, qkv_, att_, atty_, residual2_, ln2_mean_,
      ln2_rstd_, fch_, fch_gelu_, residual3_, lnf_mean_, lnf_rstd_, ln_;
  std::vector<float> logits_;     // One chunk of rows x vocab.
  std::vector<float> head_grad_;  // d(head.weight), computed during Forward().
  // Scratch for backward.
  std::vector<float> dresidual_, dln_, dqkv_, dpreatt_, datty_;
};

template <typename GradsFor, typename Ready>
void GptModel::Backward(ParamSource& params, GradsFor&& grads_for, Ready&& ready) {
  const size_t head = static_cast<size_t>(c_.layers) + 1;
  BackwardHead(params.Acquire(head), grads_for(head));
  params.Release(head);
  ready(head);
  for (int l = c_.layers - 1; l >= 0; --l) {
    BackwardBlock(l, params.Acquire(1 + l), grads_for(1 + l));
    params.Release(1 + l);
    ready(1 + l);
  }
  BackwardEmbed(grads_for(0));
  ready(0);
}

}  // namespace zerorun::gpt

#endif  // ZERORUN_RUNTIME_EXAMPLES_GPT_GPT_MODEL_H_
