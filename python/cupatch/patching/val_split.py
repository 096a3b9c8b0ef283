"""``create_val_split``: validation patches set aside from a stratified strategy (CAREamics).

The validation patches lie on the stratified grid (cell size = patch size). CAREamics'
procedure, draw for draw from ``numpy.random.default_rng(seed)`` (cells listed in CAREamics'
order): the number of validation
patches per sample is drawn one patch at a time, each sample chosen with probability
proportional to its remaining patch count; then each sample's cells are drawn without
replacement among its included cells, excluded from training
(:meth:`StratifiedPatching.exclude_patches`) and listed, sample by sample, as the specs of a
:class:`FixedPatching`. Excluded cells are never overlapped by a training patch.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_int
from .fixed import FixedPatching
from .stratified import StratifiedPatching

__all__ = ["create_val_split"]


def _careamics_cell_order(strategy: StratifiedPatching) -> dict[tuple[int, int], list[tuple[int, ...]]]:
    """The included cells of every sample, listed as CAREamics lists them.

    CAREamics returns ``list(set(all_cells).difference(excluded))``: the iteration order of
    a Python set of int tuples, which depends only on the cells (their hashes and C-order
    insertion). Building the same set gives the same list, so the same seed draws the same
    cells as CAREamics.
    """
    included = strategy.get_included_grid_coords()
    out = {}
    for key, cells in strategy.get_all_grid_coords().items():
        excluded = set(cells).difference(included[key])
        out[key] = list(set(cells).difference(excluded))
    return out


def create_val_split(
    strategy: StratifiedPatching, n_val_patches: int, seed: int | np.random.Generator | None = None
) -> tuple[StratifiedPatching, FixedPatching]:
    """Split validation patches off a stratified strategy.

    Parameters
    ----------
    strategy : StratifiedPatching
        Modified in place: the validation cells are excluded from it.
    n_val_patches : int
        Number of validation patches, ``1 <= n_val_patches < strategy.n_patches``.
    seed : int or numpy.random.Generator, optional
        Seed of ``numpy.random.default_rng`` (or a generator, as CAREamics takes); the same
        seed on the same strategy gives the same split. ``None`` draws fresh entropy.

    Returns
    -------
    train : StratifiedPatching
        ``strategy``, without the validation cells.
    val : FixedPatching
        The validation patches, ``patch_size`` at ``cell * patch_size``.

    Raises
    ------
    ValueError
        If ``n_val_patches`` is not below the number of training patches, or if a sample is
        drawn more validation patches than it has grid cells (its patch count can exceed its
        cell count by one; CAREamics fails there too). The strategy is then left unchanged.
    """
    if not isinstance(strategy, StratifiedPatching):
        raise TypeError(f"strategy must be a StratifiedPatching, got {type(strategy).__name__}")
    n_val = as_int(n_val_patches, "n_val_patches", minimum=1)
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif seed is None:
        rng = np.random.default_rng()
    else:
        rng = np.random.default_rng(as_int(seed, "seed", minimum=0))
    patch_size = tuple(int(p) for p in strategy.patch_size)
    grid_coords = _careamics_cell_order(strategy)
    sample_ids = list(grid_coords)
    per_sample = np.array([strategy.n_patches_of(k, s) for k, s in sample_ids], dtype=np.int64)
    n_train = int(per_sample.sum())
    if n_val >= n_train:
        raise ValueError(
            f"n_val_patches must be below the number of training patches: got {n_val} validation patches "
            f"but only {n_train} training patches with patch size {patch_size}; decrease n_val_patches or "
            "the patch size, or give more data"
        )
    chosen = np.zeros_like(per_sample)
    for _ in range(n_val):
        idx = rng.choice(np.arange(len(per_sample)), p=per_sample / per_sample.sum())
        chosen[idx] += 1
        per_sample[idx] -= 1
    # draw every sample's cells first (exclusion draws nothing), so an impossible split raises
    # before the strategy is modified
    picks = []
    for (k, s), n in zip(sample_ids, chosen.tolist()):
        cells = grid_coords[(k, s)]
        if n > len(cells):
            raise ValueError(
                f"n_val_patches={n_val} drew {n} validation patches from sample (data_idx={k}, sample_idx={s}), "
                f"which has only {len(cells)} grid cells; decrease n_val_patches"
            )
        picks.append([cells[int(i)] for i in rng.choice(len(cells), n, replace=False)])
    specs = []
    for (k, s), picked in zip(sample_ids, picks):
        strategy.exclude_patches(k, s, picked)
        specs.extend(
            {"data_idx": k, "sample_idx": s, "coords": tuple(c * p for c, p in zip(cell, patch_size)), "patch_size": patch_size}
            for cell in picked
        )
    return strategy, FixedPatching(specs)
