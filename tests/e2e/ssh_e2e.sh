#!/usr/bin/env bash
# e2e: zerorun --launcher ssh against real OpenSSH servers on hosts with non-loopback addresses:
# three network namespaces on a bridge, sshd (its own host key, authorized_keys and config, port
# 2222) in two of them, the launcher in the third with DeepSpeed's text hostfile and ssh options
# (PDSH_SSH_ARGS_APPEND, --ssh_port). Checks: ZeRO-2 training over two ssh hosts matches the
# oracle; the job's secret is on no command line and in no environment; a failing rank ends the
# job naming its host (--launcher pdsh); a SIGKILLed or interrupted launcher leaves nothing on
# any host; a host without sshd is exit 69 naming it, before anything runs; preflight probes
# every host through its own agent; usage errors are 2.
# Needs root, ip netns and sshd (exit 77, skipped with the reason, otherwise).
# Usage: ssh_e2e.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
zerorun="${build}/launcher/zerorun"
if [[ "$(id -u)" -ne 0 ]] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: needs root and ip netns"
  exit 77
fi
for tool in /usr/sbin/sshd ssh ssh-keygen; do
  if ! command -v "${tool}" >/dev/null; then
    echo "SKIP: ${tool} not installed (deploy/install-deps.sh --test installs openssh-server)"
    exit 77
  fi
done
tag="zs$$"
subnet="10.214.$(($$ % 250 + 1))"
names=(a b c)
tmp="$(mktemp -d /tmp/zr-ssh.XXXXXX)"
chmod 755 "${tmp}"
sshds=()
cleanup() {
  for pid in "${sshds[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done
  for n in "${names[@]}" br; do
    for pid in $(ip netns pids "${tag}${n}" 2>/dev/null); do kill -9 "${pid}" 2>/dev/null || true; done
    ip netns del "${tag}${n}" 2>/dev/null || true
  done
  rm -rf "${tmp}"
}
trap cleanup EXIT
# shellcheck source=tests/e2e/e2e_lib.sh
source "${src}/tests/e2e/e2e_lib.sh"
# Only each host's sshd is left in namespaces b and c, nothing in a (ssh sessions, zerorunds,
# ranks all gone); waits up to $1 seconds for it.
nothing_left() {
  local left=""
  for _ in $(seq $(($1 * 10))); do
    left="$(ip netns pids "${tag}a")"
    for i in 1 2; do
      left+="$(ip netns pids "${tag}${names[$i]}" | grep -vx "${sshds[$((i - 1))]}" || true)"
    done
    [[ -z "${left}" ]] && return 0
    sleep 0.1
  done
  echo "left: $(for p in ${left}; do tr '\0' ' ' </proc/"${p}"/cmdline 2>/dev/null; echo; done)"
  return 1
}

# The pid of the zerorun process (not timeout's) whose command line has job id $1.
launcher_pid() {
  for p in $(pgrep -f -- "--job-id $1"); do
    [[ "$(cat /proc/"${p}"/comm 2>/dev/null)" == zerorun ]] && echo "${p}" && return
  done
}

bridged_namespaces "${tag}" "${subnet}" "${names[@]}"

# OpenSSH: this test's own host key, user key, authorized_keys and known_hosts; nothing of the
# machine's ~/.ssh or /etc/ssh is read or changed. The sessions' TMPDIR (the agents' state
# directories) is under ${tmp}.
ssh-keygen -q -t ed25519 -N '' -f "${tmp}/host_key"
ssh-keygen -q -t ed25519 -N '' -f "${tmp}/user_key"
cp "${tmp}/user_key.pub" "${tmp}/authorized_keys"
mkdir -p "${tmp}/remote_tmp" /run/sshd
cat >"${tmp}/sshd_config" <<EOF
Port 2222
HostKey ${tmp}/host_key
AuthorizedKeysFile ${tmp}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
SetEnv TMPDIR=${tmp}/remote_tmp
EOF
: >"${tmp}/known_hosts"
for i in 2 3; do
  echo "[${subnet}.${i}]:2222 $(cat "${tmp}/host_key.pub")" >>"${tmp}/known_hosts"
  ip netns exec "${tag}${names[$((i - 1))]}" /usr/sbin/sshd -D -e -f "${tmp}/sshd_config" \
    -o "ListenAddress=${subnet}.${i}" >"${tmp}/sshd_${i}.log" 2>&1 &
  sshds+=("$!")
