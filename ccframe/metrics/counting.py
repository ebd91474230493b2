"""How well a reconstructed count follows the true number of clusters (the definitions are
explained in docs/algorithms.md, "Metrics")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def core_sigma(values: np.ndarray, clip: float = 2.0, iterations: int = 10) -> float:
    """Gaussian-core width: the standard deviation after iterative clipping at `clip` sigma,
    corrected for the clipping (a Gaussian clipped at 2 sigma keeps 0.774 of its variance).

    NaN (no core) for fewer than 2 finite values, and when the clipping collapses onto a
    single value although the values spread (a spike, e.g. most counts 0, has no Gaussian
    core; its width 0 would read as a perfect resolution). 0 only when all values are equal."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    centre, width = float(np.median(v)), float(np.std(v))
    spread = width > 0
    for _ in range(iterations):
        if width == 0:
            return float("nan") if spread else 0.0
        kept = v[np.abs(v - centre) < clip * width]
        if kept.size < 2:
            break
        new_centre, new_width = float(kept.mean()), float(kept.std()) / _clip_factor(clip)
        if np.isclose(new_width, width) and np.isclose(new_centre, centre):
            break
        centre, width = new_centre, new_width
    return width


def _clip_factor(clip: float) -> float:
    """Standard deviation of a unit Gaussian truncated at +-clip."""
    from math import erf, exp, pi, sqrt

    inside = erf(clip / sqrt(2.0))
    return sqrt(1.0 - 2.0 * clip * exp(-clip * clip / 2.0) / (sqrt(2.0 * pi) * inside))


def count_metrics(n_pred: np.ndarray, n_true: np.ndarray) -> dict[str, Any]:
    """Bias and relative resolution of predicted vs true counts (waveforms with n_true > 0).

    `relative_bias` is a ratio of sums, sum(pred) / sum(true) - 1 (= mean pred / mean true
    - 1), not the mean of the per-waveform ratios. The resolutions are the spread of the
    per-waveform r = (pred - true) / true: `relative_resolution_rms` its standard deviation
    (about its own mean), `relative_resolution_core` its Gaussian-core width (`core_sigma`).
    As the public ml4cc and CEPC studies quote it: `median_ratio`, the median of pred / true,
    and `iqr_over_median`, the interquartile range of pred / true over that median (for a
    Gaussian, IQR = 1.349 sigma). `response_slope`: the slope of the least-squares line of
    pred against true (`response_slope`), 1 for a counter that follows the truth and below 1
    for one that shrinks towards the mean count of its training sample."""
    pred = np.asarray(n_pred, dtype=np.float64)
    true = np.asarray(n_true, dtype=np.float64)
    ok = true > 0
    pred, true = pred[ok], true[ok]
    if true.size == 0:
        return {"waveforms": 0}
    diff = pred - true
    rel = diff / true
    return {
        "waveforms": int(true.size),
        "mean_true": float(true.mean()),
        "mean_pred": float(pred.mean()),
        "bias": float(diff.mean()),
        "relative_bias": float(pred.sum() / true.sum() - 1.0),
        "mae": float(np.abs(diff).mean()),
        "mse": float((diff**2).mean()),
        "relative_resolution_rms": float(rel.std()),
        "relative_resolution_core": core_sigma(rel),
        "response_slope": response_slope(pred, true),
        **ratio_quartiles(pred / true),
    }


def response_slope(pred: np.ndarray, true: np.ndarray) -> float:
    """Slope of the least-squares line pred = a + b true (NaN when every true count is the
    same): the slope of the mean predicted count against the true count."""
    spread = true - true.mean()
    denominator = float(np.dot(spread, spread))
    return float(np.dot(spread, pred - pred.mean()) / denominator) if denominator > 0 else math.nan


def calibrated_resolution(pred: np.ndarray, true: np.ndarray) -> float:
    """Gaussian-core width of (calibrated - true) / true, where calibrated = (pred - a) / b
    inverts the least-squares response pred = a + b true (waveforms with true > 0): the
    resolution a count has once its bias and slope are divided out, so that a count that
    shrinks towards the mean cannot look precise. NaN when the slope is not positive."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    ok = true > 0
    pred, true = pred[ok], true[ok]
    offset, slope = linear_response(pred, true)
    if not slope > 0:
        return math.nan
    return core_sigma(((pred - offset) / slope - true) / true)


def linear_response(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(offset, slope) of the least-squares line pred = offset + slope x true (NaN for fewer
    than two waveforms or a single true count)."""
    slope = response_slope(pred, true) if true.size > 1 else math.nan
    offset = float(pred.mean() - slope * true.mean()) if math.isfinite(slope) else math.nan
    return offset, slope


