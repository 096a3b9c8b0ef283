// SPDX-License-Identifier: BSD-3-Clause
// CPU stitching. crop: tile rows split across threads, each a memcpy of the kept run.
// blend: tiles split across threads; each voxel is written only by its owner tile
// (blend.h), so threads never touch the same voxel.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cupatch/blend.h"
#include "cupatch/crop.h"
#include "parallel.h"
#include "prefetch.h"
#include "row_clones.h"

namespace cupatch {

namespace {
// Row loops of the CPU blend, separately rounded float32 operations in blend_voxel()'s
// order (hence the same bits as the GPU), written over non-aliasing rows so that they
// vectorise (row_clones.h).

// The weight of covering tile j at x is mul_rn(wzy, wx[i]) (blend_weight_x()); its term
// mul_rn(weight, v[i]); terms are summed from 0 in ascending batch order and the sum added
// to the output (blend_accumulate()).

// One covering tile: out[i] += 0 + (wzy * wx[i]) * v[i]
CUPATCH_ROW_CLONES void blend_row_1(float* __restrict out, float wzy, const float* __restrict wx, const float* __restrict v,
                                    index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = add_rn(out[i], add_rn(0.0f, mul_rn(mul_rn(wzy, wx[i]), v[i])));
}
// Two covering tiles: out[i] += (0 + t0) + t1
CUPATCH_ROW_CLONES void blend_row_2(float* __restrict out, float wzy0, const float* __restrict wx0, const float* __restrict v0,
                                    float wzy1, const float* __restrict wx1, const float* __restrict v1, index_t n) {
    for (index_t i = 0; i < n; ++i) {
        const float t0 = mul_rn(mul_rn(wzy0, wx0[i]), v0[i]), t1 = mul_rn(mul_rn(wzy1, wx1[i]), v1[i]);
        out[i] = add_rn(out[i], add_rn(add_rn(0.0f, t0), t1));
    }
}
// More covering tiles, one at a time: acc[i] += (wzy * wx[i]) * v[i], then out[i] += acc[i]
CUPATCH_ROW_CLONES void accumulate_row(float* __restrict acc, float wzy, const float* __restrict wx, const float* __restrict v,
                                       index_t n) {
    for (index_t i = 0; i < n; ++i) acc[i] = add_rn(acc[i], mul_rn(mul_rn(wzy, wx[i]), v[i]));
}
CUPATCH_ROW_CLONES void add_row(float* __restrict out, const float* __restrict acc, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = add_rn(out[i], acc[i]);
}
// Weight sums (blend_accumulate()'s wsum): acc[i] += wzy * wx[i]
CUPATCH_ROW_CLONES void accumulate_weight_row(float* __restrict acc, float wzy, const float* __restrict wx, index_t n) {
    for (index_t i = 0; i < n; ++i) acc[i] = add_rn(acc[i], mul_rn(wzy, wx[i]));
}
}  // namespace

void stitch_crop_cpu(const StitchArgs& a) {
    // Items are tile planes (b, c, tz), so a batch of a few large 3-D tiles still splits
    // into many chunks (a late worker then holds up little); each item decodes its tile's
    // spec and output and visits only the kept rows.
    const index_t C = a.channels, TZ = a.tile[0], TY = a.tile[1];
    parallel_for(a.n_tiles * C * TZ, TY * a.tile[2], [&](index_t begin, index_t end) {
        for (index_t item = begin; item < end; ++item) {
            const index_t b = item / (C * TZ), c = (item / TZ) % C, tz = item % TZ;
            const TileSpec t = load_tile_spec(a, b);
            if (!tile_target_valid(a, t)) continue;
            if (tz < max_i(t.crop[0], 0) || tz >= min_i(t.crop[0] + t.size[0], TZ)) continue;
            const OutputView o = load_output(a.outputs, t.data_idx);
            const index_t y0 = max_i(t.crop[1], 0), y1 = min_i(t.crop[1] + t.size[1], TY);
            for (index_t ty = y0; ty < y1; ++ty) {
                const CropRow r = crop_row_of(a, t, o, b, c, tz, ty);
                if (r.hi > r.lo)
                    std::memcpy(r.out + r.dst + r.lo, a.tiles + r.src + r.lo, static_cast<std::size_t>(r.hi - r.lo) * sizeof(float));
            }
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
                if (valid[t] && same_target(specs[t], specs[b]) && windows_intersect(windows[b], windows[t]))
                    cand[b].push_back(static_cast<std::int32_t>(t));
            }
        }
    });
    // Row-wise version of blend_voxel(). Tile b's window is cut into (Z, Y) bands inside
    // which the set of covering tiles is constant, and each band's rows into X segments with
    // a constant covering set; owner and covering sets are found once per band, and each
    // row only updates the (Z, Y) weights before vectorisable loops over X. Same owner rule,
    // same products and the same sums in the same (ascending batch) order per voxel, hence
    // the same bits as blend_voxel() and the GPU.
    struct Segment {
        index_t x0, x1;
        std::vector<int> cover;         // indices into the band's tiles, ascending batch order
        std::vector<const float*> wx;   // each covering tile's X window, from x0
    };
    const index_t TY = a.tile[1], TX = a.tile[2];
    const index_t tile_voxels = a.tile[0] * TY * TX;
    auto band_cuts = [&](std::vector<index_t>& cuts, const std::vector<std::int32_t>& list, int d, index_t lo, index_t hi) {
        cuts.assign({lo, hi});
        for (const std::int32_t t : list) {
            if (windows[t].lo[d] > lo && windows[t].lo[d] < hi) cuts.push_back(windows[t].lo[d]);
            if (windows[t].hi[d] > lo && windows[t].hi[d] < hi) cuts.push_back(windows[t].hi[d]);
        }
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    };
    // Items are (tile, slice): Z planes of a 3-D tile or Y rows of a 2-D one, cut so that a
    // batch has about kTargetItems of them: a few large tiles still split into many chunks,
    // while large batches keep whole tiles (each item repeats its tile's band setup). Which
    // item adds a voxel does not change what is added to it.
    constexpr index_t kTargetItems = 64;
    constexpr index_t kRowsAhead = 2;
    const int slice_axis = a.ndim == 3 ? 0 : 1;
    const index_t extent = a.tile[slice_axis], min_rows = a.ndim == 3 ? 1 : 16;
    const index_t wanted = std::min<index_t>((kTargetItems + B - 1) / std::max<index_t>(B, 1), (extent + min_rows - 1) / min_rows);
    const index_t slice_rows = (extent + std::max<index_t>(wanted, 1) - 1) / std::max<index_t>(wanted, 1);
    const index_t n_slices = (extent + slice_rows - 1) / slice_rows;
    parallel_for(B * n_slices, tile_voxels * 4 / n_slices, [&](index_t begin, index_t end) {
        std::vector<index_t> zcuts, ycuts, xcuts;
        std::vector<std::int32_t> band;
        std::vector<Segment> segments;
        std::vector<float> weight_zy, acc;
        std::vector<index_t> tile_row;
        for (index_t item = begin; item < end; ++item) {
            const index_t b = item / n_slices, slice = item % n_slices;
            if (!valid[b]) continue;
            const TileSpec& tb = specs[b];
            const OutputView o = load_output(a.outputs, tb.data_idx);
            index_t lo[3], hi[3];  // window clipped to the output slab, then to the slice
            if (!clip_to_slab(windows[b], o, lo, hi)) continue;
            const index_t first = tb.coords[slice_axis] + slice * slice_rows;
            lo[slice_axis] = max_i(lo[slice_axis], first);
            hi[slice_axis] = min_i(hi[slice_axis], first + slice_rows);
            if (hi[slice_axis] <= lo[slice_axis]) continue;
            const index_t n_channels = std::min(a.channels, o.shape[1]);
            const index_t plane = o.shape[2] * o.shape[3] * o.shape[4];
            const index_t wshape[5] = {o.shape[0], 1, o.shape[2], o.shape[3], o.shape[4]};
            band_cuts(zcuts, cand[b], 0, lo[0], hi[0]);
            band_cuts(ycuts, cand[b], 1, lo[1], hi[1]);
            for (std::size_t zb = 0; zb + 1 < zcuts.size(); ++zb) {
                for (std::size_t yb = 0; yb + 1 < ycuts.size(); ++yb) {
                    const index_t z0 = zcuts[zb], y0 = ycuts[yb];
                    band.clear();
                    for (const std::int32_t t : cand[b]) {
                        const BlendWindow& w = windows[t];
                        if (z0 >= w.lo[0] && z0 < w.hi[0] && y0 >= w.lo[1] && y0 < w.hi[1]) band.push_back(t);
                    }
                    band_cuts(xcuts, band, 2, lo[2], hi[2]);
                    segments.clear();
                    for (std::size_t k = 0; k + 1 < xcuts.size(); ++k) {
                        Segment seg{xcuts[k], xcuts[k + 1], {}, {}};
                        bool owner = true;
                        for (std::size_t j = 0; j < band.size(); ++j) {  // ascending batch order
                            const BlendWindow& w = windows[band[j]];
                            if (seg.x0 < w.lo[2] || seg.x0 >= w.hi[2]) continue;
                            if (band[j] < b) {
                                owner = false;  // a lower batch index owns this segment
                                break;
                            }
                            seg.cover.push_back(static_cast<int>(j));
                            const index_t px = seg.x0 - specs[band[j]].coords[2];  // >= 0 (x inside the window)
                            seg.wx.push_back(a.window + ((a.ndim - 1) * 4 + w.flag[2]) * a.window_len + px);
                        }
                        if (owner) segments.push_back(std::move(seg));
                    }
                    if (segments.empty()) continue;
                    weight_zy.resize(band.size());
                    tile_row.resize(band.size());
                    for (index_t z = z0; z < zcuts[zb + 1]; ++z) {
                        for (index_t y = y0; y < ycuts[yb + 1]; ++y) {
                            for (std::size_t j = 0; j < band.size(); ++j) {
                                const index_t t = band[j];
                                const index_t p[3] = {z - specs[t].coords[0], y - specs[t].coords[1], 0};
                                weight_zy[j] = blend_weight_zy(a, windows[t], p);
                                tile_row[j] = t * a.channels * tile_voxels + (p[0] * TY + p[1]) * TX - specs[t].coords[2];
                            }
                            // Offsets of image column 0 (indices, not pointers: x >= origin_x).
                            const index_t out_row =
                                contiguous_offset(o.shape, tb.sample, 0, z - o.origin[0], y - o.origin[1], 0) - o.origin[2];
                            const index_t weight_row =
                                contiguous_offset(wshape, tb.sample, 0, z - o.origin[0], y - o.origin[1], 0) - o.origin[2];
                            // Output rows are a row stride (3-D: often pages) apart, which the
                            // hardware prefetchers do not follow: fetch the band's row
                            // kRowsAhead rows on while this one is added.
                            if (y + kRowsAhead < ycuts[yb + 1]) {
                                const index_t ahead = kRowsAhead * o.shape[4];
                                const index_t x0 = segments.front().x0, bytes = (segments.back().x1 - x0) * index_t(sizeof(float));
                                for (index_t ch = 0; ch < n_channels; ++ch)
                                    prefetch_run(o.data + (out_row + ahead + ch * plane + x0), bytes);
                                if (o.weight) prefetch_run(o.weight + (weight_row + ahead + x0), bytes);
                            }
                            for (const Segment& seg : segments) {
                                const index_t x0 = seg.x0, n = seg.x1 - seg.x0;
                                const std::size_t m = seg.cover.size();
                                const float* const* wx = seg.wx.data();
                                auto wzy = [&](std::size_t j) { return weight_zy[seg.cover[j]]; };
                                auto tile_at = [&](std::size_t j, index_t ch) {
                                    return a.tiles + (tile_row[seg.cover[j]] + ch * tile_voxels + x0);
                                };
                                for (index_t ch = 0; ch < n_channels; ++ch) {
                                    float* out = o.data + (out_row + ch * plane + x0);
                                    if (m == 1) {  // most voxels: one covering tile
                                        blend_row_1(out, wzy(0), wx[0], tile_at(0, ch), n);
                                    } else if (m == 2) {
                                        blend_row_2(out, wzy(0), wx[0], tile_at(0, ch), wzy(1), wx[1], tile_at(1, ch), n);
                                    } else {
                                        acc.assign(static_cast<std::size_t>(n), 0.0f);
                                        for (std::size_t j = 0; j < m; ++j) accumulate_row(acc.data(), wzy(j), wx[j], tile_at(j, ch), n);
                                        add_row(out, acc.data(), n);
                                    }
                                }
                                if (!o.weight) continue;  // normalised by the caller (a geometry weight map)
                                acc.assign(static_cast<std::size_t>(n), 0.0f);
                                for (std::size_t j = 0; j < m; ++j) accumulate_weight_row(acc.data(), wzy(j), wx[j], n);
                                add_row(o.weight + (weight_row + x0), acc.data(), n);
                            }
                        }
                    }
                }
            }
        }
    });
}

