"""One-to-one matching of found peaks to true electron arrivals."""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import MatchConfig
from ccframe.kernels.jagged import flat, to_jagged

NOISE, PRIMARY, SECONDARY = 0, 1, 2


@njit(cache=True, nogil=True)
def _match(peaks, peak_off, expected, el_off, tolerance, peak_match, electron_found):
    """Per waveform: every (peak, electron) pair within the tolerance, taken in increasing
    distance (ties: earlier peak, then earlier electron); a pair is kept when both are free."""
    for i in range(peak_off.size - 1):
        p0, p1 = peak_off[i], peak_off[i + 1]
        e0, e1 = el_off[i], el_off[i + 1]
        for j in range(p0, p1):
            peak_match[j] = -1
        for e in range(e0, e1):
            electron_found[e] = False
        n_pairs = 0
        for j in range(p0, p1):
            for e in range(e0, e1):
                if abs(peaks[j] - expected[e]) <= tolerance:
                    n_pairs += 1
        if n_pairs == 0:
            continue
        dist = np.empty(n_pairs)
        pj = np.empty(n_pairs, dtype=np.int64)
        pe = np.empty(n_pairs, dtype=np.int64)
        q = 0
        for j in range(p0, p1):
            for e in range(e0, e1):
                d = abs(peaks[j] - expected[e])
                if d <= tolerance:
                    dist[q] = d
                    pj[q] = j
                    pe[q] = e
                    q += 1
        for q in np.argsort(dist, kind="mergesort"):
            j, e = pj[q], pe[q]
            if peak_match[j] < 0 and not electron_found[e]:
                peak_match[j] = e - e0
                electron_found[e] = True


@dataclass
class Match:
    """Matching result. `peak_electron`: index of the matched electron in its waveform, or -1;
    `peak_label`: 0 noise, 1 primary, 2 secondary; `electron_found`: per true electron."""

    peak_electron: ak.Array
    peak_label: ak.Array
    electron_found: ak.Array

    def cluster_found(self, electron_cluster: ak.Array, n_clusters: np.ndarray) -> ak.Array:
        """Per true cluster: whether any of its electrons was found."""
        found, offsets = flat(self.electron_found, np.bool_)
        cluster, _ = flat(electron_cluster, np.int64)
        cl_off = np.zeros(len(n_clusters) + 1, dtype=np.int64)
        np.cumsum(n_clusters, out=cl_off[1:])
        row = np.repeat(np.arange(len(n_clusters)), np.diff(offsets))
        hit = np.zeros(cl_off[-1], dtype=bool)
        hit[(cl_off[row] + cluster)[found]] = True
        return to_jagged(hit, n_clusters)


def expected_samples(truth: ak.Array, sampling_ghz: float, cfg: MatchConfig) -> ak.Array:
    """Sample position where each true electron's pulse should peak."""
    return (truth.electron_time_ns + truth.pretrigger_ns + cfg.delay_ns) * sampling_ghz


def match_peaks(peaks: ak.Array, expected: ak.Array, primary: ak.Array, cfg: MatchConfig) -> Match:
    """Match peak sample indices to expected electron samples one to one (see `_match`)."""
    p, p_off = flat(peaks, np.float64)
    e, e_off = flat(expected, np.float64)
    if p_off.size != e_off.size:
        raise ValueError(f"{p_off.size - 1} peak lists for {e_off.size - 1} electron lists")
    is_primary, _ = flat(primary, np.bool_)
    peak_match = np.empty(p.size, dtype=np.int64)
    found = np.empty(e.size, dtype=np.bool_)
    _match(p, p_off, e, e_off, cfg.tolerance_samples, peak_match, found)
    row = np.repeat(np.arange(p_off.size - 1), np.diff(p_off))
    label = np.zeros(p.size, dtype=np.int8)
    matched = peak_match >= 0
    global_e = e_off[row[matched]] + peak_match[matched]
    label[matched] = np.where(is_primary[global_e], PRIMARY, SECONDARY)
    counts = np.diff(p_off)
    return Match(
        to_jagged(peak_match, counts), to_jagged(label, counts), to_jagged(found, np.diff(e_off))
    )
