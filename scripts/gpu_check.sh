#!/usr/bin/env bash
# GPU verification of cupatch on a machine with an NVIDIA GPU (no network needed).
#
#   scripts/gpu_check.sh OUTDIR
#
# Steps (select a subset with STEPS="build test sanitize bench", default all):
#   build    : pip install --no-build-isolation --no-deps . with CUPATCH_CUDA=ON (fails if the
#              CUDA kernels cannot be built), then print build_info()
#   test     : the whole pytest suite, GPU tests included (junit XML + log)
#   sanitize : compute-sanitizer memcheck, racecheck and synccheck on a small gather and
#              crop/blend stitch script (any reported error fails the step)
#   bench    : every benchmarks/bench_*.py at full size (not --quick), JSON + tables
#              (BENCHES="benchmarks/bench_ops.py ..." runs a subset)
# Everything is logged under OUTDIR; OUTDIR/summary.txt lists each step's status. The exit
# code is non-zero if any step failed. Set PYTHON to choose the interpreter.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
STEPS="${STEPS:-build test sanitize bench}"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
failed=0

record() {  # record STEP STATUS
    echo "$1: $2" | tee -a "$SUMMARY"
    [[ "$2" == ok* ]] || failed=1
}

want() { [[ " $STEPS " == *" $1 "* ]]; }

{
    date -u
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    nvidia-smi || true
    command -v nvcc && nvcc --version
    command -v compute-sanitizer || echo "compute-sanitizer not on PATH (searched again in the sanitize step)"
    "$PY" --version
    "$PY" -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"
} >"$OUT/environment.txt" 2>&1

if want build; then
    start=$SECONDS
    if CUPATCH_CUDA=ON "$PY" -m pip install --no-build-isolation --no-deps -v . >"$OUT/build.log" 2>&1 \
        && (cd "$OUT" && "$PY" -c "import json, cupatch; info = cupatch.build_info(); print(json.dumps(info, indent=2)); assert info['cuda_compiled'] and info['cuda_devices'] > 0, info") \
            >"$OUT/build_info.json" 2>>"$OUT/build.log"; then
        record build "ok ($((SECONDS - start)) s)"
    else
        record build "FAILED (see build.log)"
    fi
fi

if want test; then
    # The package lives under python/, so the installed build (not the sources) is tested.
    if "$PY" -m pytest -rs -p no:cacheprovider --junitxml="$OUT/pytest.xml" >"$OUT/pytest.log" 2>&1; then
        record test "ok ($(tail -n 1 "$OUT/pytest.log"))"
    else
        record test "FAILED ($(tail -n 1 "$OUT/pytest.log"))"
    fi
    grep -c "SKIPPED.*no usable GPU" "$OUT/pytest.log" >"$OUT/gpu_skips.txt" || true
fi

if want sanitize; then
    cat >"$OUT/sanitize_ops.py" <<'PYEOF'
"""Small gather and stitch workload for compute-sanitizer (every dtype, padding, flips,
quarter turns, slabs, crop and blend including the many-overlap path)."""
import cupy
import numpy as np

from cupatch import window_table
from cupatch.ops import OUTPUT_DTYPES, SOURCE_DTYPES, BlendAccumulator, gather_patches, stitch_tiles

rng = np.random.default_rng(0)
for dtype in SOURCE_DTYPES:
    for shape, patch in (((2, 3, 37, 29), (16, 16)), ((2, 2, 9, 20, 13), (4, 8, 8))):
        src = cupy.asarray((rng.standard_normal(shape) * 100).astype(dtype))
        n = 40
        specs = np.stack([np.zeros(n, int), rng.integers(0, 2, n), *(rng.integers(-p - 2, s + 2, n) for p, s in zip(patch, shape[2:]))], 1)
        for out_dtype in OUTPUT_DTYPES:
            gather_patches([src, src[:, :, ..., ::-1]], specs, patch, channels=[1, 0], dtype=out_dtype, scale=[2.0, 0.5],
                           shift=[1.0, -1.0], flip_y=rng.integers(0, 2, n), flip_x=rng.integers(0, 2, n), rot90=rng.integers(0, 4, n))

from cupatch import TiledPatching

for shape, tile, ovl in (((2, 2, 70, 45), (32, 32), (8, 8)), ((1, 1, 20, 40, 33), (8, 16, 16), (2, 4, 4))):
    tiling = TiledPatching([shape], tile, ovl)
    specs = tiling.spec_table(np.arange(tiling.n_patches))
    tiles = cupy.asarray(rng.standard_normal((len(specs), shape[1], *tile)).astype(np.float32))
    stitch_tiles(tiles, specs, [cupy.zeros(shape, dtype=np.float32)])
    half = tuple(n // 2 for n in shape[2:])
    slab = cupy.zeros((*shape[:2], *(n - h for n, h in zip(shape[2:], half))), dtype=np.float32)
    stitch_tiles(tiles, specs, [slab], origins=[half], image_shapes=[shape[2:]])
    acc = BlendAccumulator([shape], tile, ovl, array_module=cupy)
    acc.add(tiles, specs)
    acc.finalize()
    # more than 32 tiles covering the same voxels: the slower blend path
    many = np.repeat(specs[:1], 40, axis=0)
    acc = BlendAccumulator([shape], tile, ovl, window="linear", array_module=cupy)
    acc.add(cupy.asarray(rng.standard_normal((40, shape[1], *tile)).astype(np.float32)), many)
cupy.cuda.Device().synchronize()
print("sanitize workload done")
PYEOF
    SANITIZER="$(command -v compute-sanitizer || true)"
    if [[ -z "$SANITIZER" ]]; then
        nvcc_dir="$(dirname "$(readlink -f "$(command -v nvcc || echo /nonexistent)")")"
        for dir in "${CUDA_HOME:-/nonexistent}" "${CUDA_PATH:-/nonexistent}" /usr/local/cuda "$nvcc_dir/.."; do
            for candidate in "$dir/bin/compute-sanitizer" "$dir/compute-sanitizer/compute-sanitizer"; do
                if [[ -x "$candidate" ]]; then SANITIZER="$candidate"; break 2; fi
            done
        done
    fi
    if [[ -z "$SANITIZER" ]]; then
        record sanitize "FAILED (compute-sanitizer not found on PATH, CUDA_HOME or /usr/local/cuda)"
    else
        for tool in memcheck racecheck synccheck; do
            # CuPy's pooled allocations would hide out-of-bounds accesses inside a pool chunk,
            # so the workload runs with plain cudaMalloc allocations.
            if (cd "$OUT" && "$SANITIZER" --tool "$tool" --error-exitcode 99 \
                    --target-processes all "$PY" -c "import cupy; cupy.cuda.set_allocator(None); exec(open('sanitize_ops.py').read())") \
                >"$OUT/sanitize_$tool.log" 2>&1 && grep -q "ERROR SUMMARY: 0 errors" "$OUT/sanitize_$tool.log"; then
                record "sanitize-$tool" "ok"
            else
                record "sanitize-$tool" "FAILED (see sanitize_$tool.log)"
            fi
        done
    fi
fi

if want bench; then
    mkdir -p "$OUT/bench"
    for bench in ${BENCHES:-benchmarks/bench_*.py}; do
        name="$(basename "$bench" .py)"
        start=$SECONDS
        if "$PY" "$bench" --out-dir "$OUT/bench" >"$OUT/bench/$name.log" 2>&1; then
            record "$name" "ok ($((SECONDS - start)) s)"
        else
            record "$name" "FAILED (see bench/$name.log)"
        fi
    done
fi

echo "logs and results in $OUT"
exit "$failed"