void stitch_blend_voxelwise_cpu(const StitchArgs& a, bool candidate_lists) {
    // The CUDA blend kernel's scheme on the CPU (tests only): per tile, the ascending list of
    // batch tiles whose windows intersect it and blend_voxel_candidates() (or no list:
    // blend_voxel() scanning the whole batch) for every voxel of its window in the slab.
    parallel_for(a.n_tiles, a.tile[0] * a.tile[1] * a.tile[2] * 8, [&](index_t begin, index_t end) {
        std::vector<BlendCandidate> list;
        for (index_t b = begin; b < end; ++b) {
            const TileSpec tb = load_tile_spec(a, b);
            BlendWindow wb;
            if (!blend_window(a, tb, wb)) continue;
            list.clear();
            for (index_t t = 0; t < a.n_tiles; ++t) {
                const TileSpec ts = load_tile_spec(a, t);
                BlendWindow wt;
                if (same_target(ts, tb) && blend_window(a, ts, wt) && windows_intersect(wb, wt))
                    list.push_back(make_blend_candidate(a, t));
            }
            index_t s[3], lo[3], hi[3];
            if (!clip_to_slab(wb, load_output(a.outputs, tb.data_idx), lo, hi)) continue;
            for (s[0] = lo[0]; s[0] < hi[0]; ++s[0])
                for (s[1] = lo[1]; s[1] < hi[1]; ++s[1])
                    for (s[2] = lo[2]; s[2] < hi[2]; ++s[2]) {
                        if (candidate_lists)
                            blend_voxel_candidates(a, b, tb.data_idx, tb.sample, s, list.data(),
                                                   static_cast<index_t>(list.size()));
                        else
                            blend_voxel(a, b, tb.data_idx, tb.sample, s, nullptr, a.n_tiles);
                    }
        }
    });
}

}  // namespace cupatch
