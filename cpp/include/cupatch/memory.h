// SPDX-License-Identifier: BSD-3-Clause
// Host memory helpers of the CPU kernels.
#pragma once

#include <cstdint>

namespace cupatch {

// Map the pages of [data, data + nbytes) for writing now, on every core, without touching
// their contents (Linux MADV_POPULATE_WRITE, 5.14 and later; elsewhere, or where the kernel
// refuses it, nothing happens and the pages are mapped on first write as usual). A new
// output filled tile by tile would otherwise take its page faults one by one inside the
// stitch, interleaved with the kernel's work and, next to torch, with the faults of its
// activations. Only whole pages inside the range are touched.
void prefault_for_writing(void* data, std::int64_t nbytes);

}  // namespace cupatch
