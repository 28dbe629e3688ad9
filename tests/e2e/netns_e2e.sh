#!/usr/bin/env bash
# e2e: three nodes with non-loopback addresses. Three network namespaces, each joined by a veth
# pair to a bridge in a fourth, each with a zerorund (the shared secret, then mTLS); the launcher
# runs in the first. 127.0.0.x nodes cannot show an address bug: every one of them reaches
# 127.0.0.1. Checks: ZeRO-2 training across the nodes matches the oracle, a rank failure on the
# third node ends the job within the usual bound naming the rank and node, and no rank is left
# in any namespace afterwards. Needs root and `ip netns` (exit 77, skipped, otherwise).
# Usage: netns_e2e.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
if [[ "$(id -u)" -ne 0 ]] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: needs root and ip netns"
  exit 77
fi
tag="zr$$"
subnet="10.213.$(($$ % 250 + 1))"
names=(a b c)
tmp="$(mktemp -d)"
daemons=()
cleanup() {
  for pid in "${daemons[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done
  for n in "${names[@]}" br; do ip netns del "${tag}${n}" 2>/dev/null || true; done
  rm -rf "${tmp}"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/e2e_lib.sh
source "${src}/tests/e2e/e2e_lib.sh"
fail() {  # Here the first failure ends the test.
  echo "FAIL: $*"
  exit 1
}
# Every namespace holds its zerorund and nothing else: no rank, no child of one, is left.
assert_nothing_left() {
  for i in 1 2 3; do
    local n="${names[$((i - 1))]}"
    local left
    left="$(ip netns pids "${tag}${n}" | grep -vx "${daemons[$((i - 1))]}" || true)"
    [[ -z "${left}" ]] || fail "processes left in ${tag}${n}: ${left}"
  done
}
# Waits (at most 10 s) until every node's zerorund accepts connections.
wait_all_listening() {
  for i in 1 2 3; do
    local n="${names[$((i - 1))]}"
    for _ in $(seq 100); do
      [[ "$(ip netns exec "${tag}${n}" ss -ltn)" == *"${subnet}.${i}]:29600"* ]] && break
      sleep 0.1
    done
  done
}

bridged_namespaces "${tag}" "${subnet}" "${names[@]}"

secret="${tmp}/secret"
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"${secret}")
for i in 1 2 3; do
  n="${names[$((i - 1))]}"
  ip netns exec "${tag}${n}" env ZR_HOME="${tmp}/home_${n}" "${build}/worker/zerorund" --allow-root-ranks \
    --listen "${subnet}.${i}:29600" --auth secret --secret-file "${secret}" --state-dir "${tmp}/state_${n}" \
    >"${tmp}/zerorund_${n}.log" 2>&1 &
  daemons+=("$!")
done
wait_all_listening

hosts="${tmp}/hosts.yaml"
cat >"${hosts}" <<HOSTS
hosts:
  - {name: node-a, address: ${subnet}.1, slots: 1}
  - {name: node-b, address: ${subnet}.2, slots: 1}
  - {name: node-c, address: ${subnet}.3, slots: 1}
HOSTS
launch() {
  ip netns exec "${tag}a" env ZR_HOME="${tmp}/launcher_home" timeout 120 \
    "${build}/launcher/zerorun" --hostfile "${hosts}" --secret-file "${secret}" --device cpu \
    --grace-period 2 "$@"
}

# 1. Training across three hosts matches the oracle.
rc=0
launch --config "${src}/tests/testdata/ds_stage2.json" "${build}/runtime/examples/gpt/train_gpt" \
  --check-golden "${src}/tests/testdata/golden/tiny_gpt_v64_d64_h4_l2_t32_b12.bin" \
  >"${tmp}/train.log" 2>&1 || rc=$?
grep -q "golden check PASSED" "${tmp}/train.log" && [[ ${rc} -eq 0 ]] ||
  { tail -30 "${tmp}/train.log"; fail "training across namespaces exited ${rc}"; }
echo "ok: ZeRO-2 on 3 hosts (${subnet}.1-3) matches the oracle"

# 2. A rank failing on node-c ends the job everywhere, naming it, within the bound.
start=$(date +%s%N)
rc=0
launch --config "${src}/tests/testdata/ds_stage2.json" "${build}/tests/zr_test_rank" \
  --run-ms 60000 --fail-rank 2 --fail-after-ms 500 --exit-code 7 >"${tmp}/fail.log" 2>&1 || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[[ ${rc} -eq 1 ]] || { tail -30 "${tmp}/fail.log"; fail "exit ${rc}, want 1"; }
grep -q "host node-c (${subnet}.3)  rank 2 (local 0)" "${tmp}/fail.log" ||
  { tail -30 "${tmp}/fail.log"; fail "the summary does not name rank 2 on node-c"; }
