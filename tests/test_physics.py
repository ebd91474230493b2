"""The simulator's physics against shared/physics.md (sections 2-7), on a few thousand waveforms.

Tolerances are several standard errors of the sample sizes used here.
"""

from __future__ import annotations

import numpy as np
import pytest

from ccframe.simulate import physics
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator
from ccframe.simulate.synthesis import add_pulses

# physics.md section 3: clusters/cm versus beta*gamma for He/iC4H10 90/10.
TABLE_BG = np.array([0.5, 0.8, 1, 2, 3, 4, 5, 8, 10, 12, 15, 20, 50, 100, 200, 500, 1000, 1e4])
TABLE_NCL = np.array(
    [
        42.94,
        23.6,
        18.97,
        12.98,
        12.2,
        12.13,
        12.24,
        12.73,
        13.03,
        13.29,
        13.63,
        14.08,
        15.56,
        16.43,
        16.8,
        16.95,
        16.98,
        16.98,
    ]
)


def simulate(n: int, seed: int = 1, **overrides) -> object:
    return Simulator(SimulateConfig.model_validate(overrides), seed).generate(0, n)


def table_density(bg: float) -> float:
    return float(np.interp(np.log(bg), np.log(TABLE_BG), TABLE_NCL))


def test_fit_reproduces_table():
    np.testing.assert_allclose(physics.cluster_density(TABLE_BG), TABLE_NCL, rtol=0.004)


@pytest.mark.parametrize(
    ("particle", "p_gev"), [("pi", 1.0), ("pi", 5.0), ("pi", 20.0), ("K", 5.0)]
)
def test_clusters_per_cm_match_table(particle, p_gev):
    sim = simulate(4000, particle=particle, momentum={"distribution": "fixed", "min_gev": p_gev})
    measured = sim.n_clusters.sum() / sim.chord_cm.sum()
    expected = table_density(p_gev / physics.MASS_GEV[particle])
    assert measured == pytest.approx(expected, rel=0.02)  # statistical error ~0.3%


def test_cluster_count_is_poisson_at_fixed_chord():
    sim = simulate(
        5000,
        detector={"impact_min_fraction": 0.0, "impact_max_fraction": 0.01},
        momentum={"distribution": "fixed", "min_gev": 100.0},
    )
    ratio = sim.n_clusters.var(ddof=1) / sim.n_clusters.mean()
    assert ratio == pytest.approx(1.0, abs=0.08)  # std of the ratio ~ sqrt(2/n) = 0.02


def test_full_diameter_pion_at_plateau_gives_seed_calibration():
    sim = simulate(
        3000,
        detector={"impact_max_fraction": 0.001},
        momentum={"distribution": "fixed", "min_gev": 150.0},
    )
    assert sim.n_clusters.mean() == pytest.approx(16.9 * 1.5, rel=0.02)  # seed talk: 25.25-25.4


def test_cluster_sizes_follow_fischle():
    sim = simulate(3000)
    assert sim.cluster_size.mean() == pytest.approx(1.59, abs=0.03)
    assert np.mean(sim.cluster_size == 1) == pytest.approx(0.766, abs=0.01)
    assert sim.cluster_size.max() <= 35
    assert sim.n_electrons.sum() == sim.cluster_size.sum()
    assert sim.electron_primary.sum() == sim.n_clusters.sum()


def test_arrival_time_grows_with_drift_radius():
    sim = simulate(2000)
    edges = np.linspace(0.0, 0.75, 16)
    idx = np.digitize(sim.cluster_radius_cm, edges) - 1
    means = np.array([sim.cluster_time_ns[idx == b].mean() for b in range(15)])
    assert np.all(np.diff(means) > 0)
    near = np.abs(sim.cluster_radius_cm - 0.5) < 0.005
    assert sim.cluster_time_ns[near].mean() == pytest.approx(427.0, abs=5.0)


def test_polya_gain():
    charge = simulate(1000).electron_charge
    assert charge.mean() == pytest.approx(1.0, abs=0.02)
    assert np.mean(charge < 0.375) == pytest.approx(0.23, abs=0.015)


@pytest.mark.parametrize(
    "noise",
    [{}, {"spectrum": "white"}, {"rms_mv": 2.5}],
    ids=["coloured", "white", "rms2.5"],
)
def test_baseline_noise_rms(noise):
    baseline = 3.0 if noise.get("rms_mv") == 2.5 else 0.0
    sim = simulate(3000, noise=noise, digitization={"baseline_mv": baseline})
    pre = sim.waveform[:, :55].astype(np.float64) - baseline  # before any pulse (t0 at 50 ns)
    assert np.sqrt(np.mean(pre**2)) == pytest.approx(noise.get("rms_mv", 1.0), rel=0.03)


