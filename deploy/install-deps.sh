#!/usr/bin/env bash
# Installs every build and test dependency of zerorun: Debian packages from Debian's archive, and
# with --test the project's Python environment from PyPI (deploy/python-env.sh: torch,
# transformers, accelerate, lightning, deepspeed, ... at the versions deploy/requirements.txt
# pins, into .venv). Idempotent: what is present is skipped, nothing is installed when all is.
# --test adds what only the tests use (slurm-wlm and munge: a real Slurm the Slurm test configures
# and starts; python3-venv and python3-dev: the venv, and the headers DeepSpeed's CPU ops compile
# against; openssh-server: the sshd the --launcher ssh test starts on its own config, in its own
# network namespaces). Exit 1: a Debian package failed; exit 3: only the Python environment did
# (python-env.sh said which package and why; deploy/test.sh then runs the other tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libssl-dev
  catch2 libgloo-dev liburing-dev libopenblas-dev clang libclang-rt-14-dev
  iproute2 procps
)
if [[ "${1:-}" == "--test" ]]; then
  PACKAGES+=(slurm-wlm munge python3-venv python3-dev openssh-server)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deploy: all ${#PACKAGES[@]} Debian packages present"
else
  echo "deploy: installing ${missing[*]}"
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  ${SUDO} apt-get update -qq
  ${SUDO} apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" == "--test" ]]; then
  bash "${root}/deploy/python-env.sh" || exit 3
fi
