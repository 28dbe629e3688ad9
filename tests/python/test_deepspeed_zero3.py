"""HF Trainer + real DeepSpeed ZeRO-3 in bf16 (HF's config, parameters and optimizer offloaded,
every value "auto") under zerorun: the same losses, filled config and rank environment as under
DeepSpeed's own launcher, and pre-flight's "auto" values (the hidden-size ones included) as the
Trainer filled them. A file of its own so ctest runs it beside the ZeRO-2 forms."""
from conftest import PYTHON, processes_with, rank_results, script
from hf_deepspeed import ENV, check_auto_values, check_same_as_deepspeed, hf_args


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
