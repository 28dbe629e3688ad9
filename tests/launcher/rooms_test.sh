#!/usr/bin/env bash
# launcher/'s rooms keep their dependency rule (launcher/CMakeLists.txt, each room's README.md):
# a room includes only rooms listed before it (inputs, cluster, backends, preflight, job, cli);
# nothing but CMakeLists.txt sits in launcher/ itself; each room says what it owns and may call;
# the worker never includes the launcher. Prints every offending include; exit 1 if any.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rooms=(inputs cluster backends preflight job cli)
bad=0
for f in "${root}"/launcher/*; do
  name="$(basename "${f}")"
  if [[ -f "${f}" && "${name}" != CMakeLists.txt ]]; then
    echo "launcher/${name}: a file outside the rooms (${rooms[*]})"; bad=1
  elif [[ -d "${f}" && " ${rooms[*]} " != *" ${name} "* ]]; then
    echo "launcher/${name}/: not a room of launcher/CMakeLists.txt"; bad=1
  fi
done
for i in "${!rooms[@]}"; do
  room="${rooms[$i]}"
  allowed=" ${rooms[*]:0:$((i + 1))} "
  [[ -f "${root}/launcher/${room}/README.md" ]] ||
    { echo "launcher/${room}/README.md is missing"; bad=1; }
  for f in "${root}/launcher/${room}"/*.h "${root}/launcher/${room}"/*.cc; do
    while IFS= read -r line; do
      target="${line#*\"}"
      target="${target%%/*}"
      if [[ " ${rooms[*]} " == *" ${target} "* && "${allowed}" != *" ${target} "* ]]; then
        echo "launcher/${room}/$(basename "${f}"): ${line} (${room} may include only:${allowed})"
        bad=1
      fi
    done < <(grep -E '^#include "[a-z_]+/' "${f}" || true)
  done
done
for f in "${root}"/worker/*.h "${root}"/worker/*.cc; do
  if grep -HE "^#include \"($(IFS='|'; echo "${rooms[*]}"))/" "${f}"; then
    echo "  ^ worker/ never includes the launcher"; bad=1
  fi
done
# The rule is not vacuous: the rooms hold the launcher's sources and include each other.
count="$(cat "${root}"/launcher/*/*.cc | grep -cE '^#include "(inputs|backends|preflight|job)/')"
if (( count < 20 )); then echo "only ${count} includes between rooms: is the layout read?"; bad=1; fi
exit "${bad}"
