"""Tail cancellation: the pulses' exponential fall divided out of each waveform
(docs/algorithms.md, "Tail cancellation").

    y[k] = (x[k] - a x[k-1]) / (1 - a),  a = exp(-dt / fall_ns),  y[0] = x[0]

A pulse A (exp(-t/fall) - exp(-t/rise)) becomes one about a rise time wide with the same
integral, so pulses a few ns apart no longer sit on each other's tails. The gain at zero
frequency is 1, so the baseline keeps its value in mV; the noise RMS changes and is measured
again on the filtered baseline window.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ccframe.kernels.baseline import window_stats


@njit(cache=True, nogil=True, fastmath=True)
def _cancel(waves: np.ndarray, a: float, n_window: int, baseline: np.ndarray,
            rms: np.ndarray) -> None:  # fmt: skip
    gain = 1.0 / (1.0 - a)
    for i in range(waves.shape[0]):
        row = waves[i]
        for k in range(row.shape[0] - 1, 0, -1):  # backwards: row[k - 1] is still the input
            row[k] = (row[k] - a * row[k - 1]) * gain
        baseline[i], rms[i] = window_stats(row, n_window)


def tail_factor(sampling_ghz: float, fall_ns: float) -> float:
    """a = exp(-dt / fall_ns): the fall's decay from one sample to the next."""
    if not (sampling_ghz > 0 and fall_ns > 0):
        raise ValueError(f"sampling_ghz and fall_ns must be > 0, got {sampling_ghz}, {fall_ns}")
    return math.exp(-1.0 / (sampling_ghz * fall_ns))


def cancel_tails(
    waves: np.ndarray,
    baseline: np.ndarray,
    rms: np.ndarray,
    sampling_ghz: float,
    fall_ns: float,
    n_window: int,
) -> None:
    """Filter the (n, samples) float32 `waves` in place and refill `baseline` and `rms` (n,)
    from their first `n_window` samples."""
    if waves.dtype != np.float32 or waves.ndim != 2 or not waves.flags.c_contiguous:
        raise ValueError("waves must be a C-contiguous (n, samples) float32 array")
    if not 1 <= n_window <= waves.shape[1]:
        raise ValueError(f"n_window must be in [1, {waves.shape[1]}], got {n_window}")
    _cancel(waves, tail_factor(sampling_ghz, fall_ns), n_window, baseline, rms)
