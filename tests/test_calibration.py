"""Response calibration of learned counters (ccframe.ml.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from ccframe.metrics.counting import count_metrics
from ccframe.ml.calibration import MIN_SLOPE, calibrated, fit_response


def shrinking_counts(seed: int = 0, slope: float = 0.7, n: int = 4000):
    """A counter that shrinks towards the mean: pred = mean + slope (true - mean) + noise."""
    rng = np.random.default_rng(seed)
    true = rng.integers(5, 40, n).astype(float)
    pred = true.mean() + slope * (true - true.mean()) + rng.normal(0.0, 1.5, n)
    return pred, true


def test_fitted_response_is_the_shrinking_slope():
    pred, true = shrinking_counts(slope=0.7)
    calibration = fit_response(pred, true)
    assert calibration.applied and calibration.waveforms == true.size
    assert calibration.slope == pytest.approx(0.7, abs=0.02)
    assert calibration.offset == pytest.approx(true.mean() * 0.3, abs=0.5)


def test_calibrated_model_follows_the_truth_with_slope_one():
    from ccframe.ml.runtime import configure, keras

    configure(seed=1)
    pred, true = shrinking_counts(slope=0.6)
    # a "model" that outputs its input: the calibration layer alone acts on the counts
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    calibration = fit_response(pred, true)
    fixed = np.asarray(calibrated(model, calibration)(pred[:, None].astype(np.float32))).ravel()
    # the counts the stage derives without running the model again are the model's
    np.testing.assert_allclose(calibration.apply(pred), fixed, rtol=1e-6)
    before, after = count_metrics(pred, true), count_metrics(fixed, true)
    assert before["response_slope"] == pytest.approx(0.6, abs=0.02)
    assert after["response_slope"] == pytest.approx(1.0, abs=1e-3)
    assert after["relative_bias"] == pytest.approx(0.0, abs=1e-3)
    # what is left is the counter's noise in units of the truth: 1.5 / 0.6 clusters
    assert np.std(fixed - true) == pytest.approx(1.5 / 0.6, rel=0.05)


def test_a_counter_that_barely_responds_is_left_uncalibrated():
    pred, true = shrinking_counts(slope=MIN_SLOPE / 3)
    calibration = fit_response(pred, true)
    assert not calibration.applied
    model = object()
    assert calibrated(model, calibration) is model
    assert "left uncalibrated" in calibration.message("counter")
    assert not fit_response(np.ones(3), np.full(3, 7.0)).applied  # no spread in the truth
