"""Isolated pulses: selection, amplitudes and their aligned average (docs/calibration.md,
"Pulse shape and amplitude").

All arrays are (waveforms, samples) in mV with positive pulses, as the reader gives them.
Thresholds are in mV, windows in samples, so that data and simulation are measured alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.config import CandidateConfig
from ccframe.kernels.jagged import flat


@dataclass(frozen=True)
class PulseWindow:
    """Where an isolated pulse's samples are taken, in samples around its peak sample."""

    pre: int
    """Samples before the peak with no other candidate; the first `pre - lead` of them give
    the pulse's local baseline."""
    lead: int
    """Samples before the peak that belong to the rising edge (not baseline)."""
    post: int
    """Samples after the peak with no other candidate (the fit of the fall uses them)."""
    separation: int
    """Candidates lower than another within this many samples are dropped first (noise
    wiggles on one pulse are not neighbours)."""


@dataclass
class Candidates:
    """Candidate peaks above the low threshold, flat over waveforms."""

    row: np.ndarray  # (m,) waveform index
    pos: np.ndarray  # (m,) sample index, increasing within a row
    height: np.ndarray  # (m,) sample - waveform baseline (mV)


def candidates(
    waves: np.ndarray, baseline: np.ndarray, threshold_mv: float, separation: int
) -> Candidates:
    """Local maxima higher than `threshold_mv` above each waveform's baseline (the
    project's candidate kernel with a fixed threshold)."""
    rms = np.ones(len(waves), dtype=np.float32)
    cfg = CandidateConfig(
        min_amplitude_rms=float(threshold_mv), min_separation_samples=int(separation)
    )
    pos, offsets = flat(find_candidates(waves, baseline, rms, cfg), np.int64)
    row = np.repeat(np.arange(len(waves)), np.diff(offsets))
    return Candidates(row, pos, waves[row, pos] - baseline[row])


