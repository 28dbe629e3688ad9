"""Shared by the real-library tests (pytest under the project venv, run by ctest): where the
zerorun binaries are, a Job that runs one zerorun launch with its own ZR_HOME and reads
`zerorun status --json`, DeepSpeed's own launcher as the oracle, and the process checks that say
nothing was left running. ctest passes ZR_TEST_ZERORUN, ZR_TEST_BUILD_DIR and ZR_SOURCE_DIR."""
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

ZERORUN = os.environ["ZR_TEST_ZERORUN"]
BUILD = os.environ["ZR_TEST_BUILD_DIR"]
SOURCE = os.environ["ZR_SOURCE_DIR"]
PYTHON = sys.executable  # The project venv's interpreter.
SCRIPTS = os.path.join(SOURCE, "tests", "python", "scripts")
LOCAL2 = os.path.join(SOURCE, "tests", "testdata", "local2.txt")
# One torch-extensions cache for every test: DeepSpeed JIT-builds its CPU ops once (~40 s).
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(BUILD, "torch_extensions"))


# TrainingArguments every plain (DDP) HF run of scripts/hf_gpt.py takes.
HF_ARGS = ["--report_to", "none", "--save_strategy", "no", "--use_cpu", "--logging_steps", "1",
           "--per_device_train_batch_size", "4"]


def write_config(tmp_path, extra=None):
    """tmp_path/ds.json: micro batch 4, clipping 1.0, plus `extra`; its path."""
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0,
                                **(extra or {})}))
    return str(path)


def script(name):
    return os.path.join(SCRIPTS, name)


class Job:
    """One zerorun job id with its own ZR_HOME under tmp; env is added to the launch's."""

    def __init__(self, tmp, job_id, env=None):
        self.tmp = str(tmp)
        self.id = job_id
        self.home = os.path.join(self.tmp, "home")
        self.env = dict(os.environ, ZR_HOME=self.home, PYTHONPATH=os.path.join(BUILD, "python"),
                        **(env or {}))

    def command(self, args, hostfile=LOCAL2):
        # Each job its own rendezvous port: ctest runs tests side by side.
        self.port = free_port()
        return [ZERORUN, "--hostfile", hostfile, "--device", "cpu", "--job-id", self.id,
                "--master_port", str(self.port)] + args

    def run(self, args, timeout=600, hostfile=LOCAL2, check=True):
        done = subprocess.run(self.command(args, hostfile), env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-8000:]
        return done

    def start(self, args, hostfile=LOCAL2):
        return subprocess.Popen(self.command(args, hostfile), env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def zerorun(self, *args, timeout=30):
        return subprocess.run([ZERORUN, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def status(self):
        done = self.zerorun("status", self.id, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def stop_at_step(self, args, step=3):
        """Launches args, asks `zerorun stop` once every rank reported `step`, and waits for the
        launch to end: (exit code, output, seconds from the stop to the end)."""
        launch = self.start(args)
        try:
            self.wait_for_step(step)
            asked = time.monotonic()
            stop = self.zerorun("stop", self.id)
            assert stop.returncode == 0, stop.stdout + stop.stderr
            output, _ = launch.communicate(timeout=60)
            return launch.returncode, output, time.monotonic() - asked
        finally:
            if launch.poll() is None:
                launch.kill()

    def wait_for_step(self, step, timeout=120):
        """Polls status until every rank reported at least `step`; the last status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.zerorun("status", self.id, "--json")
            if done.returncode == 0:
                status = json.loads(done.stdout)
                ranks = status.get("ranks", [])
                if ranks and all(r.get("step", 0) >= step for r in ranks):
                    return status
            time.sleep(0.5)
        raise AssertionError(f"job {self.id}: no rank reached step {step} in {timeout} s")


def free_port():
    """A TCP port free on this machine now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with(text):
    """Pids of live processes whose command line contains text (not this one)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def shm_segments(port):
    """The /dev/shm segments DeepSpeed's CPU collectives made for the rendezvous on `port`
    (deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank>; worker/shm_leftovers.h)."""
    return [os.path.join("/dev/shm", name) for name in os.listdir("/dev/shm")
            if re.fullmatch(rf"deepspeed_allreduce_buffer_\d+_.+_{port}_\d+", name)]


def rank_results(out_dir, world=2):
    """The JSON each rank of a test script wrote into out_dir, by rank."""
    results = []
    for rank in range(world):
        with open(os.path.join(out_dir, f"rank{rank}.json")) as f:
            results.append(json.load(f))
    return results


def deepspeed_launch(tmp, args, nproc=2, env=None, timeout=600, check=True):
    """The same script under DeepSpeed's own launcher on localhost (the oracle)."""
    venv_bin = os.path.dirname(PYTHON)
    full_env = dict(os.environ, PATH=venv_bin + ":" + os.environ["PATH"],
                    PYTHONPATH=os.path.join(BUILD, "python"), **(env or {}))
    port = free_port()
    try:
        done = subprocess.run([os.path.join(venv_bin, "deepspeed"), "--num_gpus", str(nproc),
                               "--master_port", str(port)] + args,
                              env=full_env, capture_output=True, text=True, timeout=timeout,
                              cwd=str(tmp))
    finally:
        # DeepSpeed's launcher leaves its ranks' 66 MB segments in /dev/shm (zerorun removes
        # them): removed here so the oracle runs do not eat the machine's memory.
        for path in shm_segments(port):
            os.unlink(path)
    if check:
        assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-8000:]
    return done


@pytest.fixture
def job(tmp_path, request):
    return Job(tmp_path, "py-" + re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name)[:40].strip("-"))


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """DeepSpeed's own launcher's results for the HF Trainer configs (hf_deepspeed.Oracle)."""
    from hf_deepspeed import Oracle
    return Oracle(tmp_path_factory)
