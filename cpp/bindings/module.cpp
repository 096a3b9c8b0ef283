// SPDX-License-Identifier: BSD-3-Clause
// pybind11 bindings of cupatch._core. Bindings only translate: validation with messages
// for users happens in python/cupatch/ops.py; the checks here are cheap re-checks that
// protect memory (std::invalid_argument -> ValueError, std::out_of_range -> IndexError,
// cupatch::CudaError -> cupatch._core.CudaError, a RuntimeError).
//
// CPU entry points take NumPy arrays (exact dtype and C order, no silent conversion) and
// release the GIL while the kernels run. GPU entry points take device pointers as integers
// plus the CUDA stream to launch on; they never allocate and never synchronise.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>

#include "cupatch/device.h"
#include "cupatch/dtype.h"
#include "cupatch/errors.h"
#include "cupatch/gather.h"
#include "cupatch/random.h"
#include "cupatch/blend.h"
#include "cupatch/crop.h"
#include "cupatch/threads.h"
#include "cupatch/weightmap.h"
#include "cupatch/memory.h"

#ifndef CUPATCH_VERSION
#define CUPATCH_VERSION "0.0.0"
#endif
#ifndef CUPATCH_CUDA_MODE
#define CUPATCH_CUDA_MODE "AUTO"
#endif
#ifndef CUPATCH_CUDA_ARCHITECTURES
#define CUPATCH_CUDA_ARCHITECTURES ""
#endif

namespace py = pybind11;
using cupatch::index_t;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

using Shape3 = std::array<index_t, 3>;

std::string str(index_t v) { return std::to_string(v); }

void require_2d(const py::array& a, index_t cols_min, const char* name) {
    cupatch::require(a.ndim() == 2 && a.shape(1) >= cols_min,
                     std::string(name) + " must be 2-D with at least " + str(cols_min) + " columns");
}

cupatch::GatherArgs make_gather_args(index_t sources, index_t n_sources, int source_dtype, index_t specs, index_t n_patches,
                                     index_t spec_cols, int ndim, const Shape3& patch, index_t channels, index_t n_channels,
                                     index_t affine, index_t aug, index_t out, int out_dtype) {
    cupatch::require(ndim == 2 || ndim == 3, "ndim must be 2 or 3");
    cupatch::require(spec_cols >= cupatch::patch_spec_columns(ndim), "specs has too few columns");
    cupatch::require(n_sources >= 0 && n_patches >= 0 && n_channels >= 1, "empty channel list or negative counts");
    for (int d = 0; d < 3; ++d) cupatch::require(patch[d] >= 1, "patch_size entries must be positive");
    // The CUDA kernels index within a row with int (qx + 32 must not overflow either).
    cupatch::require(patch[2] <= (index_t(1) << 30), "patch_size X extent must be at most 2**30");
    cupatch::require(ndim == 3 || patch[0] == 1, "2-D patches need patch[0] == 1");
    cupatch::GatherArgs a{};
    a.sources = reinterpret_cast<const index_t*>(static_cast<std::uintptr_t>(sources));
    a.n_sources = n_sources;
    a.source_dtype = cupatch::dtype_from_code(source_dtype);
    a.specs = reinterpret_cast<const index_t*>(static_cast<std::uintptr_t>(specs));
    a.n_patches = n_patches;
    a.spec_cols = spec_cols;
    a.ndim = ndim;
    for (int d = 0; d < 3; ++d) a.patch[d] = patch[d];
    a.channels = reinterpret_cast<const index_t*>(static_cast<std::uintptr_t>(channels));
    a.n_channels = n_channels;
    a.affine = reinterpret_cast<const float*>(static_cast<std::uintptr_t>(affine));
    a.aug = reinterpret_cast<const std::uint8_t*>(static_cast<std::uintptr_t>(aug));
    a.out = reinterpret_cast<void*>(static_cast<std::uintptr_t>(out));
    a.out_dtype = cupatch::dtype_from_code(out_dtype);
    cupatch::require(cupatch::is_output_dtype(a.out_dtype), "output dtype must be float32, float16 or bfloat16");
    return a;
}

