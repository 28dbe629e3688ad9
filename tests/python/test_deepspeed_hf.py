"""Real DeepSpeed from PyPI (CPU accelerator) under zerorun, with DeepSpeed's own launcher as the
oracle: an HF Trainer script with --deepspeed ds.json (HF's ZeRO-2 and ZeRO-3 configs, every
value "auto") in each launch form on one host (two hosts: test_two_hosts.py). Step by step the same losses; the same rank environment for every
variable DeepSpeed's launcher sets (README: where they differ on purpose); and the "auto" values
pre-flight resolved are the ones the Trainer used."""
import json
import os

import pytest

from conftest import LOCAL2, PYTHON, SCRIPTS, processes_with, rank_results, script
from hf_deepspeed import ENV, check_same_as_deepspeed, hf_args


def check_auto_values(job, args, used):
    """Pre-flight's resolution of every "auto" equals what the Trainer filled in."""
    done = job.zerorun("preflight", "--json", "--hostfile", LOCAL2, "--device", "cpu",
                       "--hidden-size", "32", PYTHON, script("hf_gpt.py"), *args)
    report = json.loads(done.stdout)
    assert report["ok"], done.stdout
    resolved = {a["key"]: a["value"] for a in report["auto"] if a["resolved"]}
    assert resolved, report["auto"]
    for key, value in resolved.items():
        node = used
        for part in key.split("."):
            node = node[part]
        assert node == pytest.approx(value), (key, node, value)
    return resolved


# Each launch form zerorun takes for a Python program (README: launch forms). "activated": a bare
# train.py, as `deepspeed train.py` is run, with the venv first on PATH (an activated venv): the
# ranks' python3 is the venv's, as DeepSpeed's launcher uses its own interpreter.
FORMS = {
    "activated": lambda p: [p],
    "python-flag": lambda p: ["--python", PYTHON, p],
    "interpreter": lambda p: [PYTHON, "-u", p],
    "module": lambda p: [PYTHON, "-m", "hf_gpt"],
}


@pytest.mark.parametrize("form", list(FORMS))
def test_zero2_each_launch_form_matches_deepspeed(job, tmp_path, oracle, form):
    job.env.update(ENV)
    if form == "module":
        job.env["PYTHONPATH"] += ":" + SCRIPTS
    if form == "activated":
        job.env["PATH"] = os.path.dirname(PYTHON) + ":" + job.env["PATH"]
    args = hf_args(tmp_path / "out", "zero2")
    job.run(FORMS[form](script("hf_gpt.py")) + args)
    ours = rank_results(str(tmp_path / "out"))
    check_same_as_deepspeed(ours, oracle["zero2"])
    if form == "python-flag":
        resolved = check_auto_values(job, args, ours[0]["ds_config"])
        assert {"train_batch_size", "optimizer.params.lr",
                "scheduler.params.warmup_num_steps"} <= set(resolved)


def test_zero3_bf16_matches_deepspeed(job, tmp_path, oracle):
    job.env.update(ENV)
    args = hf_args(tmp_path / "out", "zero3_bf16")
    job.run(["--python", PYTHON, script("hf_gpt.py")] + args)
    ours = rank_results(str(tmp_path / "out"))
    assert ours[0]["ds_config"]["bf16"]["enabled"] is True
    assert ours[0]["ds_config"]["zero_optimization"]["stage"] == 3
    check_same_as_deepspeed(ours, oracle["zero3_bf16"])
    resolved = check_auto_values(job, args, ours[0]["ds_config"])
    assert {"bf16.enabled", "zero_optimization.reduce_bucket_size",
            "zero_optimization.stage3_prefetch_bucket_size"} <= set(resolved)
    assert processes_with(str(tmp_path / "out")) == []
