// GPT forward/backward on CPU: llm.c's kernels, GEMMs through OpenBLAS (row-major, y = x W^T).
#include "gpt_model.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "vec_math.h"

namespace zerorun::gpt {
namespace {

constexpr float kLnEps = 1e-5f;
constexpr size_t kHeadChunk = 256;  // Rows of logits alive at once.

// Block tensors, in the golden file's order.
enum Block { kLn1W, kLn1B, kQkvW, kQkvB, kProjW, kProjB, kLn2W, kLn2B, kFc1W, kFc1B, kFc2W, kFc2B };
enum Head { kLnfW, kLnfB, kHeadW };

// out[n, oc] = inp[n, c] W[oc, c]^T (+ bias). With a bias, out starts as the bias rows and the
// GEMM adds to it (beta 1): one pass fewer than zeroing, multiplying, then adding the bias, and
// the same single rounding of acc + bias.
void MatmulForward(float* out, const float* inp, const float* w, const float* bias, int n, int c,
                   int oc) {
  if (bias != nullptr) {
    for (int i = 0; i < n; ++i) std::copy_n(bias, oc, out + static_cast<size_t>(i) * oc);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, oc, c, 1.0f, inp, c, w, c,
              bias != nullptr ? 1.0f : 0.0f, out, oc);
}

// dw += dout^T inp; dbias += column sums of dout; then dinp = dout W (overwritten), so dinp may
// be inp itself (its last use is dw).
void MatmulBackward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                    const float* w, int n, int c, int oc) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, oc, c, n, 1.0f, dout, oc, inp, c, 1.0f, dw,
              c);
  if (dbias != nullptr) {
    for (int i = 0; i < n; ++i) {
      const float* row = dout + static_cast<size_t>(i) * oc;
      for (int o = 0; o < oc; ++o) dbias[o] += row[o];
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c, oc, 1.0f, dout, oc, w, c, 0.0f, dinp,
              c);
}

// out = (inp - mean) * rstd * w + b: the forward's output, also to recompute it in backward.
void LayerNormApply(float* out, const float* inp, const float* w, const float* b, const float* mean,
                    const float* rstd, int n, int c) {
  for (int i = 0; i < n; ++i) {
    const float* x = inp + static_cast<size_t>(i) * c;
    float* y = out + static_cast<size_t>(i) * c;
    const float m = mean[i], s = rstd[i];
    for (int j = 0; j < c; ++j) y[j] = (x[j] - m) * s * w[j] + b[j];
  }
}

void LayerNormForward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                      const float* b, int n, int c) {
  for (int i = 0; i < n; ++i) {
    const float* x = inp + static_cast<size_t>(i) * c;
    float m = 0;
    for (int j = 0; j < c; ++j) m += x[j];
    m /= c;
    float v = 0;
    for (int j = 0; j < c; ++j) v += (x[j] - m) * (x[j] - m);
    v /= c;
    mean[i] = m;
    rstd[i] = 1.0f / std::sqrt(v + kLnEps);
  }
  LayerNormApply(out, inp, w, b, mean, rstd, n, c);
}

