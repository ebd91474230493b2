"""Clusterization: merge time-ordered peaks into primary clusters (c * sqrt(t) rule)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import ClusterizeConfig
from ccframe.kernels.jagged import flat, to_jagged


@njit(cache=True, nogil=True)
def _clusterize(times, amps, offsets, c, cluster, counts):
    """A peak joins the current cluster if |t - t_highest| < c * sqrt(max(t, 0)), where
    t_highest is the time of the cluster's highest peak so far; else it opens a new one."""
    for i in range(offsets.size - 1):
        n_cl = 0
        t_high = 0.0
        a_high = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            t = times[j]
            if n_cl > 0 and abs(t - t_high) < c * math.sqrt(max(t, 0.0)):
                if amps[j] > a_high:
                    t_high = t
                    a_high = amps[j]
            else:
                n_cl += 1
                t_high = t
                a_high = amps[j]
            cluster[j] = n_cl - 1
        counts[i] = n_cl


def clusterize(
    times_ns: ak.Array, amplitudes: ak.Array, cfg: ClusterizeConfig
) -> tuple[ak.Array, np.ndarray]:
    """Cluster index of each peak (jagged) and clusters per waveform, for peaks sorted in
    time with times in ns after the track crossing."""
    t, offsets = flat(times_ns, np.float64)
    a, _ = flat(amplitudes, np.float64)
    cluster = np.empty(t.size, dtype=np.int32)
    counts = np.empty(offsets.size - 1, dtype=np.int64)
    _clusterize(t, a, offsets, cfg.c_sqrt_ns, cluster, counts)
    return to_jagged(cluster, np.diff(offsets)), counts
