#!/usr/bin/env bash
# Makes the project's Python environment (${ZR_VENV:-.venv}): a venv of Debian's /usr/bin/python3
# (whatever else is first on PATH) with exactly
# the libraries deploy/requirements.txt pins (torch, transformers, accelerate, lightning,
# deepspeed, ...), installed from PyPI. Every Python test and benchmark runs its interpreter.
#
# Idempotent: a venv whose stamp (.venv/zerorun-ready) matches the requirements file's sha256 is
# reused as it is. The stamp is written last, after every library imported; a venv without it is
# half-made and is removed and rebuilt, never used. --rebuild starts over. --check only says
# whether the venv is ready (exit 0) or not (exit 1), installing nothing; --check --explain also
# says why not and what to run.
# On failure: one message naming the package, the cause and the fix; exit 1.
# Environment: ZR_VENV (where), ZR_PY_REQUIREMENTS (another pinned file), PIP_INDEX_URL (pip's).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ZR_VENV:-${root}/.venv}"
requirements="${ZR_PY_REQUIREMENTS:-${root}/deploy/requirements.txt}"
stamp="${venv}/zerorun-ready"
log="${venv}.log"
# deepspeed's sdist imports torch to build, so it installs second, without build isolation.
late_packages="deepspeed"

fail() {
  echo "deploy: Python environment ${venv} NOT made: $1" >&2
  echo "deploy: fix: $2; then run: bash deploy/python-env.sh" >&2
  exit 1
}

[[ -r "${requirements}" ]] || fail "no requirements file ${requirements}" \
  "restore deploy/requirements.txt (git checkout deploy/requirements.txt)"
want="$(sha256sum "${requirements}" | cut -d' ' -f1)"

if [[ "${1:-}" == "--check" ]]; then
  [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]] && exit 0
  if [[ "${2:-}" == "--explain" ]]; then
    if [[ ! -d "${venv}" ]]; then
      echo "Python environment ${venv} is missing"
    elif [[ ! -f "${stamp}" ]]; then
      echo "Python environment ${venv} is half-made (no ${stamp##*/}: an install did not finish)"
    else
      echo "Python environment ${venv} was made from another ${requirements##*/}"
    fi
    echo "fix: bash deploy/python-env.sh (or the README's test command)"
  fi
  exit 1
fi
if [[ "${1:-}" != "--rebuild" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
  echo "deploy: Python environment ${venv} ready ($(grep -c '==' "${requirements}") pinned packages)"
  exit 0
fi

# Says which package pip failed on, and why, from pip's log (and whether the index answers).
explain_pip_failure() {
  local what
  what="$(grep -oE "satisf(y|ies) the requirement [^ ]+" "${log}" | head -1 | awk '{print $NF}')"
  if grep -qiE "Could not fetch URL|Failed to establish a new connection|Temporary failure in name resolution|Network is unreachable|Connection refused|No route to host" "${log}" ||
    { [[ -n "${what}" ]] && ! index_answers; }; then
    fail "the package index $(pip_index) cannot be reached (while fetching ${what:-the first package})" \
      "check the network or proxy, or point PIP_INDEX_URL at a reachable mirror"
  fi
  if [[ -n "${what}" ]]; then
    fail "no release of ${what} for this Python ($(/usr/bin/python3 -V 2>&1)) on $(pip_index)" \
      "pin a version of ${what} that exists in ${requirements}"
  fi
  what="$(grep -oE "(Failed to build|Failed building wheel for|error in) [^ ]+" "${log}" | head -1 | awk '{print $NF}')"
  fail "pip failed${what:+ on ${what}} (full output: ${log})" \
    "read the end of ${log}; a package that does not build may need a Debian -dev package"
}
# Whether the index answers an HTTP request (pip, with retries off, may not say it did not).
index_answers() {
  /usr/bin/python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' \
    "$(pip_index)/" >/dev/null 2>&1
}
pip_index() { echo "${PIP_INDEX_URL:-https://pypi.org/simple}"; }

echo "deploy: making Python environment ${venv} from ${requirements} (log: ${log})"
base=/usr/bin/python3
"${base}" -c "import venv, ensurepip" 2>/dev/null ||
  fail "Debian's python3-venv is missing" "bash deploy/install-deps.sh --test"
rm -rf "${venv}"
"${base}" -m venv "${venv}" >"${log}" 2>&1 || fail "python3 -m venv failed (${log})" \
  "check that ${venv%/*} is writable and has 6 GiB free"
pip=("${venv}/bin/python3" -m pip --disable-pip-version-check --no-input)
early="$(mktemp)"
trap 'rm -f "${early}"' EXIT
grep -vE "^(${late_packages// /|})==" "${requirements}" >"${early}"
{
  "${pip[@]}" install --no-deps -r "${early}" &&
    grep -E "^(${late_packages// /|})==" "${requirements}" |
    xargs -r "${pip[@]}" install --no-deps --no-build-isolation
} >>"${log}" 2>&1 || explain_pip_failure

# Each top-level library must import (a wheel can install and still not load).
for module in $(sed -nE 's/^(torch|transformers|accelerate|lightning|deepspeed|safetensors|prometheus-client|grpcio|protobuf|pytest)==.*/\1/p' "${requirements}"); do
  case "${module}" in
    prometheus-client) import=prometheus_client ;;
    grpcio) import=grpc ;;
    protobuf) import=google.protobuf ;;
    *) import="${module}" ;;
  esac
  "${venv}/bin/python3" -c "import ${import}" >>"${log}" 2>&1 ||
    fail "${module} installed but 'import ${import}' fails (${log})" \
      "pin a version of ${module} that works with the others in ${requirements}"
done
echo "${want}" >"${stamp}"
echo "deploy: Python environment ${venv} ready ($(du -sh "${venv}" | cut -f1))"