// dinp += ...; dw, db +=.
void LayerNormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                       const float* w, const float* mean, const float* rstd, int n, int c) {
  for (int i = 0; i < n; ++i) {
    const float* dy = dout + static_cast<size_t>(i) * c;
    const float* x = inp + static_cast<size_t>(i) * c;
    float* dx = dinp + static_cast<size_t>(i) * c;
    float dnorm_mean = 0, dnorm_norm_mean = 0;
    for (int j = 0; j < c; ++j) {
      const float norm = (x[j] - mean[i]) * rstd[i];
      const float dnorm = w[j] * dy[j];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= c;
    dnorm_norm_mean /= c;
    for (int j = 0; j < c; ++j) {
      const float norm = (x[j] - mean[i]) * rstd[i];
      const float dnorm = w[j] * dy[j];
      db[j] += dy[j];
      dw[j] += norm * dy[j];
      dx[j] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * rstd[i];
    }
  }
}

// qkv [b, t, 3c] -> out [b, t, c]; att [b, h, t, t] holds the causal softmax (zero above the
// diagonal). Per (b, h): S = Q K^T * scale and Y = P V are GEMMs on strided views of qkv.
void AttentionForward(float* out, float* att, const float* qkv, int batch, int seq, int c,
                      int heads) {
  const int c3 = 3 * c, hs = c / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      const float* q = qkv + static_cast<size_t>(b) * seq * c3 + h * hs;
      float* a = att + (static_cast<size_t>(b) * heads + h) * seq * seq;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seq, seq, hs, scale, q, c3, q + c, c3,
                  0.0f, a, seq);
      for (int t = 0; t < seq; ++t) {
        float* row = a + static_cast<size_t>(t) * seq;
        float max = -INFINITY;
        for (int t2 = 0; t2 <= t; ++t2) max = std::max(max, row[t2]);
        ExpShifted(row, static_cast<size_t>(t) + 1, max);
        float sum = 0;
        for (int t2 = 0; t2 <= t; ++t2) sum += row[t2];
        const float inv = 1.0f / sum;
        for (int t2 = 0; t2 <= t; ++t2) row[t2] *= inv;
        for (int t2 = t + 1; t2 < seq; ++t2) row[t2] = 0.0f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seq, hs, seq, 1.0f, a, seq, q + 2 * c,
                  c3, 0.0f, out + static_cast<size_t>(b) * seq * c + h * hs, c);
    }
  }
}

// dqkv (overwritten) from dout and the forward's att; `scratch` holds seq x seq floats.
void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* att,
                       int batch, int seq, int c, int heads, float* scratch) {
  const int c3 = 3 * c, hs = c / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      const size_t base = static_cast<size_t>(b) * seq * c3 + h * hs;
      const float* q = qkv + base;
      const float* a = att + (static_cast<size_t>(b) * heads + h) * seq * seq;
      const float* dy = dout + static_cast<size_t>(b) * seq * c + h * hs;
      float* dq = dqkv + base;
      // dV = P^T dY; dP = dY V^T.
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, seq, hs, seq, 1.0f, a, seq, dy, c, 0.0f,
                  dq + 2 * c, c3);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seq, seq, hs, 1.0f, dy, c, q + 2 * c, c3,
                  0.0f, scratch, seq);
      // Softmax backward in place: dS = P * (dP - sum_j P dP), causal part only.
      for (int t = 0; t < seq; ++t) {
        const float* p = a + static_cast<size_t>(t) * seq;
        float* d = scratch + static_cast<size_t>(t) * seq;
        float weighted = 0;
        for (int t2 = 0; t2 <= t; ++t2) weighted += p[t2] * d[t2];
        for (int t2 = 0; t2 <= t; ++t2) d[t2] = p[t2] * (d[t2] - weighted);
        for (int t2 = t + 1; t2 < seq; ++t2) d[t2] = 0.0f;
      }
      // dQ = dS K * scale; dK = dS^T Q * scale.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seq, hs, seq, scale, scratch, seq,
                  q + c, c3, 0.0f, dq, c3);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, seq, hs, seq, scale, scratch, seq, q, c3,
                  0.0f, dq + c, c3);
    }
  }
}

template <typename T>
T* At(std::vector<T>& v, size_t layer, size_t per_layer) {
  return v.data() + layer * per_layer;
}

}  // namespace

std::vector<UnitSpec> GptUnits(const GptConfig& c) {
  const int64_t v = c.vocab, d = c.d_model, t = c.seq;
  std::vector<UnitSpec> units;
  units.push_back({"embed", {{"tok.weight", {v, d}}, {"pos.weight", {t, d}}}});
  for (int l = 0; l < c.layers; ++l) {
    units.push_back({"block." + std::to_string(l),
                     {{"ln1.weight", {d}},
                      {"ln1.bias", {d}},
                      {"qkv.weight", {3 * d, d}},
                      {"qkv.bias", {3 * d}},
                      {"proj.weight", {d, d}},
                      {"proj.bias", {d}},
                      {"ln2.weight", {d}},
                      {"ln2.bias", {d}},
                      {"fc1.weight", {4 * d, d}},
                      {"fc1.bias", {4 * d}},
                      {"fc2.weight", {d, 4 * d}},
                      {"fc2.bias", {d}}}});
  }
  units.push_back({"head", {{"ln_f.weight", {d}}, {"ln_f.bias", {d}}, {"head.weight", {v, d}}}});
  return units;
}

