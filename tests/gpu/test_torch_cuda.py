"""GPU check (deploy/gpu_check.sh runs it with pytest on the GPU machine): zerorun.torch with the
model on a CUDA device (the engine's state in host memory, weights copied to the device, gradients
back) trains a tiny transformers GPT-2 at ZeRO stages 0-3 (world 1, one process) to within 1e-5
of plain torch (torch.optim.AdamW, clip_grad_norm_) on the same GPU after 6 steps, fp32, TF32 off;
bf16 weights stay within 2e-2. ZR_CHECK_DEVICE=cpu with ZR_TORCH_COPY_WEIGHTS=1 runs the same on
the CPU (how it was tried before a GPU was at hand)."""
import copy
import os

import pytest
import torch

# Deterministic GPU kernels (embedding backward sums with atomics otherwise): both runs must see
# the same gradients for a 1e-5 comparison after Adam's normalisation.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
torch.use_deterministic_algorithms(True, warn_only=True)
DEVICE = os.environ.get("ZR_CHECK_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
STEPS = 6
CONFIG = {"train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0,
          "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "betas": [0.9, 0.999],
                                                    "eps": 1e-8, "weight_decay": 0.01}}}


def model():
    import transformers

    torch.manual_seed(0)
    c = transformers.GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=2,
                                resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    return transformers.GPT2LMHeadModel(c)


def batches():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 512, (4, 64), generator=g).to(DEVICE) for _ in range(STEPS)]


@pytest.fixture(scope="module")
def reference():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = model().to(DEVICE)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01, foreach=False)
    for ids in batches():
        m(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return {n: p.detach().float().cpu() for n, p in m.named_parameters()}


def train(stage, extra=None):
    import zerorun.torch

    m = model().to(DEVICE)
    config = copy.deepcopy(CONFIG)
    config["zero_optimization"] = {"stage": stage, "stage3_param_persistence_threshold": 0}
    config.update(extra or {})
    engine, _, _, _ = zerorun.torch.initialize(model=m, config=config)
    assert engine.device.type == torch.device(DEVICE).type
    for ids in batches():
        loss = engine(input_ids=ids, labels=ids).loss
        assert loss.device.type == torch.device(DEVICE).type  # Computed on the device.
        engine.backward(loss)
        engine.step()
    out = dict(engine.named_full_tensors())
    engine.close()
    return out


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_matches_torch_on_the_same_device(reference, stage):
    got = train(stage)
    for name, want in reference.items():
        if name in got:  # lm_head.weight is tied to the embedding.
            diff = (got[name] - want).abs().max().item()
            assert diff < 1e-5, f"stage {stage} {name}: {diff}"


def test_bf16_stays_near(reference):
    got = train(2, {"bf16": {"enabled": True}})
    for name, want in reference.items():
        if name in got:
            diff = (got[name] - want).abs().max().item()
            assert diff < 2e-2, f"{name}: {diff}"
