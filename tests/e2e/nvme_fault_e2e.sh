#!/usr/bin/env bash
# e2e: faults under ZeRO-Infinity's nvme_path while a 2-rank stage-3 job runs with its optimizer
# state, gradients and parameter shards there (issue 12). Each case asserts the exit code, the
# rank and path named, the time bound, that no rank is left and that no file of the user's in
# nvme_path is deleted:
#  A. the swap directories deleted mid-run (the open files would go on working unseen);
#  B. the file system under nvme_path fails mid-run (an ext4 loop mount shut down, as a dying
#     disk or an errors=remount-ro remount leaves it: every transfer errors);
#  C. nvme_path too small: pre-flight (--params) refuses it before launch with the bytes needed,
#     and without --params the ranks' up-front reservation fails naming them;
#  D. the file system fills up mid-run (another writer): the space was reserved at start, so the
#     training finishes.
# Needs root for the mounts (exit 77, skipped, otherwise).
# Usage: nvme_fault_e2e.sh BUILD_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "SKIP: needs root for tmpfs and loop mounts"
  exit 77
fi
tmp="$(mktemp -d -p /var/tmp)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done
  for m in "${tmp}"/mnt-*; do umount -l "${m}" 2>/dev/null || true; done
  rm -rf "${tmp}"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  [[ -f "${tmp}/run.log" ]] && grep -v "^\(-\|localhost\) " "${tmp}/run.log" | tail -20
  exit 1
}
passed=0
echo "localhost slots=2" >"${tmp}/hosts"
# A small GPT (1.3M parameters) so that a step takes tens of milliseconds.
model=(--random-tokens --vocab 4096 --layers 4 --d-model 128 --heads 4 --seq 32 --log-every 1)
config() {  # config NAME NVME_PATH
  cat >"${tmp}/$1.json" <<JSON
{"train_batch_size": 4, "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
 "bf16": {"enabled": true}, "aio": {"block_size": 65536},
 "zero_optimization": {"stage": 3, "overlap_comm": true, "sub_group_size": 100000,
  "stage3_param_persistence_threshold": 1000,
  "offload_optimizer": {"device": "nvme", "nvme_path": "$2"},
  "offload_param": {"device": "nvme", "nvme_path": "$2"}}}
JSON
}
# Starts the job in the background: $job_pid, output in run.log.
start_job() {  # start_job CONFIG STEPS
  ZR_HOME="${tmp}/home" timeout 120 "${build}/launcher/zerorun" --hostfile "${tmp}/hosts" \
    --config "${tmp}/$1.json" --device cpu "${build}/runtime/examples/gpt/train_gpt" \
    "${model[@]}" --steps "$2" >"${tmp}/run.log" 2>&1 &
  job_pid=$!
  pids+=("${job_pid}")
}
wait_for_step() {  # wait_for_step N: until rank 0 logged step N (30 s at most: a loaded CI machine)
  for _ in $(seq 600); do
    grep -q "step *$1/" "${tmp}/run.log" 2>/dev/null && return 0
    kill -0 "${job_pid}" 2>/dev/null || fail "the job ended before step $1"
    sleep 0.05
  done
  fail "no step $1 within 30 s"
}
# Waits for the job (at most $1 s after now), sets $rc and $took.
finish_job() {
  local start
  start=$(date +%s.%N)
  for _ in $(seq $(($1 * 20))); do kill -0 "${job_pid}" 2>/dev/null || break; sleep 0.05; done
  kill -0 "${job_pid}" 2>/dev/null && fail "the job still runs $1 s after the fault"
  set +e
  wait "${job_pid}"
  rc=$?
  set -e
  took="$(awk -v s="${start}" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')"
}
mount_fs() {  # mount_fs NAME ARGS...: mounts at ${tmp}/mnt-NAME, sets $mnt.
  mnt="${tmp}/mnt-$1"
  mkdir "${mnt}"
  shift
  mount "$@" "${mnt}"
}
no_rank_left() {
  local left
  left="$(pgrep -f "${tmp}/.*json" || true)"
  [[ -z "${left}" ]] || fail "processes left: ${left}"
}

