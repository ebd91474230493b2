"""Raw samples -> float32 mV rows in one pass: conversion (scale, offset, polarity), rows with
NaN or inf, baseline and noise RMS, and optionally the rows' checksums.

The raw rows may be big-endian (as stored in ROOT baskets): each row is then byte-swapped
into a small scratch buffer first. Each row is hashed (FNV-1a of `ccframe.kernels.checksum`,
over its native bytes; four rows interleaved, as one hash is a chain of dependent
multiplications), then converted while it is still in the cache, into preallocated outputs
(`Converted`) that may be the input itself (native float32). The conversion rounds like
NumPy's `raw.astype(float32) * scale + offset_mv`, negated for negative polarity; baseline and
RMS are those of `ccframe.kernels.baseline.baseline_rms` on the converted row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ccframe.kernels.baseline import window_stats
from ccframe.kernels.checksum import FNV_OFFSET, FNV_PRIME, row_words

FAST = {"nsz", "arcp", "afn", "reassoc"}
"""fastmath without `nnan`/`ninf` (NaN and inf must be seen) or `contract` (no fused
multiply-add: the same rounding as NumPy)."""

ROWS = 4
"""Rows hashed together."""


@dataclass
class Converted:
    """`convert_rows`'s outputs; `finite[i]` is False where row i has a NaN or inf in mV."""

    waves: np.ndarray  # (n, n_samples) float32 mV
    baseline: np.ndarray  # (n,) float32
    rms: np.ndarray  # (n,) float32
    finite: np.ndarray  # (n,) bool
    checksums: np.ndarray | None  # (n,) uint64 of the raw rows, when asked for

    @classmethod
    def empty(
        cls, n: int, n_samples: int, checksums: bool = False, waves: np.ndarray | None = None
    ) -> Converted:
        """Outputs for n rows, to be filled (the samples into `waves` if given)."""
        row = (np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.bool_))
        sums = np.empty(n, np.uint64) if checksums else None
        if waves is None or not waves.flags.c_contiguous:
            waves = np.empty((n, n_samples), np.float32)
        return cls(waves, *row, sums)

    def rows(self, lo: int, hi: int) -> Converted:
        """Rows lo..hi-1 (views: filling them fills these)."""
        sums = self.checksums[lo:hi] if self.checksums is not None else None
        part = (self.baseline[lo:hi], self.rms[lo:hi], self.finite[lo:hi])
        return Converted(self.waves[lo:hi], *part, sums)


@njit(cache=True, nogil=True)
def _hash_rows(words: np.ndarray, row: int, count: int, sums: np.ndarray, first: int) -> None:
    """sums[first + r] = FNV-1a of row row + r of the uint32 `words`, r < count <= ROWS."""
    prime = np.uint64(FNV_PRIME)
    if count == ROWS:
        h0 = h1 = h2 = h3 = np.uint64(FNV_OFFSET)
        for k in range(words.shape[1]):
            h0 = (h0 ^ np.uint64(words[row, k])) * prime
            h1 = (h1 ^ np.uint64(words[row + 1, k])) * prime
            h2 = (h2 ^ np.uint64(words[row + 2, k])) * prime
            h3 = (h3 ^ np.uint64(words[row + 3, k])) * prime
        sums[first], sums[first + 1], sums[first + 2], sums[first + 3] = h0, h1, h2, h3
        return
    for r in range(count):
        h = np.uint64(FNV_OFFSET)
        for k in range(words.shape[1]):
            h = (h ^ np.uint64(words[row + r, k])) * prime
        sums[first + r] = h


@njit(cache=True, nogil=True, inline="always")
def _swap(x: np.integer, width: int) -> np.integer:
    """The unsigned `width`-byte integer x with its bytes reversed."""
    if width == 2:
        return (x << np.uint16(8)) | (x >> np.uint16(8))
    if width == 4:
        m = np.uint32(0x00FF00FF)
        x = ((x & m) << np.uint32(8)) | ((x >> np.uint32(8)) & m)
        return (x << np.uint32(16)) | (x >> np.uint32(16))
    m1, m2 = np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF)
    x = ((x & m1) << np.uint64(8)) | ((x >> np.uint64(8)) & m1)
    x = ((x & m2) << np.uint64(16)) | ((x >> np.uint64(16)) & m2)
    return (x << np.uint64(32)) | (x >> np.uint64(32))


@njit(cache=True, nogil=True, fastmath=FAST)
def _convert_row(raw: np.ndarray, scale: np.float32, offset: np.float32, sign: np.float32,
                 out: np.ndarray) -> bool:  # fmt: skip
    """out = sign * (float32(raw) * scale + offset); False if any of it is NaN or inf."""
    finite = True
    for k in range(raw.shape[0]):
        v = (np.float32(raw[k]) * scale + offset) * sign
        out[k] = v
        finite &= math.isfinite(v)
    return finite


