#!/usr/bin/env bash
# Benchmark (label bench): ZeRO stage 3 against stage 2 and PyTorch DDP, measured in one run.
#  A. Speed: the GPT at the peer size (4 layers, d_model 256, seq 128, 8 sequences per rank) at
#     world 2 and 4: stage 2, stage 3 (DeepSpeed's defaults: prefetch on, overlap_comm on), stage 3
#     with prefetch off (stage3_prefetch_bucket_size 0), and PyTorch DDP.
#  B. Memory: peak RSS per rank of a 56M-parameter GPT (7 layers, d_model 768) for stages 0-3 at
#     world 1, 2, 4 next to the ZeRO model-state figures (16P, 8P + 8P/N, 4P + 12P/N, 16P/N in
#     fp32) and PyTorch DDP's RSS. Stage 3 runs with stage3_max_reuse_distance 0 and
#     stage3_max_live_parameters of ~2 layers so that gathered layers are freed after use.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
printf '127.0.0.1 slots=4\n' > "${tmp}/hosts"

# run NAME WORLD ZERO_JSON STEPS MODEL_FLAGS...: prints "NAME world W: <train_gpt summary>".
run() {
  local name="$1" world="$2" zero="$3" steps="$4"
  shift 4
  echo "{\"train_micro_batch_size_per_gpu\": ${MICRO:-8}, \"zero_optimization\": {${zero}}}" \
    > "${tmp}/ds.json"
  "${build}/launcher/zerorun" --hostfile "${tmp}/hosts" --config "${tmp}/ds.json" --device cpu \
    --num_gpus "${world}" --ranks 0 "${build}/runtime/examples/gpt/train_gpt" --random-tokens \
    --vocab 4096 --steps "${steps}" --log-every "${steps}" "$@" 2>&1 |
    grep -E "peak RSS" | sed -E "s/^\[rank 0 [^]]*\] //; s/^/${name} world ${world}: /"
}

echo "== A. step speed, peer-size GPT (tokens/s are global; median step)"
peer=(--layers 4 --d-model 256 --heads 4 --seq 128)
for world in 2 4; do
  run "stage 2" "${world}" '"stage": 2' 12 "${peer[@]}"
  run "stage 3" "${world}" '"stage": 3' 12 "${peer[@]}"
  run "stage 3 no prefetch" "${world}" '"stage": 3, "stage3_prefetch_bucket_size": 0' 12 \
    "${peer[@]}"
  ZR_PEER_WORLD="${world}" "${python}" "${root}/tests/bench/pytorch_peer.py" ddp 12 |
    sed "s/^/world ${world}: /"
done

echo "== B. peak RSS per rank, 56M-parameter GPT (7 layers, d_model 768, seq 32, 1 sequence/rank)"
big=(--layers 7 --d-model 768 --heads 12 --seq 32)
export MICRO=1
for world in 1 2 4; do
  for stage in 0 1 2 3; do
    zero="\"stage\": ${stage}"
    if [[ ${stage} == 3 ]]; then
      zero="${zero}, \"stage3_max_reuse_distance\": 0, \"stage3_max_live_parameters\": 15000000"
      zero="${zero}, \"stage3_prefetch_bucket_size\": 8000000"
    fi
    run "stage ${stage}" "${world}" "${zero}" 4 "${big[@]}"
  done
done
for world in 2 4; do
  ZR_PEER_WORLD="${world}" ZR_PEER_D=768 ZR_PEER_LAYERS=7 ZR_PEER_SEQ=32 ZR_PEER_BATCH=1 \
    "${python}" "${root}/tests/bench/pytorch_peer.py" ddp 4 | sed "s/^/world ${world}: /"
done
