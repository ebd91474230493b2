"""Response calibration of a learned counter (docs/algorithms.md, "Response calibration").

A regression network trained with a squared loss predicts the mean true count given its
input. Where the input does not determine the count, that mean is pulled towards the mean
count of the training sample: the response (mean predicted count against the true count)
has a slope below 1. The calibration fits the response on the validation split,
pred = a + b N_true, and folds its inverse, (pred - a) / b, into the saved model as a last
Rescaling layer, so that every user of the model (infer, pid, ONNX) gets the calibrated
count. A linear map changes neither the ordering of counts nor a separation power; it makes
the count follow the truth with slope 1 and shows the resolution the information allows."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ccframe.io.atomic import atomic_path
from ccframe.logs import Log
from ccframe.metrics.counting import linear_response

C = TypeVar("C")

MIN_SLOPE = 0.3
"""Below this fitted slope the counter barely responds to the truth (undertrained, or too
few validation waveforms): dividing by the slope would only blow up its noise, so the
calibration is not applied."""


@dataclass(frozen=True)
class ResponseCalibration:
    """The fitted response pred = offset + slope x N_true and whether it was inverted."""

    offset: float
    slope: float
    waveforms: int
    applied: bool

    def apply(self, pred: np.ndarray) -> np.ndarray:
        """(pred - offset) / slope as the `calibrated_count` layer computes it (float32
        pred x scale + offset), or `pred` when not applied."""
        if not self.applied:
            return pred
        scale, offset = np.float32(1.0 / self.slope), np.float32(-self.offset / self.slope)
        return np.asarray(pred, dtype=np.float32) * scale + offset

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def message(self, name: str) -> str:
        fitted = (
            f"response on the validation split {self.offset:+.2f} + {self.slope:.3f} x N_true "
            f"({self.waveforms} waveforms)"
        )
        if self.applied:
            return f"  {name}: {fitted}; calibrated to slope 1"
        return f"  {name}: {fitted}; slope below {MIN_SLOPE}, left uncalibrated"


def fit_response(pred: np.ndarray, true: np.ndarray) -> ResponseCalibration:
    """The least-squares response of `pred` to `true` (waveforms with true > 0)."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    keep = (true > 0) & np.isfinite(pred)
    offset, slope = linear_response(pred[keep], true[keep])
    applied = math.isfinite(slope) and slope >= MIN_SLOPE
    return ResponseCalibration(offset, slope, int(np.count_nonzero(keep)), applied)


def calibrated(model: Any, calibration: ResponseCalibration) -> Any:
    """`model` with (count - offset) / slope appended (layer `calibrated_count`)."""
    from ccframe.ml.runtime import keras

    if not calibration.applied:
        return model
    inverse = keras.layers.Rescaling(
        1.0 / calibration.slope,
        offset=-calibration.offset / calibration.slope,
        name="calibrated_count",
    )
    return keras.Model(model.input, inverse(model.output), name=model.name)


def calibrate(
    model: Any, counts: np.ndarray, validation: np.ndarray, n_true: np.ndarray, name: str, log: Log
) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Fit the response of `model`'s `counts` (of every waveform) on the `validation` rows
    against `n_true`; return the calibrated model, the calibrated counts (computed from
    `counts`, as the model would give them) and the fit's record."""
    calibration = fit_response(counts[validation], n_true[validation])
    log(calibration.message(name))
    return calibrated(model, calibration), calibration.apply(counts), calibration.record()


def finish_counter(
    model: Any,
    make: Callable[[Any], C],
    count_all: Callable[[C], np.ndarray],
    validation: np.ndarray,
    n_true: np.ndarray,
    enabled: bool,
    name: str,
    path: Path,
    log: Log,
) -> tuple[C, np.ndarray, dict[str, Any]]:
    """The last steps of training a counter: count every waveform with `make(model)` (timed),
    calibrate when `enabled` (`calibrate`), save the model to `path` (atomically). Returns
    the counter, its counts and a record (calibration, parameters, inference rate)."""
    counter = make(model)
    t0 = time.perf_counter()
    counts = count_all(counter)
    rate = counts.size / max(time.perf_counter() - t0, 1e-9)
    info: dict[str, Any] = {}
    if enabled:
        model, counts, info["response_calibration"] = calibrate(
            model, counts, validation, n_true, name, log
        )
        counter = make(model)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return (
        counter,
        counts,
        info
        | {
            "parameters": model.count_params(),
            "inference_waveforms_per_s": round(rate, 1),
        },
    )
