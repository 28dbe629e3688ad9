#!/usr/bin/env bash
# Benchmark (label bench): ZeRO-Offload and ZeRO-Infinity on the 56M-parameter GPT (7 layers,
# d_model 768, seq 32, bf16, stage 3), in one run (issue 12):
#  A. median step time and peak RSS per rank at world 1 and 2: in memory, offload to cpu, the
#     optimizer state on nvme (DeepSpeed's default buffer_count: a ring of 3 chunks; and a ring
#     of ZR_BENCH_AHEAD=32 chunks read ahead during the forward and backward passes), the
#     optimizer state and the parameters on nvme; ratios to the
#     in-memory run (goals: optimizer on nvme <= 1.5x the step; RSS with everything on nvme
#     < 1/4). The swapper's read and write GB/s during training are printed with each nvme run.
#  B. fio's O_DIRECT io_uring sequential read and write in the same directory with the same
#     block size and queue depth (best of two rounds), next to the swapper's rates of A (goal:
#     >= 0.8 of fio), and the world-1 optimizer-on-nvme steps against max(the in-memory step,
#     their swap bytes at fio's rates) (issue 27's goal: <= 1.05x), stricter at the faster of
#     fio and the swapper alone, and at fio's mixed rate (reads and writes at once, half each: how
#     the swap moves its bytes).
#  C. (ZR_BENCH_LARGEST=1, minutes) the largest GPT that trains one step on this machine in
#     memory and with Infinity, next to the formulas (16P bytes of RAM per rank; Infinity 16P of
#     disk plus a few gathered layers of RAM).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
nvme="$(mktemp -d -p "${build}")"  # On disk, where nvme_path would be (not tmpfs).
trap 'rm -rf "${tmp}" "${nvme}"' EXIT
if ! command -v fio >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null
fi
printf '127.0.0.1 slots=2\n' >"${tmp}/hosts"
block=1048576 depth=8
# One gathered layer (7.1M elements) at most, freed after use: stage 3 shaped for a large model.
zero3='"stage": 3, "overlap_comm": true, "stage3_max_live_parameters": 8000000,
  "stage3_max_reuse_distance": 0, "stage3_prefetch_bucket_size": 8000000, "sub_group_size": 1000000'
opt_nvme="\"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"${nvme}\"}"
# The same with a ring of ${ahead} chunks (buffer_count counts one array of one sub-group): the next
# step's first chunks are read during the forward and backward passes.
ahead="${ZR_BENCH_AHEAD:-32}"
opt_ahead="${opt_nvme%\}}, \"buffer_count\": $((4 * ahead))}"
par_nvme="\"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"${nvme}\"}"
declare -A placement=(
  [memory]=""
  [cpu]=", \"offload_optimizer\": {\"device\": \"cpu\"}, \"offload_param\": {\"device\": \"cpu\"}"
  [nvme-optimizer]=", ${opt_nvme}"
  [nvme-opt-ahead]=", ${opt_ahead}"
  [nvme-all]=", ${opt_nvme}, ${par_nvme}")
order=(memory cpu nvme-optimizer nvme-opt-ahead nvme-all)

# run WORLD NAME STEPS MODEL...: sets step_ms, rss_mib, swap (the swapper's line) for rank 0.
run() {
  local world="$1" name="$2" steps="$3"
  shift 3
  cat >"${tmp}/ds.json" <<JSON
{"train_micro_batch_size_per_gpu": 1, "gradient_clipping": 1.0, "bf16": {"enabled": true},
 "aio": {"block_size": ${block}, "queue_depth": ${depth}},
 "zero_optimization": {${zero3}${placement[${name}]}}}
JSON
  local out
  out="$("${build}/launcher/zerorun" --hostfile "${tmp}/hosts" --config "${tmp}/ds.json" \
    --device cpu --num_gpus "${world}" "${build}/runtime/examples/gpt/train_gpt" \
    --random-tokens --vocab 4096 --steps "${steps}" --log-every "${steps}" "$@" 2>&1)" ||
    { echo "${out}" | tail -5; return 1; }
  local summary
  summary="$(grep "steps in" <<<"${out}")"
  local tps
  tps="$(grep -oE 'median [0-9.]+ tokens/s' <<<"${summary}" | grep -oE '[0-9.]+')"
  step_ms="$(awk -v t="${tps}" -v w="${world}" -v s="${seq}" 'BEGIN {printf "%.0f", 1000 * w * s / t}')"
  rss_mib="$(grep -oE 'peak RSS [0-9]+' <<<"${summary}" | grep -oE '[0-9]+')"
  total_s="$(grep -oE '[0-9]+ steps in [0-9.]+ s' <<<"${summary}" | grep -oE '[0-9.]+ s$')"
  swap="$(grep -oE 'read [0-9.]+ GiB at [0-9.]+ GB/s, written [0-9.]+ GiB at [0-9.]+ GB/s' <<<"${out}" || true)"
}

