"""Per-waveform checksums: FNV-1a (64 bit) over the 32-bit words of each row.

The simulator writes one checksum per entry in the branch `<waveform branch>_checksum`; the
reader recomputes it on the raw rows it read and refuses a file where they differ. ROOT
baskets stored uncompressed carry no checksum of their own, so without this a flipped byte in
a waveform would go unnoticed (see docs/data-integrity.md).

The checksum of a row of n words w[0..n-1] (the row's bytes in memory order, read as
little-endian uint32; a float32 row is its n samples' bit patterns) is h[n], with
h[0] = 0xCBF29CE484222325 and h[k+1] = ((h[k] xor w[k]) * 0x100000001B3) mod 2^64. Every
step is a bijection of h for a given word, so a change of any one word always changes it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
SUFFIX = "_checksum"


def checksum_branch(waveform_branch: str) -> str:
    """The branch holding the checksums of `waveform_branch`: `waveform` -> `waveform_checksum`."""
    return waveform_branch + SUFFIX


@njit(cache=True, nogil=True)
def _fnv1a_rows(words: np.ndarray, out: np.ndarray) -> None:
    """out[i] = the FNV-1a checksum of row i of the (n, m) uint32 `words` (see the module)."""
    prime = np.uint64(FNV_PRIME)
    for i in range(words.shape[0]):
        h = np.uint64(FNV_OFFSET)
        for k in range(words.shape[1]):
            h = (h ^ np.uint64(words[i, k])) * prime
        out[i] = h


def row_words(rows: np.ndarray) -> np.ndarray:
    """The (n, m) uint32 little-endian words of the rows of a 2-D array whose rows are a
    whole number of words (float32, int32, float64, ...)."""
    if rows.ndim != 2:
        raise ValueError(f"expected a 2D (waveforms, samples) array, got shape {rows.shape}")
    data = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<"))
    if (data.shape[1] * data.dtype.itemsize) % 4:
        raise ValueError(f"rows of {data.shape[1]} x {data.dtype} are not whole 32-bit words")
    return data.view("<u4").astype(np.uint32, copy=False)


def row_checksums(rows: np.ndarray) -> np.ndarray:
    """(n,) uint64 checksum of each row of `rows` (see the module)."""
    words = row_words(rows)
    out = np.empty(words.shape[0], dtype=np.uint64)
    _fnv1a_rows(words, out)
    return out
