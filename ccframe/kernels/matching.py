"""One-to-one matching of found peaks to true electron arrivals (the LSTM's labels).

An electron's pulse is expected to peak at sample (time_ns + pretrigger_ns + delay_ns) *
sampling_ghz. Within each waveform, every (peak, electron) pair with |peak - expected| <=
tolerance_samples is a possible match; pairs are taken in increasing distance (ties: the
earlier peak, then the earlier electron) and kept when neither member is taken yet. So each
peak matches at most one electron and each electron at most one peak, and a closer pair
always wins over a farther one. Peak labels: 0 noise (no match), 1 primary electron,
2 secondary electron (from `electron_primary`).

The same matching labels peaks from labelled reference peaks (`match_labelled`: the tagged
peaks of the community's Garfield++ samples): a peak takes the label of the reference it
matches (0, 1 or 2), and is noise when it matches none.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import MatchConfig
from ccframe.kernels.jagged import flat, offsets_from_counts, to_jagged

NOISE, PRIMARY, SECONDARY = 0, 1, 2


@njit(cache=True, nogil=True)
def _sort_index(idx, n, k1, k2, k3, tmp):
    """Sort idx[:n] by (k1[x], k2[x], k3[x], x) lexicographically (x = an entry of idx): a
    bottom-up merge sort through `tmp` (at least n long)."""
    width = 1
    src, dst = idx, tmp
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a, b, o = lo, mid, lo
            while a < mid and b < hi:
                x, y = src[a], src[b]
                if k1[y] != k1[x]:
                    y_first = k1[y] < k1[x]
                elif k2[y] != k2[x]:
                    y_first = k2[y] < k2[x]
                elif k3[y] != k3[x]:
                    y_first = k3[y] < k3[x]
                else:
                    y_first = y < x
                if y_first:
                    dst[o] = y
                    b += 1
                else:
                    dst[o] = x
                    a += 1
                o += 1
            while a < mid:
                dst[o] = src[a]
                a += 1
                o += 1
            while b < hi:
                dst[o] = src[b]
                b += 1
                o += 1
        src, dst = dst, src
        width *= 2
    if n > 0 and src is not idx:
        idx[:n] = src[:n]


@njit(cache=True, nogil=True)
def _grow(a, used, size):
    """A new array of `size` items of a's dtype holding a[:used]."""
    b = np.empty(size, dtype=a.dtype)
    b[:used] = a[:used]
    return b


@njit(cache=True, nogil=True)
def _match(peaks, peak_off, expected, el_off, tolerance, peak_match, electron_found):
    """Per waveform: every (peak, electron) pair with |peak - expected| <= tolerance, taken in
    increasing distance (ties: earlier peak, then earlier electron); a pair is kept when both
    are still free. peak_match[j] = index of the matched electron within its waveform, or -1;
    electron_found[e] = matched. NaN positions never match.

    The electrons of a waveform are sorted by position once, so each peak finds its pairs by
    binary search: O((P + E) log E + pairs log pairs) per waveform. Scratch buffers are
    reused across waveforms and grown when needed."""
    cap = 64
    dist = np.empty(cap)
    pj = np.empty(cap, dtype=np.int64)
    pe = np.empty(cap, dtype=np.int64)
    pidx = np.empty(cap, dtype=np.int64)
    ptmp = np.empty(cap, dtype=np.int64)
    order = np.empty(64, dtype=np.int64)
    etmp = np.empty(64, dtype=np.int64)
    for i in range(peak_off.size - 1):
        p0, p1 = peak_off[i], peak_off[i + 1]
        e0, e1 = el_off[i], el_off[i + 1]
        for j in range(p0, p1):
            peak_match[j] = -1
        for e in range(e0, e1):
            electron_found[e] = False
        if e1 - e0 > order.size:
            order = np.empty(2 * (e1 - e0), dtype=np.int64)
            etmp = np.empty(2 * (e1 - e0), dtype=np.int64)
        ne = 0  # electrons with a position (not NaN), sorted by (position, index)
        for e in range(e0, e1):
            if expected[e] == expected[e]:
                order[ne] = e
                ne += 1
        _sort_index(order, ne, expected, expected, expected, etmp)
        q = 0
        for j in range(p0, p1):
            x = peaks[j]
            if x != x:
                continue
            lo, hi = 0, ne  # first electron with expected >= x - tolerance
            while lo < hi:
                mid = (lo + hi) // 2
                if expected[order[mid]] < x - tolerance:
                    lo = mid + 1
                else:
                    hi = mid
            # x - tolerance is rounded: step back over electrons that the exact test accepts
            while lo > 0 and abs(x - expected[order[lo - 1]]) <= tolerance:
                lo -= 1
            for c in range(lo, ne):
                e = order[c]
                d = abs(x - expected[e])
                if d > tolerance:
                    if expected[e] > x:
                        break
                    continue
                if q == cap:
                    cap *= 2
                    dist = _grow(dist, q, cap)
                    pj = _grow(pj, q, cap)
                    pe = _grow(pe, q, cap)
                    pidx = np.empty(cap, dtype=np.int64)
                    ptmp = np.empty(cap, dtype=np.int64)
                dist[q] = d
                pj[q] = j
                pe[q] = e
                q += 1
        for t in range(q):
            pidx[t] = t
        _sort_index(pidx, q, dist, pj, pe, ptmp)
        for t in range(q):
            j, e = pj[pidx[t]], pe[pidx[t]]
            if peak_match[j] < 0 and not electron_found[e]:
                peak_match[j] = e - e0
                electron_found[e] = True


