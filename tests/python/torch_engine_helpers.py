"""Shared by the zerorun.torch tests (test_torch_engine.py, test_torch_features.py): the
config, a training run of scripts/torch_tiny.py under the real launcher, the single-process torch
reference and the comparison."""
import json
import os
import subprocess

import torch

from conftest import PYTHON, Job, script

STEPS = 6
ADAMW = {"type": "AdamW", "params": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                     "weight_decay": 0.01}}


def config(stage, world, ga, overlap, extra=None):
    """A DeepSpeed config for the tiny model's global batch of 12; at stage 3 every unit is
    sharded (stage3_param_persistence_threshold 0: DeepSpeed's 1e5 would keep these small units
    whole)."""
    zero = {"stage": stage, "overlap_comm": overlap}
    if stage == 3:
        zero["stage3_param_persistence_threshold"] = 0
    return {"train_batch_size": 12, "gradient_accumulation_steps": ga,
            "train_micro_batch_size_per_gpu": 12 // (world * ga), "gradient_clipping": 1.0,
            "optimizer": ADAMW, "zero_optimization": zero, **(extra or {})}


def train(tmp_path, stage, world, ga, overlap, extra=None, env=None, name="engine", drop=(),
          status=None):
    """The engine under zerorun on `world` local ranks; rank 0's saved results. `drop`: config
    keys left out; `status`: a list to receive `zerorun status --json` after the job."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"localhost slots={world}\n")
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({k: v for k, v in config(stage, world, ga, overlap, extra).items()
                              if k not in drop}))
    out = str(tmp_path / f"{name}.pt")
    job = Job(tmp_path, f"torch-{name}-s{stage}-w{world}-ga{ga}", env=env)
    job.run(["--config", str(ds), PYTHON, script("torch_tiny.py"), "engine", out, str(STEPS)],
            hostfile=str(hosts), timeout=300)
    if status is not None:
        status.append(job.status())
    return torch.load(out, weights_only=True)


def reference_of(tmp_path, extra=None, env=None):
    """Single-process torch on the whole batch (ZR_TINY_MODEL in env picks the model)."""
    out = str(tmp_path / "ref.pt")
    subprocess.run([PYTHON, script("torch_tiny.py"), "reference", out, str(STEPS),
                    json.dumps({**config(0, 1, 1, False), **(extra or {})})], check=True,
                   timeout=300, env=dict(os.environ, **(env or {})))
    return torch.load(out, weights_only=True)


def assert_close(got, want, tol=1e-5):
    assert sorted(got["params"]) == sorted(want["params"])  # Trainable ones, frozen not.
    for name, ref in want["params"].items():
        diff = (got["params"][name] - ref).abs().max().item()
        assert diff < tol, f"{name}: max |engine - torch| = {diff}"
