#!/usr/bin/env bash
# Run HERE (the build machine, CUDA toolkit present, no GPU needed): builds the GPU test and
# benchmark binaries into ${ZR_BUILD_DIR:-build} and copies them, with the shared libraries they
# need beyond glibc, libstdc++, the CUDA runtime and NCCL (which the GPU machine has), and the
# zerorun Python package with libzerorun_torch.so, into .gpu/ (git-ignored), for
# deploy/gpu_check.sh on a GPU machine without network:
#   device run: carry [".gpu"], command "bash deploy/gpu_check.sh"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
targets=(zr_gpu_tests zr_gpu_adamw_bench)
bash "${root}/deploy/build.sh" "${targets[@]}" zr_python zr_torch_engine
rm -rf "${root}/.gpu"
mkdir -p "${root}/.gpu/bin" "${root}/.gpu/lib"
# The shared libraries `binary` needs that the GPU machine may lack, into .gpu/lib.
bundle_libs() {
  ldd "$1" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "${lib}")" in
      libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libgcc_s.so* | \
        libstdc++.so* | libcudart.so* | libnccl.so* | libcuda.so* | libzerorun_torch.so) ;;
      *) cp -L "${lib}" "${root}/.gpu/lib/" ;;
    esac
  done
}
for t in "${targets[@]}"; do
  cp "${build}/tests/${t}" "${root}/.gpu/bin/"
  bundle_libs "${build}/tests/${t}"
done
# zerorun.torch: the Python package with libzerorun_torch.so, without this machine's module
# (built for its Python): gpu_check.sh builds _zerorun there (deploy/gpu_ext).
mkdir -p "${root}/.gpu/python"
cp -r "${build}/python/zerorun" "${root}/.gpu/python/"
rm -f "${root}/.gpu/python/zerorun/"_zerorun*.so
bundle_libs "${root}/.gpu/python/zerorun/libzerorun_torch.so"
# Without debug information: what travels to the GPU machine is limited (64 MiB).
strip --strip-debug "${root}/.gpu/bin/"* "${root}/.gpu/lib/"* \
  "${root}/.gpu/python/zerorun/libzerorun_torch.so"
find "${root}/.gpu/python" -name __pycache__ -prune -exec rm -rf {} +
git -C "${root}" rev-parse --short HEAD >"${root}/.gpu/commit"
echo "gpu bundle: $(ls "${root}/.gpu/bin" | tr '\n' ' ')+ $(ls "${root}/.gpu/lib" | wc -l) libraries," \
  "$(du -sh "${root}/.gpu" | cut -f1) in ${root}/.gpu (commit $(cat "${root}/.gpu/commit"))"
