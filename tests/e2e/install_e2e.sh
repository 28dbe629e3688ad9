#!/usr/bin/env bash
# e2e: zerorun installed. `cmake --install` into a fresh prefix, then a C++ project of the user's
# (tests/install/) configured with find_package(zerorun), built and run against it; the installed
# zerorun runs a 2-rank job; the installed Python package imports (into PYTHON, the project venv's
# interpreter with grpcio and protobuf); the systemd unit names the prefix's zerorund; and the
# CPack .deb holds all of it (extracted, its zerorun runs).
# Usage: install_e2e.sh BUILD_DIR SOURCE_DIR PYTHON
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
python="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
# shellcheck source=tests/e2e/e2e_lib.sh
source "${src}/tests/e2e/e2e_lib.sh"
prefix="${tmp}/prefix"
cmake --install "${build}" --prefix "${prefix}" >"${tmp}/install.log"

if cmake -S "${src}/tests/install" -B "${tmp}/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="${prefix}" >"${tmp}/consumer.log" 2>&1 &&
  cmake --build "${tmp}/consumer" >>"${tmp}/consumer.log" 2>&1 &&
  "${tmp}/consumer/consumer" >"${tmp}/consumer.out" &&
  grep -q "adamw step ok" "${tmp}/consumer.out"; then
  pass "find_package(zerorun): a program built against the install links and runs ($(cat "${tmp}/consumer.out"))"
else
  fail "out-of-tree build against the install: $(tail -20 "${tmp}/consumer.log") $(cat "${tmp}/consumer.out" 2>/dev/null)"
fi

echo '{"train_micro_batch_size_per_gpu": 1}' >"${tmp}/ds.json"
if ZR_HOME="${tmp}/home" "${prefix}/bin/zerorun" --hostfile "${src}/tests/testdata/local2.txt" \
  --config "${tmp}/ds.json" --device cpu "${build}/tests/zr_test_rank" --lines 1 \
  >"${tmp}/job.out" 2>&1 && grep -q "succeeded: all 2 rank(s) exited 0" "${tmp}/job.out"; then
  pass "the installed zerorun runs a 2-rank job"
else
  fail "installed zerorun: $(cat "${tmp}/job.out")"
fi

if PYTHONPATH="${prefix}/lib/python3/dist-packages" "${python}" -c \
  "import zerorun, zerorun.hf, zerorun.lightning; from zerorun.v1 import coordinator_pb2" \
  2>"${tmp}/py.err"; then
  pass "the installed Python package imports"
else
  fail "installed Python package: $(cat "${tmp}/py.err")"
fi

if grep -q "^ExecStart=${prefix}/bin/zerorund " "${prefix}/lib/systemd/system/zerorund.service"; then
  pass "the installed systemd unit starts ${prefix}/bin/zerorund"
else
  fail "systemd unit: $(grep ExecStart "${prefix}/lib/systemd/system/zerorund.service")"
fi

if (cd "${tmp}" && cpack -G DEB -B "${tmp}/deb" --config "${build}/CPackConfig.cmake" \
  >"${tmp}/cpack.log" 2>&1); then
  deb="$(ls "${tmp}"/deb/zerorun_*.deb)"
  dpkg-deb -c "${deb}" | awk '{print $6}' >"${tmp}/deb.list"
  missing=""
  for f in ./usr/bin/zerorun ./usr/bin/zerorund ./usr/lib/libzerorun.a \
    ./usr/include/zerorun/zero_engine.h ./usr/lib/cmake/zerorun/zerorunConfig.cmake \
    ./usr/lib/systemd/system/zerorund.service ./usr/lib/python3/dist-packages/zerorun/__init__.py \
    ./usr/lib/python3/dist-packages/zerorun/v1/coordinator_pb2.py; do
    grep -qx "${f}" "${tmp}/deb.list" || missing+=" ${f}"
  done
  dpkg-deb -x "${deb}" "${tmp}/root"
  if [[ -z "${missing}" ]] && dpkg-deb -f "${deb}" Depends | grep -q libgrpc &&
    grep -q "^ExecStart=/usr/bin/zerorund " "${tmp}/root/usr/lib/systemd/system/zerorund.service" &&
    "${tmp}/root/usr/bin/zerorun" --version | grep -q "[0-9]"; then
    pass "the .deb holds the binaries, library, headers, CMake package, unit and Python package"
  else
    fail ".deb: missing${missing:- nothing}; $(dpkg-deb -f "${deb}" Depends)"
  fi
else
  fail "cpack: $(tail -20 "${tmp}/cpack.log")"
fi

echo "install e2e: ${passed} passed, ${failed} failed"
[[ "${failed}" -eq 0 ]]
