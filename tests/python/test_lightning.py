"""The Lightning Callback inside a real lightning.Trainer (DDP over gloo on CPU, a tiny
next-token model) on 2 ranks under zerorun: status shows every rank's step, loss and progress;
`zerorun stop` ends fit() after the same batch on every rank; nothing is left running. And
Lightning's own DeepSpeed strategy under zerorun behaves exactly as under DeepSpeed's launcher
(on CPU both end with Lightning's "only supported on CUDA GPUs"; the CUDA run is issue 30's)."""

from conftest import (PYTHON, deepspeed_launch, processes_with, rank_results, script,
                      write_config)


def test_callback_reports_step_loss_and_progress(job, tmp_path):
    out = str(tmp_path / "out")
    job.run(["--config", write_config(tmp_path), "--python", PYTHON, script("pl_gpt.py"),
             "--zr_out", out, "--callback", "--max_steps", "8"])
    results = rank_results(out)
    status = job.status()
    assert status["state"] == "succeeded"
    for rank, result in zip(status["ranks"], results):
        assert result["callbacks"].count("ZerorunCallback") == 1
        assert result["step"] == 8
        assert rank["step"] == 8 and rank["total_steps"] == 8
        # The last batch's loss on this rank (each rank has its own batches).
        assert abs(rank["loss"] - result["losses"]["8"]) < 1e-6


def test_zerorun_stop_ends_fit_cleanly(job, tmp_path):
    out = str(tmp_path / "out")
    code, output, took = job.stop_at_step(
        ["--config", write_config(tmp_path), "--python", PYTHON, script("pl_gpt.py"), "--zr_out",
         out, "--callback", "--sleep", "0.3", "--max_steps", "500"])
    assert code == 143, output[-6000:]
    results = rank_results(out)  # Written after fit() returned.
    assert results[0]["step"] == results[1]["step"] < 500
    assert took < 10, f"{took:.1f} s: the ranks did not stop at the next batch"
    for rank in job.status()["ranks"]:
        assert rank["state"] == "exited" and rank["exit_code"] == 0
    assert processes_with(out) == []


def test_deepspeed_strategy_as_under_deepspeeds_launcher(job, tmp_path):
    config = write_config(tmp_path, {"zero_optimization": {"stage": 2}})
    args = [script("pl_gpt.py"), "--zr_out", str(tmp_path / "out"), "--strategy", "deepspeed",
            "--ds_config", config]
    ours = job.run(["--config", config, "--python", PYTHON] + args, check=False)
    theirs = deepspeed_launch(tmp_path, args, check=False)
    cpu_only = "The DeepSpeed strategy is only supported on CUDA GPUs"
    assert theirs.returncode != 0 and cpu_only in theirs.stdout + theirs.stderr
    # zerorun: the rank's own error, named, as the root cause; exit 1 (a rank failed).
    assert ours.returncode == 1, ours.stdout[-4000:] + ours.stderr[-4000:]
    assert cpu_only in ours.stdout + ours.stderr
    assert "root cause" in ours.stderr
