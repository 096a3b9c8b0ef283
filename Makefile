# Developer shortcuts (the README's commands are the reference).
PYTHON ?= python
BUILD_DIR ?= build/dev

.PHONY: dev dev-cpu test emulated bench-cpu gpu-check

# Editable install with the CUDA kernels compiled in (AUTO: when nvcc is found).
dev:
	$(PYTHON) -m pip install --no-build-isolation -e . -Cbuild-dir=$(BUILD_DIR) -Ccmake.define.CMAKE_EXPORT_COMPILE_COMMANDS=ON

# Faster iterations on the C++ side: CPU-only build (separate build directory).
dev-cpu:
	CUPATCH_CUDA=OFF $(PYTHON) -m pip install --no-build-isolation -e . -Cbuild-dir=build/dev-cpu

test:
	$(PYTHON) -m pytest

# The CUDA kernels and the GPU tests on the CPU (scripts/emulated_check.sh, docs/emulation.md).
emulated:
	PYTHON=$(PYTHON) scripts/emulated_check.sh

bench-cpu:
	$(PYTHON) benchmarks/bench_ops.py --device cpu

# On a GPU machine: install with CUDA required, tests, compute-sanitizer, benchmarks.
gpu-check:
	scripts/gpu_check.sh out/gpu-check
