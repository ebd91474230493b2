"""Peak times encoded as counts per time bin, the cluster counter's input."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import TimeListConfig
from ccframe.kernels.jagged import flat


@njit(cache=True, nogil=True)
def _encode(times, offsets, scale, out):
    n_bins = out.shape[1]
    for i in range(offsets.size - 1):
        for k in range(n_bins):
            out[i, k, 0] = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            t = times[j]
            if t != t:  # NaN
                continue
            b = math.floor(t * scale)
            b = min(max(b, 0), n_bins - 1)
            out[i, b, 0] += 1.0


def time_bin(times_ns: np.ndarray, window_ns: float, n_bins: int) -> np.ndarray:
    """The one binning rule: floor(t * n_bins / window_ns) in float64, clipped to the window."""
    b = np.floor(np.asarray(times_ns, dtype=np.float64) * (n_bins / window_ns)).astype(np.int64)
    return np.clip(b, 0, n_bins - 1)


def encode_time_list(
    times_ns: ak.Array, window_ns: float, cfg: TimeListConfig, out: np.ndarray | None = None
) -> np.ndarray:
    """(n, n_bins, 1) float32 counts of peak times (ns in the window, 0 = first sample).

    Times before the window go to the first bin, after it to the last. `out` is reused when
    given (shape (n, n_bins, 1), float32)."""
    times, offsets = flat(times_ns, np.float64)
    shape = (offsets.size - 1, cfg.n_bins, 1)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
    _encode(times, offsets, cfg.n_bins / window_ns, out)
    return out
