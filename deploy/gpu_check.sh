#!/usr/bin/env bash
# Run on a GPU machine (one H100 or H200, CUDA 13 driver, python3 with torch, cmake, nanobind; no
# network), in the repository root with .gpu/ from deploy/gpu_bundle.sh carried along: runs every
# gpu test (the kernels against their CPU references, the CUDA streams, events and allocators, the
# NCCL communicator at world 1 and its init abort), builds zerorun.torch's module for the Python
# there and checks zerorun.torch on CUDA tensors against torch, then the GPU benchmarks (AdamW
# against copy bandwidth; tests/bench/gpt2_gpu_bench.py: GPT-2 124M against torch and FSDP2), and
# writes one results file, ${OUT:-gpu-results}/gpu_results.txt. The CUDA runtime comes from the
# toolkit there, NCCL from the toolkit or torch's nvidia-nccl wheel. Exit: 0 all passed, 1 a test
# failed, 2 no bundle. Not covered yet (issue 30): the engine device-resident (zerorun.torch on a
# GPU keeps the engine's state in host memory).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-${root}/gpu-results}"
mkdir -p "${out}"
results="${out}/gpu_results.txt"
log() { echo "$*" | tee -a "${results}"; }
: >"${results}"
log "== zerorun gpu check, $(date -u +%FT%TZ), bundle of commit $(cat "${root}/.gpu/commit" 2>/dev/null || echo '?')"
if [[ ! -x "${root}/.gpu/bin/zr_gpu_tests" ]]; then
  log "no .gpu/bin/zr_gpu_tests: run deploy/gpu_bundle.sh on the build machine and carry .gpu"
  exit 2
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true; } |
  sed 's/^/gpu: /' | tee -a "${results}"
nccl_lib="$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null || true)"
export LD_LIBRARY_PATH="${root}/.gpu/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${nccl_lib}:${LD_LIBRARY_PATH:-}"
missing="$(ldd "${root}/.gpu/bin/zr_gpu_tests" | grep 'not found' || true)"
[[ -n "${missing}" ]] && log "libraries not found: ${missing}"
rc=0
log "== gpu tests (kernels, CUDA device layer, NCCL communicator)"
timeout 300 "${root}/.gpu/bin/zr_gpu_tests" 2>&1 | tee -a "${results}" || rc=1
log "== gpu benchmark: AdamW step against device copy bandwidth"
timeout 120 "${root}/.gpu/bin/zr_gpu_adamw_bench" 2>&1 | tee -a "${results}" || rc=1
log "== zerorun.torch's module for this machine's Python (deploy/gpu_ext)"
ext_build="$(mktemp -d)"
if { cmake -S "${root}/deploy/gpu_ext" -B "${ext_build}" -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v python3)" -DZR_PACKAGE="${root}/.gpu/python/zerorun" &&
  cmake --build "${ext_build}" -j "$(nproc)"; } >"${ext_build}.log" 2>&1; then
  log "built: $(ls "${root}/.gpu/python/zerorun/" | grep '^_zerorun')"
else
  tail -30 "${ext_build}.log" | tee -a "${results}"
  rc=1
fi
export PYTHONPATH="${root}/.gpu/python"
log "== zerorun.torch on CUDA tensors against plain torch on the same GPU (tests/gpu/test_torch_cuda.py)"
timeout 300 python3 -m pytest -q -p no:cacheprovider "${root}/tests/gpu/test_torch_cuda.py" 2>&1 |
  tee -a "${results}" || rc=1
log "== gpu benchmark: GPT-2 124M (seq 1024, bf16), world 1: torch fused AdamW, FSDP2, zerorun.torch"
timeout 300 python3 "${root}/tests/bench/gpt2_gpu_bench.py" --device cuda 2>&1 |
  tee -a "${results}" || rc=1
log "== gpu check: $([[ ${rc} -eq 0 ]] && echo passed || echo FAILED)"
exit "${rc}"
