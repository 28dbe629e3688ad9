"""Pre-flight's "auto" resolution against transformers' own (HfTrainerDeepSpeedConfig:
trainer_config_process, then trainer_config_finalize) on generated combinations of
TrainingArguments and ds_config: every value pre-flight resolves is the one HF fills in; a value
it leaves unresolved is one HF computes from what pre-flight cannot know (the dataset's length),
and its finding says so; where HF would refuse the config (an explicit value that disagrees with
the arguments), pre-flight refuses it first, naming the key."""
import copy
import json
import math
import random
import types

import pytest
from transformers import TrainingArguments
from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

from conftest import LOCAL2, PYTHON, script

HIDDEN = 48
WORLD = 2
AUTO_KEYS = {  # Every key HF's Trainer fills, by where it sits in the config.
    "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size",
    "gradient_clipping", "optimizer.params.lr", "optimizer.params.betas", "optimizer.params.eps",
    "optimizer.params.weight_decay", "scheduler.params.warmup_min_lr",
    "scheduler.params.warmup_max_lr", "scheduler.params.warmup_num_steps",
    "scheduler.params.total_num_steps", "fp16.enabled", "bf16.enabled",
    "zero_optimization.reduce_bucket_size", "zero_optimization.stage3_prefetch_bucket_size",
    "zero_optimization.stage3_param_persistence_threshold"}
BATCH_KEYS = {"train_micro_batch_size_per_gpu", "gradient_accumulation_steps"}
WRITTEN = {  # Values a config may write instead of "auto" (the defaults among them).
    "train_micro_batch_size_per_gpu": [1, 2, 8], "gradient_accumulation_steps": [1, 4],
    "train_batch_size": [16, 4], "gradient_clipping": [1.0, 0.5],
    "optimizer.params.lr": [5e-5, 1e-4], "optimizer.params.betas": [[0.9, 0.999], [0.8, 0.95]],
    "optimizer.params.eps": [1e-8, 1e-6], "optimizer.params.weight_decay": [0.0, 0.1],
    "scheduler.params.warmup_max_lr": [5e-5, 3e-5], "fp16.enabled": [False, True],
    "bf16.enabled": [False, True], "scheduler.params.total_num_steps": [20, 100],
    "scheduler.params.warmup_num_steps": [0, 5]}
DATA_KEYS = {"scheduler.params.total_num_steps", "scheduler.params.warmup_num_steps"}
# What only the data decides: the number of training steps without --max_steps.
DATA_STEPS = 37


def set_key(config, key, value):
    *path, last = key.split(".")
    for part in path:
        config = config.setdefault(part, {})
    config[last] = value


def get_key(config, key):
    for part in key.split("."):
        config = config[part]
    return config


def combination(rng):
    """(train-command arguments, TrainingArguments kwargs, ds_config) for one case."""
    args = {}
    for name, choices in [("per_device_train_batch_size", [1, 2, 8]),
                          ("gradient_accumulation_steps", [1, 4]),
                          ("learning_rate", [1e-4, 3e-5]), ("weight_decay", [0.0, 0.1]),
                          ("adam_beta1", [0.8]), ("adam_beta2", [0.95]),
                          ("adam_epsilon", [1e-6]), ("max_grad_norm", [0.5, 2.0]),
                          ("warmup_steps", [0, 5]), ("warmup_ratio", [0.1, 0.25]),
                          ("max_steps", [20, 100])]:
        if rng.random() < 0.5:
            args[name] = rng.choice(choices)
    precision = rng.choice([None, "bf16", "fp16", "bf16_full_eval", "fp16_full_eval"])
    if precision:
        args[precision] = True
    config = {"zero_optimization": {"stage": rng.choice([1, 2, 3])},
              "optimizer": {"type": "AdamW", "params": {}},
              "scheduler": {"type": rng.choice(["WarmupLR", "WarmupDecayLR"]), "params": {}},
              "fp16": {}, "bf16": {}}
    for key in sorted(AUTO_KEYS):
        if key == "scheduler.params.total_num_steps" and config["scheduler"]["type"] != \
                "WarmupDecayLR":
            continue
        draw = rng.random()
        if draw < 0.7 or key in BATCH_KEYS:
            set_key(config, key, "auto")
        if draw > 0.95 and key in WRITTEN:  # A written value: HF's or not (HF refuses those).
            set_key(config, key, rng.choice(WRITTEN[key]))
    return args, config