done
cat >"${tmp}/ssh_config" <<EOF
Host *
  User root
  IdentityFile ${tmp}/user_key
  IdentitiesOnly yes
  UserKnownHostsFile ${tmp}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
EOF
for i in 2 3; do
  for _ in $(seq 100); do
    [[ "$(ip netns exec "${tag}${names[$((i - 1))]}" ss -ltn)" == *"${subnet}.${i}:2222"* ]] && break
    sleep 0.1
  done
done
# The ssh a user would type works; the job's launches use the same options.
ip netns exec "${tag}a" ssh -F "${tmp}/ssh_config" -p 2222 -o BatchMode=yes "${subnet}.2" true ||
  { cat "${tmp}/sshd_2.log"; echo "FAIL: plain ssh to ${subnet}.2 does not work"; exit 1; }

# DeepSpeed's hostfile, user@host included; DeepSpeed's ssh options.
cat >"${tmp}/hostfile" <<EOF
root@${subnet}.2 slots=1
${subnet}.3 slots=1
EOF
launch() {
  ip netns exec "${tag}a" env ZR_HOME="${tmp}/home" PDSH_SSH_ARGS_APPEND="-F ${tmp}/ssh_config" \
    timeout 120 "${zerorun}" --launcher "${via:-ssh}" --ssh_port 2222 --hostfile "${tmp}/hostfile" \
    --device cpu --grace-period 2 "$@"
}
stage2="${src}/tests/testdata/ds_stage2.json"

# 1. ZeRO-2 training over two ssh-started agents matches the oracle; nothing is left.
rc=0
launch --config "${stage2}" "${build}/runtime/examples/gpt/train_gpt" \
  --check-golden "${src}/tests/testdata/golden/tiny_gpt_v64_d64_h4_l2_t32_b12.bin" \
  >"${tmp}/train.log" 2>&1 || rc=$?
if [[ ${rc} -eq 0 ]] && grep -q "golden check PASSED" "${tmp}/train.log" &&
  grep -q "starting zerorund over ssh on 2 host(s) (root@${subnet}.2,${subnet}.3)" "${tmp}/train.log"; then
  pass "ZeRO-2 on 2 ssh hosts (${subnet}.2-3) matches the oracle"
else
  tail -30 "${tmp}/train.log"
  fail "training over ssh exited ${rc}"
fi
nothing_left 10 && pass "no session, agent or rank left after the job" || fail "processes left after the job"

# 2. While a job runs: two agents, each reading its secret from stdin; no process anywhere has a
#    secret (32 random bytes in hex) on its command line or ZR_SECRET in its environment, the
#    ranks included; zerorun status and logs work.
mkdir -p "${tmp}/envs"
launch --config "${stage2}" --job-id "sec-${tag}" "${build}/tests/zr_test_rank" --run-ms 4000 \
  --lines 2 --env-dir "${tmp}/envs" >"${tmp}/secret.log" 2>&1 &
bg=$!
for _ in $(seq 200); do [[ -s "${tmp}/envs/rank_1.env" ]] && break; sleep 0.1; done
agents=0
leaks=""
for pid in $(ip netns pids "${tag}a") $(ip netns pids "${tag}b") $(ip netns pids "${tag}c"); do
  cmdline="$(tr '\0' ' ' </proc/"${pid}"/cmdline 2>/dev/null || true)"
  [[ "${cmdline}" == *"zerorund --listen 0.0.0.0:0 --auth secret --secret-file - "* ]] && agents=$((agents + 1))
  if [[ "${cmdline}" =~ [0-9a-f]{64} ]] || tr '\0' '\n' </proc/"${pid}"/environ 2>/dev/null | grep -q "^ZR_SECRET="; then
    leaks+=" ${pid}:${cmdline}"
  fi
