#!/usr/bin/env bash
# Builds zerorun (deploy/build.sh) and its Debian package with CPack: the binaries, libzerorun
# with its headers and CMake package, the systemd unit and the Python package, under /usr.
# Prints the .deb's path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
bash "${root}/deploy/build.sh" >/dev/null
cd "${build}"
cpack -G DEB >/dev/null
ls "${build}"/zerorun_*.deb
