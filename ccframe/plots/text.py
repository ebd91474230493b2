"""Numbers and words of the report: rounding to the uncertainty (Particle Data Group rule)
or to 3 significant digits, wall times, and human labels for metric keys."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from ccframe.metrics.counting import available

MINUS = "\u2212"
PM = "\u00b1"


def _signed(text: str) -> str:
    """A typographic minus sign."""
    return text.replace("-", MINUS)


def sig(value: Any, digits: int = 3) -> str:
    """`value` for a table: an integer with thousands separators, a float to `digits`
    significant digits (trailing zeros kept: 0.250), 'n/a' when unavailable; else str()."""
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int | np.integer):
        return _signed(f"{int(value):,}")
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            return "n/a"
        v = float(value)
        if v == 0:
            return "0"
        if abs(v) >= 10 ** (digits - 1):
            return _signed(f"{v:,.0f}")
        text = f"{v:#.{digits}g}"
        if "e" in text:
            return _signed(f"{v:.{digits - 1}e}")
        return _signed(text.rstrip("."))
    return str(value)


def error_decimals(error: float) -> int:
    """Decimal places to quote a value with `error`, by the Particle Data Group's rule: the
    error's three leading digits 100-354 give it two significant digits, 355-949 one, and
    950-999 round up to 1000 with two."""
    exponent = math.floor(math.log10(error))
    leading = round(error / 10 ** (exponent - 2))
    if leading >= 1000:  # 999.7 rounds to 1000
        exponent, leading = exponent + 1, 100
    if leading <= 354:
        keep = 2
    elif leading <= 949:
        keep = 1
    else:
        exponent, keep = exponent + 1, 2
    return keep - 1 - exponent


def with_error(value: float, error: float) -> str:
    """'0.174 ± 0.011': the value rounded to its error (`error_decimals`); without a usable
    error (NaN, 0), the value to 3 significant digits."""
    if not available(value):
        return "n/a"
    if not available(error) or error <= 0:
        return sig(float(value))
    decimals = error_decimals(float(error))
    if decimals > 0:
        v, e = f"{value:.{decimals}f}", f"{error:.{decimals}f}"
    else:
        step = 10 ** (-decimals)
        v, e = f"{round(value / step) * step:.0f}", f"{round(error / step) * step:.0f}"
    if float(v) == 0:
        v = v.lstrip("-")
    return _signed(f"{v} {PM} {e}")


def duration(seconds: Any) -> str:
    """A wall time as '4 min 52 s' ('12.3 s' below a minute, '2 h 05 min' from an hour)."""
    if not available(seconds) or seconds < 0:
        return "n/a"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    total = round(s)
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    minutes = round(s / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


LABELS = {
    # the classifier at its threshold (ccframe.ml.evaluate.classification)
    "threshold": "score threshold",
    "auc": "AUC (area under the ROC curve)",
    "f1": "F1 (harmonic mean of purity and efficiency)",
    "precision": "purity (precision)",
    "recall": "efficiency (recall)",
    "efficiency_x_purity": "efficiency \u00d7 purity",
    "accuracy": "accuracy",
    "specificity": "noise rejection (specificity)",
    "balanced_accuracy": "balanced accuracy",
    "samples": "peak candidates",
    "signal_fraction": "signal fraction of the candidates",
    # peak finding (ccframe.ml.evaluate.end_to_end, ccframe.metrics.counting)
    "candidates": "peak candidates",
    "accepted_peaks": "peaks accepted by the classifier",
    "peaks": "peaks found",
    "electrons": "true electrons",
    "candidate_coverage": "fraction of the electrons with a candidate",
    "efficiency": "electron efficiency (found / true electrons)",
    "primary_efficiency": "cluster efficiency (clusters with a found electron / true clusters)",
    "purity": "purity (peaks matched to an electron / peaks)",
    "clusters": "true clusters",
    "cluster_efficiency": "cluster efficiency (clusters with a found electron / true clusters)",
    "count_limit_resolution_core": (
        "count resolution of found clusters / cluster efficiency, the best a counter of "
        "these peaks can do (Gaussian core)"
    ),
    "count_limit_resolution_rms": (
        "count resolution of found clusters / cluster efficiency, the best a counter of "
        "these peaks can do (RMS)"
    ),
    # counts (ccframe.metrics.counting.count_metrics)
    "waveforms": "waveforms (N_true > 0)",
    "mean_true": "mean N_true [clusters]",
    "mean_pred": "mean N [clusters]",
    "bias": "mean N \u2212 N_true [clusters]",
    "relative_bias": "relative bias \u03a3N / \u03a3N_true \u2212 1",
    "relative_resolution_core": "count resolution (Gaussian core)",
    "relative_resolution_rms": "count resolution (RMS)",
    "median_ratio": "median N / N_true",
    "iqr_over_median": "IQR / median of N / N_true (as ml4cc, CEPC quote it)",
    "truth": "truth",
    "unavailable": "not available",
    "mae": "mean |N \u2212 N_true| [clusters]",
    "mse": "mean (N \u2212 N_true)\u00b2 [clusters\u00b2]",
    # provenance (run.json)
    "status": "status",
    "seed": "seed",
    "started": "started",
    "wall_s": "wall time",
    "git": "git commit",
    "host": "host",
    "command": "command",
    "versions": "versions",
}


def label(key: str) -> str:
    """The label of a metric key (a key without one: its words)."""
    return LABELS.get(key, key.replace("_", " "))


def _h(text: str) -> str:
    """Plain text as HTML, N_true as N<sub>true</sub>."""
    return html.escape(text).replace("N_true", "N<sub>true</sub>")


COUNT_NAMES = {
    "ml": "ML (LSTM + CNN)",
    "waveform": "ML one-step (waveform CNN)",
    "peak_sequence": "ML per-peak (GRU over peaks)",
    "peak_map": "ML peak map (U-Net)",
    "traditional": "traditional",
}
MODEL_COUNTS = ("waveform", "peak_sequence", "peak_map")
"""Counts of the optional models, `n_clusters_<name>` in predictions.root when trained."""
ALGORITHMS = {"deriv": "DERIV", "d2": "D2"}
PARTICLES = {"e": "e", "mu": "\u03bc", "pi": "\u03c0", "K": "K", "p": "p"}


def count_name(name: str, algorithm: str | None) -> str:
    """'ML (LSTM + CNN)', 'DERIV + clusterization' (the traditional count of `algorithm`)."""
    if name == "traditional" and algorithm:
        return f"{ALGORITHMS.get(algorithm, algorithm)} + clusterization"
    return COUNT_NAMES.get(name, name)


def measured_text(m: Any) -> str:
    """A `Measurement` (value and error) as text, rounded to its error."""
    return with_error(m.value, m.error)
