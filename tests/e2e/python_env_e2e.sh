#!/usr/bin/env bash
# e2e: deploy/python-env.sh on bad input. A pinned package that does not exist, and a package
# index that cannot be reached, each give one message naming the package (or the index), the
# cause and the fix, exit 1, and leave no venv that --check (and so ctest's python/venv and the
# test command) takes for ready; a venv whose install was cut short is half-made, not ready.
# Usage: python_env_e2e.sh SOURCE_DIR
set -euo pipefail
src="$(cd "$1" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
# shellcheck source=tests/e2e/e2e_lib.sh
source "${src}/tests/e2e/e2e_lib.sh"
env_sh="${src}/deploy/python-env.sh"
export PIP_RETRIES=0 PIP_TIMEOUT=5  # An unreachable index fails at once.

echo "zerorun-no-such-package-e2e==1.0.0" >"${tmp}/missing.txt"
rc=0
ZR_VENV="${tmp}/v1" ZR_PY_REQUIREMENTS="${tmp}/missing.txt" bash "${env_sh}" \
  >"${tmp}/out1" 2>"${tmp}/err1" || rc=$?
if [[ ${rc} -eq 1 ]] && grep -q "NOT made: no release of zerorun-no-such-package-e2e==1.0.0" "${tmp}/err1" &&
  grep -q "fix: pin a version of zerorun-no-such-package-e2e==1.0.0 that exists" "${tmp}/err1"; then
  pass "a package with no such release is named, with the fix (exit 1)"
else
  fail "missing package: exit ${rc}: $(cat "${tmp}/out1" "${tmp}/err1")"
fi
explain="$(ZR_VENV="${tmp}/v1" ZR_PY_REQUIREMENTS="${tmp}/missing.txt" bash "${env_sh}" \
  --check --explain || true)"
if [[ ! -f "${tmp}/v1/zerorun-ready" ]] &&
  ! ZR_VENV="${tmp}/v1" ZR_PY_REQUIREMENTS="${tmp}/missing.txt" bash "${env_sh}" --check &&
  [[ "${explain}" == *"half-made"* ]]; then
  pass "the failed venv is not taken for ready (--check: half-made)"
else
  fail "a failed install left a venv --check accepts"
fi

echo "six==1.16.0" >"${tmp}/six.txt"
rc=0
ZR_VENV="${tmp}/v2" ZR_PY_REQUIREMENTS="${tmp}/six.txt" PIP_INDEX_URL="http://127.0.0.1:9/simple" \
  bash "${env_sh}" >"${tmp}/out2" 2>"${tmp}/err2" || rc=$?
if [[ ${rc} -eq 1 ]] &&
  grep -q "the package index http://127.0.0.1:9/simple cannot be reached (while fetching six==1.16.0)" "${tmp}/err2" &&
  grep -q "PIP_INDEX_URL" "${tmp}/err2" && [[ ! -f "${tmp}/v2/zerorun-ready" ]]; then
  pass "an unreachable index is named with the package it was fetching (exit 1)"
else
  fail "unreachable index: exit ${rc}: $(cat "${tmp}/out2" "${tmp}/err2")"
fi

# A stamp from other requirements is not ready either; the explanation says so.
mkdir -p "${tmp}/v3" && echo "0000" >"${tmp}/v3/zerorun-ready"
explain="$(ZR_VENV="${tmp}/v3" bash "${env_sh}" --check --explain || true)"
if ! ZR_VENV="${tmp}/v3" bash "${env_sh}" --check &&
  [[ "${explain}" == *"made from another requirements.txt"* ]]; then
  pass "a venv made from other requirements is not ready"
else
  fail "a stale venv was taken for ready"
fi
echo "python env e2e: ${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
