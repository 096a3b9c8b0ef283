"""The statistics pass behind fit: moments, extremes, exact and estimated quantiles, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_gpu, to_numpy

from cupatch.normalization import MeanStdNormalization, MinMaxNormalization, QuantileNormalization
from cupatch.stacks import as_stack

from .helpers import make_stacks, values_per_channel


@pytest.mark.parametrize("placement", ["auto", "disk"])
def test_mean_std_fit_matches_numpy(xp, placement):
    stacks, a, b = make_stacks(xp, placement=placement)
    values = values_per_channel(a, b)
    norm = MeanStdNormalization().fit(stacks, progress=False)
    np.testing.assert_allclose(norm.means, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(norm.stds, values.std(axis=1), rtol=1e-10)  # population std
    scale, shift = norm.input_scale_shift(2)
    assert scale.dtype == np.float32 and shift.dtype == np.float32
    x = a[:1].astype(np.float32)
    expected = (a[:1].astype(np.float64) - values.mean(axis=1)[None, :, None, None]) / (
        values.std(axis=1)[None, :, None, None] + 1e-6)
    np.testing.assert_allclose(to_numpy(norm.normalize(xp.asarray(x))), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, rtol=1e-5, atol=1e-2)



def test_pooled_and_channel_subset():
    stacks, a, b = make_stacks(np)
    values = values_per_channel(a, b)
    pooled = MeanStdNormalization(per_channel=False).fit(stacks, progress=False)
    np.testing.assert_allclose(pooled.means, [values.mean()], rtol=1e-12)
    np.testing.assert_allclose(pooled.input_scale_shift(3)[0], np.full(3, 1 / (values.std() + 1e-6), np.float32))
    subset = MeanStdNormalization().fit(stacks, channels=[1], progress=False)
    np.testing.assert_allclose(subset.means, [values[1].mean()], rtol=1e-12)
    with pytest.raises(ValueError, match="Channel index 5"):
        MeanStdNormalization().fit(stacks, channels=[5], progress=False)



def test_min_max(xp):
    stacks, a, b = make_stacks(xp)
    values = values_per_channel(a, b)
    norm = MinMaxNormalization().fit(stacks, progress=False)
    np.testing.assert_array_equal(norm.mins, values.min(axis=1))
    np.testing.assert_array_equal(norm.maxes, values.max(axis=1))
    scale, shift = norm.input_scale_shift(2)
    lo, hi = values.min(axis=1), values.max(axis=1)
    np.testing.assert_allclose(scale, 1 / (hi - lo + 1e-8), rtol=1e-7)
    np.testing.assert_allclose(shift, -lo / (hi - lo + 1e-8), rtol=1e-7)



@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8, np.float32])
@pytest.mark.parametrize("placement", ["auto", "disk"])
def test_quantiles_exact(dtype, placement):
    stacks, a, b = make_stacks(np, dtype=np.uint16, placement=placement)
    if dtype != np.uint16:
        a, b = (a % 200).astype(dtype) - (50 if dtype == np.int16 else 0), (b % 200).astype(dtype)
        stacks = [as_stack(a, "SCYX", placement=placement), as_stack(b, "SCYX", placement=placement)]
    values = values_per_channel(a, b)
    norm = QuantileNormalization(0.013, 0.987).fit(stacks, progress=False)
    np.testing.assert_allclose(norm.lower_values, np.quantile(values, 0.013, axis=1), rtol=1e-12)
    np.testing.assert_allclose(norm.upper_values, np.quantile(values, 0.987, axis=1), rtol=1e-12)



@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("levels", [(0.013, 0.987), (0.0, 1.0), (0.25, 0.5)])
def test_exact_float_quantiles_of_resident_stacks_equal_numpy(xp, dtype, levels):
    rng = np.random.default_rng(7)
    a = (rng.normal(size=(3, 3, 17, 19)) * 1000).astype(dtype)
    b = np.round(rng.normal(size=(2, 3, 9, 31)) * 1000).astype(dtype)  # repeated values too
    stacks = [as_stack(xp.asarray(a), "SCYX"), as_stack(xp.asarray(b), "SCYX")]
    values = np.concatenate([x.transpose(1, 0, 2, 3).reshape(3, -1) for x in (a, b)], axis=1).astype(np.float64)
    norm = QuantileNormalization(*levels).fit(stacks, progress=False)
    np.testing.assert_array_equal(norm.lower_values, np.quantile(values, levels[0], axis=1))
    np.testing.assert_array_equal(norm.upper_values, np.quantile(values, levels[1], axis=1))
    subset = QuantileNormalization(*levels).fit(stacks, channels=[2, 0], progress=False)
    np.testing.assert_array_equal(subset.lower_values, np.quantile(values[[2, 0]], levels[0], axis=1))
    pooled = QuantileNormalization(*levels, per_channel=False).fit(stacks, progress=False)
    np.testing.assert_array_equal(pooled.upper_values, [np.quantile(values, levels[1])])
    # the stacks themselves are not reordered by the in-place partial sort
    np.testing.assert_array_equal(to_numpy(stacks[0].array), a)



NORMALIZATIONS = [MeanStdNormalization, MinMaxNormalization, QuantileNormalization]


def _with_nan(xp, dtype=np.float32):
    rng = np.random.default_rng(4)
    a = rng.random((2, 2, 8, 8)).astype(dtype)
    b = rng.random((3, 2, 6, 10)).astype(dtype)
    b[1, 1, 2, 3] = np.nan
    b[2, 1, 0, :4] = np.nan
    return a, b


@pytest.mark.parametrize("norm_cls", NORMALIZATIONS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("placement", ["auto", "disk"])
def test_nan_in_the_data_is_refused_naming_the_stack_sample_and_channel(xp, norm_cls, dtype, placement):
    # NaN used to give NaN statistics, silently, and so NaN batches
    a, b = _with_nan(xp, dtype)
    stacks = [as_stack(xp.asarray(a) if placement == "auto" else a, "SCYX", placement=placement) for a in (a, b)]
    message = r"stacks\[1\], sample 1, channel 1 contains NaN.*nan_policy='omit'"
    with pytest.raises(ValueError, match=message):
        norm_cls().fit(stacks, progress=False)
    with pytest.raises(ValueError, match=message):
        norm_cls(per_channel=False).fit(stacks, progress=False)
    with pytest.raises(ValueError, match=message):
        norm_cls().fit(stacks, channels=[1], progress=False)  # channel 1 of the data, not row 0
    norm_cls().fit(stacks, channels=[0], progress=False)  # the clean channel alone is fine
    clean = [as_stack(xp.asarray(a), "SCYX")]
    with pytest.raises(ValueError, match=r"targets\[1\], sample 1, channel 1 contains NaN"):
        norm_cls().fit(clean, targets=stacks, progress=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("placement", ["auto", "disk"])
def test_nan_policy_omit_computes_the_statistics_of_the_other_values(xp, dtype, placement):
    a, b = _with_nan(xp, dtype)
    stacks = [as_stack(xp.asarray(a) if placement == "auto" else a, "SCYX", placement=placement) for a in (a, b)]
    values = values_per_channel(a, b)
    mean_std = MeanStdNormalization().fit(stacks, progress=False, nan_policy="omit")
    np.testing.assert_allclose(mean_std.means, np.nanmean(values, axis=1), rtol=1e-12)
    np.testing.assert_allclose(mean_std.stds, np.nanstd(values, axis=1), rtol=1e-10)
    min_max = MinMaxNormalization().fit(stacks, progress=False, nan_policy="omit")
    np.testing.assert_array_equal(min_max.mins, np.nanmin(values, axis=1))
    np.testing.assert_array_equal(min_max.maxes, np.nanmax(values, axis=1))
    quantile = QuantileNormalization(0.1, 0.9).fit(stacks, progress=False, nan_policy="omit")
    np.testing.assert_array_equal(quantile.lower_values, np.nanquantile(values, 0.1, axis=1))
    np.testing.assert_array_equal(quantile.upper_values, np.nanquantile(values, 0.9, axis=1))
    pooled = MeanStdNormalization(per_channel=False).fit(stacks, progress=False, nan_policy="omit")
    np.testing.assert_allclose(pooled.means, [np.nanmean(values)], rtol=1e-12)
    assert np.isfinite(mean_std.input_scale_shift(2)[0]).all()
    # without NaN, "omit" changes nothing (bit for bit)
    clean = [as_stack(xp.asarray(a), "SCYX")]
    fitted = MeanStdNormalization().fit(clean, progress=False, nan_policy="omit")
    reference = MeanStdNormalization().fit(clean, progress=False)
    np.testing.assert_array_equal(fitted.means, reference.means)
    np.testing.assert_array_equal(fitted.stds, reference.stds)


@pytest.mark.parametrize("norm_cls", NORMALIZATIONS)
def test_a_channel_of_only_nan_is_refused_even_when_omitting(xp, norm_cls):
    a = np.ones((2, 2, 4, 4), np.float32)
    a[:, 1] = np.nan
    with pytest.raises(ValueError, match="channel 1 holds only NaN values"):
        norm_cls().fit([as_stack(xp.asarray(a), "SCYX")], progress=False, nan_policy="omit")


@pytest.mark.parametrize("norm_cls", [MeanStdNormalization, MinMaxNormalization])
def test_infinite_values_that_make_a_statistic_infinite_are_refused(xp, norm_cls):
    a = np.ones((2, 2, 4, 4), np.float32)
    a[1, 1, 2, 2] = np.inf
    for policy in ("raise", "omit"):
        with pytest.raises(ValueError, match=r"stacks\[0\], sample 1, channel 1 contains infinite values"):
            norm_cls().fit([as_stack(xp.asarray(a), "SCYX")], progress=False, nan_policy=policy)
    # a quantile that an infinity does not reach stays finite, and is accepted; one it reaches is refused
    norm = QuantileNormalization(0.1, 0.9).fit([as_stack(xp.asarray(a), "SCYX")], progress=False)
    np.testing.assert_array_equal(norm.upper_values, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"stacks\[0\], sample 1, channel 1 contains infinite values"):
        QuantileNormalization(0.1, 1.0).fit([as_stack(xp.asarray(a), "SCYX")], progress=False)


def test_nan_policy_is_checked():
    stacks = [as_stack(np.ones((1, 1, 4, 4), np.float32), "SCYX")]
    for bad in ("ignore", None, True):
        with pytest.raises(ValueError, match='nan_policy must be "raise" or "omit"'):
            MeanStdNormalization().fit(stacks, progress=False, nan_policy=bad)


def test_given_nan_statistics_are_refused():
    for kwargs in (dict(means=[0.0, np.nan], stds=[1.0, 1.0]), dict(mins=[np.nan], maxes=[1.0])):
        cls = MeanStdNormalization if "means" in kwargs else MinMaxNormalization
        with pytest.raises(ValueError, match="finite"):
            cls(**kwargs)


def test_exact_float_quantiles_do_not_copy_the_data_in_float64():
    """Exact quantiles of in-memory float data need about one channel of extra memory, not
    float64 copies of every value (several times the stack)."""
    import tracemalloc

    a = np.random.default_rng(0).random((2, 4, 256, 256), dtype=np.float32)
    stacks = [as_stack(a, "SCYX")]
    QuantileNormalization().fit([as_stack(a[:1, :, :8, :8].copy(), "SCYX")], progress=False)  # imports done
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        norm = QuantileNormalization(0.01, 0.99).fit(stacks, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.6 * a.nbytes, f"fit used {peak} bytes of extra memory for a {a.nbytes}-byte stack"
    values = a.transpose(1, 0, 2, 3).reshape(4, -1).astype(np.float64)
    np.testing.assert_array_equal(norm.upper_values, np.quantile(values, 0.99, axis=1))



@pytest.mark.gpu
@requires_gpu
def test_exact_float_quantiles_on_the_gpu_stay_within_about_one_channel_of_memory():
    import cupy

    class PeakHook(cupy.cuda.MemoryHook):
        name = "PeakHook"

        def __init__(self):
            self.live, self.current, self.peak = {}, 0, 0

        def malloc_postprocess(self, **kwargs):
            self.live[kwargs["mem_ptr"]] = kwargs["mem_size"]
            self.current += kwargs["mem_size"]
            self.peak = max(self.peak, self.current)

        def free_postprocess(self, **kwargs):
            self.current -= self.live.pop(kwargs["mem_ptr"], 0)

    a = np.random.default_rng(0).random((2, 4, 512, 512), dtype=np.float32)
    stacks = [as_stack(cupy.asarray(a), "SCYX")]
    hook = PeakHook()
    with hook:
        norm = QuantileNormalization(0.01, 0.99).fit(stacks, progress=False)
    # one channel (a quarter of the stack) plus sort scratch; float64 copies of everything
    # would be over four times the stack
    assert hook.peak < 1.5 * a.nbytes, f"fit allocated {hook.peak} bytes for a {a.nbytes}-byte stack"
    values = a.transpose(1, 0, 2, 3).reshape(4, -1).astype(np.float64)
    np.testing.assert_array_equal(norm.lower_values, np.quantile(values, 0.01, axis=1))



@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("norm_cls", [MeanStdNormalization, MinMaxNormalization, QuantileNormalization])
@pytest.mark.parametrize("gpu_first", [True, False], ids=["gpu-host", "host-gpu"])
def test_fit_on_a_mix_of_gpu_and_host_stacks(norm_cls, dtype, gpu_first):
    """Stacks on the GPU and on the host in one fit (a list of images passed to predict_tiled
    can be like that): the statistics equal those of the host data (CuPy refuses NumPy
    operands, so the GPU blocks come to the host)."""
    import cupy

    _, a, b = make_stacks(np, dtype)
    host = norm_cls().fit([as_stack(a, "SCYX"), as_stack(b, "SCYX")], progress=False)
    pair = [as_stack(cupy.asarray(a), "SCYX"), as_stack(b, "SCYX")] if gpu_first else \
        [as_stack(a, "SCYX"), as_stack(cupy.asarray(b), "SCYX")]
    mixed = norm_cls().fit(pair, progress=False)
    for got, want in zip(mixed.input_scale_shift(2), host.input_scale_shift(2)):
        np.testing.assert_array_equal(got, want)



@pytest.mark.gpu
@requires_gpu
def test_predict_tiled_fits_the_normalization_on_a_mixed_list_of_images():
    import cupy

    from cupatch import predict_tiled

    rng = np.random.default_rng(8)
    images = [rng.random((40, 36), dtype=np.float32) * 100, rng.random((24, 40), dtype=np.float32) * 50]
    kwargs = dict(axes="YX", tile_size=16, overlaps=4, progress=False)
    cpu = predict_tiled(lambda t: t * 2, images, device="cpu", normalization=MeanStdNormalization(), **kwargs)
    gpu = predict_tiled(lambda t: t * 2, [cupy.asarray(images[0]), images[1]], device="gpu",
                        normalization=MeanStdNormalization(), **kwargs)
    assert isinstance(gpu[0], cupy.ndarray) and isinstance(gpu[1], np.ndarray)
    np.testing.assert_allclose(gpu[0].get(), cpu[0], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-6, atol=1e-4)



def test_quantiles_estimated_for_large_float_data_on_disk(monkeypatch):
    import cupatch.normalization.statistics as nm

    monkeypatch.setattr(nm, "MAX_QUANTILE_SAMPLES", 1000)  # force subsampling
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 1, 64, 64)).astype(np.float32)
    norm = QuantileNormalization(0.1, 0.9).fit([as_stack(a, "SCYX", placement="disk")], progress=False)
    exact = np.quantile(a, [0.1, 0.9])
    np.testing.assert_allclose([norm.lower_values[0], norm.upper_values[0]], exact, atol=0.1)
    assert not np.allclose([norm.lower_values[0], norm.upper_values[0]], exact, rtol=0, atol=1e-9)



def test_progress_bar_can_be_switched(capsys):
    stacks, _, _ = make_stacks(np)
    MeanStdNormalization().fit(stacks, progress=False)
    assert capsys.readouterr().err == ""
    MeanStdNormalization().fit(stacks, progress=True)
    assert "input statistics" in capsys.readouterr().err