done
# While it runs, status (the coordinator) and logs (the job's own agents, with the secret its
# record keeps) answer from the launcher's host.
in_a() { ip netns exec "${tag}a" env ZR_HOME="${tmp}/home" "${zerorun}" "$@"; }
status_out="$(in_a status "sec-${tag}" 2>&1 || true)"
logs_out="$(in_a logs "sec-${tag}" --rank 1 2>&1 || true)"
wait "${bg}" || true
grep -q "^ZR_SECRET=" "${tmp}/envs/rank_1.env" && leaks+=" rank 1 env"
if [[ "${status_out}" == *"sec-${tag}"*"running"* ]] &&
  [[ "${logs_out}" == *"[rank 1 ${subnet}.3] line 1 of rank 1"* ]]; then
  pass "status and logs of a running ssh job"
else
  echo "status: ${status_out}"
  echo "logs: ${logs_out}"
  fail "status or logs of a running ssh job"
fi
[[ ${agents} -eq 2 ]] && pass "one ssh-started zerorund per host, secret from stdin" ||
  fail "${agents} agents seen, want 2"
[[ -z "${leaks}" ]] && pass "no secret on a command line or in an environment" || fail "secret visible:${leaks}"

# 3. A rank failing on the second host ends the job (DeepSpeed's --launcher pdsh spelling):
#    exit 1, the host and rank named, within the usual bound; nothing left.
start=$(date +%s%N)
rc=0
via=pdsh launch --config "${stage2}" "${build}/tests/zr_test_rank" --run-ms 60000 \
  --fail-rank 1 --fail-after-ms 500 --exit-code 7 >"${tmp}/fail.log" 2>&1 || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if [[ ${rc} -eq 1 ]] && grep -q "host ${subnet}.3 (${subnet}.3)  rank 1 (local 0)" "${tmp}/fail.log" &&
  grep -q -- "--launcher pdsh: zerorun starts zerorund over ssh" "${tmp}/fail.log" &&
  [[ ${elapsed_ms} -lt 20000 ]]; then
  pass "rank 1 on ${subnet}.3 failed: exit 1 in ${elapsed_ms} ms, named"
else
  tail -30 "${tmp}/fail.log"
  fail "failing rank: exit ${rc} after ${elapsed_ms} ms"
fi
nothing_left 10 && pass "nothing left after the failed job" || fail "processes left after the failed job"

# 4. The launcher SIGKILLed mid-job: its ssh sessions end, so every agent stops and kills its
#    ranks, within 10 s; nothing is left on any host.
rm -rf "${tmp}/envs" && mkdir -p "${tmp}/envs"
launch --config "${stage2}" --job-id "killed-${tag}" "${build}/tests/zr_test_rank" --run-ms 120000 \
  --env-dir "${tmp}/envs" >"${tmp}/killed.log" 2>&1 &
bg=$!
for _ in $(seq 200); do [[ -s "${tmp}/envs/rank_1.pid" ]] && break; sleep 0.1; done
rank_pid="$(cat "${tmp}/envs/rank_1.pid" 2>/dev/null || echo 0)"
zr_pid="$(launcher_pid "killed-${tag}")"
[[ -n "${zr_pid}" ]] || { tail -20 "${tmp}/killed.log"; zr_pid=999999999; }
start=$(date +%s%N)
kill -9 "${zr_pid}" || true
if nothing_left 10 && ! kill -0 "${rank_pid}" 2>/dev/null; then
  pass "SIGKILLed launcher: rank ${rank_pid} and both agents gone in $((($(date +%s%N) - start) / 1000000)) ms"
else
  fail "SIGKILLed launcher left processes behind"
fi
wait "${bg}" 2>/dev/null || true

# 5. An interrupted launcher (SIGINT, Ctrl-C) stops the job and ends its sessions.
rm -rf "${tmp}/envs" && mkdir -p "${tmp}/envs"
launch --config "${stage2}" --job-id "int-${tag}" "${build}/tests/zr_test_rank" --run-ms 120000 \
  --env-dir "${tmp}/envs" >"${tmp}/interrupted.log" 2>&1 &
