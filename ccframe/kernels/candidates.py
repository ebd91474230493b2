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


# No fastmath: it would let LLVM assume no NaN, and there is no float reduction to vectorise.
@njit(cache=True, nogil=True)
def _candidates(waves, baseline, rms, min_amp, min_curv, out, counts):
    """Candidate sample indices of each row, appended to `out`; counts[i] per row; returns
    the total written. Branchless compaction: on noise a third of the samples are local
    maxima, so every sample writes its index and the pointer moves only when it passes.
    Five samples slide through registers, each row read once."""
    n_rows, n = waves.shape
    p = 0
    for i in range(n_rows):
        start = p
        row = waves[i]
        b = np.float64(baseline[i])
        r = np.float64(rms[i])
        amp = min_amp * r
        curv = min_curv * r
        if n >= 3:
            xm2 = np.float64(row[0])  # edge-replicated sample -1
            xm1 = xm2
            x0 = np.float64(row[1])
            xp1 = np.float64(row[2])
            for k in range(1, n - 1):
                xp2 = np.float64(row[min(k + 2, n - 1)])
                d2s = (xm2 - 2.0 * x0 + xp2) / 4.0
                ok = (x0 > xm1) & (x0 >= xp1) & (x0 - b > amp) & (-d2s > curv)
                out[p] = k
                p += ok
                xm2 = xm1
                xm1 = x0
                x0 = xp1
                xp1 = xp2
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
