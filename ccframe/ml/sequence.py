"""Per-peak clusterization: a bidirectional recurrent network over the time-ordered peak
candidates of one waveform labels each candidate as the first found electron of a cluster
or not (noise, or a later electron of a cluster already counted); the count is the sum of
the probabilities (docs/algorithms.md, "Per-peak clusterization"). It reads the two-step
chain's candidates and classifier scores, so it runs after the chain, on its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ccframe.kernels.jagged import gather_rows
from ccframe.logs import Log
from ccframe.ml.batches import StreamedBatches
from ccframe.ml.calibration import finish_counter
from ccframe.ml.config import MLConfig, PeakSequenceConfig
from ccframe.ml.dataset import TRAIN, VALIDATION, Dataset
from ccframe.ml.train import expected_initial_loss, fit
from ccframe.runfolder.artifacts import PEAK_SEQUENCE_FILE, history

FEATURES = ("score", "amplitude", "time", "gap_before", "gap_after", "present")
"""Per candidate: classifier score; sign(a) log(1 + |a|) of its normalized amplitude; its
sample / samples per waveform; log(1 + gap in ns) to the previous and to the next candidate
(the window's start and end at the ends); 1 for a candidate, 0 for padding."""
CHUNK = 8192
"""Waveforms whose sequences are built and counted at a time."""


def sequence_features(
    position: np.ndarray,
    offsets: np.ndarray,
    score: np.ndarray,
    amplitude: np.ndarray,
    rows: np.ndarray,
    sampling_ghz: float,
    n_samples: int,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(len(rows), length, len(FEATURES)) float32 features of the first `length` candidates
    of each waveform `rows` (candidates of waveform i: offsets[i]:offsets[i+1], in sample
    order), and the flat indices of those candidates (row-major, -1 for padding)."""
    rows = np.asarray(rows, dtype=np.int64)
    which, rank, take = gather_rows(offsets, rows, length)
    full = offsets[rows + 1] - offsets[rows]
    pos = position[take].astype(np.float64)
    previous = np.where(rank > 0, position[np.maximum(take - 1, 0)], 0).astype(np.float64)
    has_next = rank + 1 < full[which]
    following = np.where(has_next, position[np.minimum(take + 1, position.size - 1)], n_samples)
    x = np.zeros((rows.size, length, len(FEATURES)), dtype=np.float32)
    a = np.asarray(amplitude[take], dtype=np.float64)
    x[which, rank, 0] = score[take]
    x[which, rank, 1] = np.sign(a) * np.log1p(np.abs(a))
    x[which, rank, 2] = pos / n_samples
    x[which, rank, 3] = np.log1p(np.abs(pos - previous) / sampling_ghz)
    x[which, rank, 4] = np.log1p(np.abs(following - pos) / sampling_ghz)
    x[which, rank, 5] = 1.0
    index = np.full((rows.size, length), -1, dtype=np.int64)
    index[which, rank] = take
    return x, index


def first_of_cluster(ds: Dataset) -> np.ndarray:
    """(N,) float32 per candidate: 1 for the first (in time) candidate matched to each true
    cluster; with labelled peaks (no clusters), 1 for the peaks labelled primary."""
    if not ds.clusters_known:
        return (np.asarray(ds.label) == 1).astype(np.float32)
    cluster = np.asarray(ds.cluster, dtype=np.int64)
    waveform = np.repeat(np.arange(ds.n_waveforms), np.diff(ds.offsets))
    matched = np.flatnonzero(cluster >= 0)
    key = waveform[matched] * (int(cluster.max(initial=0)) + 1) + cluster[matched]
    _, first = np.unique(key, return_index=True)  # candidates are in sample order
    out = np.zeros(cluster.size, dtype=np.float32)
    out[matched[first]] = 1.0
    return out


class SequenceBatches(StreamedBatches):
    """(features, target (b, length, 1), weight (b, length): 1 for candidates, 0 for
    padding) of waveforms of a dataset."""

    def __init__(
        self,
        ds: Dataset,
        score: np.ndarray,
        amplitude: np.ndarray,
        target: np.ndarray,
        rows: np.ndarray,
        length: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
    ) -> None:
        super().__init__(rows, batch_size, seed, shuffle)
        self.ds, self.score, self.amplitude, self.target = ds, score, amplitude, target
        self.length = length

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        ds = self.ds
        x, index = sequence_features(ds.position, ds.offsets, self.score, self.amplitude, rows,
                                     ds.sampling_ghz, ds.n_samples, self.length)  # fmt: skip
        y = np.where(index >= 0, self.target[np.maximum(index, 0)], 0.0).astype(np.float32)
        return x, y[..., None], (index >= 0).astype(np.float32)


class SequenceCounter:
    """A trained per-peak clusterizer: counts from a chain's outputs (`Chain.apply`)."""

    uses_chain = True

    def __init__(self, model: Any, batch: int = 512) -> None:
        from ccframe.ml.chain import Predictor

        self.model = model
        self.length = int(model.input_shape[1])
        self.predict = Predictor(model, batch)

    @classmethod
    def load(cls, folder: Path, batch: int = 512) -> SequenceCounter:
        """The counter saved in `folder` (an `InputError` if it cannot be read)."""
        from ccframe.ml.models import load_saved

        return cls(load_saved(folder / PEAK_SEQUENCE_FILE), batch)

    def count_candidates(
        self,
        position: np.ndarray,
        offsets: np.ndarray,
        score: np.ndarray,
        amplitude: np.ndarray,
        sampling_ghz: float,
        n_samples: int,
    ) -> np.ndarray:
        """(n,) float32 counts of n waveforms from their flat candidates."""
        n = offsets.size - 1
        out = np.empty(n, dtype=np.float32)
        for lo in range(0, n, CHUNK):
            rows = np.arange(lo, min(n, lo + CHUNK))
            x, _ = sequence_features(position, offsets, score, amplitude, rows, sampling_ghz,
                                     n_samples, self.length)  # fmt: skip
            out[rows] = self.predict(x)
        return out

    def count_from(self, out: dict[str, Any], sampling_ghz: float, n_samples: int) -> np.ndarray:
        """Counts of a batch from its chain outputs (`Chain.apply`)."""
        return self.count_candidates(out["position"], out["offsets"], out["score"],
                                     out["amplitude"], sampling_ghz, n_samples)  # fmt: skip


def train_peak_sequence(
    cfg: MLConfig, ds: Dataset, scores: np.ndarray, seed: int, run_dir: Path, log: Log
) -> tuple[SequenceCounter, dict[str, Any], np.ndarray]:
    """Train `ml.peak_sequence` on the dataset's candidates with the chain's classifier
    `scores`; save its counting model in `run_dir`; return it, its training summary and its
    counts of every waveform."""
    from ccframe.ml.models import build_peak_sequence, sequence_counter
    from ccframe.ml.runtime import keras

    scfg: PeakSequenceConfig | None = cfg.peak_sequence
    assert scfg is not None
    train, val = np.flatnonzero(ds.split == TRAIN), np.flatnonzero(ds.split == VALIDATION)
    amplitude = np.asarray(ds.windows[:, cfg.dataset.window.before, 0], dtype=np.float32)
    target = first_of_cluster(ds)
    length, batch = scfg.max_candidates, scfg.training.batch_size
    labeller = build_peak_sequence(scfg, length)
    train_rows = SequenceBatches(ds, scores, amplitude, target, train, length, batch, seed, True)
    share = float(target.mean()) if target.size else 0.0
    present = np.minimum(np.diff(ds.offsets)[train], length).mean() / length if train.size else 1
    result = fit(
        labeller,
        train_rows,
        SequenceBatches(ds, scores, amplitude, target, val, length, batch),
        scfg.training,
        "binary_crossentropy",
        [keras.metrics.AUC(name="auc")],
        "peak sequence",
        # padding has weight 0 but counts in the mean over positions
        expected_initial_loss("binary_crossentropy", target) * float(present),
        run_dir / history("peak_sequence"),
        log,
    )
    geometry = (ds.sampling_ghz, ds.n_samples)
    counter, counts, extra = finish_counter(
        sequence_counter(labeller),
        SequenceCounter,
        lambda c: c.count_candidates(ds.position, ds.offsets, scores, amplitude, *geometry),
        val,
        ds.n_clusters,
        scfg.calibrate_response,
        "peak sequence",
        run_dir / PEAK_SEQUENCE_FILE,
        log,
    )
    info = result.summary() | extra | {"first_of_cluster_share": round(share, 4)}
    log(
        f"  peak sequence: {extra['parameters']:,} parameters, trained in "
        f"{result.wall_s:.0f} s, counts {extra['inference_waveforms_per_s']:,.0f} waveforms/s"
    )
    return counter, info, counts
