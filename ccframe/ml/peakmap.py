"""The per-sample peak map: a U-Net on the whole normalized waveform that gives, per
`output_stride` samples, the expected number of clusters whose first electron arrives there
(docs/algorithms.md, "The per-sample peak map"). Trained with a Poisson likelihood per
position against the truth's arrival samples (`Dataset.cluster_start`), streamed from the
dataset's memory maps; the count is the number of peaks of the map (or its sum), calibrated
like the other counters, and the saved model (`peak_map.keras`) outputs it directly, so it
is applied as a `WaveformCounter`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.errors import InputError
from ccframe.kernels.config import WindowConfig
from ccframe.kernels.jagged import gather_rows
from ccframe.logs import Log
from ccframe.ml.batches import StreamedBatches
from ccframe.ml.calibration import finish_counter
from ccframe.ml.config import MLConfig, PeakMapConfig
from ccframe.ml.dataset import TRAIN, VALIDATION, Dataset
from ccframe.ml.train import fit
from ccframe.ml.waveform import WaveformCounter
from ccframe.runfolder.artifacts import PEAK_MAP_FILE, history

EPSILON = 1e-7
"""Added to the map inside the logarithm of the Poisson likelihood."""


def target_maps(
    starts: np.ndarray, offsets: np.ndarray, rows: np.ndarray, stride: int, positions: int
) -> np.ndarray:
    """(len(rows), positions) float32: clusters starting in each `stride` samples of each
    waveform `rows` (cluster starts of waveform i: starts[offsets[i]:offsets[i+1]], in
    samples); starts outside the map count at its nearest end, NaN starts not at all."""
    which, _, take = gather_rows(offsets, rows)
    sample = np.asarray(starts[take], dtype=np.float64)
    ok = np.isfinite(sample)
    position = np.clip(np.floor(sample[ok] / stride), 0, positions - 1).astype(np.int64)
    out = np.zeros((rows.size, positions), dtype=np.float32)
    np.add.at(out, (which[ok], position), 1.0)
    return out


class MapBatches(StreamedBatches):
    """(waveforms, target maps) of rows of a dataset with waveforms and cluster starts."""

    def __init__(
        self,
        ds: Dataset,
        rows: np.ndarray,
        stride: int,
        positions: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
    ) -> None:
        super().__init__(rows, batch_size, seed, shuffle)
        assert ds.waveforms is not None
        assert ds.cluster_start is not None
        self.waveforms, self.starts = ds.waveforms, ds.cluster_start
        self.offsets, self.stride, self.n_positions = ds.cluster_offsets, stride, positions

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        x = np.asarray(self.waveforms[rows], dtype=np.float32)
        return x, target_maps(self.starts, self.offsets, rows, self.stride, self.n_positions)


def poisson_map_loss(scale: float) -> Any:
    """Negative Poisson log-likelihood of the target counts given the map, summed over the
    positions (without the constant log k! term) and divided by `scale`, the training
    split's mean count, so that it is of order 1."""
    from ccframe.ml.runtime import keras

    ops = keras.ops

    def loss(target: Any, pred: Any) -> Any:
        nll = pred - target * ops.log(pred + EPSILON)
        return ops.sum(nll, axis=-1) / scale

    return loss


def initial_map_loss(n_clusters: np.ndarray, positions: int, scale: float) -> float:
    """The loss at the start, with every position at mean / positions (the bias start)."""
    rate = scale / positions
    return float(np.mean(positions * rate - n_clusters * math.log(rate + EPSILON)) / scale)


def train_peak_map(
    cfg: MLConfig, ds: Dataset, window: WindowConfig, seed: int, run_dir: Path, log: Log
) -> tuple[WaveformCounter, dict[str, Any], np.ndarray]:
    """Train `ml.peak_map` on the dataset's waveforms; save its counting model in `run_dir`;
    return it, its training summary (with its inference rate) and its counts of every
    waveform."""
    from ccframe.ml.models import build_peak_map, peak_map_counter, peak_map_length

    pcfg: PeakMapConfig | None = cfg.peak_map
    waveforms = ds.waveforms
    if pcfg is None or waveforms is None:
        raise InputError("ml.peak_map: the ML dataset holds no waveforms")
    if ds.cluster_start is None:
        raise InputError(
            "ml.peak_map: trains on the arrival times of the true electrons (electron_time_ns, "
            "electron_cluster), which this input's truth does not have"
        )
    train, val = np.flatnonzero(ds.split == TRAIN), np.flatnonzero(ds.split == VALIDATION)
    scale = float(ds.n_clusters[train].mean()) or 1.0
    _, positions = peak_map_length(pcfg, ds.n_samples)
    density = build_peak_map(pcfg, ds.n_samples, scale)
    batch, stride = pcfg.training.batch_size, pcfg.output_stride
    result = fit(
        density,
        MapBatches(ds, train, stride, positions, batch, seed, True),
        MapBatches(ds, val, stride, positions, batch),
        pcfg.training,
        poisson_map_loss(scale),
        [],
        "peak map",
        initial_map_loss(ds.n_clusters[train].astype(np.float64), positions, scale),
        run_dir / history("peak_map"),
        log,
    )
    counter, counts, extra = finish_counter(
        peak_map_counter(density, pcfg),
        lambda m: WaveformCounter(m, window),
        lambda c: c.count_normalized(waveforms),
        val,
        ds.n_clusters,
        pcfg.calibrate_response,
        "peak map",
        run_dir / PEAK_MAP_FILE,
        log,
    )
    info = result.summary() | extra | {"count_scale": scale, "positions": positions}
    log(
        f"  peak map: {extra['parameters']:,} parameters, {positions} positions of {stride} "
        f"samples, trained in {result.wall_s:.0f} s, counts "
        f"{extra['inference_waveforms_per_s']:,.0f} waveforms/s"
    )
    return counter, info, counts
