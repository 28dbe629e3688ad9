#!/usr/bin/env bash
# Benchmark (label bench; issue 29): the same HF Trainer script with --deepspeed ds.json
# (tests/bench/hf_trainer_peer.py: GPT-2 ~23M parameters, seq 256, micro batch 2, fp32, the
# config's AdamW and WarmupLR, clipping 1.0) on DeepSpeed's engine (0.16.1, CPU accelerator) and
# on zerorun's (zerorun --engine zerorun), at ZeRO-2 and ZeRO-3, 2 CPU ranks, one thread each.
# Systems run in turn, ROUNDS times (default 3); prints per system the median train samples/s and
# the larger rank's peak RSS, then the goals' ratios (zerorun >= 1.15x DeepSpeed at ZeRO-2 and
# >= 1.25x at ZeRO-3; RSS <= 0.9x DeepSpeed's). STEPS (default 6) timed steps after 2 warm-up.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
steps="${STEPS:-6}"
printf 'localhost slots=2\n' >"${tmp}/hosts"
for stage in 2 3; do
  cat >"${tmp}/ds${stage}.json" <<JSON
{"train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
 "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
 "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                           "weight_decay": "auto"}},
 "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                                              "warmup_num_steps": "auto"}},
 "zero_optimization": {"stage": ${stage}, "overlap_comm": true}}
JSON
done
systems=(zerorun-z2 deepspeed-z2 zerorun-z3 deepspeed-z3)
# run SYSTEM: appends "SYSTEM samples/s rss_mib" to results.
run() {
  local system="$1" engine="${1%-z*}" stage="${1##*-z}"
  local out="${tmp}/out-${system}"
  rm -rf "${out}" && mkdir -p "${out}"
  PYTHONPATH="${build}/python" OMP_NUM_THREADS=1 "${build}/launcher/zerorun" \
    --hostfile "${tmp}/hosts" --device cpu --engine "${engine}" \
    "${python}" "${root}/tests/bench/hf_trainer_peer.py" --zr_out "${out}" \
    --output_dir "${out}/hf" --deepspeed "${tmp}/ds${stage}.json" --max_steps "$((steps + 2))" \
    --per_device_train_batch_size 2 --learning_rate 1e-4 --weight_decay 0.01 --warmup_steps 1 \
    --report_to none --save_strategy no --logging_steps 1000 --dataloader_num_workers 0 \
    >"${out}.log" 2>&1 || { tail -20 "${out}.log"; return 1; }
  bench_row "${out}" "${system}" samples
}
run_rounds run "${systems[@]}"
bench_summary samples/s "zerorun-z2/deepspeed-z2 >= 1.15" "rss:zerorun-z2/deepspeed-z2 <= 0.9" \
  "zerorun-z3/deepspeed-z3 >= 1.25" "rss:zerorun-z3/deepspeed-z3 <= 0.9"
