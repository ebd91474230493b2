"""One measurement of a waveform sample, the same code for data and simulation
(docs/calibration.md, "What is measured")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ccframe.calibrate import pulses as pl
from ccframe.calibrate.models import PolyaFit, ShapeFit, fit_polya, fit_shape, peak_time
from ccframe.kernels.baseline import baseline_rms
from ccframe.signal.spectrum import QUIET_RMS, NoiseSpectrum, noise_spectrum, segment_samples

LOW_RMS = 3.0
"""Candidates (neighbours of a pulse, and the margin of the isolation test) above this many
noise RMS."""
HIGH_RMS = 4.0
"""Pulses measured (amplitudes, shape, first and last pulse times) above this many RMS."""
FIRST_QUANTILE = 0.05
"""Quantile of the first-pulse times that fixes the pretrigger (tracks close to the wire)."""
LAST_QUANTILE = 0.95
"""Quantile of the last-pulse times compared with the simulated x-t relation."""
BINS_PER_SAMPLE = 4
"""Bins of the average pulse per sample period."""


@dataclass(frozen=True)
class Settings:
    """How a sample is measured; fixed for data and every simulation of one calibration."""

    sampling_ghz: float
    n_base: int
    """Samples of the baseline window (the reader's data.baseline_window_ns)."""
    rms_ref_mv: float
    """Noise unit of every threshold: the data's noise RMS."""
    rise_ns: float
    fall_ns: float
    """Pulse shape that sets the isolation windows and the expected tail."""
    polya_shape: float = 1.5
    """Gamma shape k = 1 + theta with which the mean amplitude is fitted."""

    @property
    def low_mv(self) -> float:
        return LOW_RMS * self.rms_ref_mv

    @property
    def high_mv(self) -> float:
        return HIGH_RMS * self.rms_ref_mv

    @property
    def window(self) -> pl.PulseWindow:
        """Isolation window: the rising edge plus 5 ns (at least 6 samples) of baseline
        before the peak, 3 fall times after it."""
        fs = self.sampling_ghz
        tp = peak_time(self.rise_ns, self.fall_ns)
        lead = math.ceil((tp + self.rise_ns) * fs) + 1
        pre = lead + max(6, math.ceil(5.0 * fs))
        post = max(10, math.ceil(3.0 * self.fall_ns * fs))
        return pl.PulseWindow(pre=pre, lead=lead, post=post, separation=2)

    def tail(self) -> np.ndarray:
        """The normalised pulse k samples after its peak, k = 0 .. 10 fall times."""
        fs, r, f = self.sampling_ghz, self.rise_ns, self.fall_ns
        tp = peak_time(r, f)
        k = np.arange(max(self.window.post + 1, math.ceil(10.0 * f * fs) + 1))
        t = tp + k / fs
        top = math.exp(-tp / f) - math.exp(-tp / r)
        return (np.exp(-t / f) - np.exp(-t / r)) / top


@dataclass
class Measurement:
    """What one sample looks like: per-waveform baselines, the noise, isolated pulses and
    the first and last pulse times."""

    n_waveforms: int
    baseline_mv: np.ndarray
    window_rms_mv: np.ndarray
    noise: NoiseSpectrum
    pulses: pl.PulseSet
    profile: pl.Profile
    first_ns: np.ndarray
    last_ns: np.ndarray
    slow_var: tuple[float, float] | None
    """Variance of the means of a waveform's pulse-free segments (mV^2): slow noise."""
    amplitude_shape: tuple[float, float] | None
    """(median - threshold) / IQR of the isolated-pulse amplitudes: the Polya shape."""
    shape: ShapeFit | None = None
    polya: PolyaFit | None = None
    problems: list[str] = field(default_factory=list)

    def statistics(self) -> dict[str, tuple[float, float]]:
        """The forward-folded statistics: name -> (value, standard error)."""
        stats: dict[str, tuple[float, float]] = {}
        b = self.baseline_mv
        if b.size:
            stats["baseline_mv"] = (
                float(np.median(b)),
                1.25 * float(np.std(b)) / math.sqrt(b.size),
            )
        if self.noise.segments:
            rms = self.noise.rms_mv
            n_eff = self.noise.segments * self.noise.segment_samples / 2
            stats["noise_rms_mv"] = (rms, rms / math.sqrt(2 * n_eff))
        if self.slow_var is not None:
            stats["slow_noise_var"] = self.slow_var
        if self.shape is not None:
            stats["rise_ns"] = (self.shape.rise_ns, self.shape.rise_err)
            stats["fall_ns"] = (self.shape.fall_ns, self.shape.fall_err)
        if self.polya is not None:
            stats["amplitude_mv"] = (self.polya.mean_mv, self.polya.mean_err)
        if self.amplitude_shape is not None:
            stats["amplitude_shape"] = self.amplitude_shape
        if self.first_ns.size >= 20:
            stats["first_pulse_ns"] = quantile(self.first_ns, FIRST_QUANTILE)
            stats["last_pulse_ns"] = quantile(self.last_ns, LAST_QUANTILE)
        return stats


def quantile(x: np.ndarray, q: float, n_boot: int = 100) -> tuple[float, float]:
    """The q-quantile of x and its bootstrap standard error."""
    rng = np.random.default_rng(12345)
    boots = np.quantile(x[rng.integers(0, x.size, (n_boot, x.size))], q, axis=1)
    return float(np.quantile(x, q)), float(np.std(boots))


def amplitude_shape(
    x: np.ndarray, threshold: float, n_boot: int = 100
) -> tuple[float, float] | None:
    """(median - threshold) / interquartile range of the amplitudes above the threshold, and
    its bootstrap error: grows with the Polya shape, insensitive to the pile-up tail."""
    x = x[x > threshold]
    if x.size < 20:
        return None
    rng = np.random.default_rng(12345)
    samples = np.vstack([x, x[rng.integers(0, x.size, (n_boot, x.size))]])
    q25, q50, q75 = np.quantile(samples, [0.25, 0.5, 0.75], axis=1)
    values = (q50 - threshold) / np.maximum(q75 - q25, 1e-12)
    return float(values[0]), float(np.std(values[1:]))


def slow_noise(
    waves: np.ndarray, baseline: np.ndarray, rms: np.ndarray, fs: float
) -> tuple[float, float] | None:
    """Pooled variance of the means of each waveform's pulse-free segments (those
    `noise_spectrum` uses) about their average, and its error: the noise below the
    spectrum's first frequency bin."""
    n, s = waves.shape
    m = segment_samples(fs, s)
    k = s // m
    if n == 0 or k < 2:
        return None
    seg = waves[:, : k * m].reshape(n, k, m)
    limit = (QUIET_RMS * np.maximum(rms, np.float32(1e-6)))[:, None]
    quiet = np.abs(seg - baseline[:, None, None]).max(axis=2) < limit
    means = seg.mean(axis=2, dtype=np.float64)
    count = quiet.sum(axis=1)
    ok = count >= 2
    if ok.sum() < 20:
        return None
    centre = (means * quiet).sum(axis=1)[ok] / count[ok]
    ss = (((means[ok] - centre[:, None]) ** 2) * quiet[ok]).sum(axis=1)
    dof = count[ok] - 1
    per = ss / dof
    return float(ss.sum() / dof.sum()), float(np.std(per) / math.sqrt(per.size))


def measure(waves: np.ndarray, settings: Settings) -> Measurement:
    """Measure (n, samples) waveforms in mV with positive pulses."""
    waves = np.ascontiguousarray(waves, dtype=np.float32)
    fs, n = settings.sampling_ghz, waves.shape[1]
    baseline, rms = baseline_rms(waves, settings.n_base)
    noise = noise_spectrum(waves, baseline, rms, fs)
    window = settings.window
    cands = pl.candidates(waves, baseline, settings.low_mv, window.separation)
    first, last = pl.first_last(waves, cands, settings.high_mv)
    index = pl.isolated(cands, n, window, settings.tail(), settings.low_mv)
    pulses = pl.pulse_set(waves, cands, index, window, fs, settings.high_mv)
    amp = pulses.amplitude
    t_min = -(window.pre - window.lead) / fs
    prof = pl.profile(pulses, t_min, window.post / fs, 1.0 / (fs * BINS_PER_SAMPLE))
    m = Measurement(
        n_waveforms=len(waves),
        baseline_mv=baseline,
        window_rms_mv=rms,
        noise=noise,
        pulses=pulses,
        profile=prof,
        first_ns=first / fs,
        last_ns=last / fs,
        slow_var=slow_noise(waves, baseline, rms, fs),
        amplitude_shape=amplitude_shape(amp, settings.high_mv),
    )
    try:
        m.shape = fit_shape(prof)
    except (ValueError, RuntimeError) as exc:
        m.problems.append(f"pulse shape: {exc}")
    try:
        m.polya = fit_polya(amp, settings.high_mv, settings.polya_shape)
    except (ValueError, RuntimeError) as exc:
        m.problems.append(f"amplitudes: {exc}")
    return m