TensorPtrs UnitViews(const Layout& layout, size_t unit, float* base) {
  TensorPtrs ptrs;
  for (const TensorLayout& t : layout.units()[unit].tensors) ptrs.push_back(base + t.offset);
  return ptrs;
}

std::vector<TensorRef> GoldenTensorOrder(const GptConfig& c) {
  std::vector<TensorRef> refs;
  const std::vector<UnitSpec> units = GptUnits(c);
  for (size_t u = 0; u < units.size(); ++u) {
    for (size_t t = 0; t < units[u].tensors.size(); ++t) {
      std::string name = units[u].tensors[t].name;
      if (units[u].name.rfind("block.", 0) == 0) {
        name = "blocks." + units[u].name.substr(6) + "." + name;
      }
      refs.push_back({name, u, t});
    }
  }
  return refs;
}

float GptModel::Forward(ParamSource& params, const int* tokens, int batch, float loss_scale) {
  const int t_len = c_.seq, c = c_.d_model, v = c_.vocab, nh = c_.heads, layers = c_.layers;
  const size_t bt = static_cast<size_t>(batch) * t_len;
  if (batch != batch_) {
    batch_ = batch;
    const size_t tt = static_cast<size_t>(batch) * nh * t_len * t_len;
    encoded_.assign(bt * c, 0);
    for (auto* buf : {&atty_, &residual2_, &residual3_}) buf->assign(layers * bt * c, 0);
    for (auto* buf : {&ln1_mean_, &ln1_rstd_, &ln2_mean_, &ln2_rstd_}) buf->assign(layers * bt, 0);
    qkv_.assign(layers * bt * 3 * c, 0);
    dpreatt_.assign(static_cast<size_t>(t_len) * t_len, 0);
    att_.assign(layers * tt, 0);
    fch_.assign(layers * bt * 4 * c, 0);
    fch_gelu_.assign(bt * 4 * c, 0);  // One layer's worth: backward recomputes it.
    lnf_mean_.assign(bt, 0);
    lnf_rstd_.assign(bt, 0);
    ln_.assign(bt * c, 0);
    logits_.assign(std::min<size_t>(bt, kHeadChunk) * v, 0);
    head_grad_.assign(static_cast<size_t>(v) * c, 0);
    for (auto* buf : {&dresidual_, &dln_, &datty_}) buf->assign(bt * c, 0);
    dqkv_.assign(bt * 3 * c, 0);
  }
  inputs_.resize(bt);
  targets_.resize(bt);
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < t_len; ++t) {
      inputs_[b * t_len + t] = tokens[b * (t_len + 1) + t];
      targets_[b * t_len + t] = tokens[b * (t_len + 1) + t + 1];
    }
  }
  const TensorPtrs embed = params.Acquire(0);
  for (size_t i = 0; i < bt; ++i) {
    const float* te = embed[0] + static_cast<size_t>(inputs_[i]) * c;
    const float* pe = embed[1] + (i % t_len) * c;
    for (int j = 0; j < c; ++j) encoded_[i * c + j] = te[j] + pe[j];
  }
  params.Release(0);
  const float* residual = encoded_.data();
  float* tmp = datty_.data();  // A backward buffer, free during forward.
  for (int l = 0; l < layers; ++l) {
    const TensorPtrs p = params.Acquire(1 + l);
    float* ln1 = ln_.data();
    float* qkv = At(qkv_, l, bt * 3 * c);
    float* atty = At(atty_, l, bt * c);
    float* res2 = At(residual2_, l, bt * c);
    float* ln2 = ln_.data();
    float* fch = At(fch_, l, bt * 4 * c);
    float* fchg = fch_gelu_.data();
    float* res3 = At(residual3_, l, bt * c);
    const size_t tt = static_cast<size_t>(batch) * nh * t_len * t_len;
    LayerNormForward(ln1, At(ln1_mean_, l, bt), At(ln1_rstd_, l, bt), residual, p[kLn1W], p[kLn1B],
                     static_cast<int>(bt), c);
    MatmulForward(qkv, ln1, p[kQkvW], p[kQkvB], static_cast<int>(bt), c, 3 * c);
    AttentionForward(atty, At(att_, l, tt), qkv, batch, t_len, c, nh);
    MatmulForward(tmp, atty, p[kProjW], p[kProjB], static_cast<int>(bt), c, c);
    for (size_t i = 0; i < bt * c; ++i) res2[i] = residual[i] + tmp[i];
    LayerNormForward(ln2, At(ln2_mean_, l, bt), At(ln2_rstd_, l, bt), res2, p[kLn2W], p[kLn2B],
                     static_cast<int>(bt), c);
    MatmulForward(fch, ln2, p[kFc1W], p[kFc1B], static_cast<int>(bt), c, 4 * c);
    Gelu(fch, fchg, bt * 4 * c);
    MatmulForward(tmp, fchg, p[kFc2W], p[kFc2B], static_cast<int>(bt), 4 * c, c);
    for (size_t i = 0; i < bt * c; ++i) res3[i] = res2[i] + tmp[i];
    residual = res3;
    params.Release(1 + l);
  }
  const TensorPtrs head = params.Acquire(1 + layers);
  LayerNormForward(ln_.data(), lnf_mean_.data(), lnf_rstd_.data(), residual, head[kLnfW],
                   head[kLnfB], static_cast<int>(bt), c);
  double loss = 0;
  HeadForwardBackward(head, loss_scale, &loss);
  params.Release(1 + layers);
  return static_cast<float>(loss / static_cast<double>(bt));
}