// Host tables of a gather whose arguments make_gather_args() has checked: source rows,
// channel indices and every patch's data_idx and sample_idx.
void check_gather_tables_cpu(const carray<index_t>& sources, const carray<index_t>& specs, const carray<index_t>& channels) {
    require_2d(sources, cupatch::kSourceFields, "sources table");
    auto src = sources.unchecked<2>();
    auto sp = specs.unchecked<2>();
    auto ch = channels.unchecked<1>();
    const index_t n_sources = src.shape(0);
    index_t min_channels = -1;
    const int shape0 = cupatch::kSourceShape.first;  // (S, C, Z, Y, X)
    for (index_t i = 0; i < n_sources; ++i) {
        bool empty = false;
        for (int d = 0; d < 5; ++d) {
            const index_t extent = src(i, shape0 + d);
            cupatch::require(extent >= 0 && extent < cupatch::kCoordLimit, "sources table: extent out of range");
            empty = empty || extent == 0;
        }
        cupatch::require(src(i, cupatch::kSourceData.first) != 0 || empty, "sources table: null data pointer");
        if (min_channels < 0 || src(i, shape0 + 1) < min_channels) min_channels = src(i, shape0 + 1);
    }
    for (index_t k = 0; k < ch.shape(0); ++k)
        cupatch::require_index(ch(k) >= 0 && ch(k) < min_channels, "channels: index " + str(ch(k)) + " out of range");
    for (index_t b = 0; b < sp.shape(0); ++b) {
        const index_t data_idx = sp(b, cupatch::kSpecDataIdx.first), sample = sp(b, cupatch::kSpecSample.first);
        cupatch::require_index(data_idx >= 0 && data_idx < n_sources,
                               "specs: data_idx " + str(data_idx) + " out of range for " + str(n_sources) + " sources");
        cupatch::require_index(sample >= 0 && sample < src(data_idx, shape0),
                               "specs: sample_idx " + str(sample) + " out of range for source " + str(data_idx));
    }
}

index_t address(const void* p) { return static_cast<index_t>(reinterpret_cast<std::uintptr_t>(p)); }

void gather_cpu(const carray<index_t>& sources, int source_dtype, const carray<index_t>& specs, int ndim, const Shape3& patch,
                const carray<index_t>& channels, const std::optional<carray<float>>& affine,
                const std::optional<carray<std::uint8_t>>& aug, py::array out, int out_dtype) {
    require_2d(specs, 0, "specs");
    const index_t n_patches = specs.shape(0), n_channels = channels.shape(0);
    // Scalars, counts and dtype codes first; then the tables and arrays they describe.
    const cupatch::GatherArgs a = make_gather_args(
        address(sources.data()), sources.shape(0), source_dtype, address(specs.data()), n_patches, specs.shape(1), ndim, patch,
        address(channels.data()), n_channels, affine ? address(affine->data()) : 0, aug ? address(aug->data()) : 0,
        address(out.mutable_data()), out_dtype);
    check_gather_tables_cpu(sources, specs, channels);
    cupatch::require(!affine || affine->size() == 2 * n_channels, "affine must hold 2 * len(channels) values");
    cupatch::require(!aug || aug->size() == n_patches, "aug must hold one flag byte per patch");
    for (index_t b = 0; aug && b < n_patches; ++b) {
        const unsigned turns = (aug->data()[b] >> cupatch::kAugRotShift) & 3u;
        cupatch::require(turns % 2 == 0 || patch[1] == patch[2], "rot90 by an odd number of quarter turns needs square YX patches");
    }
    cupatch::require(out.writeable() && (out.flags() & py::array::c_style), "out must be a writable C-contiguous array");
    const std::array<index_t, 5> want{n_patches, n_channels, patch[0], patch[1], patch[2]};
    const int out_ndim = ndim + 2;
    cupatch::require(out.ndim() == out_ndim, "out has the wrong number of dimensions");
    for (int d = 0; d < out_ndim; ++d) {
        const index_t expected = d < 2 ? want[d] : want[2 + (3 - ndim) + (d - 2)];
        cupatch::require(out.shape(d) == expected, "out has the wrong shape");
    }
    cupatch::require(out.itemsize() == (a.out_dtype == cupatch::DType::float32 ? 4 : 2), "out itemsize does not match its dtype code");
    py::gil_scoped_release release;
    cupatch::gather_cpu(a);
}

