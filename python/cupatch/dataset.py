"""``PatchDataset``: patches of image stacks, gathered, normalised and augmented in one launch.

Every batch goes through :func:`cupatch.ops.gather_patches` once per array (input, target):
the channel subset, the cast to the output dtype, the normalisation (``x * scale + shift``)
and the flips/quarter turns are all fused into that call, on the GPU (CuPy) or on the CPU
(NumPy, native threads).

Stacks that live on the compute device are gathered in place (their
:class:`cupatch.ops.SourceTable` is built once). Stacks that do not (host or disk stacks with a
GPU device, disk stacks with the CPU device) are fed through a staging buffer: each patch's
window is read with ``read_region`` (raw dtype, only the touched TIFF pages or Zarr chunks),
written into pinned host memory, uploaded asynchronously on the current stream and gathered
from there. So a dataset larger than GPU memory trains too.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._backend import gpu_available, require_gpu
from ._dtypes import OUTPUT_DTYPES
from ._layouts import patch_columns
from ._roles import Role
from ._staging import Staging
from ._validation import as_bool, as_dtype, as_indices, as_int, look_up_option
from .augmentation import Augmentations
from .filters.background import filter_dataset_background
from .normalization import NoNormalization, Normalization, check_normalization
from .ops import gather_patches
from .region import ImageRegionData, collate_spec_table, collate_table, stack_metadata
from .stacks import as_stacks, validate_axes
from .stacks.base import check_channels
from .stacks.placement import check_placement

__all__ = ["PatchDataset"]

#: Fraction of free GPU memory that placement="auto" may fill with stacks.
GPU_PLACEMENT_FRACTION = 0.5

_TRAINING_STRATEGIES = ("RandomPatching", "FixedRandomPatching", "StratifiedPatching")


def _resolve_device(device: str) -> str:
    look_up_option(device, ("auto", "gpu", "cpu"), "device")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu":
        require_gpu()
    return device


def _copy_field(value):
    """A copy of a collated ``region_spec`` field: an array, per-axis arrays, or anything else."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
        return type(value)(v.copy() for v in value)
    return copy.deepcopy(value)


