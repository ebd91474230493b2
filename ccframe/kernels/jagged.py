"""Flat (content, offsets) <-> awkward lists, and the chunked driver of the row-scan kernels.

A jagged array here is one level of lists: row i holds content[offsets[i]:offsets[i+1]],
offsets int64 with offsets[0] == 0.
"""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np

# Rows per chunk of a row scan: with 2400-sample waveforms the reused int32 output buffer is
# 2048 * 1201 * 4 B = 9.8 MB, and the copy-out per chunk stays small next to the scan.
CHUNK_ROWS = 2048


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """int64 offsets (length n + 1, starting at 0) of lists with `counts[i]` items."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def gather_rows(
    offsets: np.ndarray, rows: np.ndarray, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items of rows `rows` (the first `limit` of each when given), flattened in order:
    for each item, its position in `rows`, its rank within its row and its flat index."""
    rows = np.asarray(rows, dtype=np.int64)
    counts = offsets[rows + 1] - offsets[rows]
    if limit is not None:
        counts = np.minimum(counts, limit)
    which = np.repeat(np.arange(rows.size), counts)
    rank = np.arange(which.size) - (np.cumsum(counts) - counts)[which]
    return which, rank, offsets[rows][which] + rank


def from_offsets(content: np.ndarray, offsets: np.ndarray) -> ak.Array:
    """An awkward list array over `content` (not copied) with the given int64 offsets."""
    layout = ak.contents.ListOffsetArray(
        ak.index.Index64(np.asarray(offsets, dtype=np.int64)),
        ak.contents.NumpyArray(np.asarray(content)),
    )
    return ak.Array(layout)


def to_jagged(content: np.ndarray, counts: np.ndarray) -> ak.Array:
    """An awkward list array with `counts[i]` items of `content` in row i."""
    return from_offsets(content, offsets_from_counts(counts))


def flat(array: ak.Array, dtype: type | np.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous (content, offsets) of a one-level jagged array of numbers.

    Lists of unknown type (e.g. `ak.Array([[], []])`) give empty content of `dtype`
    (float64 if None)."""
    array = ak.Array(array)
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    offsets = offsets_from_counts(counts)
    if offsets[-1] == 0:
        return np.zeros(0, dtype=dtype or np.float64), offsets
    content = ak.to_numpy(ak.flatten(array, axis=1))
    if dtype is not None:
        content = content.astype(dtype, copy=False)
    return np.ascontiguousarray(content), offsets


def as_rows(
    waves: np.ndarray, baseline: np.ndarray, rms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked C-contiguous float32 (n, samples) waveforms and (n,) baseline and rms."""
    waves = np.ascontiguousarray(waves, dtype=np.float32)
    if waves.ndim != 2:
        raise ValueError(f"expected (waveforms, samples) waveforms, got shape {waves.shape}")
    baseline = np.ascontiguousarray(baseline, dtype=np.float32)
    rms = np.ascontiguousarray(rms, dtype=np.float32)
    for name, value in (("baseline", baseline), ("rms", rms)):
        if value.shape != (waves.shape[0],):
            raise ValueError(
                f"{name} must have shape ({waves.shape[0]},) for {waves.shape[0]} waveforms, "
                f"got {value.shape}"
            )
    return waves, baseline, rms


def scan_rows(
    kernel: Callable[..., int],
    waves: np.ndarray,
    baseline: np.ndarray,
    rms: np.ndarray,
    params: tuple,
    per_row: int,
    chunk_rows: int = CHUNK_ROWS,
) -> ak.Array:
    """Run a peak kernel `kernel(waves, baseline, rms, *params, out, counts) -> total` over
    row chunks with one reused int32 buffer, and return its lists as an awkward array.

    `per_row` bounds the items one row can write (including a branchless kernel's write
    one past its last item, which only needs one spare slot per chunk)."""
    waves, baseline, rms = as_rows(waves, baseline, rms)
    n_rows = waves.shape[0]
    counts = np.zeros(n_rows, dtype=np.int64)
    buffer = np.empty(min(n_rows, chunk_rows) * per_row + 1, dtype=np.int32)
    parts = []
    for lo in range(0, n_rows, chunk_rows):
        hi = min(n_rows, lo + chunk_rows)
        total = kernel(waves[lo:hi], baseline[lo:hi], rms[lo:hi], *params, buffer, counts[lo:hi])
        parts.append(buffer[:total].copy())
    content = np.concatenate(parts) if len(parts) > 1 else (parts or [buffer[:0].copy()])[0]
    return to_jagged(content, counts)
