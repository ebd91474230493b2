"""Tail cancellation: the kernel against a slow reference and on ideal pulses, the reader
applying it, calibrate reading around it, and a chain refusing inputs read otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ccframe.cli import main
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.kernels.baseline import baseline_rms
from ccframe.kernels.tail import _cancel, cancel_tails, tail_factor

FS, FALL = 1.2, 5.0


def run_cli(*args: str) -> int | str | None:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def reference(x: np.ndarray, a: float) -> np.ndarray:
    y = x.astype(np.float64)
    y[:, 1:] = (x[:, 1:] - a * x[:, :-1]) / (1.0 - a)
    return y


def test_kernel_matches_the_reference_and_refills_baseline_and_rms():
    rng = np.random.default_rng(3)
    waves = rng.normal(10.0, 2.0, (7, 300)).astype(np.float32)
    want = reference(waves, tail_factor(FS, FALL))
    base, rms = np.empty(7, np.float32), np.empty(7, np.float32)
    for kernel in (cancel_tails, None):
        w = waves.copy()
        if kernel is None:  # the kernel body in Python, for coverage
            _cancel.py_func(w, tail_factor(FS, FALL), 30, base, rms)
        else:
            kernel(w, base, rms, FS, FALL, 30)
        np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-4)
        want_base, want_rms = baseline_rms(w, 30)
        np.testing.assert_allclose(base, want_base, rtol=1e-5)
        np.testing.assert_allclose(rms, want_rms, rtol=1e-5)


def test_an_exponential_fall_becomes_one_sample_with_the_same_integral():
    a = tail_factor(FS, FALL)
    k = np.arange(400)
    pulse = np.zeros((1, 500), np.float32)
    pulse[0, 50:450] = a**k  # sampled exp(-t / fall) starting at sample 50
    w = pulse.copy()
    cancel_tails(w, np.empty(1, np.float32), np.empty(1, np.float32), FS, FALL, 20)
    assert w[0, 50] == pytest.approx(1.0 / (1.0 - a), rel=1e-5)
    assert np.abs(np.delete(w[0], [50, 450])).max() < 1e-4  # 450: where the sampled pulse ends
    assert w.sum() == pytest.approx(pulse.sum(), rel=1e-4)


@settings(max_examples=40, deadline=None, database=None)
@given(
    level=st.floats(-500, 500),
    n=st.integers(1, 64),
    fall=st.floats(0.05, 1e4),
)
def test_a_constant_waveform_keeps_its_value(level, n, fall):
    w = np.full((2, n), level, np.float32)
    base, rms = np.empty(2, np.float32), np.empty(2, np.float32)
    cancel_tails(w, base, rms, FS, fall, n)
    np.testing.assert_allclose(
        w, level, rtol=1e-3, atol=1e-3 * max(1.0, 1.0 / (1 - math.exp(-1 / (FS * fall))))
    )


@settings(max_examples=30, deadline=None, database=None)
@given(arrays(np.float32, (3, 40), elements=st.floats(-100, 100, width=32)))
def test_filtering_is_linear(x):
    a = tail_factor(FS, FALL)
    base, rms = np.empty(3, np.float32), np.empty(3, np.float32)
    y, y2 = x.copy(), (2 * x).copy()
    cancel_tails(y, base, rms, FS, FALL, 10)
    cancel_tails(y2, base, rms, FS, FALL, 10)
    np.testing.assert_allclose(y2, 2 * y, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(y, reference(x, a), rtol=1e-4, atol=1e-3)


def test_bad_arguments_are_refused():
    w = np.zeros((2, 10), np.float32)
    out = np.empty(2, np.float32)
    with pytest.raises(ValueError, match="float32"):
        cancel_tails(w.astype(np.float64), out, out, FS, FALL, 5)
    with pytest.raises(ValueError, match="n_window"):
        cancel_tails(w, out, out, FS, FALL, 11)
    with pytest.raises(ValueError, match="fall_ns"):
        tail_factor(FS, 0.0)


def test_the_reader_applies_it_and_calibrate_reads_around_it(sim_file):
    plain = next(iter_batches(DataConfig(), [str(sim_file)]))
    data = DataConfig(tail_cancellation_ns=FALL)
    filtered = next(iter_batches(data, [str(sim_file)]))
    n_base = round(data.baseline_window_ns * plain.sampling_ghz)
    want = reference(plain.waveforms, tail_factor(plain.sampling_ghz, FALL))
    np.testing.assert_allclose(filtered.waveforms, want, rtol=1e-5, atol=1e-3)
    base, rms = baseline_rms(filtered.waveforms, n_base)
    np.testing.assert_allclose(filtered.rms, rms, rtol=1e-5)
    np.testing.assert_allclose(filtered.baseline, base, rtol=1e-5, atol=1e-5)
    # a gain of 1 at zero frequency: the baselines stay where they were, on average
    assert np.mean(filtered.baseline - plain.baseline) == pytest.approx(0.0, abs=0.1)

    from ccframe.calibrate.read import read_sample

    sample = read_sample(data.model_copy(update={"files": [str(sim_file)]}), 50, "test")
    np.testing.assert_array_equal(sample.waves, plain.waveforms[:50])


def test_a_chain_refuses_inputs_read_with_another_tail_cancellation(trained, tmp_path, capsys):
    out = tmp_path / "x.root"
    sim = str(trained / "sim.root")
    code = run_cli(
        "infer", str(trained), sim, "-o", str(out), "--set", "data.tail_cancellation_ns=5"
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "data.tail_cancellation_ns" in err and "no tail cancellation" in err
    assert not out.exists()
