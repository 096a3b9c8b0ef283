// SPDX-License-Identifier: BSD-3-Clause
// CUPATCH_ROW_CLONES marks the CPU kernels' innermost row loops: on x86-64 (GCC) an AVX2
// clone is compiled beside the baseline one and picked at load time where the CPU has it
// (the same IEEE operations, only wider). Not under the sanitizers, whose runtimes do not
// support the resolver.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define CUPATCH_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CUPATCH_ROW_CLONES
#endif

// Helpers of a cloned loop must be inlined into it to be compiled for its target too.
#if defined(__GNUC__)
#define CUPATCH_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define CUPATCH_ALWAYS_INLINE inline
#endif