class PatchDataset:
    """Patches of image stacks for training, validation or prediction (CAREamics-compatible).

    Parameters
    ----------
    inputs : array, path, stack or list of them
        Input images: NumPy/CuPy arrays, TIFF paths, Zarr arrays/groups/paths/URIs, or stacks
        (see :func:`cupatch.stacks.as_stacks`).
    patching : Patching or callable
        A strategy built on the stacks' SC(Z)YX shapes, or a callable taking the list of
        shapes and returning one (e.g. ``lambda shapes: RandomPatching(shapes, (64, 64), seed=1)``).
    axes : str
        Axes of the inputs (``STCZYX`` subset with Y and X).
    targets : same as inputs, optional
        Targets with the inputs' sample and spatial shapes; they get the same coordinates and
        augmentations as the inputs, and keep all their channels.
    target_axes : str, optional
        Axes of the targets (default ``axes``).
    channels : sequence of int, optional
        Input channel subset (the channel axis is kept).
    normalization : Normalization, optional
        Applied to inputs and targets; missing statistics are computed in one pass at
        construction. Default: no normalisation (float cast only).
    augmentations : Augmentations, optional
        Random flips / quarter turns, the same for input and target.
    device : {"auto", "gpu", "cpu"}
        Where batches are made: ``"gpu"`` (CuPy arrays; RuntimeError if no GPU is usable),
        ``"cpu"`` (NumPy), ``"auto"`` (GPU when usable).
    placement : {"auto", "gpu", "cpu", "disk"}
        Where the stacks live. ``"auto"``: on a GPU device, stacks are uploaded once (stored
        dtype) when the stacks not yet on the GPU fit in half the free GPU memory; otherwise
        every stack is fed from the host through pinned staging, and stacks given as CuPy
        arrays are copied to the host once (``to_device("cpu")``) so that the dataset is
        uniform and no patch is read back from the GPU one by one. On the CPU, arrays stay in
        memory (CuPy arrays are copied to the host) and files are memory-mapped or read lazily.
    dtype : numpy dtype
        Output dtype of batches: float32, float16 (or bfloat16 with ml_dtypes).
    patch_filter : PatchFilter, optional
        Background filter (:mod:`cupatch.filters`) applied once to the inputs' stratified
        sampling regions (``patching`` must be a :class:`StratifiedPatching`), as CAREamics'
        ``patch_filter`` config: :func:`cupatch.filter_background` with ``ref_channel=0`` and
        ``filtered_patch_prob=0.1`` (call it on the strategy yourself for other values).
    masks : same as inputs, optional
        Foreground masks, one per input image, with the input's axes or without C (files
        that name their axes, such as OME-Zarr labels, are read with them): regions whose
        mask coverage is below that of ``patch_filter`` when it is a
        :class:`MaskPatchFilter`, else below ``0.5**ndim`` (CAREamics' default), are
        filtered as CAREamics' mask filtering does.
    progress : bool
        Progress bars while regions are filtered and normalisation statistics are computed.

    Notes
    -----
    One convention everywhere, CAREamics' own: one :class:`cupatch.ImageRegionData` per
    role, in a tuple, ``(input,)`` without targets and ``(input, target)`` with them.
    ``dataset[i]`` returns that tuple with C(Z)YX data and CAREamics' metadata;
    :meth:`get_batch` returns the same tuple collated for many indices at once (equal to
    :func:`cupatch.collate_regions` of the items), and :class:`cupatch.BatchLoader` yields
    the same tuple of batch arrays (or of regions, ``return_regions=True``).
    """

    def __init__(
        self,
        inputs,
        patching,
        *,
        axes: str,
        targets=None,
        target_axes: str | None = None,
        channels: Sequence[int] | None = None,
        normalization: Normalization | None = None,
        augmentations: Augmentations | None = None,
        device: str = "auto",
        placement: str = "auto",
        dtype=np.float32,
        patch_filter=None,
        masks=None,
        progress: bool = True,
    ) -> None:
        progress = as_bool(progress, "progress")
        self.device = _resolve_device(device)
        check_placement(placement)
        self.axes = validate_axes(axes)
        self.target_axes = validate_axes(target_axes, "target_axes") if target_axes is not None else self.axes
        self.dtype = as_dtype(dtype, OUTPUT_DTYPES)

        for name, value in (("inputs", inputs), ("targets", targets)):
            if isinstance(value, (list, tuple)) and not value:
                raise ValueError(
                    f"{name} is an empty {type(value).__name__}: give at least one image"
                    + (" (or targets=None for no targets)" if name == "targets" else "")
                )
        inputs_ = as_stacks(inputs, self.axes, placement="disk" if placement == "disk" else "auto")
        targets_ = None
        if targets is not None:
            targets_ = as_stacks(targets, self.target_axes, placement="disk" if placement == "disk" else "auto")
            self._check_targets(inputs_, targets_)
        self.channels = check_channels(channels, inputs_[0].data_shape[1])
        self._check_stacks(inputs_, "inputs")
        inputs_, targets_ = self._place(inputs_, targets_, placement)
        self.input_stacks = inputs_
        self.target_stacks = targets_
        self._input = Role(inputs_, self.device, self.channels)
        self._target = Role(targets_, self.device, None) if targets_ is not None else None

        if isinstance(patching, type) or (callable(patching) and not hasattr(patching, "spec_table")):
            patching = patching([s.data_shape for s in inputs_])  # a class or a factory
        self.patching = patching
        self._check_patching()
        # background filtering (CAREamics' filter_background), before statistics and batches
        filter_dataset_background(patching, inputs_, patch_filter, masks, self.axes, progress)

        self.normalization = NoNormalization() if normalization is None else check_normalization(normalization)
        if not self.normalization.fitted or (targets_ is not None and self._target_stats_missing()):
            self.normalization.fit(inputs_, targets=targets_, channels=self.channels, progress=progress)
        self._input_affine = self.normalization.input_scale_shift(self._input.n_channels_out)
        self._target_affine = (
            self.normalization.target_scale_shift(self._target.n_channels_out) if self._target is not None else None
        )

        if augmentations is not None and not isinstance(augmentations, Augmentations):
            raise TypeError(f"augmentations must be a cupatch.augmentation.Augmentations, got {type(augmentations).__name__}")
        self.augmentations = augmentations if augmentations is not None and augmentations.enabled else None
        if self.augmentations is not None:
            self.augmentations.check_patch_size(self.patching.patch_size)

        self.epoch = 0
        self._staging = Staging(self.device)
        if self.device == "gpu":
            # Build the device source tables now, on the stream the stacks were uploaded (or
            # produced) on: a table records that point and gathers on any other stream (the
            # loader's prefetch stream, a caller's stream) wait for it. Built lazily inside the
            # first gather, the point would be recorded on the gather's stream and a
            # non-blocking stream could read stacks whose upload has not landed yet.
            for role in (self._input, self._target):
                if role is not None and role.resident:
                    role.source_table()
        self._pool: ThreadPoolExecutor | None = None
        self._meta_cache: dict = {}

    # -- construction checks -----------------------------------------------------------------
    @staticmethod
    def _check_stacks(stacks, name: str) -> None:
        first = stacks[0]
        for k, s in enumerate(stacks):
            if 0 in tuple(s.data_shape):
                raise ValueError(
                    f"{name}[{k}] is empty: its SC(Z)YX shape {tuple(s.data_shape)} has an axis of length 0"
                )
            if len(s.data_shape) != len(first.data_shape):
                raise ValueError(
                    f"{name}[{k}] has {len(s.data_shape) - 2} spatial dimensions, {name}[0] has "
                    f"{len(first.data_shape) - 2}: all stacks must be 2-D or all 3-D"
                )
            if s.data_shape[1] != first.data_shape[1]:
                raise ValueError(
                    f"{name}[{k}] has {s.data_shape[1]} channels, {name}[0] has {first.data_shape[1]}: "
                    f"all stacks must have the same channel count"
                )

    @classmethod
    def _check_targets(cls, inputs, targets) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"got {len(inputs)} input stacks but {len(targets)} target stacks")
        cls._check_stacks(targets, "targets")
        for k, (i, t) in enumerate(zip(inputs, targets)):
            if i.data_shape[0] != t.data_shape[0] or i.data_shape[2:] != t.data_shape[2:]:
                raise ValueError(
                    f"input/target shape mismatch for stack {k}: input SC(Z)YX shape {i.data_shape}, "
                    f"target {t.data_shape} (samples and spatial sizes must match)"
                )

    def _place(self, inputs, targets, placement: str):
        """Move stacks to the compute device when requested / when they fit."""
        all_stacks = list(inputs) + list(targets or [])
        if placement == "gpu" and self.device != "gpu":
            raise ValueError("placement='gpu' needs device='gpu' (or 'auto' with a usable GPU)")
        if placement in ("gpu", "cpu"):
            target = placement
        elif placement == "auto" and self.device == "gpu":
            import cupy  # optional dependency, only on the GPU path

            free, _ = cupy.cuda.runtime.memGetInfo()
            free += cupy.get_default_memory_pool().free_bytes()  # cached by CuPy, reusable
            # stacks already on the GPU are excluded from the free memory: count only the uploads
            upload = sum(s.nbytes for s in all_stacks if s.placement != "gpu")
            if upload <= GPU_PLACEMENT_FRACTION * free:
                target = "gpu"
            else:
                # Keep the dataset uniform: with some stacks on the host, the role is fed through
                # pinned staging, and GPU-resident stacks read there would cost a device-to-host
                # copy (a host synchronisation) per patch. Bring them to the host once instead.
                target = None
                inputs = [s.to_device("cpu") if s.placement == "gpu" else s for s in inputs]
                targets = None if targets is None else [s.to_device("cpu") if s.placement == "gpu" else s for s in targets]
        elif placement == "auto":
            # CPU device: host arrays stay, CuPy arrays come back to the host
            target = None
            if any(s.placement == "gpu" for s in all_stacks):
                inputs = [s.to_device("cpu") if s.placement == "gpu" else s for s in inputs]
                targets = None if targets is None else [s.to_device("cpu") if s.placement == "gpu" else s for s in targets]
        else:  # disk
            target = None
        if target is not None:
            inputs = [s.to_device(target) for s in inputs]
            targets = None if targets is None else [s.to_device(target) for s in targets]
        return inputs, targets

    def _check_patching(self) -> None:
        p = self.patching
        for attr in ("spec_table", "get_patch_spec", "n_patches", "ndim"):
            if not hasattr(p, attr):
                raise TypeError(f"patching must be a patching strategy (missing {attr!r}), got {type(p).__name__}")
        shapes = [s.data_shape for s in self.input_stacks]
        if p.ndim != len(shapes[0]) - 2:
            raise ValueError(f"patching is {p.ndim}-D but the stacks have {len(shapes[0]) - 2} spatial dimensions")
        strategy_shapes = getattr(p, "data_shapes", None)
        if strategy_shapes is not None:
            if len(strategy_shapes) != len(shapes) or any(
                a[0] != b[0] or tuple(a[2:]) != tuple(b[2:]) for a, b in zip(strategy_shapes, shapes)
            ):
                raise ValueError(
                    f"patching was built for shapes {list(strategy_shapes)} but the stacks have {shapes}"
                )
        if type(p).__name__ in _TRAINING_STRATEGIES and p.patch_size is not None:
            for k, shape in enumerate(shapes):
                if any(n < q for n, q in zip(shape[2:], p.patch_size)):
                    raise ValueError(
                        f"Not all images sizes are greater or equal than the patch size for training "
                        f"and validation: stack {k} has spatial shape {tuple(shape[2:])}, patch size "
                        f"{tuple(p.patch_size)}"
                    )

    def _target_stats_missing(self) -> bool:
        try:
            self.normalization.target_scale_shift(1)
        except ValueError:
            return True
        return False

    # -- basic protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.patching.n_patches)

    @property
    def has_target(self) -> bool:
        return self._target is not None

    @property
    def ndim(self) -> int:
        return int(self.patching.ndim)

    @property
    def n_channels(self) -> int:
        """Channels of the input batches."""
        return self._input.n_channels_out

    @property
    def xp(self):
        """The array module of the batches: cupy on the GPU, numpy on the CPU."""
        if self.device == "gpu":
            import cupy  # optional dependency, only on the GPU path

            return cupy
        return np

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: random coordinates and augmentations change with it."""
        epoch = as_int(epoch, "epoch", minimum=0, below=2**63, below_text="2**63")  # floats refused, never truncated
        if hasattr(self.patching, "set_epoch"):
            self.patching.set_epoch(epoch)
        self.epoch = epoch

    def denormalize(self, predictions):
        """Undo the target (or input) normalisation of model outputs (channel axis 1)."""
        return self.normalization.denormalize(predictions)

    # -- gathering ---------------------------------------------------------------------------
    def _batch_patch_size(self, table: np.ndarray) -> tuple[int, ...]:
        size = self.patching.patch_size
        if size is not None:
            return tuple(int(v) for v in size)
        sizes = {tuple(self.input_stacks[int(k)].data_shape[2:]) for k in np.unique(table[:, 0])}
        if len(sizes) > 1:
            raise ValueError(
                f"a batch of whole samples needs equal sample shapes, got {sorted(sizes)}; use batch_size=1 "
                f"or tiled patching"
            )
        return sizes.pop()

    def _read_regions(self, role: Role, specs: np.ndarray, patch_size) -> Any:
        """Read each patch window on the host into a staging buffer and upload it."""
        n_ch = role.n_channels_out
        slot, host = self._staging.acquire((len(specs), n_ch, *patch_size), role.dtype)
        ndim = len(patch_size)

        def read(b: int) -> None:
            row = specs[b]
            stack = role.stacks[int(row[0])]
            host[b] = stack.read_region(int(row[1]), row[2 : 2 + ndim], patch_size, role.channels)

        if len(specs) > 1 and not all(s.array is not None for s in role.stacks):
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cupatch-read")
            list(self._pool.map(read, range(len(specs))))
        else:
            for b in range(len(specs)):
                read(b)
        return self._staging.upload(slot, host)

    def _gather(self, role: Role, which: str, specs: np.ndarray, patch_size, flags):
        # host arrays: the ops layer uploads these few bytes with the spec table
        scale, shift = self._input_affine if which == "input" else self._target_affine
        flip_y, flip_x, rot = flags if flags is not None else (None, None, None)
        if role.resident:
            sources, gather_specs, channels = role.source_table(), specs, role.channels
        else:
            region = self._read_regions(role, specs, patch_size)
            gather_specs = np.zeros_like(specs)
            gather_specs[:, 1] = np.arange(len(specs))
            sources, channels = [region], None  # the staging buffer holds the channel subset
        return gather_patches(
            sources, gather_specs, patch_size, channels=channels, dtype=self.dtype,
            scale=scale, shift=shift, flip_y=flip_y, flip_x=flip_x, rot90=rot,
        )

    def gather_arrays(self, indices) -> tuple[Any, Any]:
        """Batch arrays only (no metadata): ``(input, target)``, target None without targets."""
        indices = as_indices(np.asarray(indices).reshape(-1), len(self))
        return self._gather_table(indices, self.patching.spec_table(indices))

    def _gather_table(self, indices: np.ndarray, table: np.ndarray) -> tuple[Any, Any]:
        """:meth:`gather_arrays` for checked ``indices`` whose spec ``table`` is built."""
        specs = np.ascontiguousarray(table[:, : 2 + self.ndim])
        patch_size = self._batch_patch_size(specs)
        flags = self.augmentations.draw(indices, self.epoch) if self.augmentations is not None else None
        x = self._gather(self._input, "input", specs, patch_size, flags)
        y = self._gather(self._target, "target", specs, patch_size, flags) if self._target is not None else None
        return x, y

    # -- regions -----------------------------------------------------------------------------
    def _metadata(self, stacks, channels, axes: str) -> list[dict]:
        """:func:`cupatch.region.stack_metadata` of every stack (built once: it never changes)."""
        key = (id(stacks), axes)
        metas = self._meta_cache.get(key)
        if metas is None:
            metas = self._meta_cache[key] = [stack_metadata(s, channels, axes, self.target_axes) for s in stacks]
        return metas

    def __getitem__(self, index: int):
        """Patch ``index`` as ``(input,)`` or ``(input, target)`` :class:`ImageRegionData`."""
        index = as_int(index, "index")
        spec = self.patching.get_patch_spec(index)
        x, y = self.gather_arrays([index])
        k = int(spec["data_idx"])
        out = [ImageRegionData(data=x[0], region_spec=spec, **self._metadata(self.input_stacks, self.channels, self.axes)[k])]
        if y is not None:
            meta = self._metadata(self.target_stacks, None, self.target_axes)[k]
            out.append(ImageRegionData(data=y[0], region_spec=spec, **meta))
        return tuple(out)

    def get_batch(self, indices):
        """Collated batch for ``indices``: ``(input,)`` or ``(input, target)``
        :class:`ImageRegionData`, like ``dataset[i]``.

        The data are ``(B, C, [Z,] Y, X)`` arrays (CuPy on
        the GPU, NumPy on the CPU) made by one gather call per array; the metadata equal
        :func:`cupatch.collate_regions` of the ``__getitem__`` items.
        """
        indices = as_indices(np.asarray(indices).reshape(-1), len(self))
        table = self.patching.spec_table(indices)  # built once, for the arrays and the metadata
        x, y = self._gather_table(indices, table)
        # Collated ImageRegionData from the spec table (no per-item dicts); the input and the
        # target share the coordinates, so the region_spec is collated once.
        data_idx = table[:, patch_columns(self.ndim)["data_idx"]][:, 0]
        region_spec = self._collated_specs(table, indices, data_idx)
        x_region = collate_table(x, data_idx, self._metadata(self.input_stacks, self.channels, self.axes), region_spec)
        if y is None:
            return (x_region,)
        y_spec = {k: _copy_field(v) for k, v in region_spec.items()}  # its own arrays, as a second collation's
        meta = self._metadata(self.target_stacks, None, self.target_axes)
        return x_region, collate_table(y, data_idx, meta, y_spec)

    def _collated_specs(self, table: np.ndarray, indices: np.ndarray, data_idx: np.ndarray) -> dict:
        """The collated ``region_spec`` of a batch (:func:`cupatch.region.collate_spec_table`)."""
        if not len(indices):
            return {}
        nd = self.ndim
        patching = self.patching
        # What depends on the strategy only (its spec keys, per-stack sizes and tile counts) is
        # looked up once per strategy object, not per batch.
        fixed = self._spec_cache.get(id(patching)) if hasattr(self, "_spec_cache") else None
        if fixed is None or fixed[0] is not patching:
            size = patching.patch_size
            stack_sizes = None if size is not None else np.array([s.data_shape[2:] for s in self.input_stacks], dtype=np.int64)
            totals = None
            if hasattr(patching, "total_tiles"):
                totals = np.array([patching.total_tiles(k) for k in range(len(self.input_stacks))], np.int64)
            keys = list(patching.get_patch_spec(int(indices[0])).keys())
            fixed = (patching, size, stack_sizes, totals, keys)
            self._spec_cache = {id(patching): fixed}
        _, size, stack_sizes, totals, keys = fixed
        if size is not None:
            sizes = np.broadcast_to(np.asarray(size, dtype=np.int64), (len(table), nd))
        else:
            sizes = stack_sizes[data_idx]
        return collate_spec_table(
            table, nd, keys, patch_sizes=sizes,
            total_tiles=totals, specs=lambda: [patching.get_patch_spec(int(i)) for i in indices],
        )

    def close(self) -> None:
        """Stop the region-reading threads (they are restarted on demand)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __repr__(self) -> str:
        if not hasattr(self, "_input") or not hasattr(self, "patching"):
            return "PatchDataset(<incomplete>)"
        return (
            f"PatchDataset(n_patches={len(self)}, stacks={len(self.input_stacks)}, channels={self.n_channels}, "
            f"target={self.has_target}, device={self.device!r}, resident={self._input.resident})"
        )

