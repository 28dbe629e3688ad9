# Sourced by the memory-limit e2e tests: a memory cgroup of ${limit_mib} MiB the test makes (v1
# memory.limit_in_bytes + memsw, or v2 memory.max, no swap), named zerorun-memtest-<pid>, with
# peak / reset_peak / ooms, a disk-backed ${tmp} (tmpfs pages would be charged to the cgroup),
# fail, and cleanup on exit (the cgroup's processes killed, the cgroup and ${tmp} removed).
# Exits 77 (skipped) without root or a writable memory controller.
v1=/sys/fs/cgroup/memory
if [[ "$(id -u)" -ne 0 ]]; then
  echo "SKIP: needs root to make a memory cgroup"
  exit 77
fi
if [[ -w "${v1}" && -f "${v1}/memory.limit_in_bytes" ]]; then
  cg="${v1}/zerorun-memtest-$$"
  mkdir "${cg}"
  echo $((limit_mib << 20)) >"${cg}/memory.limit_in_bytes"
  [[ -f "${cg}/memory.memsw.limit_in_bytes" ]] &&
    echo $((limit_mib << 20)) >"${cg}/memory.memsw.limit_in_bytes"
  echo 0 >"${cg}/memory.swappiness" 2>/dev/null || true
  peak() { echo $(($(cat "${cg}/memory.max_usage_in_bytes") >> 20)); }
  reset_peak() { echo 0 >"${cg}/memory.max_usage_in_bytes"; }
  ooms() { awk '$1 == "oom_kill" {print $2}' "${cg}/memory.oom_control" | grep . || cat "${cg}/memory.failcnt"; }
elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  cg="/sys/fs/cgroup/zerorun-memtest-$$"
  mkdir "${cg}"
  echo $((limit_mib << 20)) >"${cg}/memory.max"
  echo 0 >"${cg}/memory.swap.max" 2>/dev/null || true
  peak() { [[ -f "${cg}/memory.peak" ]] && echo $(($(cat "${cg}/memory.peak") >> 20)) || echo "?"; }
  reset_peak() { :; }
  ooms() { awk '$1 == "oom_kill" {print $2}' "${cg}/memory.events"; }
else
  echo "SKIP: no writable memory cgroup controller (v1 or v2)"
  exit 77
fi
tmp="$(mktemp -d -p /var/tmp)"
cleanup() {
  if [[ -f "${cg}/cgroup.procs" ]]; then
    while read -r pid; do kill -9 "${pid}" 2>/dev/null || true; done <"${cg}/cgroup.procs"
    sleep 0.2
    rmdir "${cg}" 2>/dev/null || true
  fi
  rm -rf "${tmp}"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}
