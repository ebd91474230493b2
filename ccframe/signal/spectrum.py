"""The noise power spectrum of waveforms, measured on pulse-free segments
(docs/algorithms.md, "Noise power spectrum")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEGMENT_NS = 200.0
"""Default segment length: 5 MHz resolution, long enough to see a slow ripple's excess."""
QUIET_RMS = 4.0
"""A segment is pulse-free when no sample leaves baseline +- QUIET_RMS x the noise RMS."""


@dataclass
class NoiseSpectrum:
    """One-sided power spectral density of the noise, mV^2/MHz, on an rfft frequency grid.

    `power.sum() * df_mhz` is the noise variance (mV^2) without the DC bin."""

    freq_mhz: np.ndarray  # (m,)
    power: np.ndarray  # (m,) mV^2 / MHz
    segments: int  # pulse-free segments averaged
    segment_samples: int

    @property
    def df_mhz(self) -> float:
        return float(self.freq_mhz[1] - self.freq_mhz[0]) if self.freq_mhz.size > 1 else 0.0

    @property
    def rms_mv(self) -> float:
        return float(np.sqrt(np.sum(self.power[1:]) * self.df_mhz))

    def merge(self, other: NoiseSpectrum) -> NoiseSpectrum:
        """The segment-weighted mean of two spectra on the same grid."""
        total = self.segments + other.segments
        if total == 0:
            return self
        power = (self.power * self.segments + other.power * other.segments) / total
        return NoiseSpectrum(self.freq_mhz, power, total, self.segment_samples)


def segment_samples(sampling_ghz: float, n_samples: int, segment_ns: float = SEGMENT_NS) -> int:
    """Samples per segment: segment_ns at this rate, at least 8, at most the waveform."""
    return int(min(n_samples, max(8, round(segment_ns * sampling_ghz))))


def noise_spectrum(
    waveforms: np.ndarray,
    baseline: np.ndarray,
    rms: np.ndarray,
    sampling_ghz: float,
    segment_ns: float = SEGMENT_NS,
    quiet_rms: float = QUIET_RMS,
) -> NoiseSpectrum:
    """Average one-sided PSD (mV^2/MHz) of the pulse-free segments of `waveforms` (n, s).

    Each waveform is cut into consecutive segments of `segment_ns`; a segment is used when
    every sample stays within `quiet_rms` x the waveform's noise RMS of its baseline. Each
    used segment has its own mean removed and a Hann window applied (the window's power is
    divided out), so a pulse-free segment anywhere in the window counts, not only the
    pretrigger."""
    n, s = waveforms.shape
    m = segment_samples(sampling_ghz, s, segment_ns)
    k = s // m
    freq = np.fft.rfftfreq(m, d=1.0 / (sampling_ghz * 1000.0))
    if n == 0 or k == 0:
        return NoiseSpectrum(freq, np.zeros(freq.size), 0, m)
    seg = waveforms[:, : k * m].reshape(n, k, m)
    limit = (quiet_rms * np.maximum(rms, np.float32(1e-6)))[:, None]
    dev = np.abs(seg - baseline[:, None, None]).max(axis=2)
    quiet = seg[dev < limit]  # (q, m)
    if quiet.shape[0] == 0:
        return NoiseSpectrum(freq, np.zeros(freq.size), 0, m)
    quiet = quiet.astype(np.float64)
    quiet -= quiet.mean(axis=1, keepdims=True)
    window = np.hanning(m)
    spec = np.fft.rfft(quiet * window, axis=1)
    power = (np.abs(spec) ** 2).mean(axis=0)
    weight = np.full(freq.size, 2.0)
    weight[0] = 1.0
    if m % 2 == 0:
        weight[-1] = 1.0
    fs_mhz = sampling_ghz * 1000.0
    psd = weight * power / (fs_mhz * np.sum(window**2))
    return NoiseSpectrum(freq, psd, int(quiet.shape[0]), m)
