#!/usr/bin/env bash
# ThreadSanitizer run of the threaded runtime tests (CI runs it): builds zr_runtime_tests with
# -fsanitize=thread into ${ZR_TSAN_BUILD_DIR:-build-tsan} and runs the tests whose code has
# threads of its own: CPU streams and events (the device layer), the engine's communication
# stream (overlap_comm, stage-3 prefetch), the Gloo communicator and its Work handles, the asynchronous checkpoint writer, and ZeRO-Infinity's swap threads; and
# zerorund's credential-socket thread (zr_proto_tests [local_cred]) and its rank monitors under
# back-pressure (zr_worker_tests [job_runner]). A data race fails the run.
# Instrumented binaries that die at start with ASLR on this kernel are run under `setarch -R`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_TSAN_BUILD_DIR:-${root}/build-tsan}"
bash "${root}/deploy/install-deps.sh" >/dev/null
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=thread"
cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=None -DZR_WITH_CUDA=OFF \
  -DCMAKE_C_FLAGS="${flags}" -DCMAKE_CXX_FLAGS="${flags}" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build "${build}" -j "$(nproc)" --target zr_runtime_tests zr_proto_tests zr_worker_tests \
  >/dev/null
run=("${build}/tests/zr_runtime_tests")
if ! "${run[@]}" --list-tests >/dev/null 2>&1; then run=(setarch "$(uname -m)" -R "${run[@]}"); fi
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
failed=0
# Runs one tag of a test binary ($1 the tag, the rest the command); a race fails it.
run_tag() {
  local tags="$1"
  shift
  local start
  start=$(date +%s)
  if "$@" "${tags}" >"${build}/tsan.log" 2>&1; then
    echo "tsan ${tags}: $(grep -E "^(All tests passed|test cases)" "${build}/tsan.log" | tail -1) ($(($(date +%s) - start)) s)"
  else
    failed=1
    echo "tsan ${tags}: FAILED"
    grep -A30 "WARNING: ThreadSanitizer" "${build}/tsan.log" | head -60 || tail -40 "${build}/tsan.log"
  fi
}
for tags in "[device]" "[state_store]" "[zero]" "[offload]" "[nvme]" "[checkpoint]" "[comm]"; do
  run_tag "${tags}" "${run[@]}"
done
proto=("${build}/tests/zr_proto_tests")
if [[ "${run[0]}" == setarch ]]; then proto=(setarch "$(uname -m)" -R "${proto[@]}"); fi
run_tag "[local_cred]" "${proto[@]}"
# zerorund's job runner: rank monitors, leases, re-adoption, back-pressure (a watcher that
# stalls and one that goes).
worker=("${build}/tests/zr_worker_tests")
if [[ "${run[0]}" == setarch ]]; then worker=(setarch "$(uname -m)" -R "${worker[@]}"); fi
run_tag "[job_runner]" "${worker[@]}"
exit "${failed}"
