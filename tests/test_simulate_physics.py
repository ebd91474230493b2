"""The simulator's physics against the reference numbers (docs/physics.md), on a few thousand
waveforms.

Every statistical tolerance is stated next to its assert, as a multiple of the standard error
of the sample used (computed in the test, not guessed), or as the reference's tolerance when that
is wider. Seeds are fixed, so a pass is reproducible; the tolerances are loose enough that any
seed should pass, and tight enough that a wrong formula or a wrong default fails.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import trapezoid
from scipy.interpolate import PchipInterpolator
from scipy.special import gammainc

from ccframe.simulate import physics
from ccframe.simulate.batch import SimBatch
from ccframe.simulate.config import Noise, Pulse, SimulateConfig
from ccframe.simulate.generator import Simulator
from ccframe.simulate.synthesis import add_pulses

# fmt: off
# docs/physics.md, primary ionization: clusters/cm versus beta*gamma, He/iC4H10 90/10
# (Delphes TrkUtil).
TABLE_BG = np.array([0.5, 0.8, 1, 2, 3, 4, 5, 8, 10, 12, 15, 20, 50, 100, 200, 500, 1000, 1e4])
TABLE_NCL = np.array([42.94, 23.6, 18.97, 12.98, 12.2, 12.13, 12.24, 12.73, 13.03, 13.29, 13.63,
                      14.08, 15.56, 16.43, 16.8, 16.95, 16.98, 16.98])
# docs/physics.md, cluster sizes: Fischle cluster sizes in %, k = 1..19, then 10.9/k^2 up to k = 35.
FISCHLE = np.array([76.60, 12.50, 4.60, 2.00, 1.20, 0.75, 0.50, 0.36, 0.25, 0.19,
                    0.14, 0.10, 0.08, 0.06, 0.048, 0.043, 0.038, 0.034, 0.030,
                    *[10.9 / k**2 for k in range(20, 36)]])
# fmt: on
# docs/physics.md, drift: x-t relation.
XT_R = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75])
XT_T = np.array([9.5, 28.7, 82.6, 162, 277, 427, 626, 920, 1173])
XT_SIGMA = np.array([1.0, 1.9, 3.4, 5.7, 8.8, 13.2, 19.3, 32, 46])
# docs/physics.md, noise: relative noise power per 100 MHz band (1.2 GHz sampling: 6 bands).
BAND_POWER = np.array([1.9, 0.70, 0.44, 0.48, 0.33, 0.24])


def simulate(n: int, seed: int = 1, start: int = 0, **overrides) -> SimBatch:
    """`n` events of SimulateConfig(**overrides) (nested sections as dicts)."""
    return Simulator(SimulateConfig.model_validate(overrides), seed).generate(start, start + n)


def table_density(bg: float) -> float:
    """The reference table (docs/physics.md), interpolated linearly in log(bg)."""
    return float(np.interp(np.log(bg), np.log(TABLE_BG), TABLE_NCL))


def assert_batches_equal(a: SimBatch, b: SimBatch) -> None:
    for f in dataclasses.fields(SimBatch):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        assert x.tobytes() == y.tobytes(), f.name


def concat(parts: list[SimBatch]) -> SimBatch:
    merged = SimBatch.concatenate(parts)
    merged.waveform = np.concatenate([p.waveform for p in parts])
    return merged


# ---------------------------------------------------------------- primary ionization (3)


def test_density_fit_agrees_with_table_at_table_points():
    """The default fit parameters reproduce the reference table (docs/physics.md) within 0.3%
    everywhere."""
    fit = physics.cluster_density(TABLE_BG, SimulateConfig().ionization.density_fit)
    np.testing.assert_allclose(fit, TABLE_NCL, rtol=0.003)


@pytest.mark.parametrize(
    ("particle", "p_gev"),
    [("pi", 1.0), ("pi", 5.0), ("pi", 20.0), ("K", 5.0)],
    ids=["pi-1GeV", "pi-5GeV", "pi-20GeV", "K-5GeV"],
)
def test_clusters_per_cm_match_table(particle, p_gev):
    # Truth does not depend on noise; rms 0 only saves time.
    sim = simulate(
        6000,
        seed=11,
        particle=particle,
        momentum={"distribution": "fixed", "min_gev": p_gev},
        noise={"rms_mv": 0.0},
    )
    bg = p_gev / physics.MASS_GEV[particle]
    np.testing.assert_allclose(sim.beta_gamma, bg, rtol=1e-12)
    # Chords of a uniform impact parameter in [0, R): mean chord = pi R / 2.
    assert sim.chord_cm.mean() == pytest.approx(math.pi * 0.75 / 2, rel=0.02)
    n_total = int(sim.n_clusters.sum())
    measured = n_total / sim.chord_cm.sum()
    sigma = math.sqrt(n_total) / sim.chord_cm.sum()  # Poisson, given the chords: ~0.35%
    assert sigma / measured < 0.005  # the 2% check below is > 4 standard errors
    assert measured == pytest.approx(table_density(bg), rel=0.02)
    # Tighter: the fit the simulator uses, within 4 standard errors.
    assert abs(measured - float(physics.cluster_density(bg))) < 4 * sigma


def test_cluster_count_is_poisson_at_fixed_chord():
    n = 16000
    sim = simulate(
        n,
        seed=12,
        detector={"impact_min_fraction": 0.0, "impact_max_fraction": 0.01},
        momentum={"distribution": "fixed", "min_gev": 10.0},
        noise={"rms_mv": 0.0},
    )
    assert np.ptp(sim.chord_cm) < 1e-4  # chord 1.5 cm, fixed to 0.01%
    mu = float(physics.cluster_density(10.0 / physics.MASS_GEV["pi"])) * 1.5
    counts = sim.n_clusters
    assert counts.mean() == pytest.approx(mu, abs=4 * math.sqrt(mu / n))
    ratio = counts.var(ddof=1) / counts.mean()
    # Var(s^2 / mu) = (2 + 1/mu) / n for a Poisson sample: sigma = 0.011, tolerance 4 sigma.
    sigma_ratio = math.sqrt((2 + 1 / mu) / n)
    assert 4 * sigma_ratio < 0.05
    assert abs(ratio - 1.0) < 4 * sigma_ratio
    # The whole shape: chi-square of the histogram against Poisson(mu), bins with >= 20 expected.
    k = np.arange(counts.max() + 1)
    expected = n * stats.poisson.pmf(k, mu)
    observed = np.bincount(counts, minlength=k.size)
    keep = expected >= 20
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


def test_full_diameter_pion_at_plateau_gives_seed_calibration():
    """Seed talk: a full-diameter crossing at the plateau gives 16.9 x 1.5 = 25.4 clusters."""
    n = 4000
    sim = simulate(
        n,
        seed=13,
        detector={"impact_max_fraction": 0.001},
        momentum={"distribution": "fixed", "min_gev": 180.0},
        noise={"rms_mv": 0.0},
    )
    mean = sim.n_clusters.mean()
    assert math.sqrt(mean / n) / mean < 0.005  # standard error 0.3%
    assert mean == pytest.approx(25.4, rel=0.02)
    assert mean == pytest.approx(16.98 * 1.5, abs=4 * math.sqrt(mean / n))  # table plateau


# ---------------------------------------------------------------- cluster size (4)


def test_cluster_sizes_follow_fischle():
    sim = simulate(5000, seed=14, noise={"rms_mv": 0.0})
    size = sim.cluster_size
    n = size.size
    assert n > 80_000
    p = FISCHLE / FISCHLE.sum()
    k = np.arange(1, 36)
    mean_exact = float(np.sum(k * p))  # 1.5917
    sd_exact = math.sqrt(float(np.sum(k * k * p)) - mean_exact**2)
    assert size.min() >= 1 and size.max() <= 35
    assert size.mean() == pytest.approx(1.59, abs=0.03)  # docs/physics.md, cluster sizes
    assert abs(size.mean() - mean_exact) < 4 * sd_exact / math.sqrt(n)  # 4 SE = 0.025
    frac1 = np.mean(size == 1)
    # docs/physics.md: 76.6% before renormalising the truncated table (0.7677 after; 4 SE = 0.005).
    assert frac1 == pytest.approx(0.766, abs=0.01)
    # Sizes 1..6 one by one, each within 4 binomial standard errors.
    freq = np.bincount(size, minlength=36)[1:] / n
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq[:6] - p[:6]) < 4 * se[:6])
    # Bookkeeping: one primary per cluster, electrons add up.
    assert sim.n_electrons.sum() == size.sum() == sim.electron_time_ns.size
    assert sim.electron_primary.sum() == sim.n_clusters.sum() == n


# ---------------------------------------------------------------- drift (5)


def test_arrival_time_grows_with_drift_radius():
    sim = simulate(4000, seed=15, noise={"rms_mv": 0.0})
    r, t = sim.cluster_radius_cm, sim.cluster_time_ns
    assert r.max() <= 0.75
    edges = np.linspace(0.0, 0.75, 16)
    idx = np.clip(np.digitize(r, edges) - 1, 0, 14)
    means = np.array([t[idx == b].mean() for b in range(15)])
    assert np.all(np.diff(means) > 0)
    near = np.abs(r - 0.5) < 0.005
    se = t[near].std(ddof=1) / math.sqrt(near.sum())
    assert se < 1.0  # ~0.4 ns
    assert abs(t[near].mean() - 427.0) < 4 * se + 0.5  # 0.5 ns: the +-0.005 cm band


@pytest.mark.parametrize("r0", [0.2, 0.5, 0.7])
def test_arrival_time_mean_and_spread_follow_xt_table(r0):
    """Around table radii, t - t(r) has mean 0 and standard deviation sigma_t(r)."""
    sim = simulate(4000, seed=16, noise={"rms_mv": 0.0})
    cl = np.repeat(np.arange(sim.cluster_size.size), sim.cluster_size)
    # Electrons carry their cluster's radius: rebuild it from the event-local cluster index.
    ev = np.repeat(np.arange(len(sim)), sim.n_electrons)
    cl_global = sim.cluster_offsets()[ev] + sim.electron_cluster
    assert np.array_equal(np.sort(cl_global), cl)  # each cluster has cluster_size electrons
    r = sim.cluster_radius_cm[cl_global]
    t = sim.electron_time_ns
    xt = PchipInterpolator(np.r_[0.0, XT_R], np.r_[0.0, XT_T])
    near = np.abs(r - r0) < 0.01
    residual = t[near] - xt(r[near])
    sigma = float(XT_SIGMA[r0 == XT_R][0])
    n = near.sum()
    assert n > 1000
    assert abs(residual.mean()) < 4 * sigma / math.sqrt(n) + 0.1  # 0.1 ns: table rounding
    # sd of a sample standard deviation ~ sigma / sqrt(2n): <= 2.2%; allow 10%.
    assert residual.std() == pytest.approx(sigma, rel=0.10)


# ---------------------------------------------------------------- gain and signal (6)


@pytest.mark.parametrize(("theta", "below"), [(0.5, 0.23), (0.0, 1 - math.exp(-0.375))])
def test_polya_charge(theta, below):
    q = simulate(1500, seed=17, gain={"polya_theta": theta}, noise={"rms_mv": 0.0})
    q = q.electron_charge.astype(np.float64)
    n = q.size
    assert n > 40_000
    var = 1 / (1 + theta)  # Gamma(1 + theta) with mean 1
    assert abs(q.mean() - 1.0) < 4 * math.sqrt(var / n)  # 4 SE ~ 0.016
    assert q.var() == pytest.approx(var, rel=0.05)
    exact = float(gammainc(1 + theta, 0.375 * (1 + theta)))  # 0.2290 for theta = 0.5
    assert exact == pytest.approx(below, abs=0.002)  # docs/physics.md, gas gain: about 23%
    frac = np.mean(q < 0.375)
    assert abs(frac - exact) < 4 * math.sqrt(exact * (1 - exact) / n)  # 4 SE ~ 0.008


def isolated_peak_ratio(sim: SimBatch, config: SimulateConfig, window_ns: float = 40.0) -> float:
    """sum(waveform maximum after each isolated electron) / sum(its charge)."""
    fs, pre = config.detector.sampling_ghz, config.detector.pretrigger_ns
    t, q = sim.electron_time_ns, sim.electron_charge.astype(np.float64)
    ev = np.repeat(np.arange(len(sim)), sim.n_electrons)
    order = np.lexsort((t, ev))
    ts, evs, qs = t[order], ev[order], q[order]
    far = (np.diff(evs) != 0) | (np.diff(ts) > window_ns)
    iso = np.r_[True, far] & np.r_[far, True]
    assert iso.sum() > 2000
    k0 = np.ceil((ts[iso] + pre) * fs).astype(np.int64)
    cols = np.minimum(k0[:, None] + np.arange(round(15 * fs)), sim.waveform.shape[1] - 1)
    peak = sim.waveform[evs[iso][:, None], cols].max(axis=1).astype(np.float64)
    return float(peak.sum() / qs[iso].sum())


@pytest.mark.parametrize(
    "pulse",
    [{}, {"amplitude_mv": 12.5, "rise_ns": 0.5, "fall_ns": 3.0}],
    ids=["default", "12.5mV"],
)
def test_single_electron_peak_amplitude(pulse):
    config = SimulateConfig.model_validate({"noise": {"rms_mv": 0.0}, "pulse": pulse})
    sim = Simulator(config, 18).generate(0, 3000)
    ratio = isolated_peak_ratio(sim, config)
    # Sampled maxima sit slightly below the continuous peak (0.83 ns sampling).
    assert ratio == pytest.approx(config.pulse.amplitude_mv, rel=0.05)
    assert ratio <= config.pulse.amplitude_mv * 1.001


def single_electron_waveforms(pulse: dict, polarity: str = "positive") -> tuple:
    """Waveforms (noise off) holding exactly one electron, with the expected shape."""
    config = SimulateConfig.model_validate(
        {
            "ionization": {"density_scale": 0.05, "cluster_size_percent": [100.0]},
            "noise": {"rms_mv": 0.0},
            "pulse": {**pulse, "polarity": polarity},
        }
    )
    sim = Simulator(config, 19).generate(0, 600)
    one = sim.n_electrons == 1
    assert one.sum() > 150
    eo = sim.electron_offsets()[:-1][one]
    p = config.pulse
    args = (p.rise_ns, p.fall_ns, p.ion_tail_fraction, p.ion_tail_t0_ns, p.ion_tail_cut_ns)
    fs, pre = config.detector.sampling_ghz, config.detector.pretrigger_ns
    grid = np.arange(config.detector.n_samples) / fs
    lag = grid[None, :] - (sim.electron_time_ns[eo] + pre)[:, None]
    q = sim.electron_charge[eo].astype(np.float64)[:, None]
    norm = p.amplitude_mv / physics.pulse_peak_value(*args)
    expected = norm * q * physics.pulse_shape(lag, *args)
    return sim.waveform[one].astype(np.float64), expected


@pytest.mark.parametrize("tail", [0.0, 0.02, 0.2])
def test_ion_tail_keeps_mean_gain_peak_at_amplitude(tail):
    args = (1.0, 5.0, tail, 0.2, 200.0)
    peak = physics.pulse_peak_value(*args)
    # An independent fine grid (log-spaced near 0, where the tail peaks).
    t = np.r_[0.0, np.geomspace(1e-6, 300.0, 2_000_000)]
    assert physics.pulse_shape(t, *args).max() == pytest.approx(peak, rel=1e-4)
    # Unit integral, of which the ion tail holds the fraction `tail`.
    shape = physics.pulse_shape(t, *args)
    assert trapezoid(shape, t) == pytest.approx(1.0, rel=2e-3)
    main_only = (1 - tail) * physics.pulse_shape(t, 1.0, 5.0)
    assert trapezoid(shape - main_only, t) == pytest.approx(tail, abs=2e-3)
    # The simulator uses that normalisation: an electron of charge q is A q shape / peak.
    wave, expected = single_electron_waveforms({"ion_tail_fraction": tail})
    np.testing.assert_allclose(wave, expected, rtol=1e-4, atol=1e-5 * 8.0)


# ---------------------------------------------------------------- polarity and ADC (6, 7)


def test_negative_polarity_flips_pulses():
    pos = simulate(300, seed=20, noise={"rms_mv": 0.0})
    neg = simulate(300, seed=20, noise={"rms_mv": 0.0}, pulse={"polarity": "negative"})
    assert pos.waveform.max() > 8.0 and pos.waveform.min() >= 0.0
    np.testing.assert_array_equal(neg.waveform, -pos.waveform)
    assert neg.waveform.min() == -pos.waveform.max() and neg.waveform.max() <= 0.0
    # Single electrons keep their shape, negated.
    wave, expected = single_electron_waveforms({}, polarity="negative")
    np.testing.assert_allclose(wave, -expected, rtol=1e-4, atol=1e-5 * 8.0)


def test_adc_quantization_on_lsb_grid():
    raw = simulate(300, seed=21, digitization={"baseline_mv": 3.0})
    adc = simulate(300, seed=21, digitization={"baseline_mv": 3.0, "adc_bits": 12})
    codes = adc.waveform.astype(np.float64) / 0.5
    np.testing.assert_array_equal(codes, np.round(codes))
    assert codes.min() >= -2048 and codes.max() <= 2047
    assert np.unique(codes).size > 20
    # Rounding to the nearest code: |error| <= LSB / 2 (nothing clips at 12 bits here).
    assert np.max(np.abs(adc.waveform - raw.waveform)) <= 0.25 + 1e-6
    # Few bits clip at the range ends: 5 bits of 0.5 mV span [-8, 7.5] mV.
    few = simulate(300, seed=21, digitization={"adc_bits": 5, "adc_lsb_mv": 0.5})
    assert few.waveform.max() == 7.5 and few.waveform.min() >= -8.0


# ---------------------------------------------------------------- noise (7)


@pytest.mark.parametrize(
    ("spectrum", "rms", "baseline"),
    [("coloured", 1.0, 0.0), ("white", 1.0, 0.0), ("coloured", 2.5, 3.0), ("white", 2.5, 3.0)],
)
def test_baseline_noise_rms(spectrum, rms, baseline):
    config = SimulateConfig(
        noise=Noise(rms_mv=rms, spectrum=spectrum),
        digitization={"baseline_mv": baseline},
    )
    sim = Simulator(config, 22).generate(0, 3000)
    n_pre = round(config.detector.pretrigger_ns * config.detector.sampling_ghz)
    assert n_pre == 60
    # Nothing arrives before t0: the first 60 samples are baseline + noise only.
    assert sim.electron_time_ns.min() >= 0.0
    pre = sim.waveform[:, :n_pre].astype(np.float64) - baseline
    # Spread of this estimate over seeds: 0.35% (coloured), 0.2% (white); tolerance 3%.
    assert math.sqrt(np.mean(pre**2)) == pytest.approx(rms, rel=0.03)
    # The pooled mean sits at the baseline (its spread over seeds: 0.6% of rms, coloured).
    assert abs(pre.mean()) < 0.03 * rms


def band_powers(noise: np.ndarray, fs_mhz: float) -> tuple[np.ndarray, float]:
    """Mean periodogram power per 100 MHz band (band 0 without < 20 MHz) and in 1-20 MHz."""
    power = np.mean(np.abs(np.fft.rfft(noise, axis=1)) ** 2, axis=0)
    freq = np.fft.rfftfreq(noise.shape[1], d=1.0 / fs_mhz)
    bands = np.array(
        [power[(freq >= max(lo, 20.0)) & (freq < lo + 100.0)].mean() for lo in range(0, 600, 100)]
    )
    return bands, float(power[(freq > 0) & (freq < 20.0)].mean())


def test_noise_filter_normalisation_and_template():
    all_bands = np.r_[BAND_POWER, 0.19, 0.14, 0.07, 0.01]
    h = physics.noise_filter(2400, 1.2, list(all_bands), 100, 4, 20)
    freq = np.fft.rfftfreq(2400, d=1 / 1200.0)
    assert h[0] == 0.0
    # |H|^2 follows the template (x4 below 20 MHz; bands [lo, lo + 100) MHz, so the Nyquist
    # bin at 600 MHz is in the 7th band), up to one overall factor.
    template = all_bands[(freq // 100).astype(int)] * np.where(freq < 20, 4, 1)
    assert freq[300] == 150.0
    np.testing.assert_allclose(h[1:] ** 2 / template[1:], h[300] ** 2 / 0.70, rtol=1e-12)
    # Unit white noise, shaped by H, keeps unit variance.
    white = np.random.default_rng(23).standard_normal((2000, 2400))
    shaped = np.fft.irfft(np.fft.rfft(white, axis=1) * h, n=2400, axis=1)
    assert shaped.std() == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("spectrum", ["coloured", "white"])
def test_simulated_noise_spectrum_follows_band_template(spectrum):
    config = SimulateConfig(
        ionization={"density_scale": 1e-9},  # no clusters: noise only
        noise=Noise(spectrum=spectrum, rms_mv=1.5),
    )
    sim = Simulator(config, 24).generate(0, 2000)
    assert sim.n_clusters.sum() == 0
    noise = sim.waveform.astype(np.float64)
    assert noise.std() == pytest.approx(1.5, rel=0.02)
    bands, below20 = band_powers(noise, 1200.0)
    if spectrum == "white":
        np.testing.assert_allclose(bands / bands.mean(), 1.0, rtol=0.05)
        assert below20 / bands[0] == pytest.approx(1.0, rel=0.1)
    else:
        assert bands[0] / bands[1] == pytest.approx(1.9 / 0.70, rel=0.10)
        np.testing.assert_allclose(bands / bands[0], BAND_POWER / 1.9, rtol=0.10)
        assert below20 / bands[0] == pytest.approx(4.0, rel=0.15)  # the x4 excess


def test_non_default_band_template_is_followed():
    config = SimulateConfig(
        ionization={"density_scale": 1e-9},
        noise=Noise(band_power=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], low_frequency_excess=1.0),
    )
    bands, below20 = band_powers(Simulator(config, 25).generate(0, 1000).waveform, 1200.0)
    np.testing.assert_allclose(bands / bands[0], [1, 2, 3, 4, 5, 6], rtol=0.10)
    assert below20 / bands[0] == pytest.approx(1.0, rel=0.15)


# ---------------------------------------------------------------- reproducibility


def test_same_seed_same_bytes_different_seed_differs():
    config = SimulateConfig(momentum={"distribution": "log_uniform"}, particle=["pi", "K"])
    a = Simulator(config, 26).generate(0, 600)
    b = Simulator(config, 26).generate(0, 600)
    assert_batches_equal(a, b)
    c = Simulator(config, 27).generate(0, 600)
    assert not np.array_equal(a.waveform, c.waveform)
    assert not np.array_equal(a.n_clusters, c.n_clusters)
    assert not np.array_equal(a.momentum_gev, c.momentum_gev)


def test_chunking_independence():
    config = SimulateConfig()
    sim = Simulator(config, 28)
    whole = sim.generate(0, 1000)
    np.testing.assert_array_equal(whole.event_id, np.arange(1000))
    # Each 256-event block has its own random stream: blocks do not repeat one another.
    assert not np.array_equal(whole.n_clusters[:256], whole.n_clusters[256:512])
    assert_batches_equal(whole, concat([sim.generate(0, 300), sim.generate(300, 1000)]))
    assert_batches_equal(
        whole, concat([sim.generate(0, 1), sim.generate(1, 777), sim.generate(777, 1000)])
    )
    assert_batches_equal(whole, concat(list(Simulator(config, 28).iter_chunks(1000, 300))))
    # A range that starts later holds the same events.
    assert_batches_equal(whole.slice(513, 1000), sim.generate(513, 1000))


# ---------------------------------------------------------------- the add_pulses kernel


def pulses_reference(n_wave, n_samp, offsets, arrival, charge, dt, pulse: Pulse) -> np.ndarray:
    """Slow and obvious: physics.pulse_shape at every sample for every electron, summed."""
    args = (pulse.rise_ns, pulse.fall_ns, pulse.ion_tail_fraction, pulse.ion_tail_t0_ns)
    args = (*args, pulse.ion_tail_cut_ns)
    norm = pulse.amplitude_mv / physics.pulse_peak_value(*args)
    t = np.arange(n_samp) * dt
    out = np.zeros((n_wave, n_samp))
    for i in range(n_wave):
        for j in range(offsets[i], offsets[i + 1]):
            out[i] += norm * charge[j] * physics.pulse_shape(t - arrival[j], *args)
    return out


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "py_func"])
@pytest.mark.parametrize(
    ("pulse", "fs"),
    [
        (Pulse(), 1.2),
        (Pulse(amplitude_mv=5.0, rise_ns=0.7, fall_ns=9.0, ion_tail_fraction=0.15), 1.5),
        (Pulse(ion_tail_fraction=0.4, ion_tail_t0_ns=0.5, ion_tail_cut_ns=60.0), 2.0),
    ],
    ids=["default", "tail", "short-tail"],
)
def test_add_pulses_matches_numpy_reference(compiled, pulse, fs):
    rng = np.random.default_rng(29)
    n_wave, n_samp = 7, 700
    dt = 1.0 / fs
    counts = rng.integers(0, 25, n_wave)
    counts[2] = 0  # an empty waveform
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    # Some arrivals before the window, some after its end.
    arrival = rng.uniform(-30.0, n_samp * dt + 20.0, offsets[-1])
    charge = rng.gamma(1.5, 1 / 1.5, offsets[-1])
    peak = physics.pulse_peak_value(
        pulse.rise_ns, pulse.fall_ns, pulse.ion_tail_fraction, pulse.ion_tail_t0_ns,
        pulse.ion_tail_cut_ns,
    )  # fmt: skip
    norm = pulse.amplitude_mv / peak
    main_scale = norm * (1 - pulse.ion_tail_fraction) / (pulse.fall_ns - pulse.rise_ns)
    tail_integral = math.log((pulse.ion_tail_cut_ns + pulse.ion_tail_t0_ns) / pulse.ion_tail_t0_ns)
    tail_scale = norm * pulse.ion_tail_fraction / tail_integral
    base = rng.normal(0.0, 1.0, (n_wave, n_samp)).astype(np.float32)  # pulses are added to it
    out = base.copy()
    kernel = add_pulses if compiled else add_pulses.py_func
    kernel(
        out, offsets, arrival, charge, dt, pulse.rise_ns, pulse.fall_ns, main_scale, tail_scale,
        pulse.ion_tail_t0_ns, pulse.ion_tail_cut_ns,
    )  # fmt: skip
    ref = pulses_reference(n_wave, n_samp, offsets, arrival, charge, dt, pulse)
    assert ref.max() > pulse.amplitude_mv  # pulses were there to find
    assert np.all(out[2] == base[2])
    np.testing.assert_allclose(
        out.astype(np.float64) - base, ref, rtol=1e-4, atol=1e-5 * pulse.amplitude_mv
    )