// Output table on the host: check shapes and pointers.
// A null weight pointer is allowed: blending then adds only the weighted tiles.
void check_outputs_cpu(const carray<index_t>& outputs) {
    require_2d(outputs, cupatch::kOutputFields, "outputs table");
    auto o = outputs.unchecked<2>();
    using cupatch::kOutputData, cupatch::kOutputShape, cupatch::kOutputOrigin, cupatch::kOutputImage;
    auto in_range = [](index_t v) { return v >= 0 && v < cupatch::kCoordLimit; };
    for (index_t i = 0; i < o.shape(0); ++i) {
        for (int d = 0; d < kOutputShape.width; ++d)
            cupatch::require(in_range(o(i, kOutputShape.first + d)), "outputs table: extent out of range");
        for (int d = 0; d < kOutputOrigin.width; ++d)
            cupatch::require(in_range(o(i, kOutputOrigin.first + d)) && in_range(o(i, kOutputImage.first + d)),
                             "outputs table: origin or image extent out of range");
        cupatch::require(o(i, kOutputData.first) != 0, "outputs table: null data pointer");
    }
}

cupatch::StitchArgs make_stitch_args(index_t tiles, index_t n_tiles, index_t channels, const Shape3& tile, index_t specs,
                                     index_t spec_cols, int ndim, index_t outputs, index_t n_outputs, index_t window,
                                     index_t window_len) {
    cupatch::require(ndim == 2 || ndim == 3, "ndim must be 2 or 3");
    cupatch::require(spec_cols >= cupatch::tile_spec_columns(ndim), "specs has too few columns for a tile table");
    cupatch::require(n_tiles >= 0 && n_tiles < (index_t(1) << 31), "too many tiles in one call");
    cupatch::require(channels >= 1, "tiles need at least one channel");
    for (int d = 0; d < 3; ++d) cupatch::require(tile[d] >= 1, "tile sizes must be positive");
    cupatch::require(tile[2] <= (index_t(1) << 30), "tile X extent must be at most 2**30");  // int row indices on the GPU
    cupatch::require(window == 0 || (window_len >= tile[0] && window_len >= tile[1] && window_len >= tile[2]),
                     "window_table is shorter than the tile");
    cupatch::StitchArgs a{};
    a.tiles = reinterpret_cast<const float*>(static_cast<std::uintptr_t>(tiles));
    a.n_tiles = n_tiles;
    a.channels = channels;
    for (int d = 0; d < 3; ++d) a.tile[d] = tile[d];
    a.specs = reinterpret_cast<const index_t*>(static_cast<std::uintptr_t>(specs));
    a.spec_cols = spec_cols;
    a.ndim = ndim;
    a.outputs = reinterpret_cast<const index_t*>(static_cast<std::uintptr_t>(outputs));
    a.n_outputs = n_outputs;
    a.window = reinterpret_cast<const float*>(static_cast<std::uintptr_t>(window));
    a.window_len = window_len;
    return a;
}

