"""What a simulation will need, checked against the machine before it starts."""

from __future__ import annotations

import os

from ccframe.resources import require_disk, require_memory
from ccframe.simulate.config import SimulateConfig

BYTES_IN_FLIGHT = 24
"""Memory per sample of a chunk while it is made and written (float32 waveform, FFT noise
in complex128, the chunk being written while the next is made); measured 20 bytes."""
TRUTH_BYTES = 2048
"""Disk per waveform for the Monte Carlo truth branches (about 1 kB measured)."""


def check_budget(
    config: SimulateConfig,
    path: str | os.PathLike[str],
    n_waveforms: int | None = None,
    key: str = "simulate",
    n_key: str | None = None,
) -> None:
    """Refuse (`ResourceError` naming the key) a simulation whose chunks do not fit in memory
    or whose file (at most 4 bytes per sample: stored uncompressed) does not fit on disk.
    `n_waveforms` (named `n_key`) replaces the config's count."""
    n = config.n_waveforms if n_waveforms is None else n_waveforms
    samples = config.detector.n_samples
    chunk = min(config.chunk_size, n)
    require_memory(
        chunk * samples * BYTES_IN_FLIGHT,
        f"{key}.chunk_size",
        f"simulating chunks of {chunk} waveforms of {samples} samples",
    )
    require_disk(
        n * (samples * 4 + TRUTH_BYTES),
        path,
        n_key or f"{key}.n_waveforms",
        f"{n} waveforms of {samples} samples",
    )
