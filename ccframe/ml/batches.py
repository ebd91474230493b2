"""Training batches streamed from a dataset on disk, as Keras `PyDataset`s: each batch is
gathered from the memory-mapped arrays (classifier windows) or encoded on the fly from the
accepted candidates (counter time lists), so training needs memory for a few batches, not
for the dataset (docs/performance.md, "Training that streams")."""

from __future__ import annotations

import copy
import math

import numpy as np

from ccframe.kernels.config import TimeListConfig
from ccframe.kernels.timelist import encode_accepted
from ccframe.ml.runtime import keras

BLOCK_BATCHES = 4
"""Batches per block: the unit read in sequence."""
BUFFER_BLOCKS = 32
"""Blocks shuffled together (the shuffle buffer is BLOCK_BATCHES x BUFFER_BLOCKS batches)."""


class EpochOrder:
    """The order in which an epoch visits `n` rows, a function of (seed, epoch) only.

    The rows are cut into blocks of `block` consecutive rows; the full blocks are visited
    in a seeded random order (the last, partial block at the end), `buffer` blocks at a
    time, and the rows of those blocks are shuffled together. Every row is visited once per
    epoch; each block is read in sequence from disk, and the shuffle crosses the whole set
    at the level of blocks, as a shuffle buffer across chunks does."""

    def __init__(self, n: int, block: int, buffer: int, seed: int) -> None:
        self.n, self.block, self.buffer, self.seed = n, block, buffer, seed
        self._cache: tuple[int, int, np.ndarray] | None = None

    @property
    def group_rows(self) -> int:
        return self.block * self.buffer

    def rows(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Positions in [0, n) of the rows visited at steps [start, stop) of the epoch;
        [start, stop) must lie inside one group (a multiple of `group_rows` apart)."""
        group = start // self.group_rows
        lo = group * self.group_rows
        return self._group(epoch, group)[start - lo : stop - lo]

    def _group(self, epoch: int, group: int) -> np.ndarray:
        if self._cache is not None and self._cache[:2] == (epoch, group):
            return self._cache[2]
        n_full = self.n // self.block
        blocks = np.random.default_rng([self.seed, epoch]).permutation(n_full)
        if self.n % self.block:
            blocks = np.append(blocks, n_full)
        chosen = blocks[group * self.buffer : (group + 1) * self.buffer]
        rows = (chosen[:, None] * self.block + np.arange(self.block)).ravel()
        rows = rows[rows < self.n]
        rows = np.random.default_rng([self.seed, epoch, group]).permutation(rows)
        self._cache = (epoch, group, rows)
        return rows


class StreamedBatches(keras.utils.PyDataset):
    """Batches of `rows` (indices into the dataset's arrays), shuffled per epoch by
    `EpochOrder` when `shuffle`; subclasses say how a batch of rows becomes arrays. Within
    a batch the rows are taken in ascending order (reads in sequence; a batch's gradient
    does not depend on the order of its samples)."""

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int, shuffle: bool) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.index = np.asarray(rows, dtype=np.int64)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.order = EpochOrder(self.index.size, batch_size * BLOCK_BATCHES, BUFFER_BLOCKS, seed)
        self.epoch = 0
        self.endless = False

    def __len__(self) -> int:
        return math.ceil(self.index.size / self.batch_size)

    def on_epoch_begin(self) -> None:
        self.epoch += 1

    def repeated(self) -> StreamedBatches:
        """The same batches epoch after epoch without end: item i is batch i % len of epoch
        i // len + 1, a function of i alone (`ccframe.ml.train.endless_dataset`)."""
        clone = copy.copy(self)
        clone.endless = True
        return clone

    def head(self, n: int) -> StreamedBatches:
        """The first `n` rows, unshuffled, as batches of the same kind."""
        clone = copy.copy(self)
        clone.index, clone.shuffle, clone.epoch, clone.endless = self.index[:n], False, 0, False
        return clone

    def in_memory(self, max_bytes: int, seed: int = 0) -> tuple[np.ndarray, ...]:
        """All rows as in-memory arrays, or a seeded subset of those rows whose arrays take
        at most `max_bytes` (Keras validates on arrays without the stalls it shows at the
        start of each epoch when validation data come from a generator)."""
        if self.index.size == 0:
            return self.arrays(self.index)
        one = sum(a.nbytes for a in self.arrays(self.index[:1]))
        n = min(self.index.size, max(1, max_bytes // one))
        pos = np.arange(self.index.size)
        if n < pos.size:
            pos = np.sort(np.random.default_rng([seed, 0x7A1]).choice(pos, n, replace=False))
        return self.arrays(self.index[pos])

    def positions(self, b: int, epoch: int) -> np.ndarray:
        """Sorted positions in `index` of batch `b` of `epoch` (1, 2, ...)."""
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.index.size)
        if not self.shuffle:
            return np.arange(lo, hi)
        return np.sort(self.order.rows(epoch, lo, hi))

    def __getitem__(self, b: int) -> tuple[np.ndarray, ...]:
        if self.endless and b >= 0 and len(self):
            epoch, b = divmod(b, len(self))
            epoch += 1
        elif 0 <= b < len(self):
            epoch = self.epoch
        else:
            raise IndexError(b)
        return self.arrays(self.index[self.positions(b, epoch)])

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The batch's arrays for dataset rows `rows`."""
        raise NotImplementedError


class ArrayBatches(StreamedBatches):
    """(x, y) of rows of two arrays (memory maps or in memory), e.g. whole waveforms and
    their counts."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rows: np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
    ) -> None:
        super().__init__(rows, batch_size, seed, shuffle)
        self.x, self.y = x, y

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return np.asarray(self.x[rows], dtype=np.float32), np.asarray(self.y[rows], np.float32)


class WindowBatches(StreamedBatches):
    """(windows, signal target[, class weight]) of candidate windows: `windows` (N, width, 1)
    and `label` (N,) int8 may be memory maps; `class_weights` (noise, signal) or None."""

    def __init__(
        self,
        windows: np.ndarray,
        label: np.ndarray,
        rows: np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
        class_weights: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(rows, batch_size, seed, shuffle)
        self.windows, self.label, self.class_weights = windows, label, class_weights

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        x = np.asarray(self.windows[rows], dtype=np.float32)
        signal = np.asarray(self.label[rows]) > 0
        y = signal.astype(np.float32)
        if self.class_weights is None:
            return x, y
        w = np.where(signal, self.class_weights[1], self.class_weights[0]).astype(np.float32)
        return x, y, w


class TimeListBatches(StreamedBatches):
    """(time lists, target) of waveforms: the lists are encoded per batch from the flat
    accepted candidates (`encode_accepted`); `target` (n,) float32 per waveform."""

    def __init__(
        self,
        candidates: tuple[np.ndarray, np.ndarray, np.ndarray],
        target: np.ndarray,
        rows: np.ndarray,
        binning: tuple[float, float, TimeListConfig],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
    ) -> None:
        super().__init__(rows, batch_size, seed, shuffle)
        self.candidates, self.target, self.binning = candidates, target, binning

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        position, offsets, accept = self.candidates
        sampling_ghz, window_ns, cfg = self.binning
        lists = encode_accepted(position, offsets, accept, rows, sampling_ghz, window_ns, cfg)
        return lists, np.asarray(self.target[rows], dtype=np.float32)