seq=32
model=(--layers 7 --d-model 768 --heads 12 --seq "${seq}")
echo "== A. 56M-parameter GPT, bf16, stage 3: median step and peak RSS per rank (rank 0)"
printf '%-6s %-15s %9s %7s %9s %7s  %s\n' world placement "step ms" "x mem" "RSS MiB" "x mem" \
  "swapper during training"
best_read=0 best_write=0
declare -A opt_ms opt_read opt_written
for world in 1 2; do
  for name in "${order[@]}"; do
    run "${world}" "${name}" 6 "${model[@]}"
    [[ "${name}" == memory ]] && { base_ms="${step_ms}"; base_rss="${rss_mib}"; }
    printf '%-6s %-15s %9s %7s %9s %7s  %s\n' "${world}" "${name}" "${step_ms}" \
      "$(awk -v a="${step_ms}" -v b="${base_ms}" 'BEGIN {printf "%.2f", a / b}')" "${rss_mib}" \
      "$(awk -v a="${rss_mib}" -v b="${base_rss}" 'BEGIN {printf "%.2f", a / b}')" "${swap}"
    if [[ -n "${swap}" ]]; then
      r="$(sed -E 's/.*GiB at ([0-9.]+) GB\/s, written.*/\1/' <<<"${swap}")"
      w="$(sed -E 's/.*written [0-9.]+ GiB at ([0-9.]+) GB\/s/\1/' <<<"${swap}")"
      best_read="$(awk -v a="${r}" -v b="${best_read}" 'BEGIN {print (a > b ? a : b)}')"
      best_write="$(awk -v a="${w}" -v b="${best_write}" 'BEGIN {print (a > b ? a : b)}')"
    fi
    if [[ "${world}" == 1 && "${name}" == nvme-opt* ]]; then  # GiB a step, for B's bound.
      opt_ms[${name}]="${step_ms}" mem_ms="${base_ms}"
      opt_read[${name}]="$(sed -E 's/^read ([0-9.]+) GiB.*/\1/' <<<"${swap}")"
      opt_written[${name}]="$(sed -E 's/.*written ([0-9.]+) GiB.*/\1/' <<<"${swap}")"
    fi
  done
done

echo "== B. NVMe bandwidth: the swapper in training (best of A) next to fio in ${nvme}"
fio_gbs() {  # fio_gbs RW: sequential O_DIRECT io_uring, same block size and queue depth.
  fio --name=zr --directory="${nvme}" --filename=fio_file --size=1024M --bs="${block}" \
    --iodepth="${depth}" --ioengine=io_uring --direct=1 --rw="$1" --end_fsync=1 \
    --output-format=json --loops=3 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['$1']; print('%.2f' % (j['bw_bytes']/1e9))"
}
# Reads and writes at once, half each (the swap's traffic: a step reads and writes about the same
# bytes, concurrently): the GB/s of both directions together.
fio_mixed_gbs() {
  fio --name=zr --directory="${nvme}" --filename=fio_file --size=1024M --bs="${block}" \
    --iodepth="${depth}" --ioengine=io_uring --direct=1 --rw=rw --rwmixread=50 --end_fsync=1 \
    --output-format=json --loops=3 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]; print('%.2f' % ((j['read']['bw_bytes'] + j['write']['bw_bytes'])/1e9))"
}
# Best of two rounds each, alternating: this disk's rates swing between runs (cloud volumes).
fio_w=0 fio_r=0 fio_m=0
for round in 1 2; do
  fio_w="$(awk -v a="$(fio_gbs write)" -v b="${fio_w}" 'BEGIN {print (a > b ? a : b)}')"
  fio_r="$(awk -v a="$(fio_gbs read)" -v b="${fio_r}" 'BEGIN {print (a > b ? a : b)}')"
  fio_m="$(awk -v a="$(fio_mixed_gbs)" -v b="${fio_m}" 'BEGIN {print (a > b ? a : b)}')"
