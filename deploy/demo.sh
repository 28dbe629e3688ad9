#!/usr/bin/env bash
# The README's demo: builds zerorun if needed, then checks the example 2-rank CPU ZeRO-2 job on
# this machine with `zerorun preflight` (the table, then the verdict as its exit code).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
bash "${root}/deploy/build.sh" zerorun_cli >/dev/null
cd "${root}"
set -x
"${build}/launcher/zerorun" preflight --hostfile hostfiles/local-cpu.txt \
  --config hostfiles/ds_zero2_cpu.json --device cpu --params 10M
