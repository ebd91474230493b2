"""The headline count statistics (ccframe.metrics.counting) against known distributions: the
Gaussian-core width, the RMS resolution, the relative bias, and their edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import truncnorm

from ccframe.metrics.counting import (
    _clip_factor,
    core_sigma,
    count_metrics,
    count_summary,
    json_ready,
    momentum_edges,
    response_curve,
    versus,
)
from ccframe.metrics.streaming import AUC_BINS, Columns, ScoreHistogram, compact

# --- core_sigma -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("sigma", [0.05, 1.0, 30.0])
def test_core_sigma_of_a_gaussian_is_its_sigma_within_the_statistical_error(n, sigma):
    """The clipped and corrected width estimates sigma with an error ~ 1.1 sigma / sqrt(n)
    (a bit more than the plain standard deviation's 0.71 sigma / sqrt(n)): 5 sigma / sqrt(n)
    is a tolerance that tightens with n (without the clipping correction the result would be
    0.88 sigma, outside it from n = 1000 on)."""
    x = np.random.default_rng(n).normal(3.0 * sigma, sigma, n)
    assert abs(core_sigma(x) - sigma) < 5 * sigma / math.sqrt(n)


@pytest.mark.parametrize(("clip", "spread"), [(1.5, 1.9), (2.0, 1.2), (3.0, 0.75)])
def test_core_sigma_is_unbiased_for_any_clip(clip, spread):
    """`spread`: the estimator's relative error times sqrt(n) (measured over seeds); at 3
    sigma the clipping correction is only 1.4%, and still outside the tolerance."""
    n = 200_000
    x = np.random.default_rng(11).normal(0.0, 2.0, n)
    assert core_sigma(x, clip=clip) == pytest.approx(2.0, rel=5 * spread / math.sqrt(n))


@pytest.mark.parametrize("clip", [1.0, 1.5, 2.0, 3.0])
def test_clip_correction_is_the_width_of_a_truncated_unit_gaussian(clip):
    assert _clip_factor(clip) == pytest.approx(truncnorm(-clip, clip).std(), rel=1e-12)
    if clip == 2.0:
        assert _clip_factor(clip) ** 2 == pytest.approx(0.774, abs=5e-4)  # the docstring's


def test_core_sigma_with_wide_tails_returns_the_core_not_the_rms():
    """90% N(0, 1) plus 10% N(0, 10): the RMS is ~3.3, the core stays ~1 (the tails add ~1%
    inside the clipping window)."""
    rng = np.random.default_rng(4)
    n = 100_000
    x = np.where(rng.random(n) < 0.1, rng.normal(0.0, 10.0, n), rng.normal(0.0, 1.0, n))
    assert x.std() > 3.0
    assert core_sigma(x) == pytest.approx(1.0, rel=0.03)


def test_core_sigma_ignores_outliers_and_non_finite_values():
    x = np.random.default_rng(5).normal(0.0, 1.0, 5_000)
    polluted = np.concatenate([x, [1e6, -1e6, np.nan, np.inf, -np.inf]])
    assert core_sigma(polluted) == pytest.approx(core_sigma(x), rel=1e-3)
    assert math.isfinite(core_sigma(polluted))


def test_core_sigma_of_too_few_values_is_nan():
    """Fewer than 2 finite values: no width (NaN), not an error and not 0."""
    assert math.isnan(core_sigma(np.array([])))
    assert math.isnan(core_sigma(np.array([0.3])))
    assert math.isnan(core_sigma(np.array([0.3, np.nan, np.inf])))


def test_core_sigma_of_equal_values_is_zero():
    assert core_sigma(np.full(10, 0.25)) == 0.0


def test_core_sigma_of_two_values_is_their_corrected_half_distance():
    """Both values lie within 2 sigma of their median: the width is their standard deviation
    (half their distance) over the clipping correction."""
    assert core_sigma(np.array([1.0, 2.0])) == pytest.approx(0.5 / _clip_factor(2.0))


@pytest.mark.parametrize("tail", [[10.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
def test_core_sigma_of_a_spike_with_spread_is_nan_not_zero(tail):
    """Mostly one value plus a spread (e.g. most counts 0): no Gaussian core; a width of 0
    would read as a perfect resolution."""
    values = np.concatenate([np.zeros(95), tail])
    assert math.isnan(core_sigma(values))


def gaussian_sample(seed: int, n: int, tails: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    if tails:
        x[rng.random(n) < 0.1] *= 8.0
    return x


samples = st.builds(
    gaussian_sample,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 2_000),
    tails=st.booleans(),
)


@given(x=samples, k=st.floats(0.01, 100.0))
def test_scaling_the_residuals_by_k_scales_the_core_sigma_by_k(x, k):
    assert core_sigma(k * x) == pytest.approx(k * core_sigma(x), rel=1e-6)


@given(x=samples, shift=st.floats(-5.0, 5.0))
def test_shifting_the_residuals_leaves_the_core_sigma(x, shift):
    assert core_sigma(x + shift) == pytest.approx(core_sigma(x), rel=1e-6)


@given(x=samples)
def test_core_sigma_is_symmetric_and_order_free(x):
    expected = core_sigma(x)
    assert core_sigma(-x) == pytest.approx(expected, rel=1e-9)
    assert core_sigma(np.sort(x)[::-1]) == pytest.approx(expected, rel=1e-9)


# --- count_metrics ----------------------------------------------------------------------------


def test_count_metrics_by_hand():
    """Three waveforms with residuals +1, -2, 0 (relative +0.1, -0.1, 0)."""
    m = count_metrics(np.array([11, 18, 40]), np.array([10, 20, 40]))
    assert m["waveforms"] == 3
    assert m["mean_true"] == pytest.approx(70 / 3) and m["mean_pred"] == pytest.approx(23.0)
    assert m["bias"] == pytest.approx(-1 / 3)
    assert m["relative_bias"] == pytest.approx(69 / 70 - 1)
    assert m["mae"] == pytest.approx(1.0)
    assert m["mse"] == pytest.approx(5 / 3)
    assert m["relative_resolution_rms"] == pytest.approx(math.sqrt(0.02 / 3))


def test_relative_bias_of_a_five_percent_excess_is_plus_five_percent():
    true = np.random.default_rng(1).poisson(30, 1_000) + 1
    m = count_metrics(1.05 * true, true)
    assert m["relative_bias"] == pytest.approx(0.05, abs=1e-12)
    assert m["relative_resolution_rms"] == pytest.approx(0.0, abs=1e-12)  # a pure scale


def test_relative_bias_is_a_ratio_of_sums_not_a_mean_of_ratios():
    """relative_bias = sum(N_pred) / sum(N_true) - 1 over the waveforms with N_true > 0, so a
    waveform weighs in proportion to its true count: one more cluster on 1 and none on 100
    is 1/101, where the mean of per-waveform ratios would be (1 + 0) / 2."""
    m = count_metrics(np.array([2.0, 100.0]), np.array([1.0, 100.0]))
    assert m["relative_bias"] == pytest.approx(1 / 101, rel=1e-12)


def test_rms_resolution_is_numpys_population_std_of_the_relative_residuals():
    """relative_resolution_rms = np.std((N_pred - N_true) / N_true), ddof 0: the spread about
    the mean relative residual, not about 0 (a bias does not enter it)."""
    rng = np.random.default_rng(2)
    true = rng.poisson(20, 50) + 1
    pred = true + rng.normal(0.5, 2.0, 50)
    rel = (pred - true) / true
    got = count_metrics(pred, true)["relative_resolution_rms"]
    assert got == pytest.approx(np.std(rel), rel=1e-12)
    assert got != pytest.approx(np.std(rel, ddof=1), rel=1e-6)
    assert got < np.sqrt(np.mean(rel**2))


def test_gaussian_count_errors_give_equal_core_and_rms_resolutions():
    rng = np.random.default_rng(3)
    true = np.full(20_000, 100)
    pred = true + rng.normal(2.0, 5.0, true.size)
    m = count_metrics(pred, true)
    assert m["relative_bias"] == pytest.approx(0.02, abs=0.001)
    assert m["relative_resolution_core"] == pytest.approx(0.05, rel=0.04)
    assert m["relative_resolution_rms"] == pytest.approx(0.05, rel=0.02)


def test_count_metrics_core_resolution_ignores_mismatched_waveforms():
    """5% of waveforms counted badly (as twice the truth): the RMS resolution grows, the core
    stays at the Gaussian 0.05."""
    rng = np.random.default_rng(6)
    true = np.full(20_000, 100)
    pred = true * (1 + rng.normal(0.0, 0.05, true.size))
    pred[rng.random(true.size) < 0.05] *= 2
    m = count_metrics(pred, true)
    assert m["relative_resolution_rms"] > 0.15
    assert m["relative_resolution_core"] == pytest.approx(0.05, rel=0.05)


def test_waveforms_without_true_clusters_are_left_out():
    true, pred = np.array([10, 20, 40]), np.array([11, 18, 40])
    with_empty = count_metrics(np.r_[pred, 7, 3], np.r_[true, 0, 0])
    assert json_ready(with_empty) == json_ready(count_metrics(pred, true))
    assert with_empty["waveforms"] == 3


@pytest.mark.parametrize(
    ("pred", "true"), [([], []), ([3.0, 1.0], [0, 0])], ids=["empty", "no-true-clusters"]
)
def test_count_metrics_without_waveforms_is_a_zero_count(pred, true):
    m = count_metrics(np.array(pred), np.array(true))
    assert m == {"waveforms": 0}
    assert count_summary(m) == "no waveforms with true clusters"


def test_count_metrics_of_a_single_waveform_has_no_core_resolution():
    """One waveform: the means, bias and MAE are its own; the RMS of one value is 0 and the
    core width is NaN (fewer than 2 values), written as null in JSON and 'n/a' in text."""
    m = count_metrics(np.array([5]), np.array([4]))
    assert m["waveforms"] == 1
    assert m["bias"] == 1.0 and m["relative_bias"] == pytest.approx(0.25) and m["mae"] == 1.0
    assert m["relative_resolution_rms"] == 0.0
    assert math.isnan(m["relative_resolution_core"])
    written = json.loads(json.dumps(json_ready(m), allow_nan=False))
    assert written["relative_resolution_core"] is None
    assert "0.000 (RMS), n/a (core)" in count_summary(m)
    assert m["median_ratio"] == pytest.approx(1.25) and m["iqr_over_median"] == 0.0
    assert count_summary(m).endswith("IQR/median of N/N_true 0.000, response slope n/a")


def test_iqr_over_median_of_the_count_ratio():
    """The ml4cc / CEPC resolution: IQR of pred / true over its median (waveforms with
    true > 0 only); a median of 0 has none."""
    true = np.array([10, 10, 10, 10, 10, 0])
    pred = np.array([8, 9, 10, 11, 12, 99])
    m = count_metrics(pred, true)
    q25, q50, q75 = np.percentile(pred[:5] / true[:5], [25, 50, 75])
    assert m["median_ratio"] == pytest.approx(q50) == 1.0
    assert m["iqr_over_median"] == pytest.approx((q75 - q25) / q50) == pytest.approx(0.2)
    assert math.isnan(count_metrics(np.zeros(3), np.ones(3))["iqr_over_median"])


true_counts = st.builds(
    lambda seed, n: np.random.default_rng(seed).poisson(25, n) + 1,
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 500),
)


def noisy(true: np.ndarray, seed: int) -> np.ndarray:
    return true + np.random.default_rng(seed).normal(0.0, 3.0, true.size)


@given(true=true_counts, seed=st.integers(0, 2**32 - 1), b=st.floats(-0.5, 1.0))
def test_scaling_the_prediction_scales_resolution_and_compounds_the_bias(true, seed, b):
    """N_pred -> (1 + b) N_pred: relative residuals r -> (1 + b)(1 + r) - 1, so both widths
    scale by 1 + b and the relative bias becomes (1 + b)(1 + bias) - 1."""
    pred = noisy(true, seed)
    m, scaled = count_metrics(pred, true), count_metrics((1 + b) * pred, true)
    assert scaled["relative_bias"] == pytest.approx(
        (1 + b) * (1 + m["relative_bias"]) - 1, abs=1e-12
    )
    assert scaled["relative_resolution_rms"] == pytest.approx(
        (1 + b) * m["relative_resolution_rms"], rel=1e-9
    )
    assert scaled["relative_resolution_core"] == pytest.approx(
        (1 + b) * m["relative_resolution_core"], rel=1e-6
    )


@given(seed=st.integers(0, 2**32 - 1), n_true=st.integers(5, 200), shift=st.floats(-3.0, 3.0))
def test_shifting_the_prediction_moves_the_bias_not_the_resolution(seed, n_true, shift):
    """With one true count N for every waveform, N_pred + c shifts the bias by c, the relative
    bias by c / N, and leaves both resolutions."""
    true = np.full(300, n_true)
    pred = noisy(true, seed)
    m, shifted = count_metrics(pred, true), count_metrics(pred + shift, true)
    assert shifted["bias"] == pytest.approx(m["bias"] + shift, abs=1e-9)
    assert shifted["relative_bias"] == pytest.approx(m["relative_bias"] + shift / n_true, abs=1e-9)
    assert shifted["relative_resolution_rms"] == pytest.approx(
        m["relative_resolution_rms"], rel=1e-9
    )
    assert shifted["relative_resolution_core"] == pytest.approx(
        m["relative_resolution_core"], rel=1e-6
    )


# --- json_ready, versus -----------------------------------------------------------------------


def test_json_ready_turns_every_unavailable_number_into_null():
    obj = {
        "a": float("nan"),
        "b": [1.0, float("inf"), np.float32("nan"), (2, -np.inf)],
        "c": {"d": np.float64(0.5), "e": 3, "f": True, "g": "nan"},
    }
    ready = json_ready(obj)
    assert ready == {
        "a": None,
        "b": [1.0, None, None, [2, None]],
        "c": {"d": 0.5, "e": 3, "f": True, "g": "nan"},
    }
    json.dumps(ready, allow_nan=False)
    assert math.isnan(obj["a"])  # a copy: the input keeps its NaN


def test_versus_splits_the_metrics_in_bins_and_skips_empty_ones():
    momentum = np.array([1.0, 1.5, 5.0, 6.0, 7.0])
    true = np.array([10, 10, 20, 20, 20])
    pred = np.array([11, 9, 20, 22, 20])
    rows = versus(momentum, np.array([1.0, 2.0, 4.0, 8.0]), pred, true)
    assert [(r["low"], r["high"], r["waveforms"]) for r in rows] == [(1.0, 2.0, 2), (4.0, 8.0, 3)]
    assert rows[0]["relative_bias"] == pytest.approx(0.0)
    assert rows[1]["relative_bias"] == pytest.approx(2 / 60)
    del rows[1]["low"], rows[1]["high"]
    assert json_ready(rows[1]) == json_ready(count_metrics(pred[2:], true[2:]))


def test_momentum_edges_cover_every_waveform():
    momentum = np.random.default_rng(8).uniform(0.2, 200.0, 1_000)
    true = np.full(momentum.size, 30)
    edges = momentum_edges(momentum)
    assert len(edges) == 9 and np.all(np.diff(np.log(edges)) > 0)
    rows = versus(momentum, edges, true + 1, true)
    assert sum(r["waveforms"] for r in rows) == momentum.size  # the maximum included
    single = momentum_edges(np.full(5, 3.0))
    assert len(single) == 2 and single[0] < 3.0 < single[1]


# --- streaming: compact columns and the binned AUC (ccframe.metrics.streaming) --------------


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=50))
def test_compact_keeps_every_integer_in_four_bytes(values):
    for dtype in (np.int64, np.float64):
        if dtype is np.float64 and max(abs(v) for v in values) > 2**53:
            continue
        column = compact(np.asarray(values, dtype=dtype))
        assert column.dtype == np.int32 and np.array_equal(column, np.asarray(values))


def test_compact_leaves_what_int32_cannot_hold_exactly():
    for values in ([0.5, 1.0], [1.0, np.nan], [1.0, np.inf], [2**40, 0], [True, False]):
        column = np.asarray(values)
        assert compact(column) is column
    assert compact(np.zeros(0)).dtype == np.int32


def test_columns_in_batches_give_the_metrics_of_the_whole_arrays():
    rng = np.random.default_rng(5)
    true = rng.poisson(20, 3_000)
    pred = true + rng.normal(0, 3, true.size).round()
    ml = (pred + 0.5).astype(np.float32)
    columns = Columns()
    for lo in range(0, true.size, 700):
        columns.add("true", true[lo : lo + 700])
        columns.add("pred", pred[lo : lo + 700])
        columns.add("ml", ml[lo : lo + 700])
    assert columns.get("true").dtype == np.int32 and columns.get("ml").dtype == np.float32
    assert columns.nbytes == 3 * 4 * true.size
    assert "true" in columns and "other" not in columns and columns.get("other").size == 0
    for name, whole in (("pred", pred), ("ml", ml)):
        assert json_ready(count_metrics(columns.get(name), columns.get("true"))) == json_ready(
            count_metrics(whole, true)
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_auc_equals_sklearns_within_its_bound(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    signal = rng.random(200_000) < 0.3
    logit = rng.normal(np.where(signal, 2.0, -2.0), 3.0)
    scores = (1 / (1 + np.exp(-logit))).astype(np.float32)
    hist = ScoreHistogram()
    for lo in range(0, scores.size, 30_000):
        hist.add(scores[lo : lo + 30_000], signal[lo : lo + 30_000])
    assert hist.auc() == pytest.approx(roc_auc_score(signal, scores), abs=1e-5)


def test_binned_auc_counts_ties_and_the_saturated_ends_as_one_half():
    from sklearn.metrics import roc_auc_score

    scores = np.array([0.0, 1e-12, 0.2, 0.2, 0.5, 0.7, 0.9, 1.0, 1.0], dtype=np.float32)
    signal = np.array([0, 1, 0, 1, 0, 1, 1, 0, 1], dtype=bool)
    hist = ScoreHistogram()
    hist.add(scores, signal)
    # 1e-12 (signal) and 0 (noise) share the lowest bin: one of the 5 x 4 pairs counts 1/2, not 1
    assert hist.auc() == pytest.approx(roc_auc_score(signal, scores) - 0.5 / 20)
    assert ScoreHistogram.bins(np.array([0.0, 1.0])).tolist() == [0, AUC_BINS - 1]
    one_class = ScoreHistogram()
    one_class.add(scores, np.ones(scores.size, dtype=bool))
    assert math.isnan(one_class.auc())


@given(
    st.integers(min_value=0, max_value=2**31),
    st.floats(min_value=0.2, max_value=1.5),
    st.floats(min_value=-5.0, max_value=5.0),
)
def test_response_slope_of_a_linear_counter_is_its_slope(seed, slope, offset):
    rng = np.random.default_rng(seed)
    true = rng.integers(5, 40, 2000).astype(float)
    pred = offset + slope * true + rng.normal(0.0, 1.0, true.size)
    m = count_metrics(pred, true)
    assert m["response_slope"] == pytest.approx(slope, abs=0.02)
    assert count_metrics(true, true)["response_slope"] == pytest.approx(1.0)
    # a counter that predicts the mean whatever the truth has slope 0
    flat = count_metrics(np.full(true.size, true.mean()), true)["response_slope"]
    assert flat == pytest.approx(0.0, abs=1e-12)


def test_response_curve_is_mean_and_spread_per_true_count():
    true = np.array([3] * 20 + [4] * 25 + [9] * 5)
    pred = np.concatenate([np.full(20, 2.0), np.tile([3.0, 5.0], 12), [4.0], np.ones(5)])
    curve = response_curve(pred, true)
    assert curve["n_true"] == [3, 4] and curve["waveforms"] == [20, 25]  # 9: too few
    assert curve["mean_pred"] == pytest.approx([2.0, 4.0])
    assert curve["std_pred"] == pytest.approx([0.0, np.std(pred[20:45])])
    assert response_curve(pred, true, min_waveforms=5)["n_true"] == [3, 4, 9]
    assert np.isnan(count_metrics(np.arange(4.0), np.full(4, 7.0))["response_slope"])
