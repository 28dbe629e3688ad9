#!/usr/bin/env bash
# Benchmark (label bench): checkpoint save and load bandwidth of the 56M-parameter GPT (7 layers,
# d_model 768; 672 MB of fp32 masters + Adam m, v) at world 1 and 2, next to dd's sequential
# O_DIRECT write (oflag=direct, conv=fsync) and read (iflag=direct) of the same bytes in the same
# directory, in the same run; and the training stall of an asynchronous save next to the time to
# copy the shard in memory (the snapshot into the kept staging buffer).
# Save figures are end to end (every rank's shard fsynced, the manifest and `latest` published),
# from the second save of a run (the first also populates the staging buffer, shown apart); load
# figures include the sha256 check of every shard; loads alternate with dd reads, ZR_BENCH_ROUNDS
# (3) rounds, medians compared.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
dir="${ZR_BENCH_DIR:-$(mktemp -d -p "${build}")}"  # On disk (tmpfs has no O_DIRECT).
trap 'rm -rf "${dir}"' EXIT
export ZR_HOME="${dir}/home"
printf '127.0.0.1 slots=2\n' > "${dir}/hosts"
echo '{"train_micro_batch_size_per_gpu": 1, "gradient_clipping": 1.0,
  "zero_optimization": {"stage": 1}}' > "${dir}/ds.json"
big=(--layers 7 --d-model 768 --heads 12 --seq 32 --random-tokens --vocab 4096)

# train WORLD ARGS...: train_gpt's rank-0 lines about saves and loads.
train() {
  local world="$1"
  shift
  "${build}/launcher/zerorun" --hostfile "${dir}/hosts" --config "${dir}/ds.json" --device cpu \
    --num_gpus "${world}" --ranks 0 "${build}/runtime/examples/gpt/train_gpt" "${big[@]}" \
    --log-every 100 "$@" 2>&1 | grep -E "saved|resumed" | sed -E 's/^\[rank 0 [^]]*\] train_gpt: //'
}
# gbs TEXT WORDS: the number before " GB/s WORDS" in TEXT.
gbs() { grep -oE "[0-9.]+ GB/s$2" <<< "$1" | head -1 | grep -oE '^[0-9.]+'; }

echo "== checkpoint save/load, 56M-parameter GPT, in ${dir} ($(df -T "${dir}" | awk 'NR==2 {print $2}'))"
# median VALUES...: the median of the numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
rounds="${ZR_BENCH_ROUNDS:-3}"
for world in 1 2; do
  rm -rf "${dir}/ckpt"
  saves="$(train "${world}" --steps 2 --save-dir "${dir}/ckpt" --save-every 1)"
  echo "${saves}" | sed "s/^/world ${world}: /"
  bytes=$(du -cb "${dir}"/ckpt/global_step2/zero_rank_*.bin | tail -1 | cut -f1)
  mib=$((bytes / 1048576))
  dd if=/dev/urandom of="${dir}/src" bs=1M count="${mib}" status=none
  dd_write="$(dd if="${dir}/src" of="${dir}/dd" bs=16M oflag=direct conv=fsync 2>&1 | tail -1)"
  to_gbs() { awk -v n="${mib}" -v t="$1" 'BEGIN { printf "%.2f", n * 1048576 / t / 1e9 }'; }
  dd_w=$(to_gbs "$(echo "${dd_write}" | awk '{print $(NF-3)}')")
  # Loads and dd's reads of the same bytes alternate (the disk's rate drifts between runs).
  loads=() dd_reads=()
  for ((r = 0; r < rounds; ++r)); do
    dd_read="$(dd if="${dir}/dd" of=/dev/null bs=16M iflag=direct 2>&1 | tail -1)"
    dd_reads+=("$(to_gbs "$(echo "${dd_read}" | awk '{print $(NF-3)}')")")
    load="$(train "${world}" --steps 2 --save-dir "${dir}/ckpt" --resume)"
    echo "${load}" | sed "s/^/world ${world}: /"
    loads+=("$(gbs "${load}" "")")
  done
  rm -f "${dir}/src" "${dir}/dd"
  echo "world ${world}: loads ${loads[*]} GB/s, dd reads ${dd_reads[*]} GB/s"
  dd_r=$(median "${dd_reads[@]}")
  save=$(gbs "$(echo "${saves}" | tail -1)" " end to end")
  load_gbs=$(median "${loads[@]}")
  awk -v w="${world}" -v s="${save}" -v l="${load_gbs}" -v dw="${dd_w}" -v dr="${dd_r}" \
    -v m="${mib}" 'BEGIN { printf "world %d, %d MiB: save %.2f GB/s vs dd O_DIRECT write %.2f GB/s = %.2fx; load (median) %.2f GB/s vs dd O_DIRECT read (median) %.2f GB/s = %.2fx\n", w, m, s, dw, s / dw, l, dr, l / dr }'
done

echo "== asynchronous save, world 2: training stall vs the in-memory copy of the shard"
rm -rf "${dir}/ckpt"
train 2 --steps 9 --save-dir "${dir}/ckpt" --save-every 3 --async-save | sed "s/^/world 2: /"
