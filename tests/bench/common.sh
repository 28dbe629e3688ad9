# Sourced by the shell benchmarks: paths, and the PyTorch peer's interpreter: the project venv's
# (deploy/python-env.sh, made when missing: torch 2 from PyPI, deploy/requirements.txt). Sets
# root, build, python and tmp (removed on exit); ZR_HOME lives in tmp.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${ZR_BUILD_DIR:-${root}/build}"
bash "${root}/deploy/python-env.sh" >&2
python="${ZR_VENV:-${root}/.venv}/bin/python3"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
export ZR_HOME="${tmp}/home"
# DeepSpeed JIT-builds its CPU ops once into the build tree (as the pyenv tests do).
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-${build}/torch_extensions}"

# bench_row DIR SYSTEM KEY: appends "SYSTEM rate rss_mib" to ${tmp}/results from the
# DIR/rank_*.json the ranks wrote: rank 0's KEY per median step second, the larger peak RSS.
bench_row() {
  "${python}" - "$1" "$2" "$3" >>"${tmp}/results" <<'PY'
import glob, json, sys
ranks = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/rank_*.json"))]
r0 = ranks[0]
print(sys.argv[2], "%.2f" % (r0[sys.argv[3]] / r0["step_s"]),
      "%.0f" % max(r["rss_mib"] for r in ranks))
PY
}

# run_rounds FN SYSTEM...: FN SYSTEM for each system in turn, ROUNDS times (so the machine's
# drift hits all alike), printing each round's rows.
run_rounds() {
  local fn="$1" round system
  shift
  for round in $(seq 1 "${ROUNDS:-3}"); do
    for system in "$@"; do "${fn}" "${system}"; done
    tail -n "$#" "${tmp}/results" | sed "s/^/round ${round}: /"
  done
}

# bench_summary UNIT RATIO...: the median rate and peak RSS of each system in ${tmp}/results,
# then each RATIO "A/B GOAL" (rate) or "rss:A/B GOAL" (RSS), e.g. "zerorun-z2/ddp >= 1.0".
bench_summary() {
  "${python}" - "${tmp}/results" "$@" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rate, rss = {}, {}
for name, r, m in rows:
    rate.setdefault(name, []).append(float(r)); rss.setdefault(name, []).append(float(m))
med = {k: statistics.median(v) for k, v in rate.items()}
mem = {k: statistics.median(v) for k, v in rss.items()}
print("%-14s %12s %14s" % ("system", sys.argv[2], "peak RSS MiB"))
for k in med:
    print("%-14s %12.2f %14.0f" % (k, med[k], mem[k]))
for spec in sys.argv[3:]:
    pair, goal = spec.split(" ", 1)
    what, table = (sys.argv[2], med) if not pair.startswith("rss:") else ("RSS", mem)
    a, b = pair.split(":")[-1].split("/")
    print("%s / %s %s: %.2fx (goal %s)" % (a, b, what, table[a] / table[b], goal))
PY
}
