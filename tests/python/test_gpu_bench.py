"""The GPU benchmark's script (tests/bench/gpt2_gpu_bench.py) on the CPU, tiny: every system it
compares is run or says why not (FSDP2 needs CUDA), zerorun.torch at ZeRO-1/2/3 trains, and the
model-state bytes it reports for zerorun and torch equal the ZeRO formula 16P at world 1. The
script's real run is on a GPU (deploy/gpu_check.sh)."""
import os
import re
import subprocess
import sys

from conftest import BUILD, SOURCE


def test_gpu_bench_runs_every_system_on_the_cpu():
    out = subprocess.run(
        [sys.executable, os.path.join(SOURCE, "tests", "bench", "gpt2_gpu_bench.py"),
         "--device", "cpu", "--tiny", "--steps", "2", "--warmup", "1", "--rounds", "1"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python"), OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        m = re.match(r"(torch|fsdp2|zerorun-z[123])\s+(\d+)\s+-\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows[m[1]] = (int(m[2]), float(m[3]), float(m[4]))
    assert set(rows) >= {"torch", "zerorun-z1", "zerorun-z2", "zerorun-z3"}, out.stdout
    for system, (tokens, states, formula) in rows.items():
        assert tokens > 0, system
        assert abs(states - formula) <= 0.1, (system, states, formula)
    assert "fsdp2" in rows or re.search(r"fsdp2\s+not run: \w+", out.stdout), out.stdout
    assert re.search(r"ratio zerorun-z3/torch: [\d.]+", out.stdout), out.stdout