void GptModel::HeadForwardBackward(const TensorPtrs& head, float loss_scale, double* loss) {
  const int c = c_.d_model, v = c_.vocab;
  const size_t bt = static_cast<size_t>(batch_) * c_.seq;
  // d(scale x mean loss)/d(loss_i); with scale 1 exactly 1/bt.
  const float dloss =
      loss_scale == 1.0f ? 1.0f / static_cast<float>(bt) : loss_scale / static_cast<float>(bt);
  std::fill(head_grad_.begin(), head_grad_.end(), 0.0f);
  for (size_t r0 = 0; r0 < bt; r0 += kHeadChunk) {
    const int rows = static_cast<int>(std::min<size_t>(kHeadChunk, bt - r0));
    const float* x = ln_.data() + r0 * c;  // ln_f's output.
    MatmulForward(logits_.data(), x, head[kHeadW], nullptr, rows, c, v);
    for (int i = 0; i < rows; ++i) {
      float* row = logits_.data() + static_cast<size_t>(i) * v;
      const float max = *std::max_element(row, row + v);
      ExpShifted(row, static_cast<size_t>(v), max);
      float sum = 0;
      for (int j = 0; j < v; ++j) sum += row[j];
      const float inv = 1.0f / sum;
      const int target = targets_[r0 + i];
      *loss -= std::log(row[target] * inv);
      for (int j = 0; j < v; ++j) row[j] = row[j] * inv * dloss;  // dlogits = (p - 1[target]) dloss
      row[target] -= dloss;
    }
    // dlnf rows into dln_ (BackwardHead's input), d(head.weight) into head_grad_.
    MatmulBackward(dln_.data() + r0 * c, head_grad_.data(), nullptr, logits_.data(), x,
                   head[kHeadW], rows, c, v);
  }
}

void GptModel::BackwardHead(const TensorPtrs& p, const TensorPtrs& g) {
  const int c = c_.d_model;
  const size_t bt = static_cast<size_t>(batch_) * c_.seq;
  float* __restrict dw = g[kHeadW];
  const float* __restrict hg = head_grad_.data();
  for (size_t i = 0; i < head_grad_.size(); ++i) dw[i] += hg[i];
  const float* last = c_.layers > 0 ? At(residual3_, c_.layers - 1, bt * c) : encoded_.data();
  std::fill(dresidual_.begin(), dresidual_.end(), 0.0f);
  LayerNormBackward(dresidual_.data(), g[kLnfW], g[kLnfB], dln_.data(), last, p[kLnfW],
                    lnf_mean_.data(), lnf_rstd_.data(), static_cast<int>(bt), c);
}

