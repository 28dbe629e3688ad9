#!/usr/bin/env bash
# Benchmark (label bench): the example GPT at the peer size on 2 CPU ranks, zerorun ZeRO stages
# 0/1/2 against PyTorch DDP and DDP + ZeroRedundancyOptimizer, measured in one run.
# Installs Debian's python3-torch and OpenBLAS when missing (without OpenBLAS torch falls back to
# the reference BLAS and is ~20x slower).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch \
    libopenblas0-pthread >/dev/null
fi
steps="${STEPS:-12}"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
export ZR_HOME="${tmp}/home"
for stage in 0 1 2; do
  echo "{\"train_micro_batch_size_per_gpu\": 8, \"zero_optimization\": {\"stage\": ${stage}}," \
       "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 1e-3}}}" > "${tmp}/ds${stage}.json"
  "${build}/launcher/zerorun" --hostfile "${root}/hostfiles/local-cpu.txt" \
    --config "${tmp}/ds${stage}.json" --device cpu --ranks 0 \
    "${build}/runtime/examples/gpt/train_gpt" --random-tokens --vocab 4096 --layers 4 \
    --d-model 256 --heads 4 --seq 128 --steps "${steps}" --log-every "${steps}" 2>&1 |
    grep -E "step +${steps}/|peak RSS" | sed "s/^/zerorun stage ${stage}: /"
done
for mode in ddp zero1; do
  /usr/bin/python3 "${root}/tests/bench/pytorch_peer.py" "${mode}" "${steps}"
done
