#!/usr/bin/env bash
# e2e (issue 28): ZeRO-Infinity's proof for a torch model. A 222M-parameter torch model (3.3 GiB
# of fp32 model states; tests/python/scripts/torch_big.py) built under zerorun.torch.zero_init()
# trains 2 steps with zerorun.torch, optimizer and parameters on nvme, inside a memory cgroup
# (v1 memory.limit_in_bytes, or v2 memory.max) of a quarter of that holding the whole job
# (launcher, embedded agent, the Python rank with torch); the same model with its state in
# memory is OOM-killed under the same limit and zerorun names rank 0 and SIGKILL. Also: the swap
# directory is empty afterwards, nothing is left in the cgroup. Needs root, the memory
# controller (exit 77, skipped, otherwise) and the project venv.
# Usage: torch_memory_limit_e2e.sh BUILD_DIR PYTHON  (ZR_TEST_LIMIT_MIB: another limit)
set -euo pipefail
build="$(cd "$1" && pwd)"
python="$2"
script="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/python/scripts/torch_big.py"
limit_mib=${ZR_TEST_LIMIT_MIB:-832}
source "$(dirname "${BASH_SOURCE[0]}")/memory_cgroup.sh"
mkdir "${tmp}/nvme"
echo "localhost slots=1" >"${tmp}/hosts"
zero='"stage": 3, "overlap_comm": true, "stage3_max_live_parameters": 2000000,
  "stage3_max_reuse_distance": 0, "stage3_prefetch_bucket_size": 1000000, "sub_group_size": 1000000'
common='"train_batch_size": 1, "train_micro_batch_size_per_gpu": 1, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}'
echo "{${common}, \"zero_optimization\": {${zero}}}" >"${tmp}/memory.json"
echo "{${common}, \"zero_optimization\": {${zero},
  \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"${tmp}/nvme\"},
  \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"${tmp}/nvme\"}}}" >"${tmp}/infinity.json"
# Runs zerorun (the subshell joins the cgroup, then execs) with config $1.json; output in $1.log.
run_limited() {
  local name="$1"
  set +e
  (
    echo "${BASHPID}" >"${cg}/cgroup.procs"
    exec env ZR_HOME="${tmp}/home" PYTHONPATH="${build}/python" OMP_NUM_THREADS=2 timeout 300 \
      "${build}/launcher/zerorun" --hostfile "${tmp}/hosts" --config "${tmp}/${name}.json" \
      --device cpu "${python}" "${script}" 2
  ) >"${tmp}/${name}.log" 2>&1
  local rc=$?
  set -e
  echo "${rc}"
}
echo "== memory cgroup ${cg}, limit ${limit_mib} MiB for the whole job"

start=$(date +%s)
rc="$(run_limited infinity)"
secs=$(($(date +%s) - start))
[[ "${rc}" == 0 ]] || { cat "${tmp}/infinity.log"; fail "the Infinity run exited ${rc} under the limit"; }
grep -q "step 2 loss" "${tmp}/infinity.log" || fail "the Infinity run did not train 2 steps"
states="$(sed -nE 's/.*model states MiB ([0-9]+).*/\1/p' "${tmp}/infinity.log")"
[[ -n "${states}" ]] || fail "no model-state report from the rank"
(( states >= 4 * limit_mib )) || fail "model states ${states} MiB are not 4x the ${limit_mib} MiB limit"
[[ -z "$(ls -A "${tmp}/nvme")" ]] || fail "swap files left in nvme_path: $(ls -A "${tmp}/nvme")"
echo "ok: a torch model built under zero_init with ${states} MiB of fp32 model states" \
  "($((states / limit_mib))x the limit) trained 2 steps on zerorun.torch with optimizer and" \
  "parameters on nvme in ${secs} s under ${limit_mib} MiB; cgroup peak $(peak) MiB"

ooms_before="$(ooms)"
start=$(date +%s)
rc="$(run_limited memory)"
secs=$(($(date +%s) - start))
[[ "${rc}" != 0 ]] || fail "the in-memory run fit under ${limit_mib} MiB: the test proves nothing"
grep -q "step 1 loss" "${tmp}/memory.log" && fail "the in-memory run trained"
grep -q "SIGKILL), not sent by zerorun: the kernel's OOM killer" "${tmp}/memory.log" ||
  { cat "${tmp}/memory.log"; fail "no SIGKILL by the OOM killer reported"; }
grep -q "rank 0" "${tmp}/memory.log" || fail "zerorun did not name rank 0"
(( $(ooms) > ooms_before )) || fail "the cgroup saw no OOM kill"
(( secs < 120 )) || fail "the OOM-killed job took ${secs} s to end"
echo "ok: the same model with its state in memory was OOM-killed under the limit (exit ${rc}," \
  "${secs} s): $(grep -m1 -o "rank 0 (local 0).*" "${tmp}/memory.log")"

[[ -z "$(cat "${cg}/cgroup.procs")" ]] || fail "processes left in the cgroup: $(cat "${cg}/cgroup.procs")"
echo "ok: nothing left in the cgroup"
echo "torch memory limit e2e: 3 passed, 0 failed"