# A. The swap directories deleted mid-run.
nvme="${tmp}/nvme-a"
mkdir "${nvme}"
echo "the user's" >"${nvme}/keep.txt"
config a "${nvme}"
start_job a 2000
wait_for_step 5
rm -rf "${nvme}"/zerorun-*
finish_job 20
[[ "${rc}" != 0 ]] || fail "A: the job went on after its swap files were deleted"
grep -q "rank [01].*swap file ${nvme}/zerorun-.* was deleted while the job ran" "${tmp}/run.log" ||
  fail "A: no error naming the rank and the deleted swap file"
grep -q "root cause (first failure):.*host localhost.*rank [01]" "${tmp}/run.log" ||
  fail "A: zerorun named no root cause"
[[ -f "${nvme}/keep.txt" ]] || fail "A: the user's file in nvme_path was deleted"
no_rank_left
echo "ok: A. swap directories deleted mid-run: exit ${rc} ${took} s after, the rank and file named"
passed=$((passed + 1))

# B. The file system under nvme_path fails mid-run.
truncate -s 256M "${tmp}/disk-b.img"
mkfs.ext4 -q -F "${tmp}/disk-b.img"
mount_fs b -o loop "${tmp}/disk-b.img"
config b "${mnt}"
start_job b 2000
wait_for_step 5
# EXT4_IOC_SHUTDOWN (_IOR('X', 125, __u32)) with EXT4_GOING_FLAGS_NOLOGFLUSH: every I/O fails.
python3 -c 'import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 2))' "${mnt}"
finish_job 20
[[ "${rc}" != 0 ]] || fail "B: the job went on after its file system failed"
grep -q "rank [01].*${mnt}/zerorun-.*: Input/output error" "${tmp}/run.log" ||
  fail "B: no I/O error naming the rank and the swap file"
no_rank_left
umount -l "${mnt}"
echo "ok: B. nvme_path's file system failed mid-run: exit ${rc} ${took} s after, rank and file named"
passed=$((passed + 1))

# C. nvme_path too small for the swap files.
mount_fs c -t tmpfs -o size=4m tmpfs
echo "the user's" >"${mnt}/keep.txt"
config c "${mnt}"
set +e
ZR_HOME="${tmp}/home" "${build}/launcher/zerorun" preflight --hostfile "${tmp}/hosts" \
  --config "${tmp}/c.json" --device cpu --params 1300000 >"${tmp}/run.log" 2>&1
rc=$?
set -e
[[ "${rc}" == 69 ]] || fail "C: pre-flight with --params exited ${rc}, not 69"
grep -q "offload_optimizer.nvme_path .*CRITICAL.*${mnt}" "${tmp}/run.log" ||
  fail "C: pre-flight did not name nvme_path"
start_job c 20
finish_job 20
[[ "${rc}" != 0 ]] || fail "C: the job trained although its swap files cannot fit"
grep -q "rank [01].*cannot reserve [0-9]* bytes for ${mnt}/zerorun-.*No space left" \
  "${tmp}/run.log" || fail "C: no error naming the rank, the bytes and the path"
[[ "$(ls -A "${mnt}")" == "keep.txt" ]] || fail "C: nvme_path holds $(ls -A "${mnt}")"
no_rank_left
umount -l "${mnt}"
echo "ok: C. nvme_path too small: pre-flight 69 before launch; at the ranks exit ${rc}, bytes named"
passed=$((passed + 1))

# D. The file system fills up mid-run.
mount_fs d -t tmpfs -o size=64m tmpfs
config d "${mnt}"
start_job d 60
wait_for_step 5
dd if=/dev/zero of="${mnt}/filler" bs=1M 2>/dev/null || true  # Until ENOSPC.
[[ "$(df --output=avail -k "${mnt}" | tail -1 | tr -d ' ')" -lt 1024 ]] || fail "D: not full"
finish_job 60
[[ "${rc}" == 0 ]] || fail "D: the job failed (exit ${rc}) when its file system filled"
grep -q "60 steps in" "${tmp}/run.log" || fail "D: the training did not finish"
[[ "$(ls -A "${mnt}")" == "filler" ]] || fail "D: swap files left: $(ls -A "${mnt}")"
no_rank_left
umount -l "${mnt}"
echo "ok: D. nvme_path filled by another writer mid-run: the training finished (space reserved)"
passed=$((passed + 1))
echo "nvme fault e2e: ${passed} passed, 0 failed"
