#!/usr/bin/env bash
# The README's test command (and CI's): installs missing dependencies, builds everything, runs
# every test except the gpu and bench labels.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
bash "${root}/deploy/install-deps.sh" --test
bash "${root}/deploy/build.sh"
cd "${build}"
ctest -LE "gpu|bench" --output-on-failure -j "$(nproc)"