[[ ${elapsed_ms} -lt 15000 ]] || fail "the job took ${elapsed_ms} ms to end"
echo "ok: rank 2 on node-c failed, job ended in ${elapsed_ms} ms with exit 1"

# 2b. The launcher's environment reaches ranks on other hosts by DeepSpeed's rule (NCCL*),
#     .deepspeed_env and --env; zerorun's cluster secret never does.
mkdir -p "${tmp}/envs" "${tmp}/cwd"
printf 'FROM_FILE=file value\n' >"${tmp}/cwd/.deepspeed_env"
rc=0
(cd "${tmp}/cwd" && ip netns exec "${tag}a" env ZR_HOME="${tmp}/launcher_home" \
  ZR_SECRET="$(cat "${secret}")" NCCL_ZR_TEST=nccl timeout 60 "${build}/launcher/zerorun" \
  --hostfile "${hosts}" --device cpu --env MY_VAR=flag \
  --config "${src}/tests/testdata/ds_stage2.json" "${build}/tests/zr_test_rank" \
  --env-dir "${tmp}/envs") >"${tmp}/env.log" 2>&1 || rc=$?
[[ ${rc} -eq 0 ]] || { tail -20 "${tmp}/env.log"; fail "env job exited ${rc}"; }
for want in "NCCL_ZR_TEST=nccl" "MY_VAR=flag" "FROM_FILE=file value" "ZERORUN_NODE_ADDR=${subnet}.3"; do
  grep -qx "${want}" "${tmp}/envs/rank_2.env" || fail "rank 2 on node-c lacks ${want}"
done
! grep -q "^ZR_SECRET=" "${tmp}/envs/rank_2.env" || fail "ZR_SECRET reached a rank"
echo "ok: NCCL*, .deepspeed_env and --env reach node-c's rank; ZR_SECRET does not"

# 3. Nothing of either job is left in any namespace: only the daemons.
assert_nothing_left
echo "ok: no process left besides the three zerorund"

# 3b. A partitioned node (its link set down): detected within 10 s (default --node-timeout 9 s),
#     exit 200 naming node-c and its silence; the other nodes' ranks are stopped; node-c's zerorund
#     loses the launcher (keepalive) and its ranks end when the lease (3 s here) lapses.
mkdir -p "${tmp}/part"
rc=0
launch --config "${src}/tests/testdata/ds_stage2.json" --lease 3 "${build}/tests/zr_test_rank" \
  --env-dir "${tmp}/part" --run-ms 120000 >"${tmp}/partition.log" 2>&1 &
launcher=$!
for _ in $(seq 200); do [[ -s "${tmp}/part/rank_2.pid" ]] && break; sleep 0.1; done
sleep 1
ip -n "${tag}c" link set "${tag}c0" down
start=$(date +%s%N)
wait "${launcher}" || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[[ ${rc} -eq 200 ]] || { tail -30 "${tmp}/partition.log"; fail "partition: exit ${rc}, want 200"; }
grep -q "node node-c lost: no word from zerorund at ${subnet}.3:29600 for [0-9.]* s" \
  "${tmp}/partition.log" || { tail -30 "${tmp}/partition.log"; fail "node-c not named"; }
[[ ${elapsed_ms} -le 10500 ]] || fail "the partition took ${elapsed_ms} ms to detect (bound 10 s)"
rank_c="$(cat "${tmp}/part/rank_2.pid")"
for _ in $(seq 300); do kill -0 "${rank_c}" 2>/dev/null || break; sleep 0.1; done
! kill -0 "${rank_c}" 2>/dev/null || fail "node-c's rank ${rank_c} outlived the lost launcher"
ip -n "${tag}c" link set "${tag}c0" up
assert_nothing_left
echo "ok: node-c partitioned: exit 200 after ${elapsed_ms} ms naming it; its rank ended itself"

# 4. Ranks that advertise an address their peers cannot reach (every daemon restarted with
#    GLOO_SOCKET_IFNAME=lo: the old "everyone is 127.0.0.1" bug) fail the job within the
#    collective timeout, naming a rank; the launcher exits instead of hanging; nothing is left.
for i in 1 2 3; do
  n="${names[$((i - 1))]}"
  kill -TERM "${daemons[$((i - 1))]}" && wait "${daemons[$((i - 1))]}" 2>/dev/null || true
  ip netns exec "${tag}${n}" env ZR_HOME="${tmp}/home_${n}" GLOO_SOCKET_IFNAME=lo \
    ZR_COMM_TIMEOUT=5 "${build}/worker/zerorund" --allow-root-ranks --listen "${subnet}.${i}:29600" \
    --auth secret --secret-file "${secret}" --state-dir "${tmp}/state2_${n}" >"${tmp}/zerorund2_${n}.log" 2>&1 &
  daemons[$((i - 1))]="$!"