def first_last(
    waves: np.ndarray, cands: Candidates, threshold_mv: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (samples, refined by a parabola through the peak and its neighbours) of the
    first and of the last candidate above `threshold_mv` of every waveform that has one."""
    keep = cands.height > threshold_mv
    row, pos = cands.row[keep], cands.pos[keep]
    counts = np.bincount(row, minlength=len(waves))
    has = counts > 0
    ends = np.cumsum(counts)
    rows = np.flatnonzero(has)
    first, last = ends[has] - counts[has], ends[has] - 1
    return refine(waves, rows, pos[first]), refine(waves, rows, pos[last])


def refine(waves: np.ndarray, rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Sub-sample position of the maxima at `pos` (parabola through three samples)."""
    n = waves.shape[1]
    p = np.clip(pos, 1, n - 2)
    y0, y1, y2 = (waves[rows, p + d].astype(np.float64) for d in (-1, 0, 1))
    curv = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.clip(np.where(curv < 0, 0.5 * (y0 - y2) / curv, 0.0), -0.5, 0.5)
    return p + delta


@njit(cache=True, nogil=True)
def _isolated(row, pos, height, n_samples, pre, post, tail, margin, out):
    """out[j]: candidate j has no candidate within `pre` samples before it, no earlier pulse
    whose expected tail (height x tail[lag]) still exceeds `margin` at j, no later candidate
    within `post` samples that stands more than `margin` above j's own expected tail, and
    its window [pos - pre, pos + post] lies inside the waveform."""
    m = pos.size
    for j in range(m):
        ok = pos[j] >= pre and pos[j] + post < n_samples
        k = j - 1
        while ok and k >= 0 and row[k] == row[j]:
            lag = pos[j] - pos[k]
            if lag >= tail.size:
                break
            if lag <= pre or height[k] * tail[lag] > margin:
                ok = False
            k -= 1
        k = j + 1
        while ok and k < m and row[k] == row[j] and pos[k] - pos[j] <= post:
            if height[k] > height[j] * tail[pos[k] - pos[j]] + margin:
                ok = False
            k += 1
        out[j] = ok


def isolated(
    cands: Candidates, n_samples: int, window: PulseWindow, tail: np.ndarray, margin_mv: float
) -> np.ndarray:
    """Indices of the isolated candidates (see `_isolated`); `tail[k]` is the expected
    normalised pulse k samples after its peak (k = 0 .. at least `post`)."""
    out = np.zeros(cands.pos.size, dtype=np.bool_)
    if cands.pos.size:
        _isolated(
            cands.row.astype(np.int64),
            cands.pos.astype(np.int64),
            cands.height.astype(np.float64),
            n_samples,
            window.pre,
            window.post,
            np.ascontiguousarray(tail, dtype=np.float64),
            float(margin_mv),
            out,
        )
    return np.flatnonzero(out)


@dataclass
class PulseSet:
    """The isolated pulses of a sample: amplitudes and baseline-subtracted, normalised
    samples with each sample's time relative to the pulse's 50% leading-edge crossing."""

    amplitude: np.ndarray  # (p,) mV, parabolic peak - local baseline
    shape: np.ndarray  # (p, w) (sample - local baseline) / amplitude
    time_ns: np.ndarray  # (p, w) sample time - crossing time


def pulse_set(
    waves: np.ndarray,
    cands: Candidates,
    index: np.ndarray,
    window: PulseWindow,
    sampling_ghz: float,
    min_amplitude_mv: float,
) -> PulseSet:
    """Cut, measure and align the isolated pulses `index` of `cands`; keep those whose
    amplitude exceeds `min_amplitude_mv` and whose leading edge crosses 50%."""
    pre, post = window.pre, window.post
    rows = cands.row[index][:, None]
    cols = cands.pos[index][:, None] + np.arange(-pre, post + 1)
    w = waves[rows, cols].astype(np.float64)
    base = w[:, : max(1, pre - window.lead)].mean(axis=1)
    y0, y1, y2 = w[:, pre - 1], w[:, pre], w[:, pre + 1]
    curv = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.clip(np.where(curv < 0, 0.5 * (y0 - y2) / curv, 0.0), -0.5, 0.5)
    amp = y1 - 0.25 * (y0 - y2) * delta - base
    keep = amp > min_amplitude_mv
    w, base, amp = w[keep], base[keep], amp[keep]
    shape = (w - base[:, None]) / amp[:, None]
    # The last sample before the peak below 50%, then linear interpolation to the crossing.
    below = shape[:, : pre + 1] < 0.5
    has = below.any(axis=1)
    k = pre - np.argmax(below[:, ::-1], axis=1)
    k = np.minimum(k, pre - 1)
    lo = shape[np.arange(len(k)), k]
    hi = shape[np.arange(len(k)), k + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = k + np.clip((0.5 - lo) / (hi - lo), 0.0, 1.0)
    has &= np.isfinite(cross)
    time_ns = (np.arange(pre + post + 1)[None, :] - cross[has, None]) / sampling_ghz
    return PulseSet(amp[has], shape[has], time_ns)


@dataclass
class Profile:
    """The average normalised pulse on a grid finer than the sampling (each pulse's samples
    fall at a different phase relative to its crossing)."""

    t_ns: np.ndarray  # (b,) bin centres
    mean: np.ndarray  # (b,)
    err: np.ndarray  # (b,) standard error of the mean
    count: np.ndarray  # (b,)


def profile(pulses: PulseSet, t_min: float, t_max: float, step_ns: float) -> Profile:
    """Average of the pulses' normalised samples in bins of `step_ns` over [t_min, t_max)."""
    edges = np.arange(t_min, t_max + 0.5 * step_ns, step_ns)
    nb = edges.size - 1
    t = pulses.time_ns.ravel()
    y = pulses.shape.ravel()
    b = np.floor((t - t_min) / step_ns).astype(np.int64)
    ok = (b >= 0) & (b < nb)
    b, y = b[ok], y[ok]
    n = np.bincount(b, minlength=nb).astype(np.float64)
    s1 = np.bincount(b, weights=y, minlength=nb)
    s2 = np.bincount(b, weights=y * y, minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0.0)
        err = np.sqrt(var / np.maximum(n - 1, 1))
    centres = 0.5 * (edges[:-1] + edges[1:])
    return Profile(centres, mean, err, n)
