#!/usr/bin/env bash
# Bounded fuzzing (CI runs it after the tests): builds the libFuzzer harnesses with clang,
# AddressSanitizer and UBSan into ${ZR_FUZZ_BUILD_DIR:-build-fuzz}, runs each for
# ${ZR_FUZZ_SECONDS:-45} s from a copy of its checked-in corpus, and prints cases run and
# execs/s per harness. A crash fails the run and leaves the input under <build>/artifacts/<name>/:
# add it to tests/fuzz/corpus/<name>/ once fixed, so the replay tests keep it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_FUZZ_BUILD_DIR:-${root}/build-fuzz}"
seconds="${ZR_FUZZ_SECONDS:-45}"
harnesses=(config hostfile hostfile_yaml batch agent_request safetensors manifest consolidate)
bash "${root}/deploy/install-deps.sh" >/dev/null
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
flags+=" -fsanitize=fuzzer-no-link"
cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=None -DZR_FUZZ=ON -DZR_WITH_CUDA=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_FLAGS="${flags}" \
  -DCMAKE_CXX_FLAGS="${flags}" >/dev/null
cmake --build "${build}" -j "$(nproc)" --target "${harnesses[@]/#/fuzz_}" >/dev/null
failed=0
for name in "${harnesses[@]}"; do
  work="${build}/corpus/${name}"
  artifacts="${build}/artifacts/${name}"
  rm -rf "${work}" "${artifacts}" && mkdir -p "${work}" "${artifacts}"
  cp "${root}/tests/fuzz/corpus/${name}/"* "${work}/"
  log="${build}/fuzz_${name}.log"
  rc=0
  ASAN_OPTIONS=detect_leaks=1 "${build}/tests/fuzz/fuzz_${name}" -max_total_time="${seconds}" \
    -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="${artifacts}/" "${work}" >"${log}" 2>&1 || rc=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}")"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "${log}")"
  crashes="$(find "${artifacts}" -type f | wc -l)"
  echo "fuzz ${name}: ${runs:-0} cases in ${seconds} s (${speed:-0} execs/s), corpus $(ls "${work}" | wc -l), crashes ${crashes}"
  if [[ ${rc} -ne 0 || ${crashes} -ne 0 ]]; then
    failed=1
    tail -40 "${log}"
  fi
done
exit "${failed}"
