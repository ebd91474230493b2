"""The data sample calibrate works on: waveforms in the reader's frame (mV, positive pulses)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.io.reader import expand_files, iter_batches


@dataclass
class DataSample:
    """Waveforms of the data files, as the reader gives them."""

    waves: np.ndarray  # (n, samples) float32
    sampling_ghz: float
    files: list[str]

    @property
    def n_samples(self) -> int:
        return int(self.waves.shape[1])


def read_sample(data: DataConfig, max_events: int, source: str) -> DataSample:
    """The first `max_events` waveforms of data.files (truth is not read)."""
    if not data.files:
        raise InputError(
            f"{source}: calibrate needs data files without truth in data.files (the beam-test "
            "files to fit the simulation to)"
        )
    limit = min(max_events, data.max_events) if data.max_events else max_events
    data = data.model_copy(
        update={"truth": "none", "max_events": limit, "tail_cancellation_ns": None}
    )
    files = expand_files(data.files)
    parts: list[np.ndarray] = []
    rates: list[float] = []
    for batch in iter_batches(data, files):
        if parts and batch.n_samples != parts[0].shape[1]:
            raise InputError(
                f"{batch.file}: {batch.n_samples} samples per waveform, {parts[0].shape[1]} in "
                f"{files[0]}; calibrate one kind of waveform at a time"
            )
        if rates and not math.isclose(batch.sampling_ghz, rates[0]):
            raise InputError(
                f"{batch.file}: sampling rate {batch.sampling_ghz} GHz, {rates[0]} GHz in "
                f"{files[0]}; calibrate one sampling rate at a time"
            )
        parts.append(batch.waveforms)
        rates.append(batch.sampling_ghz)
    if not parts:
        raise InputError(f"{source}: no waveforms read from {', '.join(files)}")
    return DataSample(np.concatenate(parts), rates[0], files)


def adc_step(waves: np.ndarray, scale: float) -> float | None:
    """The ADC step in mV (|data.scale|) when the data's values lie on such a grid (raw
    integer codes), else None."""
    lsb = abs(scale)
    v = waves[:100].ravel().astype(np.float64)
    r = (v - v[0]) / lsb
    on_grid = np.abs(r - np.rint(r)) < 0.02
    if on_grid.mean() > 0.99 and np.unique(np.rint(r)).size > 3:
        return lsb
    return None
