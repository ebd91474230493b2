"""Loose peak candidates for the ML peak finder: the derivative scan of `CandidateConfig`.

The rule (see `CandidateConfig`): sample i in [1, n-2] is a candidate if A[i] > A[i-1],
A[i] >= A[i+1], A[i] > min_amplitude_rms * rms and -D2s[i] > min_curvature_rms * rms, with
D2s[i] = (A[i-2] - 2 A[i] + A[i+2]) / 4 and the samples beyond the waveform edge-replicated.
Arithmetic is float64: A[i] = float64(wave[i]) - float64(baseline); the local-maximum test
and D2s use the raw samples, where the baseline cancels exactly. No two adjacent samples can
both be candidates.
Comparisons with NaN are false, so a NaN among A[i-2..i+2] (or a NaN rms/baseline) makes no
candidate.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import CandidateConfig
from ccframe.kernels.jagged import flat, scan_rows, to_jagged


@njit(cache=True, nogil=True)
def _rule(xm2, xm1, x0, xp1, xp2, b, amp, curv):
    """The candidate rule at x0 from the raw samples x0-2..x0+2 (any float type)."""
    c = np.float64(x0)
    d2s = (np.float64(xm2) - 2.0 * c + np.float64(xp2)) / 4.0
    return (c > np.float64(xm1)) & (c >= np.float64(xp1)) & (c - b > amp) & (-d2s > curv)


# No fastmath: it would let LLVM assume no NaN; the mask pass vectorises without it.
@njit(cache=True, nogil=True)
def _candidates(waves, baseline, rms, min_amp, min_curv, out, counts):
    """Candidate sample indices of each row, appended to `out`; counts[i] per row; returns
    the total written. Two passes per row: the rule into a bool mask (a branch-free loop
    that LLVM vectorises), then a compaction that skips 16-sample blocks without a candidate
    and in the others writes every index, moving the pointer only past candidates."""
    n_rows, n = waves.shape
    mask = np.zeros(-(-n // 16) * 16, dtype=np.bool_)  # stays False outside [1, n-2]
    words = mask.view(np.uint64)
    p = 0
    for i in range(n_rows):
        start = p
        if n >= 3:
            row = waves[i]
            b = np.float64(baseline[i])
            r = np.float64(rms[i])
            amp = min_amp * r
            curv = min_curv * r
            # The edges, with the samples beyond the waveform edge-replicated.
            mask[1] = _rule(row[0], row[0], row[1], row[2], row[min(3, n - 1)], b, amp, curv)
            mask[n - 2] = _rule(
                row[max(n - 4, 0)], row[n - 3], row[n - 2], row[n - 1], row[n - 1], b, amp, curv
            )
            for k in range(2, n - 2):
                mask[k] = _rule(
                    row[k - 2], row[k - 1], row[k], row[k + 1], row[k + 2], b, amp, curv
                )
            for j in range(words.size // 2):
                if words[2 * j] | words[2 * j + 1]:
                    for k in range(16 * j, 16 * j + 16):
                        out[p] = k
                        p += mask[k]  # bool: p stays int64 under .py_func too
        counts[i] = p - start
    return p


@njit(cache=True, nogil=True)
def _suppress(waves, positions, offsets, radius, keep):
    """keep[j] = False where a candidate of the same row within `radius` samples has a higher
    sample value, or an equal one earlier in the row."""
    for i in range(offsets.size - 1):
        row = waves[i]
        for j in range(offsets[i], offsets[i + 1]):
            x = row[positions[j]]
            ok = True
            k = j - 1
            while ok and k >= offsets[i] and positions[j] - positions[k] <= radius:
                ok = not (row[positions[k]] >= x)
                k -= 1
            k = j + 1
            while ok and k < offsets[i + 1] and positions[k] - positions[j] <= radius:
                ok = not (row[positions[k]] > x)
                k += 1
            keep[j] = ok


def suppress_non_maxima(waves: np.ndarray, candidates: ak.Array, radius: int) -> ak.Array:
    """The candidates that are the highest within `radius` samples of their waveform (see
    `CandidateConfig.min_separation_samples`)."""
    positions, offsets = flat(candidates, np.int64)
    keep = np.ones(positions.size, dtype=np.bool_)
    if radius > 0 and positions.size:
        _suppress(np.ascontiguousarray(waves, dtype=np.float32), positions, offsets, radius, keep)
    rows = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    counts = np.bincount(rows[keep], minlength=offsets.size - 1)
    return to_jagged(positions[keep].astype(np.int32), counts)


def find_candidates(
    waves: np.ndarray, baseline: np.ndarray, rms: np.ndarray, cfg: CandidateConfig
) -> ak.Array:
    """Candidate sample indices per waveform: var * int32, increasing within each list.

    `waves` (n, samples) in mV with positive pulses, `baseline` and `rms` (n,) in mV."""
    n = np.shape(waves)[-1] if np.ndim(waves) == 2 else 0
    found = scan_rows(
        _candidates,
        waves,
        baseline,
        rms,
        (float(cfg.min_amplitude_rms), float(cfg.min_curvature_rms)),
        per_row=n // 2 + 1,
    )
    if cfg.min_separation_samples:
        return suppress_non_maxima(waves, found, cfg.min_separation_samples)
    return found
