#!/usr/bin/env bash
# Benchmark (label bench): the example GPT at the peer size on 2 CPU ranks, zerorun ZeRO stages
# 0/1/2 (and 2 with overlap_comm) against PyTorch DDP and DDP + ZeroRedundancyOptimizer, measured
# in one run. The systems run in turn, ROUNDS times (default 3), so that this machine's drift hits
# all of them alike; the summary gives each system's median over the rounds and ZeRO-2's ratio to
# DDP per round.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
steps="${STEPS:-16}"
rounds="${ROUNDS:-3}"
for round in $(seq 1 "${rounds}"); do
  for variant in 0 1 2 2-overlap; do
    stage="${variant%%-*}"
    overlap=false
    if [[ "${variant}" == *overlap ]]; then overlap=true; fi
    echo "{\"train_micro_batch_size_per_gpu\": 8, \"zero_optimization\": {\"stage\": ${stage}," \
         "\"overlap_comm\": ${overlap}}, \"optimizer\": {\"type\": \"AdamW\"," \
         "\"params\": {\"lr\": 1e-3}}}" > "${tmp}/ds.json"
    "${build}/launcher/zerorun" --hostfile "${root}/hostfiles/local-cpu.txt" \
      --config "${tmp}/ds.json" --device cpu --ranks 0 \
      "${build}/runtime/examples/gpt/train_gpt" --random-tokens --vocab 4096 --layers 4 \
      --d-model 256 --heads 4 --seq 128 --steps "${steps}" --log-every "${steps}" 2>&1 |
      sed -nE "s/.*peak RSS ([0-9]+) MiB; median ([0-9]+) tokens.*/zerorun-zero${variant} \2 \1/p" \
      >> "${tmp}/results"
  done
  for mode in ddp zero1; do
    "${python}" "${root}/tests/bench/pytorch_peer.py" "${mode}" "${steps}" |
      sed -nE "s/.*, ([0-9]+) tokens\/s, peak RSS per rank ([0-9]+) MiB/pytorch-${mode} \1 \2/p" \
      >> "${tmp}/results"
  done
  tail -n 6 "${tmp}/results" | sed "s/^/round ${round}: /"
done
python3 - "${tmp}/results" "${rounds}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
systems = list(dict.fromkeys(r[0] for r in rows))
print(f"{'system':<22} {'tokens/s (median of rounds)':>28} {'peak RSS MiB':>14}")
for s in systems:
    tok = [float(r[1]) for r in rows if r[0] == s]
    rss = [float(r[2]) for r in rows if r[0] == s]
    print(f"{s:<22} {statistics.median(tok):>28,.0f} {max(rss):>14,.0f}")
ddp = [float(r[1]) for r in rows if r[0] == "pytorch-ddp"]
for name in ("zerorun-zero2", "zerorun-zero2-overlap"):
    ours = [float(r[1]) for r in rows if r[0] == name]
    ratios = [a / b for a, b in zip(ours, ddp)]
    rss = max(float(r[2]) for r in rows if r[0] == name) / max(
        float(r[2]) for r in rows if r[0] == "pytorch-ddp")
    print(f"{name} / DDP tokens/s per round: " + ", ".join(f"{x:.2f}" for x in ratios) +
          f" (median {statistics.median(ratios):.2f}; goal >= 1.1); RSS ratio {rss:.2f} "
          "(goal < 0.25)")
PY
