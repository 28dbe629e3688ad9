# Sourced by the shell benchmarks: paths, and the PyTorch peer's interpreter: the project venv's
# (deploy/python-env.sh, made when missing: torch 2 from PyPI, deploy/requirements.txt). Sets
# root, build, python and tmp (removed on exit); ZR_HOME lives in tmp.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
bash "${root}/deploy/python-env.sh" >&2
python="${ZR_VENV:-${root}/.venv}/bin/python3"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
export ZR_HOME="${tmp}/home"
