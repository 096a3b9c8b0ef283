"""Type stubs for the native extension ``cupatch._core`` (see cpp/bindings/module.cpp)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DTYPES: tuple[str, ...]
SOURCE_FIELDS: int
OUTPUT_FIELDS: int
# Table column layouts: name -> (first column, width)
SOURCE_COLUMNS: dict[str, tuple[int, int]]  # data, shape (S, C, Z, Y, X), strides
OUTPUT_COLUMNS: dict[str, tuple[int, int]]  # data, weight, shape, origin (Z, Y, X), image (Z, Y, X)

def patch_spec_columns(ndim: int) -> dict[str, tuple[int, int]]: ...  # data_idx, sample_idx, coords
def tile_spec_columns(ndim: int) -> dict[str, tuple[int, int]]: ...  # ... coords, crop, size, stitch
version: str
cuda_architectures: str
cuda_build_mode: str  # the CUPATCH_CUDA build switch: "AUTO", "ON", "OFF" or "EMULATE"
cuda_emulated: bool  # CUDA kernels compiled as host C++ and run on the CPU (CUPATCH_CUDA=EMULATE)
built_with_cuda: bool

class CudaError(RuntimeError): ...

def cuda_device_count() -> int: ...
def cuda_runtime_version() -> int: ...
def cpu_threads() -> int: ...
def set_cpu_threads(n: int) -> None: ...
def cpu_parallel_backend() -> str: ...
def hash4(seed: int, epoch: int, index: npt.NDArray[np.int64], stream: int) -> npt.NDArray[np.uint64]: ...
def gather_cpu(
    sources: npt.NDArray[np.int64],
    source_dtype: int,
    specs: npt.NDArray[np.int64],
    ndim: int,
    patch: Sequence[int],
    channels: npt.NDArray[np.int64],
    affine: npt.NDArray[np.float32] | None,
    aug: npt.NDArray[np.uint8] | None,
    out: np.ndarray,
    out_dtype: int,
) -> None: ...
def stitch_crop_cpu(
    tiles: npt.NDArray[np.float32], specs: npt.NDArray[np.int64], outputs: npt.NDArray[np.int64]
) -> None: ...
def stitch_blend_cpu(
    tiles: npt.NDArray[np.float32],
    specs: npt.NDArray[np.int64],
    outputs: npt.NDArray[np.int64],
    window: npt.NDArray[np.float32],
) -> None: ...
def prefault_for_writing(array: np.ndarray) -> None: ...
def divide_by_weight_map_cpu(
    values: npt.NDArray[np.float32],
    first: npt.NDArray[np.float32],
    rest: npt.NDArray[np.float32],
) -> None: ...
def _stitch_blend_voxelwise_cpu(
    tiles: npt.NDArray[np.float32],
    specs: npt.NDArray[np.int64],
    outputs: npt.NDArray[np.int64],
    window: npt.NDArray[np.float32],
    candidate_lists: bool,
) -> None: ...

# Present only when built_with_cuda is True; pointers are device addresses.
def gather_cuda(
    sources: int,
    n_sources: int,
    source_dtype: int,
    specs: int,
    n_patches: int,
    spec_cols: int,
    ndim: int,
    patch: Sequence[int],
    channels: int,
    n_channels: int,
    affine: int,
    aug: int,
    out: int,
    out_dtype: int,
    stream: int,
    device: int,
) -> None: ...
def stitch_crop_cuda(
    tiles: int,
    n_tiles: int,
    channels: int,
    tile: Sequence[int],
    specs: int,
    spec_cols: int,
    ndim: int,
    outputs: int,
    n_outputs: int,
    window: int,
    window_len: int,
    stream: int,
    device: int,
) -> None: ...
def stitch_blend_cuda(
    tiles: int,
    n_tiles: int,
    channels: int,
    tile: Sequence[int],
    specs: int,
    spec_cols: int,
    ndim: int,
    outputs: int,
    n_outputs: int,
    window: int,
    window_len: int,
    stream: int,
    device: int,
) -> None: ...
def cuda_stream_wait(producer: int, consumer: int, device: int) -> None: ...
