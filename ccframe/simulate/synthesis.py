"""Numba kernels that turn electron arrivals into digitized waveforms."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def add_pulses(
    out: np.ndarray,
    offsets: np.ndarray,
    arrival_ns: np.ndarray,
    charge: np.ndarray,
    dt_ns: float,
    rise_ns: float,
    fall_ns: float,
    main_scale: float,
    tail_scale: float,
    tail_t0_ns: float,
    tail_cut_ns: float,
) -> None:
    """Add single-electron pulses to `out` (n_waveforms, n_samples) in place.

    Electron j of waveform i (offsets[i] <= j < offsets[i+1]) arrives at arrival_ns[j]
    (window time) with relative charge charge[j]. The double exponential
    main_scale * q * (exp(-t/fall) - exp(-t/rise)) is exact at every sample: each pulse is
    injected at its first sample, then two first-order recursions carry it (O(n_samples)
    per waveform whatever the number of electrons). The optional ion tail
    tail_scale * q / (t + t0) for t < cut is added directly.
    """
    n_wave, n_samp = out.shape
    inj_f = np.zeros(n_samp)
    inj_r = np.zeros(n_samp)
    decay_f = math.exp(-dt_ns / fall_ns)
    decay_r = math.exp(-dt_ns / rise_ns)
    n_tail = math.ceil(tail_cut_ns / dt_ns) if tail_scale > 0.0 else 0
    for i in range(n_wave):
        inj_f[:] = 0.0
        inj_r[:] = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            ta = arrival_ns[j]
            k0 = max(math.ceil(ta / dt_ns), 0)
            if k0 > 0 and (k0 - 1) * dt_ns >= ta:  # ta on a sample time, ta/dt rounded up
                k0 -= 1
            if k0 >= n_samp:
                continue
            lag = k0 * dt_ns - ta
            q = charge[j]
            inj_f[k0] += q * math.exp(-lag / fall_ns)
            inj_r[k0] += q * math.exp(-lag / rise_ns)
            if n_tail > 0:
                for k in range(k0, min(k0 + n_tail + 1, n_samp)):
                    t = k * dt_ns - ta
                    if t < tail_cut_ns:
                        out[i, k] += tail_scale * q / (t + tail_t0_ns)
        acc_f = 0.0
        acc_r = 0.0
        for k in range(n_samp):
            acc_f = acc_f * decay_f + inj_f[k]
            acc_r = acc_r * decay_r + inj_r[k]
            out[i, k] += main_scale * (acc_f - acc_r)
