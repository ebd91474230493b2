"""The one-step counter: a network on the whole normalized waveform that regresses the number
of primary clusters, with no peak finding before it (docs/algorithms.md, "The one-step
waveform counter"). Trained from the ML dataset's stored waveforms, streamed from their
memory map; applied to reader batches by `WaveformCounter`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ccframe.errors import InputError
from ccframe.io.reader import WaveformBatch
from ccframe.kernels.config import WindowConfig
from ccframe.logs import Log
from ccframe.ml.batches import ArrayBatches
from ccframe.ml.calibration import finish_counter
from ccframe.ml.chain import Predictor
from ccframe.ml.config import MLConfig, WaveformCounterConfig
from ccframe.ml.dataset import TRAIN, VALIDATION, Dataset, normalize
from ccframe.ml.train import expected_initial_loss, fit
from ccframe.runfolder.artifacts import WAVEFORM_COUNTER_FILE, history

CHUNK = 4096
"""Waveforms converted to float32 and counted at a time."""


class WaveformCounter:
    """A trained one-step counter with the normalization of its inputs: counts of reader
    batches (`count`) or of stored normalized waveforms (`count_normalized`)."""

    def __init__(self, model: Any, window: WindowConfig, batch: int = 256) -> None:
        self.model, self.window = model, window
        self.predict = Predictor(model, batch)
        self.n_samples = int(model.input_shape[1])

    @classmethod
    def load(
        cls,
        folder: Path,
        window: WindowConfig,
        batch: int = 256,
        file: str = WAVEFORM_COUNTER_FILE,
    ) -> WaveformCounter:
        """The counter saved as `file` in `folder` (an `InputError` if it cannot be read)."""
        from ccframe.ml.models import load_saved

        return cls(load_saved(folder / file), window, batch)

    def count(self, batch: WaveformBatch) -> np.ndarray:
        """(n,) float32 counts of a reader batch's waveforms."""
        if batch.n_samples != self.n_samples:
            raise InputError(
                f"{batch.file}: {batch.n_samples} samples per waveform; the {self.model.name} "
                f"was trained on {self.n_samples}"
            )
        # rounded to float16 as the training waveforms were stored: the same inputs exactly
        return self.count_normalized(normalize(batch, self.window).astype(np.float16))

    def count_normalized(self, waveforms: np.ndarray) -> np.ndarray:
        """(n,) float32 counts of (n, n_samples) normalized waveforms (e.g. a float16
        memory map), converted to float32 `CHUNK` waveforms at a time."""
        out = np.empty(len(waveforms), dtype=np.float32)
        for lo in range(0, len(waveforms), CHUNK):
            part = np.asarray(waveforms[lo : lo + CHUNK], dtype=np.float32)
            out[lo : lo + CHUNK] = self.predict(part)
        return out


def initial_loss_at_the_mean(cfg: WaveformCounterConfig, y: np.ndarray) -> float:
    """The loss before training: the density head starts every count at the training mean
    (scaled target 1), the dense head near 0 (`expected_initial_loss`)."""
    if cfg.head != "density":
        return expected_initial_loss(cfg.loss, y)
    y = np.asarray(y, dtype=np.float64)
    if cfg.loss == "mse":
        return float(np.mean((y - 1.0) ** 2))
    if cfg.loss == "mae":
        return float(np.mean(np.abs(y - 1.0)))
    return 1.0  # poisson: mean(pred - y log pred) at pred = 1, with mean(y) = 1


def train_waveform_counter(
    cfg: MLConfig, ds: Dataset, window: WindowConfig, seed: int, run_dir: Path, log: Log
) -> tuple[WaveformCounter, dict[str, Any], np.ndarray]:
    """Train `ml.waveform_counter` on the dataset's waveforms; save it in `run_dir`; return
    it, its training summary (with its inference rate) and its counts of every waveform."""
    from ccframe.ml.models import build_waveform_counter
    from ccframe.ml.runtime import keras

    wcfg = cfg.waveform_counter
    waveforms = ds.waveforms
    if wcfg is None or waveforms is None:
        raise InputError("ml.waveform_counter: the ML dataset holds no waveforms")
    train, val = np.flatnonzero(ds.split == TRAIN), np.flatnonzero(ds.split == VALIDATION)
    n_true = ds.n_clusters.astype(np.float32)
    scale = float(n_true[train].mean()) or 1.0
    model = build_waveform_counter(wcfg, ds.n_samples, scale)
    scaled = keras.Model(model.input, model.get_layer("scaled_count").output)
    y = n_true / np.float32(scale)
    batch = wcfg.training.batch_size
    result = fit(
        scaled,
        ArrayBatches(waveforms, y, train, batch, seed, True),
        ArrayBatches(waveforms, y, val, batch),
        wcfg.training,
        wcfg.loss,
        [keras.metrics.MeanAbsoluteError(name="mae_scaled")],
        "waveform counter",
        initial_loss_at_the_mean(wcfg, y[train]),
        run_dir / history("waveform_counter"),
        log,
    )
    counter, counts, extra = finish_counter(
        model,
        lambda m: WaveformCounter(m, window),
        lambda c: c.count_normalized(waveforms),
        val,
        ds.n_clusters,
        wcfg.calibrate_response,
        "waveform counter",
        run_dir / WAVEFORM_COUNTER_FILE,
        log,
    )
    info = result.summary() | extra | {"count_scale": scale}
    log(
        f"  waveform counter: {extra['parameters']:,} parameters, trained in "
        f"{result.wall_s:.0f} s, counts {extra['inference_waveforms_per_s']:,.0f} waveforms/s"
    )
    return counter, info, counts