cupatch::StitchArgs stitch_args_cpu(const carray<float>& tiles, const carray<index_t>& specs, const carray<index_t>& outputs,
                                    bool blend, const carray<float>* window) {
    const int ndim = static_cast<int>(tiles.ndim()) - 2;
    cupatch::require(ndim == 2 || ndim == 3, "tiles must be (B, C, [Z,] Y, X)");
    require_2d(specs, 0, "specs");
    cupatch::require(specs.shape(0) == tiles.shape(0), "specs must have one row per tile");
    Shape3 tile{1, 1, 1};
    for (int d = 0; d < ndim; ++d) tile[3 - ndim + d] = tiles.shape(2 + d);
    if (window)
        cupatch::require(window->ndim() == 3 && window->shape(0) == ndim && window->shape(1) == 4,
                         "window_table must be (ndim, 4, T)");
    // Scalars and counts first; then the tables they describe.
    const cupatch::StitchArgs a =
        make_stitch_args(address(tiles.data()), tiles.shape(0), tiles.shape(1), tile, address(specs.data()), specs.shape(1),
                         ndim, address(outputs.data()), outputs.shape(0), window ? address(window->data()) : 0,
                         window ? window->shape(2) : 0);
    check_outputs_cpu(outputs);
    auto sp = specs.unchecked<2>();
    auto o = outputs.unchecked<2>();
    const int shape0 = cupatch::kOutputShape.first;  // (S, C, Z, Y, X)
    for (index_t b = 0; b < sp.shape(0); ++b) {
        const index_t data_idx = sp(b, cupatch::kSpecDataIdx.first), sample = sp(b, cupatch::kSpecSample.first);
        cupatch::require_index(data_idx >= 0 && data_idx < o.shape(0), "specs: data_idx " + str(data_idx) + " out of range");
        cupatch::require_index(sample >= 0 && sample < o(data_idx, shape0), "specs: sample_idx " + str(sample) + " out of range");
        cupatch::require(o(data_idx, shape0 + 1) == tiles.shape(1), "outputs must have as many channels as the tiles");
    }
    return a;
}

