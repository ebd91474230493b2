"""Applying a trained counter to a batch, whatever it reads: the waveforms, or the two-step
chain's outputs for that batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from ccframe.io.reader import WaveformBatch


def count_with(counter: Any, batch: WaveformBatch, out: dict[str, Any] | None) -> np.ndarray:
    """A trained counter's counts of a batch: from its waveforms (`count(batch)`), or, for a
    counter with `uses_chain` (the per-peak clusterizer), from the chain's outputs `out` for
    the batch (`Chain.apply`)."""
    if getattr(counter, "uses_chain", False):
        if out is None:
            raise ValueError(f"{type(counter).__name__} counts from a chain's outputs")
        return counter.count_from(out, batch.sampling_ghz, batch.n_samples)
    return counter.count(batch)
