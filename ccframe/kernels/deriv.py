"""DERIV peak finding (docs/algorithms.md, "DERIV peak finding"; the conditions are spelled
out in `DerivConfig`).

All arithmetic is float64 on A = wave - baseline. D1 and D2 are evaluated only at samples
that pass the cheap amplitude conditions 1 and 2, with exactly the expressions of the full
arrays, so the result is that of the textbook definition. Samples 0, 1, n-2 and n-1 are
never peaks (D2 needs two samples on each side). A NaN among A[i-2..i+2] makes condition 4
false, so NaN never yields a peak; a NaN rms or baseline yields none in that waveform.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import DerivConfig
from ccframe.kernels.jagged import scan_rows


@njit(cache=True, nogil=True)
def _deriv(waves, baseline, rms, dt, n1, n2, n3, n4, out, counts):
    """DERIV peak sample indices of each row, appended to `out`; counts[i] per row; returns
    the total written. A run of adjacent accepted samples is one peak at its first maximum."""
    n_rows, n = waves.shape
    two_dt = 2.0 * dt
    p = 0
    for i in range(n_rows):
        start = p
        row = waves[i]
        b = np.float64(baseline[i])
        r = np.float64(rms[i])
        s1 = r / (math.sqrt(2.0) * dt)
        s2 = r / (2.0 * dt * dt)
        t1 = n1 * r
        t2 = n2 * r
        t3 = n3 * s1
        t3x2 = 2.0 * n3 * s1
        t4 = -n4 * s2
        run_best = -1
        run_amp = 0.0
        for k in range(2, n - 2):
            a = np.float64(row[k]) - b
            ok = False
            if a > t1:
                am = np.float64(row[k - 1]) - b
                ap = np.float64(row[k + 1]) - b
                if a - (am + ap) / 2.0 > t2:
                    am2 = np.float64(row[k - 2]) - b
                    ap2 = np.float64(row[k + 2]) - b
                    d1m = (a - am2) / two_dt  # D1[k-1]
                    d1 = (ap - am) / two_dt  # D1[k]
                    d1p = (ap2 - a) / two_dt  # D1[k+1]
                    d2 = (d1p - d1m) / two_dt  # D2[k]
                    ok = (abs(d1) < t3x2 or d1m > t3 or d1p < -t3) and d2 < t4
            if ok:
                if run_best < 0 or a > run_amp:
                    run_best = k
                    run_amp = a
            elif run_best >= 0:
                out[p] = run_best
                p += 1
                run_best = -1
        if run_best >= 0:
            out[p] = run_best
            p += 1
        counts[i] = p - start
    return p


def find_deriv(
    waves: np.ndarray,
    baseline: np.ndarray,
    rms: np.ndarray,
    sampling_ghz: float,
    cfg: DerivConfig,
) -> ak.Array:
    """DERIV peak sample indices per waveform: var * int32, increasing within each list.

    `waves` (n, samples) in mV with positive pulses, `baseline` and `rms` (n,) in mV;
    derivatives are per ns at `sampling_ghz` (the thresholds scale out, see the module)."""
    if not sampling_ghz > 0:
        raise ValueError(f"sampling_ghz must be > 0, got {sampling_ghz}")
    n = np.shape(waves)[-1] if np.ndim(waves) == 2 else 0
    params = (1.0 / float(sampling_ghz), float(cfg.n1), float(cfg.n2), float(cfg.n3), float(cfg.n4))
    return scan_rows(_deriv, waves, baseline, rms, params, per_row=n // 2 + 1)
