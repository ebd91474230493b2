"""Flat content + counts <-> awkward arrays."""

from __future__ import annotations

import awkward as ak
import numpy as np


def to_jagged(content: np.ndarray, counts: np.ndarray) -> ak.Array:
    """An awkward list array with `counts[i]` items of `content` in row i."""
    return ak.unflatten(np.asarray(content), np.asarray(counts, dtype=np.int64))


def flat(array: ak.Array, dtype: type | np.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(content, offsets) of a one-level jagged array."""
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    content = ak.to_numpy(ak.flatten(array, axis=1))
    if dtype is not None:
        content = content.astype(dtype, copy=False)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return np.ascontiguousarray(content), offsets