bg=$!
for _ in $(seq 200); do [[ -s "${tmp}/envs/rank_1.pid" ]] && break; sleep 0.1; done
zr_pid="$(launcher_pid "int-${tag}")"
[[ -n "${zr_pid}" ]] || { tail -20 "${tmp}/interrupted.log"; zr_pid=999999999; }
kill -INT "${zr_pid}" || true
rc=0
wait "${bg}" || rc=$?
if [[ ${rc} -eq 130 ]] && nothing_left 10; then
  pass "SIGINT: exit 130, nothing left"
else
  tail -20 "${tmp}/interrupted.log"
  fail "SIGINT: exit ${rc}"
fi

# 6. A host without sshd (the launcher's own, ${subnet}.1): exit 69 naming it and ssh's words,
#    no rank started anywhere, the other host's session ended.
printf '%s slots=1\n%s slots=1\n' "${subnet}.2" "${subnet}.1" >"${tmp}/hostfile_bad"
rc=0
ip netns exec "${tag}a" env ZR_HOME="${tmp}/home" PDSH_SSH_ARGS_APPEND="-F ${tmp}/ssh_config" \
  timeout 60 "${zerorun}" --launcher ssh --ssh_port 2222 --hostfile "${tmp}/hostfile_bad" \
  --device cpu --config "${stage2}" "${build}/tests/zr_test_rank" >"${tmp}/unreachable.log" 2>&1 || rc=$?
if [[ ${rc} -eq 69 ]] && grep -q "zerorund did not come up over ssh on 1 host(s)" "${tmp}/unreachable.log" &&
  grep -q "${subnet}.1 (ssh exited)" "${tmp}/unreachable.log" &&
  grep -q "Connection refused" "${tmp}/unreachable.log" && nothing_left 10; then
  pass "a host without sshd: exit 69 naming ${subnet}.1, nothing left"
else
  cat "${tmp}/unreachable.log"
  fail "unreachable host: exit ${rc}"
fi

# 6b. zerorun preflight over ssh: every host probed through its own agent, nothing left after.
rc=0
ip netns exec "${tag}a" env ZR_HOME="${tmp}/home" PDSH_SSH_ARGS_APPEND="-F ${tmp}/ssh_config" \
  timeout 60 "${zerorun}" preflight --launcher ssh --ssh_port 2222 --hostfile "${tmp}/hostfile" \
  --device cpu --config "${stage2}" "${build}/tests/zr_test_rank" >"${tmp}/preflight.log" 2>&1 || rc=$?
if [[ ${rc} -eq 0 ]] && grep -q "^root@${subnet}.2 *agent *OK" "${tmp}/preflight.log" &&
  grep -q "^${subnet}.3 *agent *OK" "${tmp}/preflight.log" && nothing_left 10; then
  pass "preflight over ssh probes both hosts, nothing left"
else
  cat "${tmp}/preflight.log"
  fail "preflight over ssh: exit ${rc}"
fi

# 7. Usage: --ssh_port without --launcher ssh, and --launcher ssh without a hostfile, are exit 2
#    before anything starts.
rc=0
"${zerorun}" --ssh_port 2222 --device cpu --config "${stage2}" /bin/true >"${tmp}/usage.log" 2>&1 || rc=$?
rc2=0
(cd "${tmp}" && ZR_HOME="${tmp}/home" "${zerorun}" --launcher ssh --device cpu --config "${stage2}" \
  /bin/true) >>"${tmp}/usage.log" 2>&1 || rc2=$?
if [[ ${rc} -eq 2 && ${rc2} -eq 2 ]] && grep -q "is for --launcher ssh" "${tmp}/usage.log" &&
  grep -q "starts zerorund on the hosts of a hostfile" "${tmp}/usage.log"; then
  pass "usage errors: exit 2"
else
  cat "${tmp}/usage.log"
  fail "usage errors: exit ${rc}, ${rc2}"
fi

echo "ssh e2e: ${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
