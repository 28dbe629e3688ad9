#!/usr/bin/env bash
# Run HERE (the build machine, CUDA toolkit present, no GPU needed): builds the GPU test and
# benchmark binaries into ${ZR_BUILD_DIR:-build} and copies them, with the shared libraries they
# need beyond glibc, libstdc++, the CUDA runtime and NCCL (which the GPU machine has), into
# .gpu/ (git-ignored), for deploy/gpu_check.sh on a GPU machine without network:
#   device run: carry [".gpu"], command "bash deploy/gpu_check.sh"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
targets=(zr_gpu_tests zr_gpu_adamw_bench)
bash "${root}/deploy/build.sh" "${targets[@]}"
rm -rf "${root}/.gpu"
mkdir -p "${root}/.gpu/bin" "${root}/.gpu/lib"
for t in "${targets[@]}"; do
  cp "${build}/tests/${t}" "${root}/.gpu/bin/"
  ldd "${build}/tests/${t}" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "${lib}")" in
      libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libgcc_s.so* | \
        libstdc++.so* | libcudart.so* | libnccl.so* | libcuda.so*) ;;
      *) cp -L "${lib}" "${root}/.gpu/lib/" ;;
    esac
  done
done
git -C "${root}" rev-parse --short HEAD >"${root}/.gpu/commit"
echo "gpu bundle: $(ls "${root}/.gpu/bin" | tr '\n' ' ')+ $(ls "${root}/.gpu/lib" | wc -l) libraries," \
  "$(du -sh "${root}/.gpu" | cut -f1) in ${root}/.gpu (commit $(cat "${root}/.gpu/commit"))"