@njit(cache=True, nogil=True)
def _convert(native: np.ndarray, big: np.ndarray, swapped: bool, scratch: np.ndarray,
             rows: np.ndarray, words: np.ndarray, hashed: bool, scale: np.float32,
             offset: np.float32, sign: np.float32, n_window: int, out: np.ndarray,
             baseline: np.ndarray, rms: np.ndarray, finite: np.ndarray,
             sums: np.ndarray) -> None:  # fmt: skip
    """Every step for ROWS rows at a time, from `native` rows (n, n_samples) or (`swapped`)
    from `big`, big-endian samples as unsigned integers (n, n_samples), swapped into
    `scratch` (ROWS, n_samples), which `rows` views as numbers; `words`: the native rows
    (`native` or `scratch`) as uint32."""
    n = big.shape[0] if swapped else native.shape[0]
    for first in range(0, n, ROWS):
        count = min(ROWS, n - first)
        if swapped:
            for r in range(count):
                for k in range(big.shape[1]):
                    scratch[r, k] = _swap(big[first + r, k], big.itemsize)
        if hashed:  # before the rows are converted: `out` may be `native`
            _hash_rows(words, 0 if swapped else first, count, sums, first)
        for r in range(count):
            i = first + r
            if swapped:
                finite[i] = _convert_row(rows[r], scale, offset, sign, out[i])
            else:
                finite[i] = _convert_row(native[i], scale, offset, sign, out[i])
            baseline[i], rms[i] = window_stats(out[i], n_window)


def convert_rows(
    raw: np.ndarray,
    n_window: int,
    scale: float = 1.0,
    offset: float = 0.0,
    negative: bool = False,
    checksums: bool = False,
    out: Converted | None = None,
    overwrite: bool = False,
) -> Converted:
    """Rows of raw samples (n, n_samples; integers or floats, either byte order) -> float32
    mV, flags of rows with NaN or inf, mean and RMS of the first `n_window` samples (0: none
    computed), the rows' checksums if asked for (`checksum.row_checksums`; a ValueError if
    the rows are not whole 32-bit words). `out`: outputs to fill (`Converted.empty`), else new
    ones; `overwrite`: a native float32 `raw` may be the output waveforms."""
    if raw.ndim != 2:
        raise ValueError(f"expected a 2D (waveforms, samples) array, got shape {raw.shape}")
    if not 0 <= n_window <= raw.shape[1]:
        raise ValueError(f"baseline window of {n_window} samples does not fit {raw.shape[1]}")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"expected numbers, got {raw.dtype}")
    if checksums:  # the rows must be whole 32-bit words
        row_words(np.empty((0, raw.shape[1]), raw.dtype.newbyteorder("=")))
    if out is None:
        reuse = overwrite and raw.dtype == np.float32 and raw.flags.writeable
        out = Converted.empty(raw.shape[0], raw.shape[1], checksums, raw if reuse else None)
    if out.waves.shape != raw.shape or (checksums and out.checksums is None):
        raise ValueError(f"outputs for {out.waves.shape} rows, not {raw.shape}")
    swapped = not raw.dtype.isnative and raw.dtype.itemsize > 1
    native, big, scratch, rows = _layout(raw, swapped)
    words = _NO_WORDS
    if checksums:
        words = (scratch if swapped else native).view(np.uint8).view(np.uint32)
    sums = out.checksums if out.checksums is not None else _NO_SUMS
    factors = (np.float32(scale), np.float32(offset), np.float32(-1.0 if negative else 1.0))
    outputs = (out.waves, out.baseline, out.rms, out.finite, sums)
    _convert(native, big, swapped, scratch, rows, words, checksums, *factors, n_window, *outputs)
    return out


_NO_WORDS = np.zeros((0, 0), np.uint32)
_NO_SUMS = np.zeros(0, np.uint64)
_NO_BIG = np.zeros((0, 0), np.uint8)


def _layout(raw: np.ndarray, swapped: bool) -> tuple[np.ndarray, ...]:
    """The kernel's arrays for `raw`: native rows, or (`swapped`) big-endian samples as
    unsigned integers and scratch rows to swap them into (as unsigned integers and numbers);
    the others empty."""
    native = raw.dtype.newbyteorder("=")
    if not swapped:
        data = np.ascontiguousarray(raw, dtype=native)
        return data, _NO_BIG, _NO_BIG, np.zeros((0, 0), native)
    unsigned = np.dtype(f"u{raw.dtype.itemsize}")
    big = np.ascontiguousarray(raw).view(unsigned)
    scratch = np.empty((ROWS, raw.shape[1]), unsigned)
    return np.zeros((0, 0), native), big, scratch, scratch.view(native)
