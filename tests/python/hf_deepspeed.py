"""The HF Trainer + DeepSpeed runs both launchers make (test_deepspeed_hf, test_deepspeed_zero3,
test_two_hosts): the arguments, DeepSpeed's own launcher as the oracle (each config run once, on
first use), and the checks that a zerorun run matches it (losses, config, environment, "auto")."""
import json
import os

import pytest

from conftest import LOCAL2, PYTHON, SOURCE, deepspeed_launch, rank_results, script

# OMP_NUM_THREADS for both launchers: accelerate picks a count from LOCAL_WORLD_SIZE, which
# DeepSpeed's launcher does not set (zerorun does, as torchrun); fixed, the arithmetic is equal.
ENV = {"OMP_NUM_THREADS": "1"}
# Set by DeepSpeed's launcher (launch.py) for every rank; zerorun sets each the same way (both
# default MASTER_PORT to 29500; here every run is given its own port, ctest runs side by side),
# but CUDA_VISIBLE_DEVICES: DeepSpeed sets "0,1" even for a CPU job, zerorun only for GPU jobs,
# from the hostfile's slots (README: differences from DeepSpeed's launcher).
DS_RANK_VARS = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_SIZE", "CROSS_RANK", "CROSS_SIZE",
                "MASTER_ADDR"]
DIFFER_ON_PURPOSE = {"MASTER_PORT", "CUDA_VISIBLE_DEVICES"}
CONFIGS = {"zero2": "hf_zero2_auto.json", "zero3_bf16": "hf_zero3_auto.json"}


def config_path(name):
    return os.path.join(SOURCE, "tests", "testdata", CONFIGS[name])


def hf_args(out_dir, name, extra=()):
    """HF TrainingArguments for a 4-step run of scripts/hf_gpt.py with config `name`."""
    return ["--zr_out", str(out_dir), "--output_dir", str(out_dir) + "-hf",
            "--deepspeed", config_path(name), "--max_steps", "4",
            "--per_device_train_batch_size", "3",
            # Accumulation stays 1: transformers 4.46's no_sync() trips DeepSpeed 0.16's assert
            # at ZeRO >= 2 under either launcher.
            "--gradient_accumulation_steps", "1", "--learning_rate", "3e-4", "--warmup_steps",
            "1", "--weight_decay", "0.01", "--logging_steps", "1", "--report_to", "none",
            "--save_strategy", "no", *(["--bf16"] if name.endswith("bf16") else []), *extra]


class Oracle:
    """Each config run once under `deepspeed --num_gpus 2` on localhost: its ranks' results."""

    def __init__(self, tmp_path_factory):
        self._tmp = tmp_path_factory
        self._results = {}

    def __getitem__(self, name):
        if name not in self._results:
            tmp = self._tmp.mktemp("deepspeed-" + name)
            deepspeed_launch(tmp, [script("hf_gpt.py")] + hf_args(tmp / "out", name), env=ENV)
            self._results[name] = rank_results(str(tmp / "out"))
        return self._results[name]


def check_same_as_deepspeed(ours, theirs, env_expected=None):
    """Same losses at every step and the same DeepSpeed config on every rank; the rank
    environment as DeepSpeed's launcher sets it (or as `env_expected` says, per rank, for runs
    the oracle cannot make)."""
    for mine, want in zip(ours, theirs):
        assert len(want["losses"]) == 4
        assert mine["losses"] == want["losses"], (mine["losses"], want["losses"])
        assert mine["ds_config"] == want["ds_config"]
        expected = env_expected[mine["rank"]] if env_expected else want["env"]
        for var in DS_RANK_VARS:
            assert mine["env"].get(var) == expected.get(var), var
        launcher_set = {k for k in want["env"] if k not in os.environ and k != "_"}
        assert launcher_set - set(ENV) - {"PYTHONPATH"} == \
            set(DS_RANK_VARS) | DIFFER_ON_PURPOSE
        # DeepSpeed's launcher passes --local_rank=N first; so does zerorun.
        assert mine["argv"][1] == f"--local_rank={expected['LOCAL_RANK']}"


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
