"""Windows of samples around peaks, the LSTM's input."""

from __future__ import annotations

import awkward as ak
import numpy as np
from numba import njit

from ccframe.kernels.config import WindowConfig
from ccframe.kernels.jagged import flat


@njit(cache=True, nogil=True)
def _windows(waves, baseline, scale, positions, offsets, before, after, replicate, out):
    n = waves.shape[1]
    width = before + 1 + after
    for i in range(offsets.size - 1):
        b = baseline[i]
        s = scale[i]
        first = waves[i, 0] - b
        last = waves[i, n - 1] - b
        for j in range(offsets[i], offsets[i + 1]):
            k0 = positions[j] - before
            for w in range(width):
                k = k0 + w
                if k < 0:
                    v = first if replicate else 0.0
                elif k >= n:
                    v = last if replicate else 0.0
                else:
                    v = waves[i, k] - b
                out[j, w, 0] = v / s


def slice_windows(waves, baseline, rms, positions: ak.Array, cfg: WindowConfig) -> np.ndarray:
    """(n_peaks, before + 1 + after, 1) float32 windows, in the order of the flattened peaks."""
    waves = np.ascontiguousarray(waves, dtype=np.float32)
    content, offsets = flat(positions, np.int64)
    if offsets.size - 1 != waves.shape[0]:
        raise ValueError(f"{offsets.size - 1} peak lists for {waves.shape[0]} waveforms")
    if cfg.normalization == "rms":
        scale = np.where(np.asarray(rms) > 0, rms, 1.0).astype(np.float32)
    elif cfg.normalization == "fixed":
        scale = np.full(waves.shape[0], cfg.scale_mv, dtype=np.float32)
    else:
        scale = np.ones(waves.shape[0], dtype=np.float32)
    out = np.empty((content.size, cfg.before + 1 + cfg.after, 1), dtype=np.float32)
    _windows(
        waves, np.asarray(baseline, dtype=np.float32), scale, content, offsets,
        cfg.before, cfg.after, cfg.edge == "replicate", out,
    )  # fmt: skip
    return out
