#!/usr/bin/env bash
# The emulated CUDA lane: the real CUDA kernels and the GPU tests, run on the CPU.
#
#   scripts/emulated_check.sh            # from the repo root, with the Python to use first on PATH
#   PYTHON=/path/to/python scripts/emulated_check.sh
#
# 1. Builds cupatch._core with CUPATCH_CUDA=EMULATE (cpp/src/cuda/*.cu compiled as host C++
#    against cpp/emulation) into build/emulated (incremental when run again) and assembles an
#    importable package from it in build/emulated/site. The installed cupatch, if any, is
#    left alone: the lane runs the sources of this checkout.
# 2. C++ differential tests (cpp/tests/emulated_diff.cpp, emulated CUDA kernels vs the CPU
#    kernels, bit for bit) with the fiber executor in ascending, descending and shuffled
#    thread order; again under AddressSanitizer + UndefinedBehaviorSanitizer with line
#    coverage of cpp/src/cuda (report in build/emulated/report/coverage.txt); and a small
#    run under ThreadSanitizer with one OS thread per CUDA thread.
# 3. The gpu-marked pytest cases against the emulated build, on the NumPy-backed CuPy
#    stand-in in tests/_standin (installed by tests/conftest.py for emulated builds only),
#    then the rest of the suite against the same build.
#
# It may pip-install what it needs into that Python's environment (cmake, ninja, pybind11,
# gcovr, and cupatch's own dependencies when missing). Prints pytest's summary line and exits
# non-zero if any step fails. EMULATED_CASES scales the C++ differential runs (default 12).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python}
command -v "$PY" >/dev/null || PY=python3
JOBS=${JOBS:-$(nproc)}
CASES=${EMULATED_CASES:-12}
BUILD=$ROOT/build/emulated
REPORT=$BUILD/report
mkdir -p "$REPORT"

failed=()
step() { echo; echo "== $*"; }

step "tools"
missing=()
"$PY" -c "import cmake" 2>/dev/null || missing+=(cmake)
"$PY" -c "import ninja" 2>/dev/null || missing+=(ninja)
"$PY" -c "import pybind11" 2>/dev/null || missing+=("pybind11>=3")
"$PY" -c "import gcovr" 2>/dev/null || missing+=(gcovr)
for mod in numpy tqdm tifffile zarr pytest hypothesis scipy; do
  "$PY" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  "$PY" -m pip install --quiet "${missing[@]}" || { echo "cannot install ${missing[*]}"; exit 1; }