@dataclass
class Match:
    """Matching result, one list per waveform.

    `peak_electron`: var * int64, index of the matched electron within its waveform, or -1;
    `peak_label`: var * int8, 0 noise, 1 primary, 2 secondary;
    `electron_found`: var * bool, per true electron, whether a peak matched it."""

    peak_electron: ak.Array
    peak_label: ak.Array
    electron_found: ak.Array

    def peak_cluster(self, electron_cluster: ak.Array) -> np.ndarray:
        """Flat int32 over all peaks (in order): the true cluster (index within its waveform)
        of each peak's matched electron, -1 for an unmatched peak. `electron_cluster`: each
        electron's cluster index within its waveform."""
        electron, peak_off = flat(self.peak_electron, np.int64)
        cluster, el_off = flat(electron_cluster, np.int64)
        if el_off.size != peak_off.size:
            raise ValueError("electron_cluster does not match the matched waveforms")
        row = np.repeat(np.arange(peak_off.size - 1), np.diff(peak_off))
        matched = electron >= 0
        out = np.full(electron.size, -1, dtype=np.int32)
        out[matched] = cluster[el_off[row[matched]] + electron[matched]]
        return out

    def cluster_found(self, electron_cluster: ak.Array, n_clusters: np.ndarray) -> ak.Array:
        """Per true cluster (var * bool): whether any of its electrons was found.
        `electron_cluster`: each electron's cluster index within its waveform."""
        found, offsets = flat(self.electron_found, np.bool_)
        cluster, cl_el_off = flat(electron_cluster, np.int64)
        n_clusters = np.asarray(n_clusters, dtype=np.int64)
        if not np.array_equal(offsets, cl_el_off) or n_clusters.size != offsets.size - 1:
            raise ValueError("electron_cluster / n_clusters do not match the matched electrons")
        cl_off = offsets_from_counts(n_clusters)
        row = np.repeat(np.arange(n_clusters.size), np.diff(offsets))
        hit = np.zeros(cl_off[-1], dtype=bool)
        hit[(cl_off[row] + cluster)[found]] = True
        return to_jagged(hit, n_clusters)


def expected_samples(truth: ak.Array, sampling_ghz: float, cfg: MatchConfig) -> ak.Array:
    """var * float64: the sample where each true electron's pulse should peak,
    (electron_time_ns + pretrigger_ns + delay_ns) * sampling_ghz."""
    return (truth.electron_time_ns + truth.pretrigger_ns + cfg.delay_ns) * sampling_ghz


def match_peaks(peaks: ak.Array, expected: ak.Array, primary: ak.Array, cfg: MatchConfig) -> Match:
    """Match peak sample positions (var * number) to expected electron samples (var * float,
    see `expected_samples`) one to one; `primary` (var * bool) per electron gives the labels."""
    p_off = offsets_from_counts(ak.to_numpy(ak.num(peaks, axis=1)))
    e_off = offsets_from_counts(ak.to_numpy(ak.num(expected, axis=1)))
    if p_off.size != e_off.size:
        raise ValueError(f"{p_off.size - 1} peak lists for {e_off.size - 1} electron lists")
    is_primary, prim_off = flat(primary, np.bool_)
    if not np.array_equal(prim_off, e_off):
        raise ValueError("`primary` must have one flag per expected electron")
    labels = np.where(is_primary, PRIMARY, SECONDARY).astype(np.int8)
    return match_labelled(peaks, expected, to_jagged(labels, np.diff(prim_off)), cfg)


def match_labelled(
    peaks: ak.Array, reference: ak.Array, labels: ak.Array, cfg: MatchConfig
) -> Match:
    """Match peak sample positions (var * number) one to one to reference positions (var *
    float: expected electron samples, or the labelled peaks of a Garfield++ sample); each
    matched peak takes its reference's label (var * int, 0 noise, 1 primary, 2 secondary),
    an unmatched peak is noise. `electron_found`: per reference, whether a peak matched it."""
    p, p_off = flat(peaks, np.float64)
    e, e_off = flat(reference, np.float64)
    if p_off.size != e_off.size:
        raise ValueError(f"{p_off.size - 1} peak lists for {e_off.size - 1} reference lists")
    ref_label, label_off = flat(labels, np.int8)
    if not np.array_equal(label_off, e_off):
        raise ValueError("`labels` must have one label per reference position")
    peak_match = np.empty(p.size, dtype=np.int64)
    found = np.empty(e.size, dtype=np.bool_)
    _match(p, p_off, e, e_off, float(cfg.tolerance_samples), peak_match, found)
    row = np.repeat(np.arange(p_off.size - 1), np.diff(p_off))
    label = np.zeros(p.size, dtype=np.int8)
    matched = peak_match >= 0
    label[matched] = ref_label[e_off[row[matched]] + peak_match[matched]]
    counts = np.diff(p_off)
    return Match(
        to_jagged(peak_match, counts), to_jagged(label, counts), to_jagged(found, np.diff(e_off))
    )
