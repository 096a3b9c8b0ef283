// SPDX-License-Identifier: BSD-3-Clause
// CPU stitching. crop: tile rows split across threads, each a memcpy of the kept run.
// blend: tiles split across threads; each voxel is written only by its owner tile
// (stitch.h), so threads never touch the same voxel.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cupatch/stitch.h"
#include "parallel.h"

namespace cupatch {

void stitch_crop_cpu(const StitchArgs& a) {
    parallel_for(crop_row_count(a), a.tile[2], [&](index_t begin, index_t end) {
        for (index_t row = begin; row < end; ++row) {
            const CropRow r = crop_row(a, row);
            if (r.hi > r.lo)
                std::memcpy(r.out + r.dst + r.lo, a.tiles + r.src + r.lo, static_cast<std::size_t>(r.hi - r.lo) * sizeof(float));
        }
    });
}

void stitch_blend_cpu(const StitchArgs& a) {
    const index_t B = a.n_tiles;
    // Clipped windows of all tiles, then for each tile the ascending list of tiles whose
    // windows intersect it (a superset of the tiles covering any of its voxels).
    std::vector<TileSpec> specs(static_cast<std::size_t>(B));
    std::vector<BlendWindow> windows(static_cast<std::size_t>(B));
    std::vector<char> valid(static_cast<std::size_t>(B));
    for (index_t b = 0; b < B; ++b) {
        specs[b] = load_tile_spec(a, b);
        valid[b] = blend_window(a, specs[b], windows[b]) ? 1 : 0;
    }
    std::vector<std::vector<std::int32_t>> cand(static_cast<std::size_t>(B));
    parallel_for(B, B, [&](index_t begin, index_t end) {
        for (index_t b = begin; b < end; ++b) {
            if (!valid[b]) continue;
            for (index_t t = 0; t < B; ++t) {
                if (!valid[t] || specs[t].data_idx != specs[b].data_idx || specs[t].sample != specs[b].sample) continue;
                bool hit = true;
                for (int d = 0; d < 3 && hit; ++d)
                    hit = std::max(windows[b].lo[d], windows[t].lo[d]) < std::min(windows[b].hi[d], windows[t].hi[d]);
                if (hit) cand[b].push_back(static_cast<std::int32_t>(t));
            }
        }
    });
    parallel_for(B, a.tile[0] * a.tile[1] * a.tile[2] * 8, [&](index_t begin, index_t end) {
        for (index_t b = begin; b < end; ++b) {
            if (!valid[b]) continue;
            const TileSpec& t = specs[b];
            const OutputView o = load_output(a.outputs, t.data_idx);
            index_t lo[3], hi[3];  // window clipped to the output slab
            for (int d = 0; d < 3; ++d) {
                lo[d] = std::max(windows[b].lo[d], o.origin[d]);
                hi[d] = std::min(windows[b].hi[d], o.origin[d] + o.shape[2 + d]);
            }
            const std::int32_t* list = cand[b].data();
            const index_t n_list = static_cast<index_t>(cand[b].size());
            index_t s[3];
            for (s[0] = lo[0]; s[0] < hi[0]; ++s[0])
                for (s[1] = lo[1]; s[1] < hi[1]; ++s[1])
                    for (s[2] = lo[2]; s[2] < hi[2]; ++s[2]) blend_voxel(a, b, t.data_idx, t.sample, s, list, n_list);
        }
    });
}

}  // namespace cupatch
