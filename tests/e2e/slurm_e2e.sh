#!/usr/bin/env bash
# e2e: zerorun --launcher slurm against a real Slurm (Debian's slurm-wlm with munge), configured
# and started here: munged, slurmctld and one slurmd on this machine (Debian's slurmd is built
# without multiple-slurmd, so one node), on free ports, every daemon owned and ended by pid.
# Checks: sbatch and salloc of a 2-rank job (hosts and slots from the allocation, one ephemeral
# zerorund per node started with srun and gone afterwards, no secret in a rank's environment);
# a rank killed from outside ends the job with its exit code; scancel ends every rank; the
# example batch script of deploy/slurm/ trains. Needs
# root and Slurm (exit 77, skipped with the reason, otherwise).
# Usage: slurm_e2e.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
zerorun="${build}/launcher/zerorun"
rank="${build}/tests/zr_test_rank"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "SKIP: needs root (munged, slurmctld and slurmd are started here)"
  exit 77
fi
for tool in munged mungekey slurmctld slurmd sbatch salloc scancel scontrol; do
  if ! command -v "${tool}" >/dev/null; then
    echo "SKIP: ${tool} not installed (deploy/install-deps.sh --test installs slurm-wlm and munge)"
    exit 77
  fi
done
tmp="$(mktemp -d /tmp/zr-slurm.XXXXXX)"
chmod 755 "${tmp}"
daemons=()
cleanup() {
  for pid in "${daemons[@]}"; do kill "${pid}" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${daemons[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done
  rm -rf "${tmp}"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/e2e_lib.sh
source "${src}/tests/e2e/e2e_lib.sh"
# A TCP port nothing listens on.
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 20000))
    if ! ss -ltn | grep -q ":${port} "; then
      echo "${port}"
      return
    fi
  done
}
# Waits up to $2 seconds for the command in $1 to succeed.
wait_for() {
  for _ in $(seq $(($2 * 10))); do
    if eval "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# munge: its own key and socket, so nothing of the machine's is used or changed.
mkdir -p "${tmp}/munge" "${tmp}/state" "${tmp}/spool" "${tmp}/home"
chmod 700 "${tmp}/munge"
mungekey -c -k "${tmp}/munge/munge.key"
chmod 711 "${tmp}/munge"
munged -F -f -S "${tmp}/munge/munge.sock" --key-file "${tmp}/munge/munge.key" \
  --log-file "${tmp}/munged.log" --pid-file "${tmp}/munged.pid" --seed-file "${tmp}/munge/seed" \
  >"${tmp}/munged.out" 2>&1 &
daemons+=($!)
wait_for "[[ -S ${tmp}/munge/munge.sock ]]" 10 || {
  cat "${tmp}/munged.out"
  echo "FAIL: munged did not start"
  exit 1
}

node_line="$(slurmd -C | head -1)"
node="$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"${node_line}")"
cat >"${tmp}/slurm.conf" <<EOF
ClusterName=zrtest
SlurmctldHost=${node}
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=${tmp}/munge/munge.sock
CredType=cred/munge
StateSaveLocation=${tmp}/state
SlurmdSpoolDir=${tmp}/spool
SlurmctldPidFile=${tmp}/slurmctld.pid
SlurmdPidFile=${tmp}/slurmd.pid
SlurmctldLogFile=${tmp}/slurmctld.log
SlurmdLogFile=${tmp}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=5
${node_line} State=UNKNOWN
PartitionName=zr Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="${tmp}/slurm.conf"
slurmctld -D -f "${SLURM_CONF}" >"${tmp}/slurmctld.out" 2>&1 &
daemons+=($!)
slurmd -D -f "${SLURM_CONF}" >"${tmp}/slurmd.out" 2>&1 &
daemons+=($!)
if ! wait_for "sinfo -h -o %t | grep -qx idle" 30; then
  tail -5 "${tmp}/slurmctld.log" "${tmp}/slurmd.log" 2>/dev/null || true
  echo "FAIL: the Slurm node did not become idle"
  exit 1
fi
echo "slurm: ${node} idle ($(sinfo -h -o '%c CPUs'))"

echo '{"train_micro_batch_size_per_gpu": 1}' >"${tmp}/ds.json"
export ZR_HOME="${tmp}/home"
export TMPDIR="${tmp}"  # The ephemeral zerorunds' state directories go here (srun passes it on).
cd "${tmp}"
# The batch script: zerorun with the test rank; $1.. are the rank's arguments.
cat >"${tmp}/job.sh" <<EOF
#!/bin/bash
exec "${zerorun}" --launcher slurm --config "${tmp}/ds.json" --device cpu --grace-period 3 \
  "${rank}" "\$@"
EOF
chmod +x "${tmp}/job.sh"
# Every process of job $1 is gone: no zerorund of its step and no rank of this test (their
# command lines name this test's directory; other tests' ranks may run meanwhile).
nothing_left() {
  ! pgrep -f "${rank} .*${tmp}/" >/dev/null && ! pgrep -f "zerorun-slurm-$1\\." >/dev/null
}

# True when none of the pids is alive.
all_gone() {
  for pid in "$@"; do
    if kill -0 "${pid}" 2>/dev/null; then return 1; fi
  done
}

# 1. sbatch: two ranks from --ntasks-per-node=2, through one ephemeral zerorund.
mkdir -p "${tmp}/env1"
chmod 1777 "${tmp}/env1"
if sbatch -N1 --ntasks-per-node=2 --output="${tmp}/job1.out" --wait "${tmp}/job.sh" \
  --run-ms 300 --env-dir "${tmp}/env1" >"${tmp}/sbatch1.out"; then
  job1="$(grep -oE '[0-9]+' "${tmp}/sbatch1.out" | head -1)"
  if grep -q "succeeded: all 2 rank(s) exited 0" "${tmp}/job1.out" &&
    grep -q "starting zerorund on 1 node(s) (${node}) with srun" "${tmp}/job1.out" &&
    [[ -f "${tmp}/env1/rank_0.env" && -f "${tmp}/env1/rank_1.env" ]] &&
    grep -q "^SLURM_JOB_ID=${job1}$" "${tmp}/env1/rank_1.env"; then
    pass "sbatch: 2 ranks ran in Slurm job ${job1} and exited 0"
  else
    fail "sbatch: $(cat "${tmp}/job1.out")"
  fi
  if grep -qE "^(ZR_SECRET|ZR_TLS_DIR)=" "${tmp}/env1/rank_0.env"; then
    fail "a rank's environment holds the agents' secret"
  else
    pass "no zerorun credential in a rank's environment"
  fi
  if wait_for "nothing_left ${job1}" 10; then
    pass "the ephemeral zerorund and the ranks are gone after the job"
  else
    fail "left behind: $(pgrep -af "zerorun-slurm-${job1}\\.|${tmp}/")"
  fi
else
  fail "sbatch exited non-zero: $(cat "${tmp}/job1.out")"
fi

# 2. salloc: the same from an interactive allocation.
if salloc -N1 --ntasks-per-node=2 "${tmp}/job.sh" --run-ms 200 >"${tmp}/salloc.out" 2>&1 &&
  grep -q "succeeded: all 2 rank(s) exited 0" "${tmp}/salloc.out"; then
  pass "salloc: 2 ranks exited 0"
else
  fail "salloc: $(cat "${tmp}/salloc.out")"
fi

# 3. A rank SIGKILLed from outside: the job ends, exit 137, naming the rank.
mkdir -p "${tmp}/env3"
chmod 1777 "${tmp}/env3"
sbatch -N1 --ntasks-per-node=2 --output="${tmp}/job3.out" --wait "${tmp}/job.sh" \
  --run-ms 60000 --env-dir "${tmp}/env3" >"${tmp}/sbatch3.out" 2>&1 &
sbatch3=$!
if wait_for "[[ -s ${tmp}/env3/rank_1.pid && -s ${tmp}/env3/rank_0.pid ]]" 30; then
  rank0="$(cat "${tmp}/env3/rank_0.pid")"
  start="$(date +%s)"
  kill -9 "$(cat "${tmp}/env3/rank_1.pid")"
  code=0
  wait "${sbatch3}" || code=$?
  took=$(($(date +%s) - start))
  if [[ "${code}" -ne 0 ]] && grep -q "FAILED (exit 137)" "${tmp}/job3.out" &&
    grep -q "rank 1" "${tmp}/job3.out" && ! kill -0 "${rank0}" 2>/dev/null &&
    [[ "${took}" -le 15 ]]; then
    pass "rank 1 SIGKILLed: the job failed with exit 137 in ${took} s and rank 0 was stopped"
  else
    fail "killed rank (sbatch ${code}, ${took} s): $(cat "${tmp}/job3.out")"
  fi
else
  kill "${sbatch3}" 2>/dev/null || true
  fail "job 3 did not start: $(cat "${tmp}/job3.out" 2>/dev/null)"
fi

# 4. scancel: every rank ends, the job is CANCELLED.
mkdir -p "${tmp}/env4"
chmod 1777 "${tmp}/env4"
job4="$(sbatch --parsable -N1 --ntasks-per-node=2 --output="${tmp}/job4.out" "${tmp}/job.sh" \
  --run-ms 60000 --env-dir "${tmp}/env4")"
if wait_for "[[ -s ${tmp}/env4/rank_1.pid && -s ${tmp}/env4/rank_0.pid ]]" 30; then
  pids="$(cat "${tmp}/env4/rank_0.pid") $(cat "${tmp}/env4/rank_1.pid")"
  scancel "${job4}"
  if wait_for "all_gone ${pids}" 20 &&
    wait_for "nothing_left ${job4}" 20 &&
    wait_for "scontrol show job ${job4} | grep -q JobState=CANCELLED" 20; then
    pass "scancel ${job4}: both ranks and the ephemeral zerorund ended, the job is CANCELLED"
  else
    fail "scancel: left $(pgrep -af "zerorun-slurm-${job4}\\.|${tmp}/"); $(scontrol show job "${job4}" | grep -o 'JobState=[A-Z]*')"
  fi
else
  fail "job 4 did not start: $(cat "${tmp}/job4.out" 2>/dev/null)"
  scancel "${job4}" || true
fi

# 6. The example batch script of deploy/slurm/: real ZeRO training of the example GPT.
if (cd "${src}" && ZR_BUILD_DIR="${build}" sbatch -N1 --ntasks-per-node=2 --wait \
  --output="${tmp}/demo.out" deploy/slurm/train.sbatch >/dev/null) &&
  grep -q "succeeded: all 2 rank(s) exited 0" "${tmp}/demo.out" &&
  grep -qE "step +50/50 \| loss" "${tmp}/demo.out"; then
  pass "deploy/slurm/train.sbatch trained 50 steps on 2 ranks"
else
  fail "deploy/slurm/train.sbatch: $(tail -5 "${tmp}/demo.out" 2>/dev/null)"
fi

# 5. Outside an allocation: refused before anything starts, naming the variable and the fix.
out="$(env -u SLURM_JOB_ID "${zerorun}" --launcher slurm --config "${tmp}/ds.json" --device cpu \
  "${rank}" 2>&1)" && code=0 || code=$?
if [[ "${code}" -eq 2 && "${out}" == *"SLURM_JOB_ID is not set"* ]]; then
  pass "outside an allocation: exit 2 naming SLURM_JOB_ID"
else
  fail "outside an allocation: exit ${code}: ${out}"
fi

echo "slurm e2e: ${passed} passed, ${failed} failed"
[[ "${failed}" -eq 0 ]]