done
wait_all_listening
start=$(date +%s%N)
rc=0
launch --config "${src}/tests/testdata/ds_stage2.json" "${build}/runtime/examples/gpt/train_gpt" \
  --check-golden "${src}/tests/testdata/golden/tiny_gpt_v64_d64_h4_l2_t32_b12.bin" \
  >"${tmp}/unreachable.log" 2>&1 || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[[ ${rc} -ne 0 && ${rc} -ne 124 ]] || { tail -30 "${tmp}/unreachable.log"; fail "exit ${rc}"; }
grep -q "root cause" "${tmp}/unreachable.log" ||
  { tail -30 "${tmp}/unreachable.log"; fail "no root cause named"; }
[[ ${elapsed_ms} -lt 60000 ]] || fail "the job took ${elapsed_ms} ms to end"
echo "ok: an unreachable peer address fails the job in ${elapsed_ms} ms (exit ${rc}):"
grep -m1 "root cause" "${tmp}/unreachable.log"
assert_nothing_left

# 5. mTLS across the hosts: `zerorun cluster init` certificates naming the 10.x addresses, every
#    zerorund (root) restarted with --tls-dir; the certificate of the local user `nobody` launches
#    (its ranks run as nobody; the nodes audit the name), the shared secret alone no longer does.
chmod 711 "${tmp}"  # Ranks running as nobody reach their job directories under it.
# What runs as nobody (the supervisor zerorund execs, the rank) must be reachable by nobody:
# copies outside the build tree, which may be in a folder others cannot enter (a 0700 clone).
mkdir -p "${tmp}/bin"
cp "${build}/worker/zerorund" "${build}/tests/zr_test_rank" "${tmp}/bin/"
chmod 755 "${tmp}/bin" "${tmp}/bin/zerorund" "${tmp}/bin/zr_test_rank"
"${build}/launcher/zerorun" cluster init "${tmp}/cluster" --node "${subnet}.1" --node "${subnet}.2" \
  --node "${subnet}.3" --user nobody >"${tmp}/cluster.log" 2>&1 || fail "cluster init: $(cat "${tmp}/cluster.log")"
for i in 1 2 3; do
  n="${names[$((i - 1))]}"
  kill -TERM "${daemons[$((i - 1))]}" && wait "${daemons[$((i - 1))]}" 2>/dev/null || true
  ip netns exec "${tag}${n}" env ZR_HOME="${tmp}/home_${n}" "${tmp}/bin/zerorund" \
    --allow-root-ranks --listen "${subnet}.${i}:29600" --tls-dir "${tmp}/cluster/nodes/${subnet}.${i}" \
    --state-dir "${tmp}/state3_${n}" >"${tmp}/zerorund3_${n}.log" 2>&1 &
  daemons[$((i - 1))]="$!"
done
wait_all_listening
rc=0
cp "${src}/tests/testdata/ds_stage2.json" "${tmp}/ds_stage2.json"
chmod 644 "${tmp}/ds_stage2.json"
# The ranks' working directory is the launcher's: one nobody may enter.
(cd "${tmp}" && ip netns exec "${tag}a" env ZR_HOME="${tmp}/launcher_home" timeout 60 \
  "${build}/launcher/zerorun" --hostfile "${hosts}" --tls-dir "${tmp}/cluster/users/nobody" \
  --device cpu --config "${tmp}/ds_stage2.json" "${tmp}/bin/zr_test_rank" --run-ms 100) \
  >"${tmp}/mtls.log" 2>&1 || rc=$?
[[ ${rc} -eq 0 ]] || { tail -20 "${tmp}/mtls.log"; fail "mTLS job exited ${rc}"; }
grep -q "audit: Launch job=[^ ]* ranks=1 argv0=[^ ]*zr_test_rank user=nobody peer=ipv4:${subnet}.1:" \
  "${tmp}/zerorund3_c.log" || { cat "${tmp}/zerorund3_c.log"; fail "node-c did not audit the launch of nobody"; }
rc=0
launch --config "${src}/tests/testdata/ds_stage2.json" "${build}/tests/zr_test_rank" --run-ms 100 \
  >"${tmp}/plain.log" 2>&1 || rc=$?
[[ ${rc} -eq 69 ]] || { tail -20 "${tmp}/plain.log"; fail "a plaintext launch to mTLS nodes exited ${rc}"; }
assert_nothing_left
echo "ok: mTLS on 3 hosts: the certificate of user nobody launched (its ranks run as nobody, audited on node-c); the shared secret alone exits 69"
echo "netns e2e: 7 passed, 0 failed"