done
rm -f "${nvme}/fio_file"
# The same transfers without training around them: the swapper alone, sequential, as fio runs.
raw="$("${build}/tests/zr_nvme_swapper_bench" "${nvme}" 1024 $((block / 1024)) "${depth}")"
rw="$(grep -oE 'write [0-9.]+' <<<"${raw}" | grep -oE '[0-9.]+')"
rr="$(grep -oE 'read [0-9.]+' <<<"${raw}" | grep -oE '[0-9.]+')"
awk -v r="${best_read}" -v w="${best_write}" -v fr="${fio_r}" -v fw="${fio_w}" 'BEGIN {
  printf "swapper: read %.2f GB/s, write %.2f GB/s; fio: read %.2f GB/s, write %.2f GB/s; " \
    "swapper/fio: read %.2fx, write %.2fx\n", r, w, fr, fw, r / fr, w / fw }'
for name in nvme-optimizer nvme-opt-ahead; do
  awk -v s="${opt_ms[${name}]}" -v m="${mem_ms}" -v r="${opt_read[${name}]}" \
    -v w="${opt_written[${name}]}" -v n=6 -v fr="${fio_r}" -v fw="${fio_w}" -v name="${name}" \
    -v sr="${rr}" -v sw="${rw}" -v fm="${fio_m}" 'BEGIN {
    io = 1000 * (r / n * 1.073741824 / fr + w / n * 1.073741824 / fw)
    bound = io > m ? io : m
    # Stricter: the faster of fio and the swapper alone for each direction.
    br = sr > fr ? sr : fr; bw = sw > fw ? sw : fw
    io2 = 1000 * (r / n * 1.073741824 / br + w / n * 1.073741824 / bw)
    bound2 = io2 > m ? io2 : m
    # The traffic as it happens: reads and writes at once, at fio mixed rate.
    io3 = 1000 * (r + w) / n * 1.073741824 / fm
    bound3 = io3 > m ? io3 : m
    printf "%s, world 1: step %d ms; in memory %d ms; its swap (%.2f GiB read, %.2f GiB " \
      "written a step) at fio rates %d ms; step / max(both) %.2fx (goal <= 1.05x); at the " \
      "faster of fio and the swapper alone %d ms: %.2fx; at fio mixed read+write %d ms: %.2fx\n",
      name, s, m, r / n, w / n, io, s / bound, io2, s / bound2, io3, s / bound3 }'
done
echo "fio mixed (half reads, half writes at once): ${fio_m} GB/s both directions together"
awk -v r="${rr}" -v w="${rw}" -v fr="${fio_r}" -v fw="${fio_w}" 'BEGIN {
  printf "swapper alone (1 GiB sequential): read %.2f GB/s, write %.2f GB/s; /fio: read %.2fx, " \
    "write %.2fx\n", r, w, r / fr, w / fw }'

if [[ "${ZR_BENCH_LARGEST:-0}" == 1 ]]; then
  echo "== C. the largest GPT that trains a step here (d_model 2048, seq 32, world 1)"
  free_gib="$(df --output=avail -B1G "${nvme}" | tail -1 | tr -d ' ')"
  ram_gib="$(awk '/MemAvailable/ {printf "%d", $2 / 1048576}' /proc/meminfo)"
  echo "RAM available ${ram_gib} GiB, disk free ${free_gib} GiB under ${nvme}"
  for spec in "memory ${ZR_LARGEST_MEMORY_LAYERS:-22}" "nvme-all ${ZR_LARGEST_NVME_LAYERS:-56}"; do
    read -r name layers <<<"${spec}"
    if run 1 "${name}" 1 --layers "${layers}" --d-model 2048 --heads 16 --seq "${seq}"; then
      params="$(awk -v l="${layers}" 'BEGIN {printf "%.2f", (12 * l * 2048 * 2048 + 4096 * 2048) / 1e9}')"
      echo "${name}: ${layers} layers, ${params}B parameters trained a step (${total_s});" \
        "peak RSS ${rss_mib} MiB; model states 16P = $(awk -v p="${params}" 'BEGIN {printf "%.1f", 16 * p}') GB"
    else
      echo "${name}: ${layers} layers did not train"
    fi
  done
fi