py::array_t<std::uint64_t> hash4_array(const py::int_& seed, const py::int_& epoch, const carray<index_t>& index,
                                       const py::int_& stream) {
    auto as_u64 = [](const py::int_& v) { return static_cast<std::uint64_t>(PyLong_AsUnsignedLongLongMask(v.ptr())); };
    const std::uint64_t s = as_u64(seed), e = as_u64(epoch), st = as_u64(stream);
    if (PyErr_Occurred()) throw py::error_already_set();
    py::array_t<std::uint64_t> out(index.size());
    const index_t* in = index.data();
    std::uint64_t* dst = out.mutable_data();
    const index_t n = index.size();
    {
        py::gil_scoped_release release;
        for (index_t i = 0; i < n; ++i) dst[i] = cupatch::hash4(s, e, static_cast<std::uint64_t>(in[i]), st);
    }
    return out.reshape(std::vector<py::ssize_t>(index.shape(), index.shape() + index.ndim()));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "cupatch native core: batched patch gather and tile stitching (CPU and CUDA).";
    static py::exception<cupatch::CudaError> cuda_error(m, "CudaError", PyExc_RuntimeError);
    (void)cuda_error;

    py::list names;
    for (int i = 0; i < static_cast<int>(cupatch::DType::count); ++i) names.append(cupatch::dtype_names()[i]);
    m.attr("DTYPES") = py::tuple(names);
    m.attr("SOURCE_FIELDS") = cupatch::kSourceFields;
    m.attr("OUTPUT_FIELDS") = cupatch::kOutputFields;
    // Column layouts (view.h), name -> (first column, width), for the Python side to build
    // and read tables with.
    auto span = [](cupatch::ColumnSpan c) { return py::make_tuple(c.first, c.width); };
    py::dict source_columns, output_columns;
    source_columns["data"] = span(cupatch::kSourceData);
    source_columns["shape"] = span(cupatch::kSourceShape);
    source_columns["strides"] = span(cupatch::kSourceStrides);
    output_columns["data"] = span(cupatch::kOutputData);
    output_columns["weight"] = span(cupatch::kOutputWeight);
    output_columns["shape"] = span(cupatch::kOutputShape);
    output_columns["origin"] = span(cupatch::kOutputOrigin);
    output_columns["image"] = span(cupatch::kOutputImage);
    m.attr("SOURCE_COLUMNS") = source_columns;
    m.attr("OUTPUT_COLUMNS") = output_columns;
    auto spec_columns = [span](int ndim, bool tile) {
        cupatch::require(ndim == 2 || ndim == 3, "ndim must be 2 or 3");
        py::dict d;
        d["data_idx"] = span(cupatch::kSpecDataIdx);
        d["sample_idx"] = span(cupatch::kSpecSample);
        d["coords"] = span(cupatch::spec_coords(ndim));
        if (tile) {
            d["crop"] = span(cupatch::tile_spec_crop(ndim));
            d["size"] = span(cupatch::tile_spec_size(ndim));
            d["stitch"] = span(cupatch::tile_spec_stitch(ndim));
        }
        return d;
    };
    m.def(
        "patch_spec_columns", [spec_columns](int ndim) { return spec_columns(ndim, false); }, py::arg("ndim"),
        "Patch spec table columns for ndim spatial axes: name -> (first column, width).");
    m.def(
        "tile_spec_columns", [spec_columns](int ndim) { return spec_columns(ndim, true); }, py::arg("ndim"),
        "Tile spec table columns for ndim spatial axes: name -> (first column, width).");
    m.attr("version") = CUPATCH_VERSION;
    m.attr("cuda_architectures") = CUPATCH_CUDA_ARCHITECTURES;
    m.attr("cuda_build_mode") = CUPATCH_CUDA_MODE;  // the CUPATCH_CUDA switch: AUTO, ON, OFF or EMULATE
#ifdef CUPATCH_CUDA_EMULATED
    // The CUDA kernels are compiled as host C++ (cpp/emulation) and run on the CPU.
    m.attr("cuda_emulated") = true;
#else
    m.attr("cuda_emulated") = false;
#endif
#ifdef CUPATCH_WITH_CUDA
    m.attr("built_with_cuda") = true;
    m.def("cuda_device_count", &cupatch::cuda_device_count, "Usable CUDA devices (0 on any CUDA error).");
    m.def("cuda_runtime_version", &cupatch::cuda_runtime_version, "CUDA runtime version linked in (e.g. 13000).");
#else
    m.attr("built_with_cuda") = false;
    m.def("cuda_device_count", []() { return 0; }, "Usable CUDA devices (always 0: built without CUDA).");
    m.def("cuda_runtime_version", []() { return 0; }, "CUDA runtime version (0: built without CUDA).");
#endif
    m.def("cpu_threads", &cupatch::cpu_threads, "Threads used by the CPU kernels.");
    m.def("set_cpu_threads", &cupatch::set_cpu_threads, py::arg("n"),
          "Set the CPU kernel thread count (0 = CUPATCH_NUM_THREADS or all hardware threads).");

    m.def(
        "_parallel_for_check",
        [](index_t n, int fail_thread_start_after, index_t throw_at, bool pool_only) {
            cupatch::require(n >= 0, "n must be >= 0");
            py::array_t<std::int32_t> hits(static_cast<py::ssize_t>(n));
            std::int32_t* h = hits.mutable_data();
            {
                py::gil_scoped_release release;
                cupatch::parallel_for_check(n, fail_thread_start_after, throw_at, h, pool_only);
            }
            return hits;
        },
        py::arg("n"), py::arg("fail_thread_start_after"), py::arg("throw_at"), py::arg("pool_only") = true,
        "Testing aid: run the CPU parallel loop over n items with cpu_threads() threads, refusing worker "
        "thread starts after the first fail_thread_start_after (< 0: never) and throwing IndexError from "
        "the chunk holding item throw_at (< 0: never); returns how often each item ran. pool_only: on the "
        "kernels' own pool even where a loaded OpenMP runtime would be borrowed (False: as the kernels run).");
    m.def("cpu_parallel_backend", &cupatch::cpu_parallel_backend,
          "What the CPU kernels' parallel loop runs on now, called from this thread: 'openmp <path>, <n> "
          "threads' (the threads of an OpenMP runtime something else loaded, such as torch's) or 'pool' "
          "(cupatch's own).");

    m.def("hash4", &hash4_array, py::arg("seed"), py::arg("epoch"), py::arg("index").noconvert(), py::arg("stream"),
          "Counter-based hash (docs/contracts.md) of int64 indices, as uint64.");

    m.def("gather_cpu", &gather_cpu, py::arg("sources").noconvert(), py::arg("source_dtype"), py::arg("specs").noconvert(),
          py::arg("ndim"), py::arg("patch"), py::arg("channels").noconvert(), py::arg("affine").noconvert().none(true),
          py::arg("aug").noconvert().none(true), py::arg("out"), py::arg("out_dtype"));

    m.def(
        "stitch_crop_cpu",
        [](const carray<float>& tiles, const carray<index_t>& specs, const carray<index_t>& outputs) {
            const cupatch::StitchArgs a = stitch_args_cpu(tiles, specs, outputs, false, nullptr);
            py::gil_scoped_release release;
            cupatch::stitch_crop_cpu(a);
        },
        py::arg("tiles").noconvert(), py::arg("specs").noconvert(), py::arg("outputs").noconvert());

    m.def(
        "stitch_blend_cpu",
        [](const carray<float>& tiles, const carray<index_t>& specs, const carray<index_t>& outputs,
           const carray<float>& window) {
            const cupatch::StitchArgs a = stitch_args_cpu(tiles, specs, outputs, true, &window);
            py::gil_scoped_release release;
            cupatch::stitch_blend_cpu(a);
        },
        py::arg("tiles").noconvert(), py::arg("specs").noconvert(), py::arg("outputs").noconvert(),
        py::arg("window").noconvert());

    m.def(
        "prefault_for_writing",
        [](py::array array) {
            // array: any dtype, C-contiguous and writable; its contents are left as they are
            cupatch::require(array.writeable(), "array must be writable");
            cupatch::require((array.flags() & py::array::c_style) != 0, "array must be C-contiguous");
            void* data = array.mutable_data();
            const auto nbytes = static_cast<std::int64_t>(array.nbytes());
            py::gil_scoped_release release;
            cupatch::prefault_for_writing(data, nbytes);
        },
        py::arg("array").noconvert(),
        "Map the pages of a C-contiguous writable array for writing now, on every core, leaving its "
        "contents as they are (Linux MADV_POPULATE_WRITE; elsewhere a no-op).");

    m.def(
        "divide_by_weight_map_cpu",
        [](py::array_t<float> values, const carray<float>& first, const carray<float>& rest) {
            // values: float32 (outer, rows, row_len), rows of row_len contiguous floats (any
            // outer and row strides); first: (rows,); rest: (row_len,)
            cupatch::require(values.ndim() == 3, "values must be 3-D (blocks, rows, row length)");
            cupatch::require(values.writeable(), "values must be writable");
            const index_t outer = values.shape(0), rows = values.shape(1), row_len = values.shape(2);
            const auto stride = [&](int d) { return static_cast<index_t>(values.strides(d)); };
            cupatch::require(row_len <= 1 || stride(2) == index_t(sizeof(float)), "values' rows must be contiguous");
            cupatch::require(stride(0) % index_t(sizeof(float)) == 0 && stride(1) % index_t(sizeof(float)) == 0,
                             "values' strides must be whole floats");
            cupatch::require(first.ndim() == 1 && first.shape(0) == rows, "first must have one sum per row");
            cupatch::require(rest.ndim() == 1 && rest.shape(0) == row_len, "rest must have one sum per row element");
            float* v = values.mutable_data();
            py::gil_scoped_release release;
            cupatch::divide_by_weight_map_cpu(v, outer, stride(0) / index_t(sizeof(float)), rows,
                                              stride(1) / index_t(sizeof(float)), row_len, first.data(), rest.data());
        },
        py::arg("values").noconvert(), py::arg("first").noconvert(), py::arg("rest").noconvert(),
        "Divide float32 values (blocks, rows, row_len) in place by first[row] * rest[col] (a blend "
        "weight-sum map), each float32 operation rounded to nearest.");

    m.def(
        "_stitch_blend_voxelwise_cpu",
        [](const carray<float>& tiles, const carray<index_t>& specs, const carray<index_t>& outputs,
           const carray<float>& window, bool candidate_lists) {
            const cupatch::StitchArgs a = stitch_args_cpu(tiles, specs, outputs, true, &window);
            py::gil_scoped_release release;
            cupatch::stitch_blend_voxelwise_cpu(a, candidate_lists);
        },
        py::arg("tiles").noconvert(), py::arg("specs").noconvert(), py::arg("outputs").noconvert(),
        py::arg("window").noconvert(), py::arg("candidate_lists"),
        "Testing aid: the CUDA blend kernel's per-voxel scheme run on the CPU (same arguments as stitch_blend_cpu).");

#ifdef CUPATCH_WITH_CUDA
    m.def(
        "gather_cuda",
        [](index_t sources, index_t n_sources, int source_dtype, index_t specs, index_t n_patches, index_t spec_cols, int ndim,
           const Shape3& patch, index_t channels, index_t n_channels, index_t affine, index_t aug, index_t out, int out_dtype,
           std::uintptr_t stream, int device) {
            cupatch::require(sources != 0 && specs != 0 && channels != 0 && out != 0, "null device pointer");
            const cupatch::GatherArgs a = make_gather_args(sources, n_sources, source_dtype, specs, n_patches, spec_cols, ndim,
                                                           patch, channels, n_channels, affine, aug, out, out_dtype);
            py::gil_scoped_release release;
            cupatch::cuda_use_device(device);
            cupatch::gather_cuda(a, stream);
        },
        py::arg("sources"), py::arg("n_sources"), py::arg("source_dtype"), py::arg("specs"), py::arg("n_patches"),
        py::arg("spec_cols"), py::arg("ndim"), py::arg("patch"), py::arg("channels"), py::arg("n_channels"), py::arg("affine"),
        py::arg("aug"), py::arg("out"), py::arg("out_dtype"), py::arg("stream"), py::arg("device"));

    auto stitch_cuda = [](bool blend) {
        return [blend](index_t tiles, index_t n_tiles, index_t channels, const Shape3& tile, index_t specs, index_t spec_cols,
                       int ndim, index_t outputs, index_t n_outputs, index_t window, index_t window_len, std::uintptr_t stream,
                       int device) {
            cupatch::require(tiles != 0 && specs != 0 && outputs != 0, "null device pointer");
            cupatch::require(!blend || window != 0, "blending needs a window table");
            const cupatch::StitchArgs a = make_stitch_args(tiles, n_tiles, channels, tile, specs, spec_cols, ndim, outputs,
                                                           n_outputs, window, window_len);
            py::gil_scoped_release release;
            cupatch::cuda_use_device(device);
            if (blend)
                cupatch::stitch_blend_cuda(a, stream);
            else
                cupatch::stitch_crop_cuda(a, stream);
        };
    };
    m.def("stitch_crop_cuda", stitch_cuda(false), py::arg("tiles"), py::arg("n_tiles"), py::arg("channels"), py::arg("tile"),
          py::arg("specs"), py::arg("spec_cols"), py::arg("ndim"), py::arg("outputs"), py::arg("n_outputs"), py::arg("window"),
          py::arg("window_len"), py::arg("stream"), py::arg("device"));
    m.def("stitch_blend_cuda", stitch_cuda(true), py::arg("tiles"), py::arg("n_tiles"), py::arg("channels"), py::arg("tile"),
          py::arg("specs"), py::arg("spec_cols"), py::arg("ndim"), py::arg("outputs"), py::arg("n_outputs"), py::arg("window"),
          py::arg("window_len"), py::arg("stream"), py::arg("device"));
    m.def(
        "cuda_stream_wait",
        [](std::uintptr_t producer, std::uintptr_t consumer, int device) {
            py::gil_scoped_release release;
            cupatch::cuda_use_device(device);
            cupatch::cuda_stream_wait(producer, consumer);
        },
        py::arg("producer"), py::arg("consumer"), py::arg("device"),
        "Make stream `consumer` wait for the work queued on `producer` (no host synchronisation).");
#endif
}
