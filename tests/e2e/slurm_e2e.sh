#!/usr/bin/env bash
# e2e: zerorun --launcher slurm against a real Slurm (Debian's slurm-wlm with munge) across a real
# multi-node allocation, configured and started here: three network namespaces on a bridge with
# their own 10.x addresses, slurmctld (and the submit host) in the first, one slurmd in each of
# the other two (`slurmd -N <NodeName>`: each node its own address and name), munged beside them,
# every daemon owned and ended by pid.
# Checks: sbatch and salloc of 2 nodes x 2 ranks (hosts and slots from the allocation, one
# ephemeral zerorund per node started with srun and gone afterwards, each rank on its own node, no
# secret in a rank's environment); a rank on the second node killed from outside ends the job
# with its exit code; scancel ends every rank; the example batch script of deploy/slurm/ trains
# ZeRO-2 across both nodes. Needs root, ip netns and Slurm (exit 77, skipped with the reason,
# otherwise).
# Usage: slurm_e2e.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
zerorun="${build}/launcher/zerorun"
rank="${build}/tests/zr_test_rank"
if [[ "$(id -u)" -ne 0 ]] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: needs root and ip netns (munged, slurmctld and slurmd are started here)"
  exit 77
fi
for tool in munged mungekey slurmctld slurmd sbatch salloc scancel scontrol nsenter; do
  if ! command -v "${tool}" >/dev/null; then
    echo "SKIP: ${tool} not installed (deploy/install-deps.sh --test installs slurm-wlm and munge)"
    exit 77
  fi
