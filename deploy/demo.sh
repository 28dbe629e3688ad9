#!/usr/bin/env bash
# The README's demo: builds zerorun if needed, checks the example job with `zerorun preflight`,
# then trains the example GPT on Shakespeare for real: 2 CPU ranks, ZeRO-2, through zerorun.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
echo "demo: building zerorun and the example GPT (the first time takes a few minutes on 2 cores)"
# Ninja's "[N/M] ..." lines become one progress counter; anything else (errors) is printed.
bash "${root}/deploy/build.sh" zerorun_cli train_gpt 2>&1 |
  awk '/^\[[0-9]+\/[0-9]+\]/ { printf "\rdemo: build %s ", $1; fflush(); shown = 1; next }
       { if (shown) print ""; shown = 0; print } END { if (shown) print "" }'

cd "${root}"
export ZR_HOME="${ZR_HOME:-${build}/zr_home}"
set -x
"${build}/launcher/zerorun" preflight --hostfile hostfiles/local-cpu.txt \
  --config hostfiles/ds_zero2_cpu.json --device cpu --params 120K \
  "${build}/runtime/examples/gpt/train_gpt"
"${build}/launcher/zerorun" --hostfile hostfiles/local-cpu.txt \
  --config hostfiles/ds_zero2_cpu.json --device cpu \
  "${build}/runtime/examples/gpt/train_gpt" --steps 250 --log-every 25
