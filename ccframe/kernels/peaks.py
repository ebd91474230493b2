"""Peak finders on (waveforms, samples) float32 arrays: loose candidates for the ML, and the
traditional DERIV and D2 algorithms (physics.md section 9).

Each Numba kernel writes the sample index of every peak of row i, in increasing order, into
a flat buffer and the number of peaks into counts[i]; NaN samples never make a peak (every
comparison with NaN is false). Wrappers return awkward arrays of int32 sample indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import CandidateConfig, D2Config, DerivConfig
from ccframe.kernels.jagged import to_jagged

CHUNK_ROWS = 2048


@njit(cache=True, nogil=True)
def _candidates(waves, baseline, rms, min_amp, min_curv, out, counts):
    # Branchless: on noise about a third of the samples are local maxima, so an `if` would
    # mispredict constantly; every sample writes its index, the pointer moves when it passes.
    n_rows, n = waves.shape
    p = 0
    for i in range(n_rows):
        start = p
        row = waves[i]
        amp = np.float32(baseline[i] + min_amp * rms[i])
        curv = np.float32(-min_curv * rms[i])
        for k in range(1, n - 1):
            c = row[k]
            left = row[k - 1]
            right = row[k + 1]
            ok = (c > left) & (c >= right) & (c > amp) & ((left + right) - 2 * c <= curv)
            out[p] = k
            p += ok
        counts[i] = p - start
    return p


@njit(cache=True, nogil=True)
def _deriv(waves, baseline, rms, dt, n1, n2, n3, n4, out, counts):
    n_rows, n = waves.shape
    d1 = np.zeros(n)
    d2 = np.zeros(n)
    p = 0
    for i in range(n_rows):
        start = p
        b = baseline[i]
        r = rms[i]
        s1 = r / (math.sqrt(2.0) * dt)
        s2 = r / (2.0 * dt * dt)
        for k in range(1, n - 1):
            d1[k] = (waves[i, k + 1] - waves[i, k - 1]) / (2.0 * dt)
        for k in range(2, n - 2):
            d2[k] = (d1[k + 1] - d1[k - 1]) / (2.0 * dt)
        run_best = -1
        run_amp = 0.0
        for k in range(2, n - 2):
            a = waves[i, k] - b
            ok = (
                a > n1 * r
                and a - 0.5 * (waves[i, k - 1] + waves[i, k + 1] - 2.0 * b) > n2 * r
                and (abs(d1[k]) < 2.0 * n3 * s1 or d1[k - 1] > n3 * s1 or d1[k + 1] < -n3 * s1)
                and d2[k] < -n4 * s2
            )
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


@njit(cache=True, nogil=True)
def _d2(waves, baseline, rms, t1_rms, t2_rms, out, counts):
    n_rows, n = waves.shape
    p = 0
    for i in range(n_rows):
        start = p
        b = baseline[i]
        t1 = t1_rms * rms[i]
        t2 = t2_rms * rms[i]
        acc = 0.0
        emitted = False
        last = -1
        for k in range(n - 2):
            # D1[k] = max(A[k+1] - A[k], 0), zeroed where A[k] < T1; D2[k] = max(D1[k+1]-D1[k], 0)
            d1a = waves[i, k + 1] - waves[i, k]
            d1a = d1a if (d1a > 0.0 and waves[i, k] - b >= t1) else 0.0
            d1b = waves[i, k + 2] - waves[i, k + 1]
            d1b = d1b if (d1b > 0.0 and waves[i, k + 1] - b >= t1) else 0.0
            d2 = d1b - d1a
            if d2 > 0.0:
                acc += d2
                if acc > t2 and not emitted:
                    emitted = True
                    m = k + 1  # the peak: the next local maximum of A
                    while m < n - 1 and waves[i, m + 1] > waves[i, m]:
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


def _run(kernel: Callable[..., int], waves: np.ndarray, baseline, rms, *params) -> ak.Array:
    """Apply a peak kernel in row chunks with one reused output buffer."""
    waves = np.ascontiguousarray(waves, dtype=np.float32)
    if waves.ndim != 2:
        raise ValueError(f"expected (waveforms, samples), got shape {waves.shape}")
    n_rows, n = waves.shape
    baseline = np.ascontiguousarray(baseline, dtype=np.float32)
    rms = np.ascontiguousarray(rms, dtype=np.float32)
    counts = np.zeros(n_rows, dtype=np.int64)
    # At most every other sample is a peak; +1: branchless kernels write one past the last.
    buffer = np.empty(min(n_rows, CHUNK_ROWS) * (n // 2 + 1) + 1, dtype=np.int32)
    parts = []
    for lo in range(0, n_rows, CHUNK_ROWS):
        hi = min(n_rows, lo + CHUNK_ROWS)
        total = kernel(waves[lo:hi], baseline[lo:hi], rms[lo:hi], *params, buffer, counts[lo:hi])
        parts.append(buffer[:total].copy())
    content = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return to_jagged(content, counts)


def find_candidates(waves, baseline, rms, cfg: CandidateConfig) -> ak.Array:
    """Loose peak candidates (sample indices) for the ML peak finder."""
    return _run(_candidates, waves, baseline, rms, cfg.min_amplitude_rms, cfg.min_curvature_rms)


def find_deriv(waves, baseline, rms, sampling_ghz: float, cfg: DerivConfig) -> ak.Array:
    """DERIV peaks (sample indices); derivatives per ns at the given sampling rate."""
    dt = 1.0 / sampling_ghz
    return _run(_deriv, waves, baseline, rms, dt, cfg.n1, cfg.n2, cfg.n3, cfg.n4)


def find_d2(waves, baseline, rms, cfg: D2Config) -> ak.Array:
    """D2 peaks (sample indices)."""
    return _run(_d2, waves, baseline, rms, cfg.t1_rms, cfg.t2_rms)