done
tmp="$(mktemp -d /tmp/zr-slurm.XXXXXX)"
chmod 755 "${tmp}"
# Namespaces: c (slurmctld, sbatch/salloc), a and b (the nodes), on a subnet of this run's own.
tag="zrs$$"
subnet="10.$((100 + $$ % 100)).$((RANDOM % 250 + 1))"
names=(c a b)
daemons=()
cleanup() {
  for pid in "${daemons[@]}"; do kill "${pid}" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${daemons[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done
  for n in "${names[@]}" br; do ip netns del "${tag}${n}" 2>/dev/null || true; done
  rm -rf "${tmp}"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/e2e_lib.sh
source "${src}/tests/e2e/e2e_lib.sh"
bridged_namespaces "${tag}" "${subnet}" "${names[@]}"
# In a namespace's network only: the file system (cgroups, /sys) stays this machine's, as a real
# node's would be its own (`ip netns exec` remounts /sys, without the cgroups slurmd reads).
in_ns() {
  local n="$1"
  shift
  nsenter --net="/run/netns/${tag}${n}" "$@"
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

# The nodes are named by their addresses (no DNS here): SLURM_JOB_NODELIST holds what zerorun
# dials.
node_a="${subnet}.2"
node_b="${subnet}.3"
cat >"${tmp}/slurm.conf" <<EOF
ClusterName=zrtest
SlurmctldHost=$(hostname -s)(${subnet}.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=${tmp}/munge/munge.sock
CredType=cred/munge
StateSaveLocation=${tmp}/state
SlurmdSpoolDir=${tmp}/spool/%n
SlurmctldPidFile=${tmp}/slurmctld.pid
SlurmdPidFile=${tmp}/slurmd.%n.pid
SlurmctldLogFile=${tmp}/slurmctld.log
SlurmdLogFile=${tmp}/slurmd.%n.log
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
NodeName=${node_a} NodeAddr=${node_a} CPUs=$(nproc) State=UNKNOWN
NodeName=${node_b} NodeAddr=${node_b} CPUs=$(nproc) State=UNKNOWN
PartitionName=zr Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="${tmp}/slurm.conf"
# The daemons through nsenter itself (not the in_ns function: a background function is a
# subshell, and ending its pid would leave the daemon): with --net alone nsenter execs the
# program, so $! is the daemon.
nsenter --net="/run/netns/${tag}c" slurmctld -D -f "${SLURM_CONF}" >"${tmp}/slurmctld.out" 2>&1 &
daemons+=($!)
for n in a b; do
  node="${node_a}"
  [[ "${n}" == b ]] && node="${node_b}"
  mkdir -p "${tmp}/spool/${node}"
  nsenter --net="/run/netns/${tag}${n}" slurmd -D -f "${SLURM_CONF}" -N "${node}" \
    >"${tmp}/slurmd_${n}.out" 2>&1 &
  daemons+=($!)
done
both_idle() {
  [[ "$(in_ns c sinfo -h -N -o %t | sort -u)" == idle && "$(in_ns c sinfo -h -N -o %N | wc -l)" == 2 ]]
}
if ! wait_for both_idle 30; then
  tail -5 "${tmp}/slurmctld.log" "${tmp}"/slurmd.*.log "${tmp}"/slurmd_*.out 2>/dev/null || true
  echo "FAIL: the Slurm nodes did not become idle"
  exit 1
fi
echo "slurm: $(in_ns c sinfo -h -o '%D nodes %N %t, %c CPUs each')"

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

# 1. sbatch: 2 nodes x 2 ranks (--ntasks-per-node=2), through one ephemeral zerorund per node;
#    ranks 0-1 on the first node, 2-3 on the second (as Slurm's SLURMD_NODENAME says).
mkdir -p "${tmp}/env1"
chmod 1777 "${tmp}/env1"
if in_ns c sbatch -N2 --ntasks-per-node=2 --output="${tmp}/job1.out" --wait "${tmp}/job.sh" \
  --run-ms 300 --env-dir "${tmp}/env1" >"${tmp}/sbatch1.out"; then
  job1="$(grep -oE '[0-9]+' "${tmp}/sbatch1.out" | head -1)"
  if grep -q "succeeded: all 4 rank(s) exited 0" "${tmp}/job1.out" &&
    grep -qF "starting zerorund on 2 node(s) (${subnet}.[2-3]) with srun" "${tmp}/job1.out" &&
    grep -q "^SLURM_JOB_ID=${job1}$" "${tmp}/env1/rank_3.env" &&
    grep -qx "SLURMD_NODENAME=${node_a}" "${tmp}/env1/rank_1.env" &&
    grep -qx "SLURMD_NODENAME=${node_b}" "${tmp}/env1/rank_2.env" &&
    grep -qx "NODE_RANK=1" "${tmp}/env1/rank_3.env"; then
    pass "sbatch: 4 ranks on 2 nodes (${node_a}: 0-1, ${node_b}: 2-3) ran in Slurm job ${job1} and exited 0"
  else
    fail "sbatch: $(cat "${tmp}/job1.out") $(grep -h "SLURMD_NODENAME\|NODE_RANK" "${tmp}"/env1/*.env)"
  fi
  if grep -qE "^(ZR_SECRET|ZR_TLS_DIR)=" "${tmp}"/env1/rank_*.env; then
    fail "a rank's environment holds the agents' secret"
  else
    pass "no zerorun credential in a rank's environment"
  fi
  if wait_for "nothing_left ${job1}" 10; then
    pass "the ephemeral zerorunds and the ranks are gone after the job"
  else
    fail "left behind: $(pgrep -af "zerorun-slurm-${job1}\\.|${tmp}/")"
  fi
else
  fail "sbatch exited non-zero: $(cat "${tmp}/job1.out")"
fi

# 2. salloc: the same from an interactive allocation (the launcher on the submit host).
if in_ns c salloc -N2 --ntasks-per-node=2 "${tmp}/job.sh" --run-ms 200 >"${tmp}/salloc.out" 2>&1 &&
  grep -q "succeeded: all 4 rank(s) exited 0" "${tmp}/salloc.out"; then
  pass "salloc: 4 ranks on 2 nodes exited 0"
else
  fail "salloc: $(cat "${tmp}/salloc.out")"
fi

# 3. A rank of the second node SIGKILLed from outside: the job ends, exit 137, naming the rank,
#    and the first node's ranks are stopped.
mkdir -p "${tmp}/env3"
chmod 1777 "${tmp}/env3"
in_ns c sbatch -N2 --ntasks-per-node=1 --output="${tmp}/job3.out" --wait "${tmp}/job.sh" \
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
    grep -q "rank 1" "${tmp}/job3.out" && grep -qF "${node_b}" "${tmp}/job3.out" &&
    ! kill -0 "${rank0}" 2>/dev/null && [[ "${took}" -le 15 ]]; then
    pass "rank 1 on ${node_b} SIGKILLed: the job failed with exit 137 in ${took} s, rank 0 on ${node_a} was stopped"
  else
    fail "killed rank (sbatch ${code}, ${took} s): $(cat "${tmp}/job3.out")"
  fi
else
  kill "${sbatch3}" 2>/dev/null || true
  fail "job 3 did not start: $(cat "${tmp}/job3.out" 2>/dev/null)"
fi

# 4. scancel: every rank on both nodes ends, the job is CANCELLED.
mkdir -p "${tmp}/env4"
chmod 1777 "${tmp}/env4"
job4="$(in_ns c sbatch --parsable -N2 --ntasks-per-node=1 --output="${tmp}/job4.out" \
  "${tmp}/job.sh" --run-ms 60000 --env-dir "${tmp}/env4")"
if wait_for "[[ -s ${tmp}/env4/rank_1.pid && -s ${tmp}/env4/rank_0.pid ]]" 30; then
  pids="$(cat "${tmp}/env4/rank_0.pid") $(cat "${tmp}/env4/rank_1.pid")"
  in_ns c scancel "${job4}"
  if wait_for "all_gone ${pids}" 20 &&
    wait_for "nothing_left ${job4}" 20 &&
    wait_for "in_ns c scontrol show job ${job4} | grep -q JobState=CANCELLED" 20; then
    pass "scancel ${job4}: the ranks and the ephemeral zerorunds of both nodes ended, the job is CANCELLED"
  else
    fail "scancel: left $(pgrep -af "zerorun-slurm-${job4}\\.|${tmp}/"); $(in_ns c scontrol show job "${job4}" | grep -o 'JobState=[A-Z]*')"
  fi
else
  fail "job 4 did not start: $(cat "${tmp}/job4.out" 2>/dev/null)"
  in_ns c scancel "${job4}" || true
fi

# 6. The example batch script of deploy/slurm/: real ZeRO-2 training of the example GPT, one rank
#    on each node (Gloo across the bridge).
if (cd "${src}" && ZR_BUILD_DIR="${build}" in_ns c sbatch -N2 --ntasks-per-node=1 --wait \
  --output="${tmp}/demo.out" deploy/slurm/train.sbatch >/dev/null) &&
  grep -q "succeeded: all 2 rank(s) exited 0" "${tmp}/demo.out" &&
  grep -qE "step +50/50 \| loss" "${tmp}/demo.out" && grep -q "2 rank(s) on 2 node(s)" "${tmp}/demo.out"; then
  pass "deploy/slurm/train.sbatch trained 50 steps on 2 nodes"
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

# The daemons are the processes this test holds (so its cleanup ends them, leaving nothing).
for pid in "${daemons[@]}"; do
  if ! grep -qE "munged|slurmctld|slurmd" "/proc/${pid}/comm" 2>/dev/null; then
    fail "pid ${pid} is not a daemon of this test: $(cat "/proc/${pid}/cmdline" 2>/dev/null | tr '\0' ' ')"
  fi
done

echo "slurm e2e: ${passed} passed, ${failed} failed"
[[ "${failed}" -eq 0 ]]
