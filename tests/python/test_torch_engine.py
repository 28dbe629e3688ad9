"""zerorun.torch (issue 28): a torch model (tied embedding and head, repeated blocks, a frozen
part) trained on libzerorun's engine under the real zerorun launcher, at ZeRO stages 0-3, worlds
1-3, with and without overlap_comm and gradient accumulation, equals plain single-process torch
(the whole batch, torch.optim.AdamW, clip_grad_norm_) within the golden tests' 1e-5 after 6
steps; bad input is refused naming the fix."""
import json
import os
import subprocess

import pytest
import torch

from conftest import BUILD, PYTHON, Job, script

STEPS = 6
ADAMW = {"type": "AdamW", "params": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                     "weight_decay": 0.01}}


def config(stage, world, ga, overlap, extra=None):
    return {"train_batch_size": 12, "gradient_accumulation_steps": ga,
            "train_micro_batch_size_per_gpu": 12 // (world * ga), "gradient_clipping": 1.0,
            "optimizer": ADAMW, "zero_optimization": {"stage": stage, "overlap_comm": overlap},
            **(extra or {})}


def train(tmp_path, stage, world, ga, overlap, extra=None):
    """The engine under zerorun on `world` local ranks; rank 0's saved results."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"localhost slots={world}\n")
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(config(stage, world, ga, overlap, extra)))
    out = str(tmp_path / "engine.pt")
    job = Job(tmp_path, f"torch-s{stage}-w{world}-ga{ga}")
    job.run(["--config", str(ds), PYTHON, script("torch_tiny.py"), "engine", out, str(STEPS)],
            hostfile=str(hosts), timeout=300)
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "ref.pt")
    subprocess.run([PYTHON, script("torch_tiny.py"), "reference", out, str(STEPS),
                    json.dumps(config(0, 1, 1, False))], check=True, timeout=300)
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("stage,world,ga,overlap", [
    (0, 2, 1, False), (1, 2, 1, True), (2, 2, 1, True), (3, 2, 1, True),
    (0, 3, 2, False), (1, 3, 2, False), (2, 3, 2, False), (3, 3, 2, False), (3, 1, 2, True)])
def test_matches_single_process_torch(tmp_path, reference, stage, world, ga, overlap):
    got = train(tmp_path, stage, world, ga, overlap)
    assert sorted(got["params"]) == sorted(reference["params"])  # Trainable ones, frozen not.
    for name, want in reference["params"].items():
        diff = (got["params"][name] - want).abs().max().item()
        assert diff < 1e-5, f"{name}: max |engine - torch| = {diff}"
    for mine, theirs in zip(got["norms"], reference["norms"]):
        assert abs(mine - theirs) <= 1e-5 * max(1.0, theirs)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_16_bit_stays_near_the_fp32_run(tmp_path, reference, dtype):
    """bf16/fp16 weights (fp32 masters; fp16 with dynamic loss scaling) at stage 3 on 2 ranks:
    gradient norms within 1% and weights within 1e-2 of fp32 torch after 6 steps."""
    # fp16 from a loss scale of 2^8: DeepSpeed's default 2^16 overflows (and skips) the first
    # steps of any model, which this comparison with 6 fp32 steps would count as a difference.
    extra = {dtype: {"enabled": True, **({"initial_scale_power": 8} if dtype == "fp16" else {})}}
    got = train(tmp_path, 3, 2, 1, True, extra)
    for name, want in reference["params"].items():
        diff = (got["params"][name] - want).abs().max().item()
        assert diff < 1e-2, f"{name}: max |engine - torch| = {diff}"
    for mine, theirs in zip(got["norms"], reference["norms"]):
        assert abs(mine - theirs) <= 0.01 * theirs


def test_refuses_a_torch_optimizer_and_a_missing_config():
    env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python"))
    env.pop("ZERORUN_CONFIG", None)
    code = """
import torch, zerorun.torch
m = torch.nn.Linear(2, 2)
for kwargs in ({"optimizer": torch.optim.SGD(m.parameters(), lr=0.1), "config": {}}, {}):
    try:
        zerorun.torch.initialize(model=m, **kwargs)
    except ValueError as e:
        print("refused:", e)
"""
    done = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert "torch optimizer is not supported yet" in lines[0] and "\"optimizer\" block" in lines[0]
    assert "no config" in lines[1] and "zerorun --config" in lines[1]