def response_curve(pred: np.ndarray, true: np.ndarray, min_waveforms: int = 20) -> dict[str, list]:
    """Mean and standard deviation of the predicted count per true count, for the true counts
    of at least `min_waveforms` waveforms (the counter's response curve)."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.int64)
    values, inverse, n = np.unique(true, return_inverse=True, return_counts=True)
    total = np.bincount(inverse, pred)
    square = np.bincount(inverse, pred * pred)
    mean = total / n
    std = np.sqrt(np.maximum(square / n - mean * mean, 0.0))
    keep = n >= min_waveforms
    return {
        "n_true": values[keep].tolist(),
        "waveforms": n[keep].tolist(),
        "mean_pred": mean[keep].tolist(),
        "std_pred": std[keep].tolist(),
    }


def ratio_quartiles(ratio: np.ndarray) -> dict[str, float]:
    """`median_ratio` and `iqr_over_median` (NaN when the median is not > 0) of pred / true."""
    q25, median, q75 = (float(q) for q in np.percentile(ratio, [25.0, 50.0, 75.0]))
    spread = (q75 - q25) / median if median > 0 else float("nan")
    return {"median_ratio": median, "iqr_over_median": spread}


def count_summary(m: dict[str, Any]) -> str:
    """One line of `count_metrics`: means, relative bias, both resolutions and the IQR/median
    of pred / true ('n/a' where a metric is unavailable)."""
    if not m.get("waveforms"):
        return "no waveforms with true clusters"
    return (
        f"mean {fmt(m.get('mean_pred'), '.2f')} vs true {fmt(m.get('mean_true'), '.2f')}: "
        f"relative bias {fmt(m.get('relative_bias'), '+.3f')}, "
        f"resolution {fmt(m.get('relative_resolution_rms'), '.3f')} (RMS), "
        f"{fmt(m.get('relative_resolution_core'), '.3f')} (core), "
        f"IQR/median of N/N_true {fmt(m.get('iqr_over_median'), '.3f')}, "
        f"response slope {fmt(m.get('response_slope'), '.3f')}"
    )


def available(value: Any) -> bool:
    """Whether a metric has a value: a finite number (not None, NaN or inf)."""
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def fmt(value: Any, spec: str) -> str:
    """`value` formatted with `spec`, or 'n/a' when the metric is unavailable."""
    return format(value, spec) if available(value) else "n/a"


def json_ready(obj: Any) -> Any:
    """A copy of nested dicts / lists with every unavailable number (NaN, inf) as None, which
    JSON writes as null (NaN is not JSON)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float | np.floating) and not math.isfinite(float(obj)):
        return None
    return obj


def versus(
    values: np.ndarray, edges: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray
) -> list[dict[str, Any]]:
    """`count_metrics` in bins of `values` (e.g. momentum), one dict per non-empty bin."""
    values = np.asarray(values)
    out = []
    index = np.digitize(values, edges) - 1
    for b in range(len(edges) - 1):
        sel = index == b
        if not sel.any():
            continue
        row = {"low": float(edges[b]), "high": float(edges[b + 1])}
        row.update(count_metrics(np.asarray(n_pred)[sel], np.asarray(n_true)[sel]))
        out.append(row)
    return out


def momentum_edges(momentum: np.ndarray, n_bins: int = 8) -> np.ndarray:
    """Log-spaced bin edges covering the momenta (a single bin if they are all equal)."""
    lo, hi = float(np.min(momentum)), float(np.max(momentum))
    if hi <= lo * (1 + 1e-9):
        return np.array([lo * 0.999, hi * 1.001])
    return np.geomspace(lo, hi * (1 + 1e-9), n_bins + 1)


LABELLED_PEAKS_NOTE: dict[str, Any] = {
    "truth": "labelled peaks (tags 1, 2: electrons)",
    "cluster_efficiency": None,
    "unavailable": "cluster_efficiency and the count limit need the true cluster of each "
    "electron (electron truth); labelled peaks give the electron efficiency and purity only",
}
"""Completes peak-finding metrics measured against labelled peaks (Garfield++ samples)."""


def peak_finding_metrics(
    n_peaks: int, n_matched: int, n_electrons: int, n_clusters: int, n_clusters_found: int
) -> dict[str, float]:
    """Efficiency (found electrons / true electrons), purity (matched peaks / peaks) and
    `cluster_efficiency`: true clusters with at least one found electron (primary or
    secondary) / true clusters, the same quantity as the ML chain's."""
    return {
        "peaks": n_peaks,
        "electrons": n_electrons,
        "efficiency": n_matched / n_electrons if n_electrons else float("nan"),
        "cluster_efficiency": n_clusters_found / n_clusters if n_clusters else float("nan"),
        "purity": n_matched / n_peaks if n_peaks else float("nan"),
    }
