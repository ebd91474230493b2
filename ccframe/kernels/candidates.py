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
from ccframe.kernels.jagged import scan_rows


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


def find_candidates(
    waves: np.ndarray, baseline: np.ndarray, rms: np.ndarray, cfg: CandidateConfig
) -> ak.Array:
    """Candidate sample indices per waveform: var * int32, increasing within each list.

    `waves` (n, samples) in mV with positive pulses, `baseline` and `rms` (n,) in mV."""
    n = np.shape(waves)[-1] if np.ndim(waves) == 2 else 0
    return scan_rows(
        _candidates,
        waves,
        baseline,
        rms,
        (float(cfg.min_amplitude_rms), float(cfg.min_curvature_rms)),
        per_row=n // 2 + 1,
    )
