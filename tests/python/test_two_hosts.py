"""The HF Trainer + DeepSpeed ZeRO-2 script on two hosts with real addresses: two network
namespaces on a bridge, a zerorund in each (shared secret), zerorun launching from the first.
The same losses as DeepSpeed's launcher with the same world size on one host, and each rank's
environment as DeepSpeed's multi-node launcher sets it (node rank in CROSS_RANK, one local rank,
MASTER_ADDR the first host's address). Root and `ip netns` only; skipped elsewhere."""
import os
import secrets
import subprocess
import time

import pytest

from conftest import BUILD, PYTHON, Job, processes_with, rank_results, script
from hf_deepspeed import ENV, check_same_as_deepspeed, hf_args

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or subprocess.run(["ip", "netns", "list"], capture_output=True).returncode,
    reason="needs root and ip netns")


def ip(*args):
    subprocess.run(["ip", *args], check=True)


@pytest.fixture
def two_hosts(tmp_path):
    """Namespaces <tag>a (SUBNET.1) and <tag>b (SUBNET.2), each interface named eth0, with a
    zerorund listening on :29600; yields (tag, subnet, secret file, daemons)."""
    tag = f"zp{os.getpid() % 100000}"
    subnet = f"10.214.{os.getpid() % 250 + 1}"
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_hex(32))
    secret.chmod(0o600)
    daemons = []
    try:
        ip("netns", "add", tag + "br")
        ip("-n", tag + "br", "link", "add", "br0", "type", "bridge")
        ip("-n", tag + "br", "link", "set", "br0", "up")
        for i, n in enumerate("ab", start=1):
            ip("netns", "add", tag + n)
            ip("link", "add", tag + n + "0", "type", "veth", "peer", "name", tag + n + "1")
            ip("link", "set", tag + n + "0", "netns", tag + n)
            ip("-n", tag + n, "link", "set", tag + n + "0", "name", "eth0")
            ip("link", "set", tag + n + "1", "netns", tag + "br")
            ip("-n", tag + n, "link", "set", "lo", "up")
            ip("-n", tag + n, "addr", "add", f"{subnet}.{i}/24", "dev", "eth0")
            ip("-n", tag + n, "link", "set", "eth0", "up")
            ip("-n", tag + "br", "link", "set", tag + n + "1", "master", "br0", "up")
            log = open(tmp_path / f"zerorund_{n}.log", "w")
            daemons.append(subprocess.Popen(
                ["ip", "netns", "exec", tag + n, "env", f"ZR_HOME={tmp_path}/home_{n}",
                 os.path.join(BUILD, "worker", "zerorund"), "--allow-root-ranks", "--listen",
                 f"{subnet}.{i}:29600", "--auth", "secret", "--secret-file", str(secret),
                 "--state-dir", str(tmp_path / f"state_{n}")], stdout=log, stderr=log))
        for i, n in enumerate("ab", start=1):
            for _ in range(100):
                ss = subprocess.run(["ip", "netns", "exec", tag + n, "ss", "-ltn"],
                                    capture_output=True, text=True).stdout
                if f"{subnet}.{i}:29600" in ss:
                    break
                time.sleep(0.1)
        yield tag, subnet, str(secret), daemons
    finally:
        for daemon in daemons:
            daemon.kill()
            daemon.wait()
        for n in ("a", "b", "br"):
            subprocess.run(["ip", "netns", "del", tag + n], capture_output=True)


def test_zero2_on_two_hosts_matches_deepspeed(tmp_path, two_hosts, oracle):
    tag, subnet, secret, daemons = two_hosts
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(f"hosts:\n  - {{name: node-a, address: {subnet}.1, slots: 1}}\n"
                     f"  - {{name: node-b, address: {subnet}.2, slots: 1}}\n")
    job = Job(tmp_path, "py-two-hosts", ENV)
    out = tmp_path / "out"
    done = subprocess.run(
        ["ip", "netns", "exec", tag + "a"] + job.command(
            ["--secret-file", secret, "--env", "GLOO_SOCKET_IFNAME=eth0", "--env",
             "OMP_NUM_THREADS=1", "--python", PYTHON, script("hf_gpt.py")]
            + hf_args(out, "zero2"), hostfile=str(hosts)),
        env=job.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    ours = rank_results(str(out))
    # What DeepSpeed's multi-node launcher (runner + launch.py per node) sets on each node.
    expected = [{"RANK": str(r), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_SIZE": "1",
                 "CROSS_RANK": str(r), "CROSS_SIZE": "2", "MASTER_ADDR": f"{subnet}.1"}
                for r in range(2)]
    check_same_as_deepspeed(ours, oracle["zero2"], env_expected=expected)
    # Each namespace holds its zerorund and nothing else.
    for n, daemon in zip("ab", daemons):
        pids = subprocess.run(["ip", "netns", "pids", tag + n], capture_output=True,
                              text=True).stdout.split()
        assert set(pids) <= {str(daemon.pid)} | {str(p) for p in child_pids(daemon.pid)}, pids
    assert processes_with(str(out)) == []


def child_pids(pid):
    """Direct children of pid (ip netns exec execs zerorund, so normally none)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []
