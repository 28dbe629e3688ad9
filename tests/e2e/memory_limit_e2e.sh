#!/usr/bin/env bash
# e2e: the proof ZeRO-Infinity exists for (issue 12). A memory cgroup the test makes (v1
# memory.limit_in_bytes, or v2 memory.max) holds the whole job - launcher, embedded agent and
# rank - with a limit a quarter of the rank's model states or less. With the optimizer state,
# the gradients and the parameter shards on NVMe (stage 3, bf16) the training runs to the end;
# the same run without offload is OOM-killed under the same limit, and zerorun names the rank
# and SIGKILL. Both outcomes asserted, plus: the swap directory is empty afterwards and nothing is
# left in the cgroup. Needs root and the memory controller (exit 77, skipped, otherwise).
# Usage: memory_limit_e2e.sh BUILD_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
limit_mib=200
source "$(dirname "${BASH_SOURCE[0]}")/memory_cgroup.sh"
mkdir "${tmp}/nvme"
echo "localhost slots=1" >"${tmp}/hosts"
zero='"stage": 3, "overlap_comm": true, "stage3_max_live_parameters": 2000000,
  "stage3_max_reuse_distance": 0, "stage3_prefetch_bucket_size": 1000000'
cat >"${tmp}/memory.json" <<JSON
{"train_batch_size": 1, "train_micro_batch_size_per_gpu": 1, "gradient_clipping": 1.0,
 "bf16": {"enabled": true}, "zero_optimization": {${zero}}}
JSON
cat >"${tmp}/infinity.json" <<JSON
{"train_batch_size": 1, "train_micro_batch_size_per_gpu": 1, "gradient_clipping": 1.0,
 "bf16": {"enabled": true}, "zero_optimization": {${zero}, "sub_group_size": 200000,
  "offload_optimizer": {"device": "nvme", "nvme_path": "${tmp}/nvme"},
  "offload_param": {"device": "nvme", "nvme_path": "${tmp}/nvme"}}}
JSON
# 58M parameters (32 layers, d_model 384): 915 MiB of bf16 model states per rank.
model=(--random-tokens --vocab 4096 --layers 32 --d-model 384 --heads 4 --seq 32 --log-every 1)
# Runs zerorun inside the cgroup (the subshell joins it, then execs) with config $1.json and
# train_gpt flags $3...; output in $2.log.
run_limited() {
  local name="$1" log="$2"
  shift 2
  reset_peak
  set +e
  (
    echo "${BASHPID}" >"${cg}/cgroup.procs"
    exec env ZR_HOME="${tmp}/home" timeout 300 "${build}/launcher/zerorun" --hostfile \
      "${tmp}/hosts" --config "${tmp}/${name}.json" --device cpu \
      "${build}/runtime/examples/gpt/train_gpt" "${model[@]}" "$@"
  ) >"${tmp}/${log}.log" 2>&1
  local rc=$?
  set -e
  echo "${rc}"
}
echo "== memory cgroup ${cg}, limit ${limit_mib} MiB for the whole job"

start=$(date +%s)
rc="$(run_limited infinity infinity --steps 3 --save-dir "${tmp}/ckpt" --save-every 3)"
secs=$(($(date +%s) - start))
summary="$(grep "steps in" "${tmp}/infinity.log" || true)"
[[ "${rc}" == 0 ]] || { cat "${tmp}/infinity.log"; fail "the Infinity run exited ${rc} under the limit"; }
[[ -n "${summary}" ]] || fail "no training summary from the Infinity run"
# Model states per rank from the runtime's own report: params + master + grads + optimizer.
states="$(sed -E 's/.*params ([0-9.]+) MiB, master ([0-9.]+) MiB, grads ([0-9.]+) MiB, optimizer ([0-9.]+) MiB.*/\1 \2 \3 \4/' <<<"${summary}" |
  awk '{printf "%d", $1 + $2 + $3 + $4}')"
(( states >= 4 * limit_mib )) || fail "model states ${states} MiB are not 4x the ${limit_mib} MiB limit"
[[ -z "$(ls -A "${tmp}/nvme")" ]] || fail "swap files left in nvme_path: $(ls -A "${tmp}/nvme")"
echo "ok: Infinity (optimizer, gradients, parameters on nvme) trained 3 steps in ${secs} s under" \
  "${limit_mib} MiB with ${states} MiB of model states ($((states / limit_mib))x the limit);" \
  "cgroup peak $(peak) MiB"
echo "   ${summary#*] }"
# Its checkpoint was streamed from the swap files under the same limit; it resumes there.
grep -q "saved ${tmp}/ckpt/global_step3: .*streamed from the nvme swap" "${tmp}/infinity.log" ||
  fail "no streamed checkpoint at step 3: $(grep saved "${tmp}/infinity.log")"
rc="$(run_limited infinity resume --steps 4 --save-dir "${tmp}/ckpt" --resume)"
[[ "${rc}" == 0 ]] || { cat "${tmp}/resume.log"; fail "the resumed Infinity run exited ${rc} under the limit"; }
grep -q "resumed from ${tmp}/ckpt at step 3" "${tmp}/resume.log" ||
  fail "the run did not resume from global_step3: $(grep -i resum "${tmp}/resume.log")"
grep -q "step    4/" "${tmp}/resume.log" || fail "the resumed run did not train step 4"
echo "ok: its checkpoint ($(du -sm "${tmp}/ckpt/global_step3" | cut -f1) MiB) was streamed from" \
  "the swap files and resumed at step 4 under the same limit; cgroup peak $(peak) MiB"

ooms_before="$(ooms)"
start=$(date +%s)
rc="$(run_limited memory memory --steps 3)"
secs=$(($(date +%s) - start))
[[ "${rc}" != 0 ]] || fail "the in-memory run fit under ${limit_mib} MiB: the test proves nothing"
grep -q "steps in" "${tmp}/memory.log" && fail "the in-memory run finished its training"
grep -q "rank 0" "${tmp}/memory.log" || { cat "${tmp}/memory.log"; fail "zerorun did not name rank 0"; }
grep -q "SIGKILL), not sent by zerorun: the kernel's OOM killer" "${tmp}/memory.log" ||
  { cat "${tmp}/memory.log"; fail "no SIGKILL by the OOM killer reported"; }
(( $(ooms) > ooms_before )) || fail "the cgroup saw no OOM kill"
(( secs < 60 )) || fail "the OOM-killed job took ${secs} s to end"
echo "ok: the same training in memory was OOM-killed under the limit (exit ${rc}, ${secs} s):" \
  "$(grep -m1 -o "rank 0 (local 0).*" "${tmp}/memory.log")"

[[ -z "$(cat "${cg}/cgroup.procs")" ]] || fail "processes left in the cgroup: $(cat "${cg}/cgroup.procs")"
echo "ok: nothing left in the cgroup"
echo "memory limit e2e: 4 passed, 0 failed"
