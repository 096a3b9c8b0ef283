#!/usr/bin/env bash
# Times `pip install` of this checkout's HEAD into fresh virtual environments, as a new
# user would run it: cold with nvcc, cold without CUDA, `.[test]` after `.` (build
# isolation) and the same pair with --no-build-isolation. Prints one line per install:
# wall seconds, CPU seconds of the whole process tree (user + sys; what load on a shared
# machine changes least) and the load average before and after.
#
#   benchmarks/bench_install.sh [ROUNDS] > benchmarks/results/MACHINE-DATE-install.txt
#
# Works in a temporary clone (nothing in this checkout is built or installed).
set -uo pipefail
ROUNDS=${1:-1}
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone -q "$(git rev-parse --show-toplevel)" "$WORK/src"
cd "$WORK/src"

measure() {  # LABEL VENV COMMAND...: one fresh-or-given venv, one install
  local label=$1 venv=$2
  shift 2
  local before after
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -o "$WORK/time" -f "%e %U %S" "$@" >"$WORK/$label.log" 2>&1
  local rc=$?
  after=$(cut -d' ' -f1-3 /proc/loadavg)
  read -r wall user sys <"$WORK/time"
  printf '%-34s rc=%d wall=%6.1fs cpu=%6.1fs load=[%s] -> [%s]\n' "$label" "$rc" "$wall" \
    "$(echo "$user + $sys" | bc)" "$before" "$after"
}
fresh() { rm -rf build "$WORK/venv"; "$PY" -m venv "$WORK/venv"; }
PIP=$WORK/venv/bin/pip

echo "# $(git log -1 --format='%h %cs') $(uname -m), $(nproc) cores, $("$PY" --version), $(nvcc --version 2>/dev/null | tail -1)"
for _ in $(seq "$ROUNDS"); do
  fresh; measure "cold, nvcc" venv "$PIP" install .
  measure ".[test] after . (rebuilds)" venv "$PIP" install ".[test]"
  fresh; measure "cold, CUPATCH_CUDA=OFF" venv env CUPATCH_CUDA=OFF "$PIP" install .
  fresh; "$PIP" install -q scikit-build-core pybind11 >/dev/null 2>&1
  measure "cold, nvcc, --no-build-isolation" venv "$PIP" install --no-build-isolation .
  measure ".[test] after ., --no-build-isolation" venv "$PIP" install --no-build-isolation ".[test]"
done