def test_coloured_noise_follows_band_template():
    sim = simulate(2000, ionization={"density_scale": 1e-9})  # noise only
    assert sim.n_clusters.sum() == 0
    noise = sim.waveform.astype(np.float64)
    power = np.mean(np.abs(np.fft.rfft(noise, axis=1)) ** 2, axis=0)
    freq = np.fft.rfftfreq(noise.shape[1], d=1 / 1200.0)
    band = lambda lo, hi: power[(freq >= lo) & (freq < hi)].mean()  # noqa: E731
    assert band(20, 100) / band(100, 200) == pytest.approx(1.9 / 0.70, rel=0.1)
    assert band(1, 20) / band(20, 100) == pytest.approx(4.0, rel=0.15)


def test_single_electron_peak_amplitude():
    sim = simulate(1500, noise={"rms_mv": 0.0})
    offsets = sim.electron_offsets()
    fs, pre = 1.2, 50.0
    ratios = []
    for i in range(len(sim)):
        t = sim.electron_time_ns[offsets[i] : offsets[i + 1]]
        q = sim.electron_charge[offsets[i] : offsets[i + 1]]
        for j in range(t.size):
            if np.sum(np.abs(t - t[j]) < 40.0) == 1:  # isolated within +-40 ns
                k = int((t[j] + pre) * fs)
                ratios.append(sim.waveform[i, k : k + 8].max() / q[j])
    assert len(ratios) > 500
    assert np.mean(ratios) == pytest.approx(8.0, rel=0.05)


def test_ion_tail_keeps_peak_normalised():
    peak = physics.pulse_peak_value(1.0, 5.0, 0.2, 0.2, 200.0)
    t = np.linspace(0, 50, 100001)
    shape = physics.pulse_shape(t, 1.0, 5.0, 0.2, 0.2, 200.0)
    assert shape.max() == pytest.approx(peak, rel=1e-4)
    sim = simulate(200, noise={"rms_mv": 0.0}, pulse={"ion_tail_fraction": 0.2})
    assert sim.waveform.max() > 8.0


def test_polarity_and_adc():
    neg = simulate(50, pulse={"polarity": "negative"}, noise={"rms_mv": 0.0})
    assert neg.waveform.max() <= 0.0 < -neg.waveform.min()
    adc = simulate(50, digitization={"adc_bits": 12, "adc_lsb_mv": 0.5})
    codes = adc.waveform / 0.5
    np.testing.assert_array_equal(codes, np.round(codes))
    assert codes.max() <= 2047 and codes.min() >= -2048


def test_same_seed_same_bytes_and_chunking_independence():
    cfg = SimulateConfig()
    whole = Simulator(cfg, 3).generate(0, 1000)
    parts = [Simulator(cfg, 3).generate(a, b) for a, b in [(0, 300), (300, 700), (700, 1000)]]
    assert whole.waveform.tobytes() == np.concatenate([p.waveform for p in parts]).tobytes()
    for name in ("electron_time_ns", "cluster_size", "momentum_gev", "event_id"):
        np.testing.assert_array_equal(
            getattr(whole, name), np.concatenate([getattr(p, name) for p in parts])
        )
    assert not np.array_equal(Simulator(cfg, 4).generate(0, 10).waveform, whole.waveform[:10])


def pulses_reference(n_samples, offsets, arrival, charge, dt, rise, fall, scale, tail, t0, cut):
    out = np.zeros((len(offsets) - 1, n_samples))
    t = np.arange(n_samples) * dt
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            lag = t - arrival[j]
            pos = lag >= 0
            main = np.where(
                pos,
                np.exp(-np.where(pos, lag, 0) / fall) - np.exp(-np.where(pos, lag, 0) / rise),
                0.0,
            )
            out[i] += scale * charge[j] * main
            if tail > 0:
                keep = pos & (lag < cut)
                out[i] += np.where(keep, tail * charge[j] / (np.where(keep, lag, 0) + t0), 0.0)
    return out


@pytest.mark.parametrize("tail", [0.0, 0.05])
@pytest.mark.parametrize("compiled", [True, False])
def test_add_pulses_against_reference(tail, compiled):
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 12, 6)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    arrival = rng.uniform(-5, 260, offsets[-1])
    charge = rng.gamma(1.5, 1 / 1.5, offsets[-1])
    args = (offsets, arrival, charge, 0.8333, 1.0, 5.0, 2.0, tail, 0.2, 50.0)
    out = np.zeros((6, 300), dtype=np.float32)
    (add_pulses if compiled else add_pulses.py_func)(out, *args)
    np.testing.assert_allclose(out, pulses_reference(300, *args), rtol=1e-4, atol=1e-5)