void GptModel::BackwardBlock(int l, const TensorPtrs& p, const TensorPtrs& g) {
  const int c = c_.d_model, nh = c_.heads, t_len = c_.seq;
  const size_t bt = static_cast<size_t>(batch_) * t_len;
  const size_t tt = static_cast<size_t>(batch_) * nh * t_len * t_len;
  const float* residual = l == 0 ? encoded_.data() : At(residual3_, l - 1, bt * c);
  // MLP: residual3 = residual2 + fc2(gelu(fc1(ln2(residual2)))).
  // Recompute GELU(fch) rather than keep it for every layer (one layer's buffer, 4C per token);
  // the same pass turns fch, needed no more, into GELU'(fch).
  float* dgelu = At(fch_, l, bt * 4 * c);
  GeluWithGrad(dgelu, fch_gelu_.data(), dgelu, bt * 4 * c);
  float* dfch = fch_gelu_.data();  // GELU(fch), overwritten by dL/dGELU, then by dL/dfch.
  MatmulBackward(dfch, g[kFc2W], g[kFc2B], dresidual_.data(), fch_gelu_.data(), p[kFc2W],
                 static_cast<int>(bt), 4 * c, c);
  for (size_t i = 0; i < bt * 4 * c; ++i) dfch[i] *= dgelu[i];
  LayerNormApply(ln_.data(), At(residual2_, l, bt * c), p[kLn2W], p[kLn2B], At(ln2_mean_, l, bt),
                 At(ln2_rstd_, l, bt), static_cast<int>(bt), c);  // Recompute ln2.
  MatmulBackward(dln_.data(), g[kFc1W], g[kFc1B], dfch, ln_.data(), p[kFc1W], static_cast<int>(bt),
                 c, 4 * c);
  LayerNormBackward(dresidual_.data(), g[kLn2W], g[kLn2B], dln_.data(), At(residual2_, l, bt * c),
                    p[kLn2W], At(ln2_mean_, l, bt), At(ln2_rstd_, l, bt), static_cast<int>(bt), c);
  // Attention: residual2 = residual + proj(attn(qkv(ln1(residual)))).
  MatmulBackward(datty_.data(), g[kProjW], g[kProjB], dresidual_.data(), At(atty_, l, bt * c),
                 p[kProjW], static_cast<int>(bt), c, c);
  AttentionBackward(dqkv_.data(), datty_.data(), At(qkv_, l, bt * 3 * c), At(att_, l, tt), batch_,
                    t_len, c, nh, dpreatt_.data());
  LayerNormApply(ln_.data(), residual, p[kLn1W], p[kLn1B], At(ln1_mean_, l, bt),
                 At(ln1_rstd_, l, bt), static_cast<int>(bt), c);  // Recompute ln1.
  MatmulBackward(dln_.data(), g[kQkvW], g[kQkvB], dqkv_.data(), ln_.data(), p[kQkvW],
                 static_cast<int>(bt), c, 3 * c);
  LayerNormBackward(dresidual_.data(), g[kLn1W], g[kLn1B], dln_.data(), residual, p[kLn1W],
                    At(ln1_mean_, l, bt), At(ln1_rstd_, l, bt), static_cast<int>(bt), c);
}

void GptModel::BackwardEmbed(const TensorPtrs& g) {
  const int c = c_.d_model, t_len = c_.seq;
  const size_t bt = static_cast<size_t>(batch_) * t_len;
  for (size_t i = 0; i < bt; ++i) {
    float* dtok = g[0] + static_cast<size_t>(inputs_[i]) * c;
    float* dpos = g[1] + (i % t_len) * c;
    for (int j = 0; j < c; ++j) {
      dtok[j] += dresidual_[i * c + j];
      dpos[j] += dresidual_[i * c + j];
    }
  }
}

}  // namespace zerorun::gpt
