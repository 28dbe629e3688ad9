#!/usr/bin/env bash
# Benchmark (label bench): the example GPT's speed built from this tree against a base commit
# (ZR_BENCH_BASE, default HEAD~1), so a runtime redesign shows it costs nothing (issue 27: every
# ratio >= 0.97). Both train_gpt binaries run under this tree's zerorun, rounds alternating
# (new, base; then base, new), on the same configs: stages 0-3 at world 2 with overlap_comm on
# and off, bf16 stage 3, and bf16 stage 3 with the optimizer on NVMe at world 1. Prints per
# config the median tokens/s of each side and new/base. The base build is kept in
# build/bench-base-<sha> (one configure + train_gpt build, minutes, the first time).
# ZR_BENCH_ROUNDS (3), ZR_BENCH_STEPS (10) and ZR_BENCH_ONLY (a regex of config names) narrow it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
base_rev="$(git -C "${root}" rev-parse "${ZR_BENCH_BASE:-HEAD~1}")"
base_src="${build}/bench-base-${base_rev:0:12}/src"
base_build="${build}/bench-base-${base_rev:0:12}/build"
if [[ ! -x "${base_build}/runtime/examples/gpt/train_gpt" ]]; then
  echo "building train_gpt at ${base_rev:0:12} in ${base_build}" >&2
  rm -rf "${base_src}" && mkdir -p "${base_src}"
  git -C "${root}" archive "${base_rev}" | tar -x -C "${base_src}"
  # The build type and CUDA setting of this tree's build: the same compiler flags on both sides.
  type="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "${build}/CMakeCache.txt")"
  cuda="$(sed -n 's/^ZR_WITH_CUDA:BOOL=//p' "${build}/CMakeCache.txt")"
  cmake -S "${base_src}" -B "${base_build}" -G Ninja -DCMAKE_BUILD_TYPE="${type}" \
    -DZR_WITH_CUDA="${cuda:-OFF}" >/dev/null
  cmake --build "${base_build}" -j "$(nproc)" --target train_gpt >/dev/null
fi
declare -A bin=([new]="${build}/runtime/examples/gpt/train_gpt"
  [base]="${base_build}/runtime/examples/gpt/train_gpt")
nvme="$(mktemp -d -p "${build}")"  # On disk, where nvme_path would be (not tmpfs).
trap 'rm -rf "${tmp}" "${nvme}"' EXIT
printf '127.0.0.1 slots=2\n' >"${tmp}/hosts"

peer=(--layers 4 --d-model 256 --heads 4 --seq 128)
big=(--layers 7 --d-model 768 --heads 12 --seq 32)
nvme_zero="\"zero_optimization\": {\"stage\": 3, \"sub_group_size\": 1000000,
  \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"${nvme}\"}}"
nvme_zero="${nvme_zero//$'\n'/}"  # One line: a config is one |-separated line.
# name|world|micro batch|config keys|model
configs=(
  "stage 0|2|8|\"zero_optimization\": {\"stage\": 0}|peer"
  "stage 1|2|8|\"zero_optimization\": {\"stage\": 1}|peer"
  "stage 2|2|8|\"zero_optimization\": {\"stage\": 2, \"overlap_comm\": true}|peer"
  "stage 2 no overlap|2|8|\"zero_optimization\": {\"stage\": 2, \"overlap_comm\": false}|peer"
  "stage 3|2|8|\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": true}|peer"
  "stage 3 no overlap|2|8|\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": false}|peer"
  "stage 3 bf16|2|8|\"bf16\": {\"enabled\": true}, \"zero_optimization\": {\"stage\": 3}|peer"
  "stage 3 bf16 nvme|1|1|\"bf16\": {\"enabled\": true}, ${nvme_zero}|big")

# run SIDE CONFIG: prints rank 0's median tokens/s.
run() {
  local side="$1"
  IFS='|' read -r name world micro keys model <<<"$2"
  echo "{\"train_micro_batch_size_per_gpu\": ${micro}, \"gradient_clipping\": 1.0, ${keys}}" \
    >"${tmp}/ds.json"
  local -n shape="${model}"
  "${build}/launcher/zerorun" --hostfile "${tmp}/hosts" --config "${tmp}/ds.json" --device cpu \
    --num_gpus "${world}" --ranks 0 "${bin[${side}]}" --random-tokens --vocab 4096 \
    --steps "${ZR_BENCH_STEPS:-10}" --log-every 1000 "${shape[@]}" 2>&1 |
    sed -nE 's/.*median ([0-9]+) tokens\/s.*/\1/p'
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rounds="${ZR_BENCH_ROUNDS:-3}"
echo "== example GPT tokens/s: this tree (new) vs ${base_rev:0:12} (base), ${rounds} alternating rounds"
printf '%-22s %10s %10s %8s  %s\n' config new base ratio rounds
worst=""
for config in "${configs[@]}"; do
  name="${config%%|*}"
  [[ -z "${ZR_BENCH_ONLY:-}" || "${name}" =~ ${ZR_BENCH_ONLY} ]] || continue
  new=() old=()
  for ((round = 0; round < rounds; ++round)); do
    if ((round % 2 == 0)); then
      new+=("$(run new "${config}")") old+=("$(run base "${config}")")
    else
      old+=("$(run base "${config}")") new+=("$(run new "${config}")")
    fi
  done
  n="$(median "${new[@]}")" o="$(median "${old[@]}")"
  ratio="$(awk -v n="${n}" -v o="${o}" 'BEGIN {printf "%.3f", n / o}')"
  printf '%-22s %10s %10s %8s  new %s / base %s\n' "${name}" "${n}" "${o}" "${ratio}" \
    "${new[*]}" "${old[*]}"
  worst="$(awk -v w="${worst:-9}" -v r="${ratio}" 'BEGIN {print (r < w ? r : w)}')"
done
echo "lowest ratio ${worst} (goal >= 0.97)"
