# Sourced by the shell benchmarks: paths, and the PyTorch peer's packages. Debian's python3-torch
# with OpenBLAS is installed when missing (without OpenBLAS torch falls back to the reference
# BLAS and is ~20x slower). Sets root, build and tmp (removed on exit); ZR_HOME lives in tmp.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch \
    libopenblas0-pthread >/dev/null
fi
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
export ZR_HOME="${tmp}/home"
