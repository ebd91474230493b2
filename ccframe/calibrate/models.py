"""Direct estimators: the double-exponential fit of an average pulse and the Polya
(Gamma) fit of a truncated amplitude spectrum (docs/calibration.md)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ccframe.calibrate.pulses import Profile


def double_exponential(t: np.ndarray, c: float, t0: float, rise: float, fall: float) -> np.ndarray:
    """c (exp(-(t - t0)/fall) - exp(-(t - t0)/rise)) for t > t0, else 0."""
    u = np.maximum(np.asarray(t, dtype=np.float64) - t0, 0.0)
    return c * (np.exp(-u / fall) - np.exp(-u / rise))


def peak_time(rise: float, fall: float) -> float:
    """Time from the start of a double-exponential pulse to its maximum (ns)."""
    return math.log(fall / rise) * rise * fall / (fall - rise)


@dataclass(frozen=True)
class ShapeFit:
    """Double-exponential fit of an average pulse."""

    rise_ns: float
    fall_ns: float
    rise_err: float
    fall_err: float
    t0_ns: float
    scale: float
    chi2_ndf: float

    def model(self, t: np.ndarray) -> np.ndarray:
        return double_exponential(t, self.scale, self.t0_ns, self.rise_ns, self.fall_ns)


def _guess(prof: Profile) -> tuple[float, float, float]:
    """(t0, rise, fall) from the profile's 10-90% rise and its 1/e decay."""
    t, y = prof.t_ns, prof.mean
    i_max = int(np.nanargmax(y))
    top = y[i_max]
    before = np.flatnonzero(y[:i_max] < 0.1 * top)
    t10 = t[before[-1]] if before.size else t[0]
    after = np.flatnonzero(y[i_max:] < top / math.e)
    decay = t[i_max + after[0]] - t[i_max] if after.size else 0.5 * (t[-1] - t[i_max])
    rise = max((t[i_max] - t10) / 3.0, 0.1)
    return t10, rise, max(decay, 1.5 * rise)


def fit_shape(prof: Profile) -> ShapeFit:
    """Least-squares fit of the double exponential to the profile (bins with entries)."""
    from scipy.optimize import curve_fit

    ok = (prof.count > 2) & np.isfinite(prof.mean) & (prof.err > 0)
    t, y, e = prof.t_ns[ok], prof.mean[ok], prof.err[ok]
    if t.size < 6:
        raise ValueError("too few profile bins for a pulse-shape fit")
    t0, rise, fall = _guess(Profile(t, y, e, prof.count[ok]))

    def model(t: np.ndarray, c: float, t0: float, rise: float, extra: float) -> np.ndarray:
        return double_exponential(t, c, t0, rise, rise + extra)

    c0 = 1.0 / max(
        float(double_exponential(np.array([t0 + peak_time(rise, fall)]), 1.0, t0, rise, fall)[0]),
        1e-6,
    )
    p0 = [c0, t0, rise, fall - rise]
    lower = [0.0, float(t[0]) - 50.0, 0.01, 0.01]
    upper = [np.inf, float(t[-1]), 500.0, 5000.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        popt, pcov = curve_fit(model, t, y, p0=p0, sigma=e, bounds=(lower, upper), maxfev=20000)
    c, t0, rise, extra = (float(v) for v in popt)
    var = np.diag(pcov) if np.all(np.isfinite(pcov)) else np.full(4, np.nan)
    fall_err = (
        math.sqrt(max(var[2] + var[3] + 2 * pcov[2, 3], 0.0))
        if np.isfinite(var).all()
        else math.nan
    )
    chi2 = float(np.sum(((y - model(t, *popt)) / e) ** 2))
    return ShapeFit(
        rise_ns=rise,
        fall_ns=rise + extra,
        rise_err=math.sqrt(max(var[2], 0.0)),
        fall_err=fall_err,
        t0_ns=t0,
        scale=c,
        chi2_ndf=chi2 / max(t.size - 4, 1),
    )


@dataclass(frozen=True)
class PolyaFit:
    """Gamma fit (mean, shape k = 1 + theta) of amplitudes above a threshold."""

    mean_mv: float
    shape: float
    mean_err: float
    shape_err: float


def fit_polya(amplitudes: np.ndarray, threshold_mv: float, shape: float) -> PolyaFit:
    """Maximum-likelihood mean of a Gamma of shape k = `shape` fitted to the amplitudes above
    `threshold_mv`, truncation included; its error from the likelihood's curvature. (With k
    free as well, the fit is degenerate when the threshold is near the mode: the amplitudes
    then show only the tail.)"""
    from scipy.optimize import minimize_scalar
    from scipy.special import gammaincc, gammaln

    x = np.asarray(amplitudes, dtype=np.float64)
    x = x[x > threshold_mv]
    if x.size < 20:
        raise ValueError(f"{x.size} amplitudes above {threshold_mv:.3g} mV; a fit needs 20")
    logx_sum, n, x_sum = float(np.log(x).sum()), x.size, float(x.sum())
    k = float(shape)

    def nll(log_mean: float) -> float:
        scale = math.exp(log_mean) / k
        tail = float(gammaincc(k, threshold_mv / scale))
        if not tail > 1e-300:
            return 1e300
        logl = (k - 1) * logx_sum - x_sum / scale - n * (float(gammaln(k)) + k * math.log(scale))
        return -(logl - n * math.log(tail))

    centre = math.log(float(x.mean()))
    res = minimize_scalar(nll, bounds=(centre - 6.0, centre + 2.0), method="bounded",
                          options={"xatol": 1e-6})  # fmt: skip
    h = 1e-3
    curv = (nll(res.x + h) - 2 * nll(res.x) + nll(res.x - h)) / (h * h)
    mean = math.exp(float(res.x))
    err = mean / math.sqrt(curv) if curv > 0 else math.nan
    return PolyaFit(mean_mv=mean, shape=k, mean_err=err, shape_err=0.0)