def hf_resolution(args, config):
    """HF's filled config, or the ValueError it raises (its mismatch report)."""
    fields = dict(args)
    flags = {k: fields.pop(k) for k in ("fp16", "fp16_full_eval") if k in fields}
    training = TrainingArguments(output_dir="unused", report_to="none", **fields)
    for key, value in flags.items():  # fp16 needs a GPU to construct; HF only reads it here.
        setattr(training, key, value)
    view = types.SimpleNamespace(**{f: getattr(training, f) for f in vars(training)})
    view.world_size = WORLD
    view.get_warmup_steps = training.get_warmup_steps
    hf = HfTrainerDeepSpeedConfig(copy.deepcopy(config))
    hf.trainer_config_process(view)
    steps = training.max_steps if training.max_steps > 0 else DATA_STEPS
    model = types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=HIDDEN))
    try:
        hf.trainer_config_finalize(view, model, steps)
    except ValueError as error:
        return None, str(error)
    return hf.config, None


def preflight(job, tmp_path, args, config):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    argv = ["--deepspeed", str(path), "--output_dir", str(tmp_path / "o")]
    for name, value in args.items():
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    done = job.zerorun("preflight", "--json", "--hostfile", LOCAL2, "--device", "cpu",
                       "--hidden-size", str(HIDDEN), PYTHON, script("hf_gpt.py"), *argv)
    return json.loads(done.stdout), done


@pytest.mark.parametrize("seed", range(80))
def test_preflight_resolves_auto_as_hf_trainer(job, tmp_path, seed):
    args, config = combination(random.Random(seed))
    filled, refusal = hf_resolution(args, config)
    report, done = preflight(job, tmp_path, args, config)
    context = json.dumps({"args": args, "config": config, "preflight": report}, indent=1)
    if refusal is not None:
        # HF would stop every rank at start-up; pre-flight stops the launch, naming each key,
        # except a step count HF compares with the dataset's length (no --max_steps).
        keys = [line.split()[2].split("=")[0] for line in refusal.splitlines()
                if line.startswith("- ds ")]
        knowable = [k for k in keys if "max_steps" in args or k not in DATA_KEYS]
        critical = [c["detail"] for c in report["checks"] if c["status"] == "CRITICAL"]
        if knowable:
            assert report["exit_code"] == 78, refusal + context
        for key in knowable:
            assert any(d.split(":")[-1].strip().startswith(key) or f": {key} = " in d
                       for d in critical), (key, refusal, context)
        return
    assert report["ok"], context
    autos = {a["key"]: a for a in report["auto"]}
    for key in AUTO_KEYS:
        try:
            was_auto = get_key(config, key) == "auto"
        except KeyError:
            continue
        if not was_auto:
            continue
        mine = autos[key]
        hf_value = get_key(filled, key)
        if mine["resolved"]:
            if isinstance(hf_value, float) or isinstance(mine["value"], float):
                assert mine["value"] == pytest.approx(hf_value), (key, context)
            else:
                assert mine["value"] == hf_value, (key, hf_value, context)
        elif hf_value == "auto":
            pass  # HF leaves it too (a ZeRO-3 key below stage 3): DeepSpeed's default applies.
        else:
            # Only what depends on the dataset's length may stay open, and the finding says so.
            assert "max_steps" not in args, (key, context)
            assert key in DATA_KEYS, (key, context)
            assert "--max_steps" in mine["source"], (key, context)
            if key == "scheduler.params.total_num_steps":
                assert hf_value == DATA_STEPS
            else:
                assert hf_value == math.ceil(DATA_STEPS * args["warmup_ratio"])
