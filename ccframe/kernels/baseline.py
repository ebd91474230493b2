"""Baseline and noise RMS per waveform from a window at its start."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True)
def window_stats(row: np.ndarray, n_window: int) -> tuple[float, float]:
    """Mean and standard deviation (n - 1; 0 for one sample) of row[:n_window] (0, 0 for
    none)."""
    s = 0.0
    for k in range(n_window):
        s += row[k]
    mean = s / max(n_window, 1)
    ss = 0.0
    for k in range(n_window):
        d = row[k] - mean
        ss += d * d
    return mean, math.sqrt(ss / max(n_window - 1, 1))


@njit(cache=True, nogil=True, fastmath=True)
def _baseline_rms(waves: np.ndarray, n_window: int, baseline: np.ndarray, rms: np.ndarray) -> None:
    for i in range(waves.shape[0]):
        baseline[i], rms[i] = window_stats(waves[i], n_window)


def baseline_rms(waveforms: np.ndarray, n_window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the first `n_window` samples of each row (float32)."""
    waves = np.ascontiguousarray(waveforms, dtype=np.float32)
    if waves.ndim != 2:
        raise ValueError(f"expected a 2D (waveforms, samples) array, got shape {waves.shape}")
    if not 1 <= n_window <= waves.shape[1]:
        raise ValueError(f"baseline window of {n_window} samples does not fit {waves.shape[1]}")
    baseline = np.empty(waves.shape[0], dtype=np.float32)
    rms = np.empty(waves.shape[0], dtype=np.float32)
    _baseline_rms(waves, n_window, baseline, rms)
    return baseline, rms
