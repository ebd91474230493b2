"""Is the conversion of raw samples to mV plausible? A warning naming the `data:` keys to
check (scale, offset_mv, polarity) when the first waveforms of a file look wrong, instead of
absurd statistics later."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ccframe.io.config import DataConfig
    from ccframe.io.reader import WaveformBatch

log = logging.getLogger("ccframe")

MAX_BASELINE_MV = 2000.0
"""[mV] A larger |median baseline| means raw values (ADC counts) were not converted to mV."""
PULSE_RMS = 5.0
"""An excursion from the baseline beyond this many noise RMS is a pulse, not noise."""
MIN_PULSES = 5
"""Fewer waveforms with a pulse say nothing about the polarity."""
WRONG_WAY_SHARE = 0.8
"""Above this share of pulses pointing down, the polarity is wrong."""
CHECKED = 1000
"""Waveforms of a file's first chunk that are checked."""


def conversion_problem(
    waves: np.ndarray, baseline: np.ndarray, rms: np.ndarray, data: DataConfig
) -> str | None:
    """What looks wrong with waveforms converted to mV with `data` (which should give
    positive pulses on a baseline near 0), naming the keys to check; None when plausible."""
    if len(waves) == 0:
        return None
    waves, baseline, rms = waves[:CHECKED], baseline[:CHECKED], rms[:CHECKED]
    median = float(np.median(baseline))
    if abs(median) > MAX_BASELINE_MV:
        return (
            f"median baseline {median:.6g} mV, beyond ±{MAX_BASELINE_MV:g} mV (raw ADC counts?): "
            f"check data.scale and data.offset_mv (now {data.scale:g} and {data.offset_mv:g}; "
            "mV = raw * scale + offset_mv)"
        )
    up = waves.max(axis=1) - baseline
    down = baseline - waves.min(axis=1)
    pulse = np.maximum(up, down) > PULSE_RMS * rms
    n = int(pulse.sum())
    wrong = int((down[pulse] > up[pulse]).sum())
    if n >= MIN_PULSES and wrong > WRONG_WAY_SHARE * n:
        return (
            f"pulses point down in {wrong} of {n} waveforms with a pulse (ccframe expects them "
            f"positive after conversion): check data.polarity (now {data.polarity})"
        )
    return None


def warn_if_implausible(batch: WaveformBatch, data: DataConfig) -> None:
    """Warn (the `ccframe` log, stderr on the command line) when a file's first batch looks
    wrongly converted to mV."""
    problem = conversion_problem(batch.waveforms, batch.baseline, batch.rms, data)
    if problem is not None:
        log.warning("%s: %s", batch.file, problem)
