# Shared by the shell e2e tests (sourced): PASS/FAIL lines counted into ${passed}/${failed}, and
# network namespaces joined by a bridge, for hosts with non-loopback addresses.
passed=0
failed=0
pass() {
  echo "PASS: $*"
  passed=$((passed + 1))
}
fail() {
  echo "FAIL: $*"
  failed=$((failed + 1))
}

# bridged_namespaces TAG SUBNET NAME...: namespace TAG<NAME> for each NAME, the i-th (from 1)
# with address SUBNET.i/24 on a veth whose peer is on bridge br0 in namespace TAGbr. The caller
# deletes them (ip netns del).
bridged_namespaces() {
  local tag="$1" subnet="$2"
  shift 2
  ip netns add "${tag}br"
  ip -n "${tag}br" link add br0 type bridge
  ip -n "${tag}br" link set br0 up
  local i=0 n
  for n in "$@"; do
    i=$((i + 1))
    ip netns add "${tag}${n}"
    ip link add "${tag}${n}0" type veth peer name "${tag}${n}1"
    ip link set "${tag}${n}0" netns "${tag}${n}"
    ip link set "${tag}${n}1" netns "${tag}br"
    ip -n "${tag}${n}" link set lo up
    ip -n "${tag}${n}" addr add "${subnet}.${i}/24" dev "${tag}${n}0"
    ip -n "${tag}${n}" link set "${tag}${n}0" up
    ip -n "${tag}br" link set "${tag}${n}1" master br0 up
  done
}
