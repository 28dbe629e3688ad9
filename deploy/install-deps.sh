#!/usr/bin/env bash
# Installs every build and test dependency of zerorun from Debian's archive.
# Idempotent: packages already present are skipped, and nothing is installed when all are.
# --test adds what only the tests use (python3-torch: torch programs launched by zerorun;
# slurm-wlm and munge: a real Slurm the Slurm test configures and starts; python3-prometheus-client:
# the parser the metrics test reads /metrics with; python3-grpcio, -protobuf, -venv: the zerorun
# Python package's tests, including a pip install into a venv; openssh-server: the sshd the
# --launcher ssh test starts on its own config, in its own network namespaces).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libssl-dev
  catch2 libgloo-dev liburing-dev libopenblas-dev clang libclang-rt-14-dev
  iproute2 procps
)
if [[ "${1:-}" == "--test" ]]; then
  PACKAGES+=(python3-torch slurm-wlm munge python3-prometheus-client python3-grpcio
    python3-protobuf python3-venv openssh-server)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deploy: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "deploy: installing ${missing[*]}"
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update -qq
${SUDO} apt-get install -y -qq --no-install-recommends "${missing[@]}"
