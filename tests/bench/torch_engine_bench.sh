#!/usr/bin/env bash
# Benchmark (label bench; issue 28): zerorun.torch against DeepSpeed (pinned, CPU accelerator)
# at ZeRO-2 and ZeRO-3, torch FSDP (FULL_SHARD per block; FSDP2 refuses CPU in torch 2.5) and
# DDP on the same transformers GPT-2 (~23M parameters, seq 256, micro batch 2, fp32, AdamW,
# clipping 1.0), 2 CPU ranks under zerorun's launcher, one thread each. Systems run in turn,
# ROUNDS times (default 3), so this machine's drift hits all alike; prints per system the median
# tokens/s and the larger rank's peak RSS, then the goals' ratios (zerorun ZeRO-2 >= 1.15x
# DeepSpeed ZeRO-2 and >= 1.0x DDP; ZeRO-3 >= 1.25x DeepSpeed ZeRO-3 and >= 1.1x FSDP; RSS
# <= 0.9x DeepSpeed's). STEPS (default 6) timed steps after 2 warm-up steps per run.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
steps="${STEPS:-6}"
printf 'localhost slots=2\n' >"${tmp}/hosts"
for stage in 2 3; do
  cat >"${tmp}/ds${stage}.json" <<JSON
{"train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": 0.01}},
 "zero_optimization": {"stage": ${stage}, "overlap_comm": true}}
JSON
done
systems=(zerorun-z2 deepspeed-z2 zerorun-z3 deepspeed-z3 fsdp ddp)
# run SYSTEM: appends "SYSTEM tokens/s rss_mib" to results.
run() {
  local system="$1" mode="${1%-z*}" stage=2
  [[ "$1" == *-z3 ]] && stage=3
  local out="${tmp}/out-${system}"
  rm -rf "${out}" && mkdir -p "${out}"
  PYTHONPATH="${build}/python" OMP_NUM_THREADS=1 "${build}/launcher/zerorun" \
    --hostfile "${tmp}/hosts" --config "${tmp}/ds${stage}.json" --device cpu \
    --env "ZR_BENCH_CONFIG=${tmp}/ds${stage}.json" \
    "${python}" "${root}/tests/bench/torch_peers.py" "${mode}" "${out}" "${steps}" \
    >"${out}.log" 2>&1 || { tail -20 "${out}.log"; return 1; }
  bench_row "${out}" "${system}" tokens
}
run_rounds run "${systems[@]}"
bench_summary tokens/s "zerorun-z2/deepspeed-z2 >= 1.15" "zerorun-z2/ddp >= 1.0" \
  "zerorun-z3/deepspeed-z3 >= 1.25" "zerorun-z3/fsdp >= 1.1" \
  "rss:zerorun-z2/deepspeed-z2 <= 0.9" "rss:zerorun-z3/deepspeed-z3 <= 0.9"
