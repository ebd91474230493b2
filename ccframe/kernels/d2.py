"""D2 peak finding (CEPC studies; docs/algorithms.md, "D2 peak finding"; the rule is spelled
out in `D2Config`).

All arithmetic is float64 on A = wave - baseline. A NaN difference counts as not positive
(D1 = 0 there), so NaN samples never start or feed a stretch, and the reported peak (the
end of a strictly rising climb from a finite sample) is never a NaN sample. The integral is
a running sum in sample order (no fastmath: the order is part of the definition).
"""

from __future__ import annotations

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import D2Config
from ccframe.kernels.jagged import scan_rows


@njit(cache=True, nogil=True)
def _d2(waves, baseline, rms, t1_rms, t2_rms, out, counts):
    """D2 peak sample indices of each row, appended to `out`; counts[i] per row; returns the
    total written."""
    n_rows, n = waves.shape
    p = 0
    for i in range(n_rows):
        start = p
        row = waves[i]
        b = np.float64(baseline[i])
        r = np.float64(rms[i])
        t1 = t1_rms * r
        t2 = t2_rms * r
        acc = 0.0
        emitted = False
        last = -1
        d1_prev = 0.0  # D1[k]
        if n >= 2:
            a0 = np.float64(row[0]) - b
            a1 = np.float64(row[1]) - b
            diff = a1 - a0
            d1_prev = diff if (diff > 0.0 and a0 >= t1) else 0.0
        for k in range(n - 2):
            a1 = np.float64(row[k + 1]) - b
            a2 = np.float64(row[k + 2]) - b
            diff = a2 - a1
            d1_next = diff if (diff > 0.0 and a1 >= t1) else 0.0  # D1[k+1]
            d2 = d1_next - d1_prev  # D2[k] where > 0
            d1_prev = d1_next
            if d2 > 0.0:
                acc += d2
                if acc > t2 and not emitted:
                    emitted = True
                    m = k + 1
                    while m < n - 1 and np.float64(row[m + 1]) - b > np.float64(row[m]) - b:
                        m += 1
                    if m != last:
                        out[p] = m
                        p += 1
                        last = m
            else:
                acc = 0.0
                emitted = False
        counts[i] = p - start
    return p


def find_d2(waves: np.ndarray, baseline: np.ndarray, rms: np.ndarray, cfg: D2Config) -> ak.Array:
    """D2 peak sample indices per waveform: var * int32, increasing within each list.

    `waves` (n, samples) in mV with positive pulses, `baseline` and `rms` (n,) in mV."""
    n = np.shape(waves)[-1] if np.ndim(waves) == 2 else 0
    params = (float(cfg.t1_rms), float(cfg.t2_rms))
    return scan_rows(_d2, waves, baseline, rms, params, per_row=n // 2 + 1)
