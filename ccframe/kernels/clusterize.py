"""Clusterization: merge time-ordered peaks into primary clusters (docs/algorithms.md,
"Clusterization").

Peaks are taken in time order (times in ns after the track crossing). A peak of height a
joins the current cluster if |t - t_highest| < w, t_highest being the time of the cluster's
highest peak so far (the first of equal highest), of height a_highest; else it opens a new
cluster. The merge window is

    w = max(min_window, c * sqrt(max(t, 0)) * (a_highest / a) ** power)

With power = 0 and min_window = 0 (the defaults) it is the fixed rule c * sqrt(t); the
adaptive rule widens it for a peak much smaller than the cluster's highest (a secondary
electron or the ringing of a large pulse) and keeps a floor where sqrt(t) vanishes. The
ratio counts as 1 where either height is not positive. A peak with a NaN time gets cluster
-1 and leaves the current cluster unchanged.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import ClusterizeConfig
from ccframe.kernels.jagged import flat, to_jagged


@njit(cache=True, nogil=True)
def _clusterize(times, amps, offsets, c, power, min_window, cluster, counts):
    """cluster[j] = cluster index of peak j within its waveform; counts[i] = clusters of
    waveform i. Returns -1, or the flat index of the first time smaller than the previous
    (non-NaN) one in its list, where the input breaks the time-order contract."""
    bad = -1
    for i in range(offsets.size - 1):
        n_cl = 0
        t_high = 0.0
        a_high = 0.0
        t_prev = -math.inf
        for j in range(offsets[i], offsets[i + 1]):
            t = times[j]
            if t != t:  # NaN
                cluster[j] = -1
                continue
            if t < t_prev and bad < 0:
                bad = j
            t_prev = t
            window = c * math.sqrt(max(t, 0.0))
            if power != 0.0 and amps[j] > 0.0 and a_high > 0.0:
                window *= (a_high / amps[j]) ** power
            if n_cl > 0 and abs(t - t_high) < max(window, min_window):
                if amps[j] > a_high:
                    t_high = t
                    a_high = amps[j]
            else:
                n_cl += 1
                t_high = t
                a_high = amps[j]
            cluster[j] = n_cl - 1
        counts[i] = n_cl
    return bad


def clusterize(
    times_ns: ak.Array, amplitudes: ak.Array, cfg: ClusterizeConfig
) -> tuple[ak.Array, np.ndarray]:
    """Cluster index of each peak (var * int32) and clusters per waveform ((n,) int64).

    `times_ns` (var * float): peak times in ns after the track crossing, non-decreasing in
    each list (the peak finders' order); `amplitudes` (var * float): the peaks' heights."""
    t, offsets = flat(times_ns, np.float64)
    a, a_off = flat(amplitudes, np.float64)
    if not np.array_equal(offsets, a_off):
        raise ValueError("times_ns and amplitudes must have the same list lengths")
    cluster = np.empty(t.size, dtype=np.int32)
    counts = np.empty(offsets.size - 1, dtype=np.int64)
    params = (float(cfg.c_sqrt_ns), float(cfg.amplitude_power), float(cfg.min_window_ns))
    bad = _clusterize(t, a, offsets, *params, cluster, counts)
    if bad >= 0:
        row = int(np.searchsorted(offsets, bad, side="right")) - 1
        raise ValueError(
            f"peak times must be in increasing order within each waveform; waveform {row} "
            f"has {t[bad]} ns after {t[bad - 1]} ns"
        )
    return to_jagged(cluster, np.diff(offsets)), counts