fi
BIN=$("$PY" -c "import sys, os; print(os.path.dirname(sys.executable))")
export PATH="$BIN:$PATH"
VERSION=$("$PY" -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
CONFIG=(-G Ninja -DCUPATCH_CUDA=EMULATE -DCUPATCH_BUILD_TESTS=ON -DSKBUILD_PROJECT_NAME=cupatch
  "-DSKBUILD_PROJECT_VERSION=$VERSION" "-Dpybind11_DIR=$("$PY" -m pybind11 --cmakedir)" "-DPython_EXECUTABLE=$(command -v "$PY")")

configure_and_build() {  # DIR TARGET CMAKE_ARGS...
  local dir=$1 target=$2
  shift 2
  if [[ ! -f $dir/build.ninja ]]; then
    cmake -S "$ROOT" -B "$dir" "${CONFIG[@]}" "$@" >"$dir.configure.log" 2>&1 \
      || { cat "$dir.configure.log"; return 1; }
  fi
  cmake --build "$dir" --target "$target" -j "$JOBS" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

step "build: emulated _core and differential test (build/emulated)"
mkdir -p "$BUILD"
if configure_and_build "$BUILD" all -DCMAKE_BUILD_TYPE=Release; then
  rm -rf "$BUILD/site" && mkdir -p "$BUILD/site"
  cp -a python/cupatch "$BUILD/site/cupatch"
  find "$BUILD/site" -name "__pycache__" -prune -exec rm -rf {} +
  cp "$BUILD"/_core*.so "$BUILD/site/cupatch/"
  # An editable install of cupatch (pip install -e) imports through a finder that comes
  # before PYTHONPATH: the Python steps would test that build instead, so stop and say so.
  PYTHONPATH=$BUILD/site "$PY" -c "
import os, sys, cupatch
site = os.path.realpath(sys.argv[1])
if not os.path.realpath(cupatch.__file__).startswith(site):
    sys.exit(f'cupatch imports from {cupatch.__file__}, not {site}: an editable install shadows '
             'PYTHONPATH; run this script from an environment without one (e.g. pip install . , not -e)')
b = cupatch.build_info(); assert b['cuda_emulated'] and b['cuda_devices'] == 1, b; print('emulated build:', b)" "$BUILD/site" \
    || failed+=("emulated build import")
else
  failed+=("emulated build")
fi

step "C++ differential tests, fiber executor, three thread orders"
if [[ -x $BUILD/emulated_diff ]]; then
  for order in ascending descending shuffled; do
    echo "-- order $order"
    CUPATCH_EMULATE_ORDER=$order CUPATCH_EMULATE_SEED=7 "$BUILD/emulated_diff" --cases "$CASES" || failed+=("differential ($order)")
  done
fi

step "deliberately broken kernels must fail the differential test (scripts/emulated_mutants.py)"
"$PY" scripts/emulated_mutants.py || failed+=("mutants")

step "C++ differential tests under ASan + UBSan, with coverage of cpp/src/cuda"
SAN=$ROOT/build/emulated-asan
mkdir -p "$SAN"
if configure_and_build "$SAN" emulated_diff -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_CXX_FLAGS=-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all --coverage" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined --coverage"; then
  find "$SAN" -name "*.gcda" -delete
  for order in ascending descending shuffled; do
    echo "-- order $order"
    CUPATCH_EMULATE_ORDER=$order ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      "$SAN/emulated_diff" --cases $(((CASES + 2) / 3)) --seed 11 || failed+=("ASan/UBSan differential ($order)")
  done
  "$PY" -m gcovr --merge-lines -r "$ROOT" --filter "cpp/src/cuda/" --txt "$REPORT/coverage.txt" \
    --json-summary "$REPORT/coverage.json" "$SAN" >/dev/null 2>&1 || failed+=("coverage report")
  [[ -f $REPORT/coverage.txt ]] && cat "$REPORT/coverage.txt"
else
  failed+=("ASan/UBSan build")
fi

step "C++ differential test under ThreadSanitizer, one OS thread per CUDA thread"
TSAN=$ROOT/build/emulated-tsan
mkdir -p "$TSAN"
if configure_and_build "$TSAN" emulated_diff -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS=-O1 -g -fsanitize=thread" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread"; then
  CUPATCH_EMULATE_EXECUTOR=threads TSAN_OPTIONS=halt_on_error=1 "$TSAN/emulated_diff" --cases 1 --small \
    || failed+=("ThreadSanitizer differential")
else
  failed+=("ThreadSanitizer build")
fi

step "GPU-marked tests against the emulated build"
if [[ -d $BUILD/site/cupatch ]]; then
  rm -f "$REPORT/gpu-tests.xml"
  PYTHONPATH=$BUILD/site "$PY" -m pytest -m gpu -p no:cacheprovider --junitxml="$REPORT/gpu-tests.xml" tests
  rc=$?
  # 5 = nothing collected, which here is a failure as much as any other.
  ((rc == 0)) || failed+=("gpu tests (pytest exit $rc)")
  # The lane exists to run GPU code: a stand-in or build that quietly skips everything fails.
  "$PY" - "$REPORT/gpu-tests.xml" "${EMULATED_MIN_GPU_TESTS:-400}" <<'PYEOF' || failed+=("too few gpu tests executed")
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
ran, need = total - skipped, int(sys.argv[2])
print(f"gpu-marked tests executed in emulation: {ran} of {total} ({skipped} skipped); at least {need} required")
sys.exit(0 if ran >= need else 1)
PYEOF
  step "the rest of the test suite against the emulated build"
  PYTHONPATH=$BUILD/site "$PY" -m pytest -m "not gpu" -p no:cacheprovider -q tests | tail -n 15
  rc=${PIPESTATUS[0]}
  ((rc == 0)) || failed+=("non-gpu tests against the emulated build (pytest exit $rc)")
fi

echo
if ((${#failed[@]})); then
  echo "emulated lane FAILED: ${failed[*]}"
  exit 1
fi
echo "emulated lane passed"
