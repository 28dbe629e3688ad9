"""Real DeepSpeed from PyPI (CPU accelerator) under zerorun, with DeepSpeed's own launcher as the
oracle: an HF Trainer script with --deepspeed ds.json (HF's ZeRO-2 config with optimizer offload,
every value "auto") in each launch form on one host (ZeRO-3 bf16: test_deepspeed_zero3.py; two
hosts: test_two_hosts.py). Step by step the same losses; the same rank environment for every
variable DeepSpeed's launcher sets (README: where they differ on purpose); and the "auto" values
pre-flight resolved are the ones the Trainer used."""
import os

import pytest

from conftest import PYTHON, SCRIPTS, rank_results, script, shm_segments
from hf_deepspeed import ENV, check_auto_values, check_same_as_deepspeed, hf_args


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
    # DeepSpeed's CPU all-reduce made one /dev/shm segment per rank and left them; zerorun
    # removed them once the ranks ended.
    assert ours[0]["env"].get("MASTER_PORT") == str(job.port)
    assert len(ours[0]["shm"]) == 2, ours[0]["shm"]
    assert shm_segments(job.port) == []
    if form == "python-flag":
        resolved = check_auto_values(job, args, ours[0]["ds_config"])
        assert {"train_batch_size", "optimizer.params.lr",
                "scheduler.params.warmup_num_steps"} <= set(resolved)
