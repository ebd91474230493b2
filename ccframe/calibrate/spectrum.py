"""The noise spectrum written into `simulate.noise`: a compact list of points that keeps
narrow pickup lines (docs/calibration.md, "Noise")."""

from __future__ import annotations

import numpy as np

MAX_POINTS = 200
"""At most this many (frequency, power) points are written."""
LINE_EXCESS = 4.0
"""A bin is part of a line when its power exceeds this many times the local median."""


def compact(
    freq: np.ndarray, power: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ~max_points points: bins averaged in groups, except the first bin and lines
    (a bin above LINE_EXCESS x the median of its 21 neighbours, and the bins next to it),
    which keep their own frequency and power."""
    freq, power = np.asarray(freq, dtype=np.float64), np.asarray(power, dtype=np.float64)
    m = freq.size
    if m <= max_points:
        return freq.copy(), power.copy()
    pad = np.pad(power, 10, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(pad, 21)
    line = power > LINE_EXCESS * np.median(windows, axis=1)
    line = line | np.r_[line[1:], False] | np.r_[False, line[:-1]]
    line[0] = True  # the lowest point carries the slow noise (fitted on its own)
    n_lines = int(line.sum())
    group = int(np.ceil((m - n_lines) / max(max_points - n_lines, max_points // 2)))
    group = max(group, 2)
    keys = np.where(line, -1, np.arange(m) // group)
    out_f, out_p = list(freq[line]), list(power[line])
    plain = ~line
    ids = keys[plain]
    counts = np.bincount(ids)
    has = counts > 0
    out_f += list((np.bincount(ids, weights=freq[plain])[has]) / counts[has])
    out_p += list((np.bincount(ids, weights=power[plain])[has]) / counts[has])
    f, p = np.array(out_f), np.array(out_p)
    order = np.argsort(f, kind="stable")
    f, p = f[order], p[order]
    keep = np.r_[True, np.diff(f) > 0]
    f, p = f[keep], p[keep]
    return f, p
