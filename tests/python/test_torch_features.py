"""zerorun.torch (issue 28), what DeepSpeed users call beyond the training loop: a torch
optimizer and scheduler, param groups, GatheredParameters, DeepSpeed's engine on the same script
and its checkpoints going on on zerorun, consolidation for from_pretrained, the data loader,
zero_init."""
import json
import os
import subprocess

import pytest
import torch

from conftest import BUILD, PYTHON, ZERORUN, Job, script
from torch_engine_helpers import STEPS, assert_close, config, reference_of, train


def test_a_torch_adamw_and_lr_scheduler(tmp_path):
    """initialize(optimizer=torch AdamW, lr_scheduler=LambdaLR) and no "optimizer" block: the
    engine runs the optimizer's hyper-parameters at the lr the scheduler sets, stepping it after
    each step; equal to torch with the same scheduler within 1e-5 (stage 3, 2 ranks)."""
    want = reference_of(tmp_path, extra={"scheduled": True})
    got = train(tmp_path, 3, 2, 1, True, env={"ZR_TINY_TORCH_OPT": "1"}, drop=("optimizer",))
    assert_close(got, want)


@pytest.mark.parametrize("stage", [2, 3])
def test_gathered_parameters(tmp_path, stage):
    """GatheredParameters on 2 ranks: the whole weight inside the block (stage 3 gathers it),
    and with modifier_rank=0 rank 0's values become every rank's, masters included."""
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost slots=2\n")
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(config(stage, 2, 1, True)))
    out = str(tmp_path / "gathered")
    Job(tmp_path, f"torch-gathered-s{stage}").run(
        ["--config", str(ds), PYTHON, script("torch_tiny.py"), "gathered", out],
        hostfile=str(hosts), timeout=300)
    ranks = [json.load(open(f"{out}.{r}")) for r in range(2)]
    for r in ranks:
        assert r["whole"] is True
        assert r["after"] == [1.0]  # Rank 0 wrote 1, rank 1 wrote 2: rank 0's won everywhere.
    assert ranks[0]["norm"] == ranks[1]["norm"]


def test_param_groups_with_their_own_weight_decay(tmp_path):
    """HF Trainer's decay / no-decay param groups in a torch AdamW: the engine applies each
    parameter's weight decay; equal to torch with the same groups (stage 2, 2 ranks, GA 2)."""
    want = reference_of(tmp_path, extra={"groups": True})
    got = train(tmp_path, 2, 2, 2, True, env={"ZR_TINY_TORCH_OPT": "groups"}, drop=("optimizer",))
    assert_close(got, want)


@pytest.mark.parametrize("stage,dtype", [(2, "fp32"), (3, "fp32"), (2, "bf16"), (3, "bf16")])
def test_same_losses_as_deepspeed(tmp_path, stage, dtype):
    """The same script and seed on DeepSpeed's engine (pinned, CPU accelerator) and on
    zerorun.torch, 2 ranks: rank 0's losses and the gradient norms agree within 1e-5 in fp32;
    in bf16 the norms within 1% and the losses within 2% (a bf16 loss near 12 moves in steps of
    0.0625, and the two engines round 16-bit gradients at different points)."""
    extra = {"bf16": {"enabled": True}} if dtype == "bf16" else {}
    got = train(tmp_path, stage, 2, 1, True, extra=extra)
    ds = tmp_path / "ds.json"  # train() wrote it: DeepSpeed reads the file as written.
    out = str(tmp_path / "deepspeed.pt")
    hosts = tmp_path / "hosts"
    Job(tmp_path, f"torch-ds-s{stage}-{dtype}",
        env={"ZR_TINY_DS_CONFIG": str(ds), "TORCH_EXTENSIONS_DIR":
             os.path.join(BUILD, "torch_extensions")}).run(
        ["--config", str(ds), PYTHON, script("torch_tiny.py"), "deepspeed", out, str(STEPS)],
        hostfile=str(hosts), timeout=600)
    theirs = torch.load(out, weights_only=True)
    assert len(got["losses"]) == len(theirs["losses"]) == STEPS
    for key, tol in (("losses", 1e-5 if dtype == "fp32" else 2e-2),
                     ("norms", 1e-5 if dtype == "fp32" else 1e-2)):
        for mine, ref in zip(got[key], theirs[key]):
            assert abs(mine - ref) <= tol * abs(ref), (key, got[key], theirs[key])


