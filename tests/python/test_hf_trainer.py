"""The HF TrainerCallback inside a real transformers.Trainer (tiny GPT-2 from a config, integer
tokens) on 2 ranks under zerorun (DDP over gloo on CPU): `zerorun status --json` shows every
rank's step, loss and progress; `zerorun stop` ends training after the same step on every rank,
train() returns, and nothing is left running."""
import json
import os

from conftest import HF_ARGS, PYTHON, processes_with, rank_results, script, write_config

def test_callback_reports_step_loss_and_progress(job, tmp_path):
    out = str(tmp_path / "out")
    job.run(["--config", write_config(tmp_path), "--python", PYTHON, script("hf_gpt.py"),
             "--zr_out", out, "--zr_callback", "--output_dir", str(tmp_path / "o"),
             "--max_steps", "8"] + HF_ARGS)
    results = rank_results(out)
    status = job.status()
    assert status["state"] == "succeeded" and status["exit_code"] == 0
    assert len(status["ranks"]) == 2
    for rank, result in zip(status["ranks"], results):
        assert result["callbacks"].count("ZerorunCallback") == 1
        assert rank["step"] == 8 and rank["total_steps"] == 8
        # The last log HF made is the run's mean train loss; status carries that value.
        assert abs(rank["loss"] - result["train_loss"]) < 1e-9
        assert rank["memory_bytes"] > 0
    # HF logs the loss averaged over ranks: both ranks saw the same losses, and they fell.
    assert results[0]["losses"] == results[1]["losses"]
    assert len(results[0]["losses"]) == 8


def test_zerorun_stop_ends_training_cleanly(job, tmp_path):
    out = str(tmp_path / "out")
    code, output, took = job.stop_at_step(
        ["--config", write_config(tmp_path), "--python", PYTHON, script("hf_gpt.py"), "--zr_out",
         out, "--zr_callback", "--zr_sleep", "0.3", "--output_dir", str(tmp_path / "o"),
         "--max_steps", "500"] + HF_ARGS)
    # zerorun's code for a job stopped by SIGTERM (README: exit codes), not a rank failure.
    assert code == 143, output[-6000:]
    assert "stop requested through 'zerorun stop'" in output
    assert os.path.exists(out + "/rank1.json"), output[-6000:]
    results = rank_results(out)  # Written after train() returned: the Trainer ended normally.
    assert results[0]["step"] == results[1]["step"] < 500
    assert took < 10, f"{took:.1f} s: the ranks did not stop at the next step"
    status = job.status()
    for rank in status["ranks"]:
        assert rank["state"] == "exited" and rank["exit_code"] == 0, json.dumps(status)
    assert processes_with(out) == []

