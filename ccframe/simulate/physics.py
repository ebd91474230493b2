"""Physics of a drift cell: particles, cluster density, cluster sizes, x-t relation, pulse shape.

The formulas and their sources are explained in docs/physics.md; the functions take the typed
config values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MASS_GEV = {"e": 0.000511, "mu": 0.10566, "pi": 0.13957, "K": 0.49368, "p": 0.93827}
PDG_ID = {"e": 11, "mu": 13, "pi": 211, "K": 321, "p": 2212}
MIN_BETA_GAMMA = 0.5  # below this the cluster-density fit is an extrapolation


def beta_gamma(momentum_gev: np.ndarray | float, particle: str) -> np.ndarray:
    """beta*gamma = p / m."""
    return np.asarray(momentum_gev, dtype=np.float64) / MASS_GEV[particle]


def cluster_density(
    bg: np.ndarray | float,
    fit: Sequence[float] = (0.628333, 15.43253, 3.4623e-6, 2.02641, 2.64968),
) -> np.ndarray:
    """Primary clusters per cm in He/iC4H10 90/10 versus beta*gamma (Delphes TrkUtil fit).

    n_cl = P1 / beta^P4 * (P2 - beta^P4 - ln(P3 + bg^-P5))
    """
    p1, p2, p3, p4, p5 = fit
    bg = np.asarray(bg, dtype=np.float64)
    beta = bg / np.sqrt(1.0 + bg * bg)
    bp = beta**p4
    return p1 / bp * (p2 - bp - np.log(p3 + bg ** (-p5)))


def cluster_size_cdf(percent: list[float]) -> np.ndarray:
    """Cumulative distribution of the cluster size k = 1..len(percent), renormalised to 1."""
    p = np.asarray(percent, dtype=np.float64)
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    return cdf


class DriftTable:
    """Monotone (PCHIP) x-t relation r -> t(r), sigma_t(r) with t(0) = sigma(0) = 0.

    Tabulated on a fine grid so that lookups are a cheap linear interpolation.
    """

    def __init__(
        self,
        radius_cm: list[float],
        time_ns: list[float],
        sigma_ns: list[float],
        r_max_cm: float,
        n_grid: int = 4096,
    ) -> None:
        from scipy.interpolate import PchipInterpolator  # scipy is slow to import

        r = np.concatenate([[0.0], radius_cm])
        self.grid_cm = np.linspace(0.0, max(r_max_cm, r[-1]), n_grid)
        self.time_ns = PchipInterpolator(r, np.concatenate([[0.0], time_ns]), extrapolate=True)(
            self.grid_cm
        )
        self.sigma_ns = np.maximum(
            PchipInterpolator(r, np.concatenate([[0.0], sigma_ns]), extrapolate=True)(self.grid_cm),
            0.0,
        )

    def time(self, r_cm: np.ndarray) -> np.ndarray:
        return np.interp(r_cm, self.grid_cm, self.time_ns)

    def sigma(self, r_cm: np.ndarray) -> np.ndarray:
        return np.interp(r_cm, self.grid_cm, self.sigma_ns)


def pulse_peak(rise_ns: float, fall_ns: float) -> tuple[float, float]:
    """Time and value of the maximum of exp(-t/fall) - exp(-t/rise)."""
    t_peak = np.log(fall_ns / rise_ns) * rise_ns * fall_ns / (fall_ns - rise_ns)
    return float(t_peak), float(np.exp(-t_peak / fall_ns) - np.exp(-t_peak / rise_ns))


def pulse_shape(
    t_ns: np.ndarray,
    rise_ns: float,
    fall_ns: float,
    tail_fraction: float = 0.0,
    tail_t0_ns: float = 0.2,
    tail_cut_ns: float = 200.0,
) -> np.ndarray:
    """Unnormalised single-electron pulse: (1-f) main/I_main + f tail/I_tail (0 for t < 0).

    main = exp(-t/fall) - exp(-t/rise) (integral fall - rise); tail = 1/(t + t0) up to the cut.
    """
    t = np.asarray(t_ns, dtype=np.float64)
    pos = t >= 0
    tc = np.where(pos, t, 0.0)
    main = np.where(pos, np.exp(-tc / fall_ns) - np.exp(-tc / rise_ns), 0.0)
    out = (1.0 - tail_fraction) * main / (fall_ns - rise_ns)
    if tail_fraction > 0:
        tail = np.where(pos & (t < tail_cut_ns), 1.0 / (tc + tail_t0_ns), 0.0)
        out = out + tail_fraction * tail / np.log((tail_cut_ns + tail_t0_ns) / tail_t0_ns)
    return out


def pulse_peak_value(
    rise_ns: float, fall_ns: float, tail_fraction: float, tail_t0_ns: float, tail_cut_ns: float
) -> float:
    """Maximum of `pulse_shape` (numerically, on a fine grid when a tail is present)."""
    if tail_fraction == 0:
        return pulse_peak(rise_ns, fall_ns)[1] / (fall_ns - rise_ns)
    t = np.linspace(0.0, 10.0 * fall_ns, 200_001)
    return float(pulse_shape(t, rise_ns, fall_ns, tail_fraction, tail_t0_ns, tail_cut_ns).max())


def noise_filter(
    n_samples: int,
    sampling_ghz: float,
    band_power: list[float],
    band_width_mhz: float,
    low_frequency_excess: float,
    low_frequency_cut_mhz: float,
) -> np.ndarray:
    """Amplitude filter |H_k| on the rfft bins for the band-power template, normalised so
    that shaped unit white noise keeps unit variance. The DC bin is zero: the baseline is
    set separately."""
    freq_mhz = np.fft.rfftfreq(n_samples, d=1.0 / (sampling_ghz * 1000.0))
    band = np.minimum((freq_mhz / band_width_mhz).astype(np.int64), len(band_power) - 1)
    power = np.asarray(band_power, dtype=np.float64)[band]
    power = np.where(freq_mhz < low_frequency_cut_mhz, power * low_frequency_excess, power)
    return normalised_filter(power, n_samples)


def measured_noise_filter(
    n_samples: int, sampling_ghz: float, measured_mhz: list[float], measured_power: list[float]
) -> np.ndarray:
    """Amplitude filter for a measured power spectrum, linearly interpolated onto the rfft
    bins (held at its end values outside the measured range), normalised like
    `noise_filter`."""
    freq_mhz = np.fft.rfftfreq(n_samples, d=1.0 / (sampling_ghz * 1000.0))
    power = np.interp(freq_mhz, measured_mhz, measured_power)
    return normalised_filter(power, n_samples)


def normalised_filter(power: np.ndarray, n_samples: int) -> np.ndarray:
    """sqrt(power) on the rfft bins of an n-sample waveform, with DC removed and scaled so
    that filtered unit white noise has unit variance."""
    power = np.array(power, dtype=np.float64)
    power[0] = 0.0
    weight = np.full(power.size, 2.0)  # each rfft bin stands for +f and -f ...
    weight[0] = 1.0
    if n_samples % 2 == 0:
        weight[-1] = 1.0  # ... except DC and Nyquist
    total = np.sum(weight * power) / n_samples
    if total <= 0:
        raise ValueError("noise power is zero at every frequency below Nyquist")
    return np.sqrt(power / total)
