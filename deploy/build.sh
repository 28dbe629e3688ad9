#!/usr/bin/env bash
# Shared by demo.sh and test.sh: installs missing dependencies, then configures and builds
# zerorun into ${ZR_BUILD_DIR:-build} (targets given as arguments, or everything).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
bash "${root}/deploy/install-deps.sh"
werror=OFF
if [[ "${CI:-}" == "true" ]]; then werror=ON; fi
cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZR_WERROR="${werror}" >/dev/null
if [[ $# -gt 0 ]]; then
  cmake --build "${build}" -j "$(nproc)" --target "$@"
else
  cmake --build "${build}" -j "$(nproc)"
fi
