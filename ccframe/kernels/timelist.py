"""Peak times encoded as counts per time bin, the cluster counter's input.

The one binning rule (used by the kernel and `time_bin` alike): with
scale = n_bins / window_ns computed in float64, bin = floor(t_ns * scale), clipped to
[0, n_bins - 1]; so times before the window (t < 0) count in the first bin and times at or
after its end (including +inf) in the last. NaN times are not counted. Times are window
times in ns (0 = the first sample, i.e. sample / sampling_ghz), not track times.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import TimeListConfig
from ccframe.kernels.jagged import flat


@njit(cache=True, nogil=True)
def _bin(scaled, top):
    """The bin of a time x scale under the one rule; -1 for NaN (not counted)."""
    x = np.floor(scaled)
    if x != x:
        return -1
    if x < 0.0:
        return 0
    if x >= top:
        return top
    return int(x)


@njit(cache=True, nogil=True)
def _encode(times, offsets, scale, out):
    """out[i, :, 0] = counts of times[offsets[i]:offsets[i+1]] per bin (cleared first)."""
    n_bins = out.shape[1]
    for i in range(offsets.size - 1):
        for k in range(n_bins):
            out[i, k, 0] = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            b = _bin(times[j] * scale, n_bins - 1)
            if b >= 0:
                out[i, b, 0] += 1.0


def _scale(window_ns: float, n_bins: int) -> float:
    if not (math.isfinite(window_ns) and window_ns > 0):
        raise ValueError(f"window_ns must be a positive number, got {window_ns}")
    return float(n_bins) / float(window_ns)


def time_bin(times_ns: np.ndarray, window_ns: float, n_bins: int) -> np.ndarray:
    """int64 bin of each time under the one binning rule; -1 for NaN (not counted)."""
    x = np.floor(np.asarray(times_ns, dtype=np.float64) * _scale(window_ns, n_bins))
    nan = np.isnan(x)
    b = np.clip(np.where(nan, 0.0, x), 0, n_bins - 1).astype(np.int64)
    b[nan] = -1
    return b


def encode_time_list(
    times_ns: ak.Array, window_ns: float, cfg: TimeListConfig, out: np.ndarray | None = None
) -> np.ndarray:
    """(n, n_bins, 1) float32 counts of the peak times of each of n waveforms (var * float,
    window time in ns). `window_ns` = n_samples / sampling_ghz. `out`, when given (float32,
    that shape, C-contiguous), is cleared, filled and returned, so a buffer can be reused."""
    scale = _scale(window_ns, cfg.n_bins)
    times, offsets = flat(times_ns, np.float64)
    shape = (offsets.size - 1, cfg.n_bins, 1)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
    _encode(times, offsets, scale, out)
    return out


@njit(cache=True, nogil=True)
def _encode_accepted(position, offsets, accept, rows, sampling_ghz, scale, out):
    """out[k, :, 0] = counts of the accepted candidates of waveform rows[k] per bin, their
    times position / sampling_ghz (float64) binned by the one rule."""
    n_bins = out.shape[1]
    for k in range(rows.size):
        for b in range(n_bins):
            out[k, b, 0] = 0.0
        i = rows[k]
        for j in range(offsets[i], offsets[i + 1]):
            if accept[j]:
                out[k, _bin((position[j] / sampling_ghz) * scale, n_bins - 1), 0] += 1.0


def encode_accepted(
    position: np.ndarray,
    offsets: np.ndarray,
    accept: np.ndarray,
    rows: np.ndarray,
    sampling_ghz: float,
    window_ns: float,
    cfg: TimeListConfig,
) -> np.ndarray:
    """(len(rows), n_bins, 1) float32 time lists of the accepted candidates of the waveforms
    `rows`, from flat candidate arrays (candidates of waveform i at offsets[i]:offsets[i+1],
    `position` in samples, `accept` bool); the same counts as `encode_time_list` of their
    window times position / sampling_ghz, without building jagged arrays."""
    out = np.empty((rows.size, cfg.n_bins, 1), dtype=np.float32)
    _encode_accepted(
        position,
        np.asarray(offsets, dtype=np.int64),
        np.asarray(accept, dtype=np.bool_),
        np.asarray(rows, dtype=np.int64),
        float(sampling_ghz),
        _scale(window_ns, cfg.n_bins),
        out,
    )
    return out
