// SPDX-License-Identifier: BSD-3-Clause
// Differential test of the CUDA kernels, run through the CUDA-on-host emulation
// (CUPATCH_CUDA=EMULATE), against the CPU kernels: every output byte must be equal.
//
// Random cases cover every source x output dtype, row widths 1-70, 2-D and 3-D, strided
// and reversed sources, padding, flips and quarter turns, invalid indices and extreme
// coordinates (gather); disjoint crop tilings onto slabs, and blends with more overlapping
// tiles than the kernel's shared candidate list holds and more than kBlendMaxCover tiles
// on one voxel (stitch). The thread order of the emulation comes from the environment
// (CUPATCH_EMULATE_ORDER / _EXECUTOR), so the same program is run once per order.
//
// Usage: emulated_diff [--cases N] [--seed S] [--small]. Prints "mismatches 0" when clean
// and exits non-zero otherwise.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cupatch/device.h"
#include "cupatch/errors.h"
#include "cupatch/gather.h"
#include "cupatch/blend.h"
#include "cupatch/crop.h"
#include "parallel.h"

using namespace cupatch;

namespace cupatch_emu {
long live_events();  // cpp/emulation/cuda_runtime.h (not included: it switches headers to their device branches)
}

namespace {

std::mt19937_64 rng;
long mismatches = 0, cases = 0;

index_t pick(index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(rng); }
bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

void report(const char* what, const std::string& detail, const void* a, const void* b, std::size_t bytes) {
    if (bytes == 0 || std::memcmp(a, b, bytes) == 0) return;  // empty vectors may hold null pointers
    std::size_t i = 0;
    while (static_cast<const unsigned char*>(a)[i] == static_cast<const unsigned char*>(b)[i]) ++i;
    if (++mismatches <= 10) std::printf("MISMATCH %s (%s): first differing byte %zu of %zu\n", what, detail.c_str(), i, bytes);
}

std::size_t dtype_size(DType d) {
    return dispatch_dtype(d, [](auto tag) { return sizeof(tag); });
}

// ---- gather ----------------------------------------------------------------------------
struct Source {
    std::vector<unsigned char> buffer;
    index_t row[kSourceFields];
};

// A (S, C, Z, Y, X) source of `dtype` with random contents and a random memory layout:
// axes in any order, padded, some reversed (negative strides).
Source make_source(DType dtype, int ndim, bool small) {
    Source s;
    const index_t shape[5] = {pick(1, 2), pick(1, 3), ndim == 3 ? pick(1, small ? 4 : 7) : 1, pick(1, small ? 20 : 45),
                              pick(1, small ? 30 : 75)};
    int order[5] = {0, 1, 2, 3, 4};
    if (chance(0.3)) std::shuffle(order, order + 5, rng);
    index_t strides[5], extent = 1;
    for (int i = 4; i >= 0; --i) {
        const int d = order[i];
        strides[d] = extent;
        extent *= shape[d] + (chance(0.2) ? pick(1, 3) : 0);
    }
    const std::size_t elem = dtype_size(dtype);
    s.buffer.resize(static_cast<std::size_t>(extent) * elem);
    for (auto& byte : s.buffer) byte = static_cast<unsigned char>(rng());
    index_t offset = 0;
    for (int d = 0; d < 5; ++d)
        if (chance(0.15) && shape[d] > 1) {  // reversed axis: element 0 sits at the far end
            offset += (shape[d] - 1) * strides[d];
            strides[d] = -strides[d];
        }
    if (ndim == 2) strides[2] = 0;
    s.row[0] = static_cast<index_t>(reinterpret_cast<std::uintptr_t>(s.buffer.data() + offset * elem));
    for (int d = 0; d < 5; ++d) {
        s.row[1 + d] = shape[d];
        s.row[6 + d] = strides[d];
    }
    return s;
}

index_t gather_coord(index_t extent, index_t patch) {
    if (chance(0.03)) {
        static const index_t E[] = {std::numeric_limits<index_t>::min(), -(index_t(1) << 62), index_t(1) << 62,
                                    std::numeric_limits<index_t>::max()};
        return E[pick(0, 3)];
    }
    return pick(-patch, extent);
}

void gather_case(DType source_dtype, DType out_dtype, bool small) {
    const int ndim = chance(0.5) ? 2 : 3;
    const index_t n_sources = pick(1, 3);
    std::vector<Source> sources;
    std::vector<index_t> table;
    for (index_t i = 0; i < n_sources; ++i) {
        sources.push_back(make_source(source_dtype, ndim, small));
        table.insert(table.end(), sources.back().row, sources.back().row + kSourceFields);
    }
    index_t patch[3] = {ndim == 3 ? pick(1, small ? 3 : 5) : 1, pick(1, small ? 12 : 24), pick(1, 70)};
    const bool square = chance(0.4);
    if (square) patch[2] = patch[1];
    const index_t n_channels = pick(1, 3), n_patches = pick(1, small ? 12 : 40), spec_cols = 2 + ndim + (chance(0.3) ? 1 : 0);
    std::vector<index_t> channels(n_channels), specs(n_patches * spec_cols, 0);
    for (auto& c : channels) c = chance(0.05) ? pick(-1, 4) : pick(0, 2);
    for (index_t b = 0; b < n_patches; ++b) {
        index_t* spec = &specs[b * spec_cols];
        spec[0] = chance(0.05) ? pick(-2, n_sources + 1) : pick(0, n_sources - 1);
        const index_t* src = &table[std::min<index_t>(std::max<index_t>(spec[0], 0), n_sources - 1) * kSourceFields];
        spec[1] = chance(0.05) ? pick(-1, 3) : pick(0, src[1] - 1);
        for (int d = 0; d < ndim; ++d) spec[2 + d] = gather_coord(src[1 + 5 - ndim + d], patch[3 - ndim + d]);
    }
    std::vector<float> affine;
    if (chance(0.7)) {
        affine.resize(2 * n_channels);
        for (auto& v : affine) v = uniform(-3, 3);
    }
    std::vector<std::uint8_t> aug;
    if (chance(0.7)) {
        aug.resize(n_patches);
        for (auto& f : aug) f = static_cast<std::uint8_t>(pick(0, square ? 15 : 3));
    }
    GatherArgs a{};
    a.sources = table.data();
    a.n_sources = n_sources;
    a.source_dtype = source_dtype;
    a.specs = specs.data();
    a.n_patches = n_patches;
    a.spec_cols = spec_cols;
    a.ndim = ndim;
    for (int d = 0; d < 3; ++d) a.patch[d] = patch[d];
    a.channels = channels.data();
    a.n_channels = n_channels;
    a.affine = affine.empty() ? nullptr : affine.data();
    a.aug = aug.empty() ? nullptr : aug.data();
    a.out_dtype = out_dtype;
    const std::size_t bytes = static_cast<std::size_t>(gather_row_count(a) * patch[2]) * dtype_size(out_dtype);
    std::vector<unsigned char> cpu(bytes, 0xA5), gpu(bytes, 0x5A);
    a.out = cpu.data();
    gather_cpu(a);
    a.out = gpu.data();
    gather_cuda(a, 0);
    ++cases;
    report("gather",
           std::string(dtype_names()[int(source_dtype)]) + "->" + dtype_names()[int(out_dtype)] + " ndim " +
               std::to_string(ndim) + " patch " + std::to_string(patch[0]) + "x" + std::to_string(patch[1]) + "x" +
               std::to_string(patch[2]),
           cpu.data(), gpu.data(), bytes);
}

// ---- stitch ----------------------------------------------------------------------------
struct Output {
    std::vector<float> data, weight;
    index_t row[kOutputFields];
};

// An output of `channels` channels covering a slab of an image of `image` (Z, Y, X).
Output make_output(index_t samples, index_t channels, const index_t image[3], bool slab, bool weights) {
    Output o;
    index_t origin[3] = {0, 0, 0}, shape[3];
    for (int d = 0; d < 3; ++d) {
        shape[d] = image[d];
        if (slab && image[d] > 1 && chance(0.5)) {
            origin[d] = pick(0, image[d] - 1);
            shape[d] = pick(1, image[d] - origin[d]);
        }
    }
    const index_t voxels = shape[0] * shape[1] * shape[2];
    o.data.resize(static_cast<std::size_t>(samples * channels * voxels));
    for (auto& v : o.data) v = uniform(-1, 1);
    if (weights) {
        o.weight.resize(static_cast<std::size_t>(samples * voxels));
        for (auto& v : o.weight) v = uniform(0, 1);
    }
    const index_t row[kOutputFields] = {static_cast<index_t>(reinterpret_cast<std::uintptr_t>(o.data.data())),
                                        weights ? static_cast<index_t>(reinterpret_cast<std::uintptr_t>(o.weight.data())) : 0,
                                        samples, channels, shape[0], shape[1], shape[2], origin[0], origin[1], origin[2],
                                        image[0], image[1], image[2]};
    std::memcpy(o.row, row, sizeof row);
    return o;
}

// The output table of `outputs` (copies of the CPU case's outputs: same contents, own memory).
std::vector<index_t> output_table(std::vector<Output>& outputs) {
    std::vector<index_t> table;
    for (Output& o : outputs) {
        o.row[0] = static_cast<index_t>(reinterpret_cast<std::uintptr_t>(o.data.data()));
        o.row[1] = o.weight.empty() ? 0 : static_cast<index_t>(reinterpret_cast<std::uintptr_t>(o.weight.data()));
        table.insert(table.end(), o.row, o.row + kOutputFields);
    }
    return table;
}

// Segments [start, end) partitioning [0, n), none longer than `tile`.
std::vector<std::pair<index_t, index_t>> partition(index_t n, index_t tile) {
    std::vector<std::pair<index_t, index_t>> segments;
    for (index_t s = 0; s < n;) {
        const index_t e = std::min(n, s + pick(1, tile));
        segments.emplace_back(s, e);
        s = e;
    }
    return segments;
}

struct StitchCase {
    int ndim = 2;
    index_t tile[3] = {1, 1, 1};
    index_t channels = 1;
    std::vector<float> tiles, window;
    std::vector<index_t> specs, table;
    std::vector<Output> outputs;
    index_t n_tiles = 0, spec_cols = 0;

