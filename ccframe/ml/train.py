"""Fitting a Keras model with the training discipline of issue 4: the initial loss checked
against its expected value, per-epoch history (with F1 and efficiency x purity for a
classifier) written as CSV, a clear stop on a NaN loss, early stopping on the validation
loss with the best weights restored. Batches stream from disk (`ccframe.ml.batches`)."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.errors import CcframeError
from ccframe.io.atomic import write_csv
from ccframe.logs import EVERY_S, Log
from ccframe.ml.batches import StreamedBatches
from ccframe.ml.config import TrainingConfig
from ccframe.ml.models import optimizer
from ccframe.ml.runtime import keras

INITIAL_LOSS_SAMPLES = 20_000
VALIDATION_BYTES = 256 << 20
"""In-memory validation data per model during training: a seeded subset of the validation
split when all of it would take more (early stopping needs the loss, not every sample)."""


class TrainingError(CcframeError):
    """Training diverged (NaN or infinite loss)."""


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    initial_loss: float
    expected_initial_loss: float
    wall_s: float
    epochs_run: int
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        best = self.history[self.best_epoch - 1]
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best": best,
            "initial_loss": self.initial_loss,
            "expected_initial_loss": self.expected_initial_loss,
            "wall_s": round(self.wall_s, 2),
            **self.extra,
        }


class EpochLog(keras.callbacks.Callback):
    """Adds F1 and efficiency x purity (from precision and recall) to the epoch logs, keeps
    every epoch's row, prints one line per epoch (and a progress line every `every_s` seconds
    inside a long epoch) and stops on a non-finite loss."""

    def __init__(self, name: str, log: Log, epochs: int, every_s: float = EVERY_S) -> None:
        super().__init__()
        self.name, self.log, self.epochs, self.every_s = name, log, epochs, every_s
        self.rows: list[dict[str, float]] = []
        self.nan_epoch: int | None = None
        self._t0 = self._last = 0.0
        self._batches: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._batches = self.params.get("steps") if self.params else None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = self._last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return
        self._last = now
        of = f"/{self._batches}" if self._batches else ""
        loss = (logs or {}).get("loss")
        shown = f", loss {float(loss):.4f}" if loss is not None else ""
        self.log(
            f"  {self.name} epoch {len(self.rows) + 1}/{self.epochs}: batch {batch + 1}{of}"
            f"{shown} ({now - self._t0:.0f} s)"
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        for prefix in ("", "val_"):
            p, r = logs.get(prefix + "precision"), logs.get(prefix + "recall")
            if p is not None and r is not None:
                logs[prefix + "f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
                logs[prefix + "efficiency_x_purity"] = p * r
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        row["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
        row["epoch_s"] = round(time.perf_counter() - self._t0, 3)
        self.rows.append(row)
        shown = [k for k in ("loss", "val_loss", "val_auc", "val_f1") if k in logs]
        self.log(
            f"  {self.name} epoch {epoch + 1:3d}/{self.epochs}: "
            + "  ".join(f"{k} {logs[k]:.4f}" for k in shown)
            + f"  ({row['epoch_s']:.1f} s)"
        )
        if not all(math.isfinite(logs[k]) for k in ("loss", "val_loss") if k in logs):
            self.nan_epoch = epoch + 1
            self.model.stop_training = True


def expected_initial_loss(loss: str, y: np.ndarray, focal_gamma: float = 2.0) -> float:
    """The loss of an untrained model: a classifier outputs ~0.5 (BCE -ln 0.5, focal
    0.5^gamma * ln 2, MSE 0.25, MAE 0.5); a regressor outputs ~0 (mean y^2 or mean |y|)."""
    y = np.asarray(y, dtype=np.float64)
    table = {
        "binary_crossentropy": math.log(2.0),
        "focal": 0.5**focal_gamma * math.log(2.0),
    }
    if loss in table:
        return table[loss]
    if y.size and set(np.unique(y)) <= {0.0, 1.0}:
        return 0.25 if loss == "mse" else 0.5
    return float(np.mean(y**2)) if loss == "mse" else float(np.mean(np.abs(y)))


def fit(
    model: keras.Model,
    train: StreamedBatches,
    validation: StreamedBatches,
    cfg: TrainingConfig,
    loss: Any,
    metrics: list[Any],
    name: str,
    expected_loss: float,
    history_path: Path,
    log: Log,
) -> FitResult:
    """Compile and fit `model` on streamed batches (shuffled by `train` itself); write the
    history CSV. The initial loss is measured on the first training samples.

    Raises `TrainingError` when the loss becomes NaN or infinite."""
    model.compile(optimizer=optimizer(cfg.optimizer), loss=loss, metrics=metrics)
    n0 = min(train.index.size, INITIAL_LOSS_SAMPLES)
    initial = model.evaluate(train.head(n0), verbose=0, return_dict=True)["loss"]
    val = validation.in_memory(VALIDATION_BYTES)
    n_val = len(val[0])
    shown = f"{n_val:,}"
    if n_val < validation.index.size:
        shown += f" of the {validation.index.size:,}"
    log(
        f"  {name}: {model.count_params():,} parameters, {train.index.size:,} training and "
        f"{shown} validation samples; initial loss {initial:.4f} "
        f"(expected {expected_loss:.4f})"
    )
    epoch_log = EpochLog(name, log, cfg.epochs)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=cfg.patience, restore_best_weights=True
    )
    t0 = time.perf_counter()
    model.fit(
        endless_dataset(train),
        steps_per_epoch=len(train),
        validation_data=val,
        validation_batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        shuffle=False,  # the batches shuffle themselves, block-wise (EpochOrder)
        verbose=0,
        callbacks=[epoch_log, stopper],
    )
    wall = time.perf_counter() - t0
    write_history(history_path, epoch_log.rows)
    if epoch_log.nan_epoch is not None:
        raise TrainingError(
            f"{name}: the loss became NaN or infinite in epoch {epoch_log.nan_epoch} (history "
            f"in {history_path}); lower the learning rate, set clipnorm, or check the inputs"
        )
    val_loss = [row["val_loss"] for row in epoch_log.rows]
    best = int(np.argmin(val_loss)) + 1
    log(stopping_message(name, len(val_loss), best, val_loss[best - 1], cfg))
    return FitResult(epoch_log.rows, best, float(initial), expected_loss, wall, len(val_loss))


def endless_dataset(batches: StreamedBatches) -> Any:
    """The batches as one endless tf.data pipeline (item i: batch i % len of epoch
    i // len + 1, `StreamedBatches.repeated`) with a prefetch of 2 batches.

    Fitted with `steps_per_epoch`, Keras keeps this one iterator for the whole fit. Keras's
    own PyDataset pipeline makes a new iterator per epoch with an autotuned prefetch, and
    tearing the old one down (waiting for its generator thread) stalled every epoch's start
    by 5-27 s on this machine."""
    from ccframe.ml.runtime import tf

    stream = batches.repeated()
    first = stream[0]
    spec = tuple(tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in first)
    items = tf.data.Dataset.from_generator(
        lambda: (stream[i] for i in itertools.count()), output_signature=spec
    )
    return items.prefetch(2)


def stopping_message(name: str, ran: int, best: int, best_loss: float, cfg: TrainingConfig) -> str:
    """Why training stopped and which epoch's weights the model keeps."""
    if ran < cfg.epochs:
        why = (
            f"stopped early after epoch {ran} of {cfg.epochs} (no lower validation loss for "
            f"{cfg.patience} epochs)"
        )
    else:
        why = f"ran all {cfg.epochs} epochs"
    return f"  {name}: {why}; restored the weights of epoch {best} (val_loss {best_loss:.4f})"


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    write_csv(path, rows)
