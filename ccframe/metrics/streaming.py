"""Metrics gathered batch by batch in memory that does not grow with the number of
candidates: per-waveform columns in compact types (a few bytes per waveform for the count
metrics, which need every value for their medians and core widths), and the AUC from a fixed
histogram of the scores (per-candidate values are never kept)."""

from __future__ import annotations

import numpy as np

INT32 = np.iinfo(np.int32)


def compact(values: np.ndarray) -> np.ndarray:
    """`values` as int32 when they are all integers within its range (counts, whatever their
    type), else unchanged: the same numbers in 4 bytes where the input spends 8."""
    values = np.asarray(values)
    if values.dtype == np.int32 or values.dtype.kind not in "iuf":
        return values
    if values.size == 0:
        return values.astype(np.int32)
    if values.dtype.kind == "f" and not np.all(values == np.rint(values)):  # NaN too
        return values
    if INT32.min <= values.min() and values.max() <= INT32.max:  # inf stays
        return values.astype(np.int32)
    return values


class Columns:
    """Named per-waveform columns collected batch by batch (`add`), each chunk kept compact
    (`compact`), concatenated on demand (`get`)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, values: np.ndarray) -> None:
        self._parts.setdefault(name, []).append(compact(values))

    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def get(self, name: str) -> np.ndarray:
        """The column's values in order (an empty array when it was never added)."""
        parts = self._parts.get(name)
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for parts in self._parts.values() for p in parts)


AUC_BINS = 1 << 20
"""Bins of `ScoreHistogram` (two int64 counts each: 16 MB)."""
LOGIT_RANGE = 20.0
"""logit(score) range of the bins; scores beyond it (within 2e-9 of 0 or 1) share an end bin."""


class ScoreHistogram:
    """Signal and noise candidates counted in AUC_BINS equal bins of logit(score) over
    [-LOGIT_RANGE, LOGIT_RANGE], for the AUC of any number of candidates in fixed memory.

    `auc` is the Mann-Whitney statistic of the binned scores: a signal candidate above a noise
    one counts 1, in the same bin 1/2 (as a tie does for roc_auc_score). It equals sklearn's
    roc_auc_score on the unbinned scores except for signal-noise pairs whose scores share a
    bin (logits within 4e-5 of each other, or both beyond the range), which count one half
    instead of 0 or 1: at most half their fraction of all pairs (below 1e-5 in practice)."""

    def __init__(self) -> None:
        self.signal = np.zeros(AUC_BINS, dtype=np.int64)
        self.noise = np.zeros(AUC_BINS, dtype=np.int64)

    @staticmethod
    def bins(scores: np.ndarray) -> np.ndarray:
        """The bin of each score (0 .. AUC_BINS - 1)."""
        s = np.asarray(scores, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            logit = np.log(s) - np.log1p(-s)
        logit = np.nan_to_num(logit, nan=0.0, posinf=LOGIT_RANGE, neginf=-LOGIT_RANGE)
        width = 2 * LOGIT_RANGE / AUC_BINS
        index = np.floor((logit + LOGIT_RANGE) / width)
        return np.clip(index, 0, AUC_BINS - 1).astype(np.int64)

    def add(self, scores: np.ndarray, signal: np.ndarray) -> None:
        """Count one batch of candidates (`signal`: True for signal)."""
        index = self.bins(scores)
        sig = np.asarray(signal, dtype=bool)
        self.signal += np.bincount(index[sig], minlength=AUC_BINS)
        self.noise += np.bincount(index[~sig], minlength=AUC_BINS)

    def auc(self) -> float:
        """The binned AUC (NaN without both signal and noise candidates)."""
        pos, neg = self.signal.astype(np.float64), self.noise.astype(np.float64)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + 0.5 * neg)) / (n_pos * n_neg))
