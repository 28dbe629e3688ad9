"""A script written for Accelerate with a DeepSpeed plugin (ds config file, ZeRO-2 with "auto"
micro batch filled by Accelerate from the DataLoader) runs under zerorun unchanged, with the
losses it has under DeepSpeed's own launcher."""
import json

from conftest import PYTHON, deepspeed_launch, rank_results, script


def test_accelerate_deepspeed_plugin_matches_deepspeeds_launcher(job, tmp_path):
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto",
                                  "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
                                  "zero_optimization": {"stage": 2}}))
    job.env["OMP_NUM_THREADS"] = "1"
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    job.run(["--config", str(config), "--python", PYTHON, script("accelerate_gpt.py"),
             "--zr_out", str(ours_dir), "--ds_config", str(config)])
    deepspeed_launch(tmp_path, [script("accelerate_gpt.py"), "--zr_out", str(theirs_dir),
                                "--ds_config", str(config)], env={"OMP_NUM_THREADS": "1"})
    ours, theirs = rank_results(str(ours_dir)), rank_results(str(theirs_dir))
    for mine, want in zip(ours, theirs):
        assert mine["world"] == want["world"] == 2
        assert mine["stage"] == 2 and mine["micro_batch"] == 4
        assert len(mine["losses"]) == 6
        assert mine["losses"] == want["losses"]