def test_consolidated_checkpoint_loads_with_from_pretrained(tmp_path):
    """A GPT-2 with a frozen part trained at stage 3 on 2 ranks, saved, `zerorun ckpt
    consolidate`d into the model's own state_dict names: transformers' from_pretrained loads it
    (no missing or unexpected keys) with exactly the engine's weights and the frozen ones."""
    from transformers import GPT2LMHeadModel

    hosts = tmp_path / "hosts"
    hosts.write_text("localhost slots=2\n")
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(config(3, 2, 1, True)))
    job = Job(tmp_path, "torch-consolidate")
    job.run(["--config", str(ds), PYTHON, script("torch_hf_save.py"), str(tmp_path)],
            hostfile=str(hosts), timeout=300)
    done = job.zerorun("ckpt", "consolidate", str(tmp_path / "ckpt"), "--out",
                       str(tmp_path / "hf" / "model.safetensors"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    model, info = GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [], info
    full = torch.load(str(tmp_path / "engine.pt"), weights_only=True)
    assert "transformer.wpe.weight" in full and "transformer.h.0.ln_1.bias" in full
    state = model.state_dict()
    for name, value in full.items():
        assert torch.equal(state[name], value), name
    # The frozen tensors' file is checked like a shard.
    ckpt = str(tmp_path / "ckpt")
    done = job.zerorun("ckpt", "verify", ckpt, timeout=120)
    assert done.returncode == 0 and "and the frozen tensors match" in done.stdout, done.stdout
    with open(tmp_path / "ckpt" / "global_step3" / "frozen.safetensors", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    done = job.zerorun("ckpt", "verify", ckpt, timeout=120)
    assert done.returncode == 65 and "frozen.safetensors does not match" in done.stderr


def test_training_data_loader(tmp_path):
    """initialize(training_data=...) gives each of 2 ranks DeepSpeed's share: micro batches of
    the config's size, the ranks' samples disjoint and together the whole dataset."""
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost slots=2\n")
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(config(2, 2, 1, True)))  # Micro batch 6.
    code = f"""
import json, os, torch, zerorun.torch
engine, _, loader, _ = zerorun.torch.initialize(
    model=torch.nn.Linear(2, 2), training_data=torch.utils.data.TensorDataset(torch.arange(24)))
seen = [b[0].tolist() for b in loader]
json.dump(seen, open(os.path.join({str(tmp_path)!r}, "seen.%d" % engine.global_rank), "w"))
"""
    Job(tmp_path, "torch-loader").run(["--config", str(ds), PYTHON, "-c", code],
                                      hostfile=str(hosts), timeout=300)
    seen = [json.load(open(tmp_path / f"seen.{r}")) for r in range(2)]
    for batches in seen:
        assert [len(b) for b in batches] == [6, 6]
    flat = [sorted(sum(batches, [])) for batches in seen]
    assert not set(flat[0]) & set(flat[1])
    assert sorted(flat[0] + flat[1]) == list(range(24))


@pytest.mark.parametrize("kind", ["tiny", "gpt2", "llama"])
def test_zero_init(tmp_path, kind):
    """A model built under zerorun.torch.zero_init() (every parameter on the meta device) is made
    one unit at a time at initialize (stage 3, 2 ranks): constants as registered (norms: 1 and
    0), the rest as the model initialises it (transformers: std 0.02), nothing left unset, and
    training from those weights equals torch started from them within 1e-5."""
    env = {"ZR_TINY_MODEL": kind}
    got = train(tmp_path, 3, 2, 1, True, env={**env, "ZR_TINY_ZERO_INIT": "1"})
    init = got["init"]
    assert not any(torch.isnan(v).any() for v in init.values())
    for name, v in init.items():
        if name.endswith("norm.weight") or ".ln_" in name and name.endswith("weight"):
            assert torch.all(v == 1.0), name
        if kind != "tiny" and v.dim() == 2 and "wpe" not in name:
            assert 0.012 < v.std().item() < 0.028, (name, v.std().item())
    torch.save({"init": init}, str(tmp_path / "init.pt"))
    want = reference_of(tmp_path, env={**env, "ZR_TINY_INIT": str(tmp_path / "init.pt")})
    assert_close(got, want)




@pytest.mark.parametrize("ds_stage", [2, 3])
def test_a_deepspeed_checkpoint_goes_on_on_zerorun(tmp_path, ds_stage):
    """3 steps on DeepSpeed's engine (ZeRO-2 or ZeRO-3, 2 ranks) and its checkpoint; zerorun.torch
    on 3 ranks at stage 3 loads it (masters, Adam's state, step) and trains to 6: within 1e-5 of
    6 steps of single-process torch."""
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(config(ds_stage, 2, 1, True)))
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost slots=2\n")
    ckpt = str(tmp_path / "ds_ckpt")
    Job(tmp_path, f"torch-dsckpt-s{ds_stage}",
        env={"ZR_TINY_DS_CONFIG": str(ds), "ZR_TINY_DS_SAVE": ckpt,
             "TORCH_EXTENSIONS_DIR": os.path.join(BUILD, "torch_extensions")}).run(
        ["--config", str(ds), PYTHON, script("torch_tiny.py"), "deepspeed",
         str(tmp_path / "deepspeed.pt"), "3"], hostfile=str(hosts), timeout=600)
    want = reference_of(tmp_path)
    got = train(tmp_path, 3, 3, 1, False, env={"ZR_TINY_DS_LOAD": ckpt}, name="from-deepspeed")
    assert got["resumed"] == 3
    assert_close(got, want)
    # The same through `zerorun ckpt import` (the step and client_state {"at": 3} carried), then
    # resumed on 2 ranks at stage 2 as a checkpoint of zerorun's own.
    env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python"))
    imported = str(tmp_path / "imported")
    run = subprocess.run([ZERORUN, "ckpt", "import", ckpt, "--out", imported, "--python", PYTHON],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "with Adam's state, step 3" in run.stdout, run.stdout
    got = train(tmp_path, 2, 2, 1, False, env={"ZR_TINY_LOAD": imported}, name="imported")
    assert got["resumed"] == 3
    assert_close(got, want)
    # Adam's state for some tensors only: every rank refuses the file before reading, naming
    # a tensor without it.
    from safetensors.torch import load_file, save_file

    whole = os.path.join(imported, "imported", "weights.safetensors")
    tensors = load_file(whole)
    dropped = sorted(k for k in tensors if k.startswith("exp_avg_sq:"))[0]
    del tensors[dropped]
    del tensors["exp_avg:" + dropped[len("exp_avg_sq:"):]]
    partial = str(tmp_path / "partial.safetensors")
    save_file(tensors, partial, metadata={"format": "pt"})
    run = subprocess.run([ZERORUN, "ckpt", "import", partial, "--out", str(tmp_path / "partial")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    hosts = tmp_path / "hosts"
    hosts.write_text("localhost slots=2\n")
    ds = tmp_path / "partial.json"
    ds.write_text(json.dumps(config(2, 2, 1, False)))
    done = Job(tmp_path, "torch-partial-adam", env={"ZR_TINY_LOAD": str(tmp_path / "partial")}).run(
        ["--config", str(ds), PYTHON, script("torch_tiny.py"), "engine", str(tmp_path / "p.pt"),
         "3"], hostfile=str(hosts), check=False, timeout=300)
    assert done.returncode != 0
    assert "holds Adam's state" in done.stderr and dropped[len("exp_avg_sq:"):] in done.stderr, \
        done.stderr[-3000:]
    # Not a DeepSpeed checkpoint: exit 66 naming it, nothing made.
    run = subprocess.run([ZERORUN, "ckpt", "import", str(tmp_path), "--out",
                          str(tmp_path / "nothing"), "--python", PYTHON],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 66, run.stderr
    assert "no DeepSpeed checkpoint" in run.stderr and str(tmp_path) in run.stderr
    assert not os.listdir(tmp_path / "nothing")
