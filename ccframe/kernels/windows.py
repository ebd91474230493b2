"""Windows of samples around peaks, the LSTM's input.

Window j of waveform i covers samples p - before .. p + after (p = positions[j]); each value
is float32((float64(wave[k]) - float64(baseline[i])) / float64(scale[i])). Samples outside
the waveform take the edge sample's value (`replicate`) or 0 (`zero`); a position may lie
anywhere, even outside the waveform. NaN samples are copied as NaN.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import WindowConfig
from ccframe.kernels.jagged import as_rows, flat


@njit(cache=True, nogil=True)
def _windows(waves, baseline, scale, positions, offsets, before, after, replicate, out):
    """out[j, w, 0] = window value w of peak j (flat over all waveforms, see the module)."""
    n = waves.shape[1]
    width = before + 1 + after
    for i in range(offsets.size - 1):
        if offsets[i + 1] == offsets[i]:
            continue
        b = np.float64(baseline[i])
        s = np.float64(scale[i])
        first = (np.float64(waves[i, 0]) - b) / s if replicate else 0.0
        last = (np.float64(waves[i, n - 1]) - b) / s if replicate else 0.0
        for j in range(offsets[i], offsets[i + 1]):
            k0 = positions[j] - before
            for w in range(width):
                k = k0 + w
                if k < 0:
                    v = first
                elif k >= n:
                    v = last
                else:
                    v = (np.float64(waves[i, k]) - b) / s
                out[j, w, 0] = v


def window_scale(rms: np.ndarray, cfg: WindowConfig) -> np.ndarray:
    """The per-waveform divisor of `cfg.normalization` (float32): rms (1 where rms is not
    > 0, e.g. 0 or NaN), scale_mv, or 1."""
    rms = np.asarray(rms, dtype=np.float32)
    if cfg.normalization == "rms":
        return np.where(rms > 0, rms, np.float32(1.0)).astype(np.float32)
    value = cfg.scale_mv if cfg.normalization == "fixed" else 1.0
    return np.full(rms.shape, value, dtype=np.float32)


def slice_windows(
    waves: np.ndarray,
    baseline: np.ndarray,
    rms: np.ndarray,
    positions: ak.Array,
    cfg: WindowConfig,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(N, before + 1 + after, 1) float32 windows, N = the number of positions, in the order
    of the flattened jagged `positions` (one list of sample indices per waveform).

    `out`, when given, is filled and returned (float32, that shape, C-contiguous)."""
    waves, baseline, rms = as_rows(waves, baseline, rms)
    content, offsets = flat(positions, np.int64)
    if offsets.size - 1 != waves.shape[0]:
        raise ValueError(f"{offsets.size - 1} position lists for {waves.shape[0]} waveforms")
    shape = (content.size, cfg.width, 1)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
    if content.size and waves.shape[1] == 0:
        raise ValueError("cannot cut windows from waveforms of 0 samples")
    scale = window_scale(rms, cfg)
    replicate = cfg.edge == "replicate"
    _windows(waves, baseline, scale, content, offsets, cfg.before, cfg.after, replicate, out)
    return out
