"""The independent beam-test-like generator (tests/beamtest_generator.py): its files read with
ccframe's reader through the `data:` mapping a user would write, and its noise and pulse
amplitude are what its settings say."""

from __future__ import annotations

import json

import numpy as np
import pytest
from beamtest_generator import (
    data_mapping,
    generate,
    noise,
    preset,
    pulse_area_mv_ns,
    read_truth,
    synthesize,
    with_electronics,
)

from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches


def _read(path, electronics):
    data = DataConfig.model_validate(data_mapping(electronics, [str(path)]))
    batches = list(iter_batches(data))
    return np.concatenate([b.waveforms for b in batches]), batches[0]


@pytest.mark.parametrize("name", ["drs4", "fast_adc"])
def test_file_reads_with_the_mapping(tmp_path, name):
    p = preset(name)
    e = p.electronics
    out = generate(tmp_path / "beam.root", 300, p, seed=7, block=128)
    waves, batch = _read(out.waveforms, e)
    assert waves.shape == (300, e.n_samples)
    assert batch.truth is None and batch.sampling_ghz == e.sampling_ghz
    # positive pulses after the mapping: the baseline is -baseline_mv, pulses go up
    assert np.median(batch.baseline) == pytest.approx(-e.baseline_mv, abs=0.3)
    assert (waves.max(axis=1) - batch.baseline).mean() > 3 * e.gain_mv
    truth = read_truth(out)
    np.testing.assert_array_equal(truth["entry"], np.arange(300))
    expected = p.physics.cluster_density_per_cm * np.pi / 2 * p.physics.tube_radius_cm
    assert truth["n_clusters"].mean() == pytest.approx(expected, rel=0.1)
    settings = json.loads(out.settings.read_text())
    assert settings["data"]["truth"] == "none"
    assert settings["electronics"]["gain_mv"] == e.gain_mv


@pytest.mark.parametrize("name", ["drs4", "fast_adc"])
def test_noise_rms_is_the_setting(tmp_path, name):
    """Ensemble RMS of the pulse-free pretrigger, read back from the file (quantisation,
    pickup and ripple included), and of the generated noise alone."""
    e = preset(name).electronics
    generated = noise(np.random.default_rng(1), 400, e)
    noise_only = with_electronics(preset(name), gain_mv=1e-9)
    out = generate(tmp_path / "noise.root", 300, noise_only, seed=3)
    waves, _ = _read(out.waveforms, e)
    pre = waves[:, : int(e.pretrigger_ns * e.sampling_ghz)]
    total = np.sqrt(e.noise_rms_mv**2 + (e.pickup_mv**2 + e.ripple_mv**2) / 2)
    assert generated.std() == pytest.approx(total, rel=0.03)
    assert pre.std() == pytest.approx(e.total_noise_rms_mv, rel=0.05)


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("drs4", {}),
        ("fast_adc", {}),
        ("drs4", {"ion_tail_fraction": 0.1}),
        ("fast_adc", {"rc_ns": 3.0}),
        ("fast_adc", {"rc_ns": 2.0, "ion_tail_fraction": 0.05}),
    ],
)
def test_single_electron_peaks_at_gain(name, changes):
    """A mean-gain electron peaks at gain_mv at the best sampling phase, never above (with an
    ion tail and an RC low-pass too)."""
    e = with_electronics(preset(name), **changes).electronics
    n = 200
    phase = np.linspace(0.0, 1.0 / e.sampling_ghz, n, endpoint=False)
    w = synthesize(n, np.arange(n), 100.0 + phase, np.ones(n), e)
    peaks = w.max(axis=1)
    assert peaks.max() == pytest.approx(e.gain_mv, rel=1e-3)
    assert peaks.min() > 0.8 * e.gain_mv
    assert w.sum(axis=1).mean() / e.sampling_ghz == pytest.approx(pulse_area_mv_ns(e), rel=1e-3)


def test_file_pulse_integral_matches_gain(tmp_path):
    """Noise off: the mean integral of a waveform is n_electrons x the single-electron area
    (Polya charges average to 1)."""
    p = with_electronics(preset("drs4"), noise_rms_mv=0.0)
    out = generate(tmp_path / "quiet.root", 300, p, seed=5)
    waves, batch = _read(out.waveforms, p.electronics)
    area = (waves - batch.baseline[:, None]).sum(axis=1) / p.electronics.sampling_ghz
    electrons = read_truth(out)["n_electrons"]
    ratio = area.sum() / (electrons.sum() * pulse_area_mv_ns(p.electronics))
    assert ratio == pytest.approx(1.0, abs=0.03)


def test_same_seed_same_file(tmp_path):
    p = preset("drs4")
    a = generate(tmp_path / "a.root", 50, p, seed=11)
    b = generate(tmp_path / "b.root", 50, p, seed=11)
    wa, _ = _read(a.waveforms, p.electronics)
    wb, _ = _read(b.waveforms, p.electronics)
    np.testing.assert_array_equal(wa, wb)
