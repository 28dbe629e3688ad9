#!/usr/bin/env bash
# Benchmark (label bench): the NVMe swapper's O_DIRECT io_uring sequential write and read next
# to fio's (Debian's fio, installed when missing) with the same file size, block size and queue
# depth in the same directory, in one run. Goal (issue 12): swapper >= 0.8 of fio.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
dir="${ZR_BENCH_DIR:-$(mktemp -d -p "${build}")}"  # On disk, where nvme_path would be.
trap 'rm -rf "${dir}"' EXIT
if ! command -v fio >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null
fi
size_mib=1024 block_kib=1024 depth=8
ours="$("${build}/tests/zr_nvme_swapper_bench" "${dir}" "${size_mib}" "${block_kib}" "${depth}")"
echo "${ours}"
fio_gbs() {  # fio_gbs RW: fio's bandwidth in GB/s for a sequential RW ("write" or "read").
  fio --name=zr --directory="${dir}" --filename=fio_file --size="${size_mib}M" \
    --bs="${block_kib}k" --iodepth="${depth}" --ioengine=io_uring --direct=1 --rw="$1" \
    --end_fsync=1 --output-format=json --loops=3 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['$1']; print('%.2f' % (j['bw_bytes']/1e9))"
}
fio_w=$(fio_gbs write)
fio_r=$(fio_gbs read)
w=$(grep -oE 'write [0-9.]+' <<< "${ours}" | grep -oE '[0-9.]+')
r=$(grep -oE 'read [0-9.]+' <<< "${ours}" | grep -oE '[0-9.]+')
awk -v w="${w}" -v r="${r}" -v fw="${fio_w}" -v fr="${fio_r}" 'BEGIN {
  printf "fio io_uring O_DIRECT: write %.2f GB/s, read %.2f GB/s; swapper/fio: write %.2fx, read %.2fx\n",
    fw, fr, w / fw, r / fr }'