    StitchArgs args() const {
        StitchArgs a{};
        a.tiles = tiles.data();
        a.n_tiles = n_tiles;
        a.channels = channels;
        for (int d = 0; d < 3; ++d) a.tile[d] = tile[d];
        a.specs = specs.data();
        a.spec_cols = spec_cols;
        a.ndim = ndim;
        a.outputs = table.data();
        a.n_outputs = static_cast<index_t>(outputs.size());
        a.window = window.empty() ? nullptr : window.data();
        a.window_len = window.empty() ? 0 : static_cast<index_t>(window.size()) / (4 * ndim);
        return a;
    }

    void add_spec(index_t data_idx, index_t sample, const index_t coords[3], const index_t crop[3], const index_t size[3],
                  const index_t stitch[3]) {
        const int off = 3 - ndim;
        specs.push_back(data_idx);
        specs.push_back(sample);
        for (const index_t* field : {coords, crop, size, stitch})
            for (int d = 0; d < ndim; ++d) specs.push_back(field[off + d]);
        ++n_tiles;
    }

    void finish(bool blend) {
        spec_cols = 2 + 4 * ndim;
        const index_t tile_voxels = tile[0] * tile[1] * tile[2];
        tiles.resize(static_cast<std::size_t>(n_tiles * channels * tile_voxels));
        for (auto& v : tiles) v = uniform(-2, 2);
        for (const Output& o : outputs) table.insert(table.end(), o.row, o.row + kOutputFields);
        if (blend) {
            const index_t len = std::max({tile[0], tile[1], tile[2]}) + pick(0, 2);
            window.resize(static_cast<std::size_t>(ndim * 4 * len));
            for (auto& v : window) v = uniform(0.01f, 1);
        }
    }
};

// Run `cpu` on the case's outputs and `cuda` on copies of them; returns the copies.
std::vector<Output> run_both(StitchCase& c, void (*cpu)(const StitchArgs&), void (*cuda)(const StitchArgs&, std::uintptr_t)) {
    std::vector<Output> gpu_outputs = c.outputs;
    const std::vector<index_t> gpu_table = output_table(gpu_outputs);
    StitchArgs a = c.args();
    cpu(a);
    a.outputs = gpu_table.data();
    cuda(a, 0);
    ++cases;
    return gpu_outputs;
}

StitchCase random_image_setup(bool small, index_t image[3], index_t& samples) {
    StitchCase c;
    c.ndim = chance(0.5) ? 2 : 3;
    c.channels = pick(1, 3);
    image[0] = c.ndim == 3 ? pick(1, small ? 6 : 12) : 1;
    image[1] = pick(1, small ? 24 : 48);
    image[2] = pick(1, small ? 40 : 90);
    for (int d = 3 - c.ndim; d < 3; ++d) c.tile[d] = pick(1, std::min<index_t>(small ? 16 : 32, image[d] + 4));
    if (c.ndim == 3) c.tile[0] = std::max<index_t>(1, std::min<index_t>(c.tile[0], small ? 4 : 6));
    samples = pick(1, 2);
    return c;
}

void crop_case(bool small) {
    index_t image[3], samples;
    StitchCase c = random_image_setup(small, image, samples);
    const index_t n_outputs = pick(1, 2);
    for (index_t i = 0; i < n_outputs; ++i)
        c.outputs.push_back(make_output(samples, c.channels + (chance(0.2) ? -1 : 0) + (c.channels == 1 ? 1 : 0), image,
                                        chance(0.5), false));
    // A disjoint tiling of every output's image: kept regions partition the image, each
    // tile reads its region at a random offset inside the tile.
    std::vector<std::pair<index_t, index_t>> parts[3];
    for (int d = 0; d < 3; ++d) parts[d] = partition(image[d], c.tile[d]);
    for (index_t o = 0; o < n_outputs; ++o)
        for (index_t s = 0; s < samples; ++s)
            for (auto z : parts[0])
                for (auto y : parts[1])
                    for (auto x : parts[2]) {
                        if (chance(0.1)) continue;  // a tile not in this batch
                        const std::pair<index_t, index_t> seg[3] = {z, y, x};
                        index_t coords[3], crop[3], size[3], stitch[3];
                        for (int d = 0; d < 3; ++d) {
                            size[d] = seg[d].second - seg[d].first;
                            crop[d] = pick(0, c.tile[d] - size[d]);
                            coords[d] = seg[d].first - crop[d];
                            stitch[d] = seg[d].first;
                        }
                        c.add_spec(o, s, coords, crop, size, stitch);
                        if (chance(0.05)) {  // a tile addressing nothing: invalid output or sample
                            const index_t bad = chance(0.5) ? pick(n_outputs, n_outputs + 2) : -1;
                            c.add_spec(bad, chance(0.5) ? s : samples + 1, coords, crop, size, stitch);
                        }
                    }
    if (c.n_tiles == 0) return;
    c.finish(false);
    const std::vector<Output> gpu_outputs = run_both(c, stitch_crop_cpu, stitch_crop_cuda);
    for (std::size_t i = 0; i < c.outputs.size(); ++i)
        report("crop", "ndim " + std::to_string(c.ndim) + " tiles " + std::to_string(c.n_tiles), c.outputs[i].data.data(),
               gpu_outputs[i].data.data(), c.outputs[i].data.size() * sizeof(float));
}

// `pile`: many tiles stacked on one spot, for the fallback paths of the blend kernel.
void blend_case(bool small, bool pile) {
    index_t image[3], samples;
    StitchCase c = random_image_setup(small, image, samples);
    const index_t n_outputs = pick(1, 2);
    // a quarter of the outputs without weight arrays: blending then adds only the weighted sums
    for (index_t i = 0; i < n_outputs; ++i) c.outputs.push_back(make_output(samples, c.channels, image, chance(0.5), chance(0.75)));
    // A pile of more than 256 tiles overflows the kernel's shared candidate list (whole-batch scan).
    const index_t n_tiles = pile ? (chance(0.5) ? pick(kBlendMaxCover + 1, 256) : pick(257, small ? 300 : 400))
                                 : pick(1, small ? 30 : 80);
    index_t centre[3];
    for (int d = 0; d < 3; ++d) centre[d] = pick(0, image[d] - 1);
    for (index_t t = 0; t < n_tiles; ++t) {
        index_t coords[3] = {0, 0, 0}, zero[3] = {0, 0, 0}, size[3], stitch[3];
        for (int d = 3 - c.ndim; d < 3; ++d) {
            coords[d] = pile ? centre[d] - pick(0, c.tile[d] - 1) : pick(-c.tile[d] / 2, image[d] - c.tile[d] / 2);
            if (chance(0.01)) coords[d] = chance(0.5) ? -(index_t(1) << 62) : (index_t(1) << 62);
        }
        for (int d = 0; d < 3; ++d) {
            size[d] = c.tile[d];
            stitch[d] = coords[d];
        }
        const index_t data_idx = chance(0.03) ? pick(n_outputs, n_outputs + 1) : pick(0, n_outputs - 1);
        c.add_spec(data_idx, chance(0.03) ? samples : pick(0, samples - 1), coords, zero, size, stitch);
    }
    c.finish(true);
    const std::vector<Output> gpu_outputs = run_both(c, stitch_blend_cpu, stitch_blend_cuda);
    const std::string detail = std::string(pile ? "pile" : "spread") + " ndim " + std::to_string(c.ndim) + " tiles " +
                               std::to_string(c.n_tiles) + " tile " + std::to_string(c.tile[0]) + "x" +
                               std::to_string(c.tile[1]) + "x" + std::to_string(c.tile[2]);
    for (std::size_t i = 0; i < c.outputs.size(); ++i) {
        report("blend", detail, c.outputs[i].data.data(), gpu_outputs[i].data.data(), c.outputs[i].data.size() * sizeof(float));
        report("blend weights", detail, c.outputs[i].weight.data(), gpu_outputs[i].weight.data(),
               c.outputs[i].weight.size() * sizeof(float));
    }
}

// The runtime helpers of runtime.cu against the emulated runtime: one device, CUDA 13,
// device 1 refused with CudaError, stream waits create and release their events.
void runtime_checks() {
    auto expect = [](bool ok, const char* what) {
        ++cases;
        if (!ok && ++mismatches <= 10) std::printf("MISMATCH runtime: %s\n", what);
    };
    expect(cuda_device_count() == 1, "cuda_device_count() == 1");
    expect(cuda_runtime_version() == 13000, "cuda_runtime_version() == 13000");
    cuda_use_device(0);
    bool refused = false;
    try {
        cuda_use_device(1);
    } catch (const CudaError& e) {
        refused = std::strstr(e.what(), "cudaErrorInvalidDevice") != nullptr;
    }
    expect(refused, "cuda_use_device(1) raises CudaError naming cudaErrorInvalidDevice");
    cuda_use_device(0);
    cuda_stream_wait(0x10, 0x20);
    cuda_stream_wait(0x10, 0x10);
    expect(cupatch_emu::live_events() == 0, "cuda_stream_wait releases its event");
    setenv("CUPATCH_EMULATE_DEVICES", "0", 1);
    expect(cuda_device_count() == 0, "cuda_device_count() == 0 when the device query fails");
    unsetenv("CUPATCH_EMULATE_DEVICES");
}

}  // namespace

int main(int argc, char** argv) {
    long n = 4;
    std::uint64_t seed = 20261201;
    bool small = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--cases") && i + 1 < argc)
            n = std::atol(argv[++i]);
        else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = std::strtoull(argv[++i], nullptr, 10);
        else if (!std::strcmp(argv[i], "--small"))
            small = true;
        else {
            std::fprintf(stderr, "usage: %s [--cases N] [--seed S] [--small]\n", argv[0]);
            return 2;
        }
    }
    rng.seed(seed);
    set_cpu_threads(2);
    runtime_checks();
    const DType outputs[] = {DType::float32, DType::float16, DType::bfloat16};
    for (long round = 0; round < n; ++round) {
        for (int s = 0; s < static_cast<int>(DType::count); ++s)
            for (DType o : outputs) gather_case(static_cast<DType>(s), o, small);
        for (int i = 0; i < 6; ++i) crop_case(small);
        for (int i = 0; i < 4; ++i) blend_case(small, false);
        blend_case(small, true);
    }
    std::printf("cases %ld mismatches %ld\n", cases, mismatches);
    return mismatches == 0 && cases > 0 ? 0 : 1;
}
