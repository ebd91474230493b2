"""The ML datasets, built with the kernels: candidate windows with truth labels (step 1) and,
per waveform, the candidates' positions, the true cluster count and the traditional count
(step 2 and the comparison). Waveforms, never single windows, are split into train /
validation / test. A dataset lives on disk as an array folder (`ccframe.ml.store`), built
batch by batch and memory-mapped, so it may be larger than memory; it is cached keyed by
its inputs and settings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError
from ccframe.io.reader import WaveformBatch
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.config import WindowConfig
from ccframe.kernels.jagged import flat, offsets_from_counts
from ccframe.kernels.matching import match_labelled
from ccframe.kernels.windows import slice_windows, window_scale
from ccframe.ml.config import DatasetConfig
from ccframe.ml.store import ArrayWriter, read_arrays
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.traditional import (
    ELECTRONS,
    TRUTH_FORMS,
    TraditionalResult,
    has_truth,
    peak_truth,
    reconstruct,
    reference_peaks,
)

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")
CACHE_VERSION = 5
PER_WAVEFORM = (
    "split",
    "n_clusters",
    "n_electrons",
    "n_traditional",
    "momentum_gev",
    "pdg",
    "event_id",
    "entry",
    "file_index",
)
"""Per-waveform arrays of a `Dataset` (besides the candidate offsets)."""
COPY_ROWS = 1 << 20
"""Candidates copied per chunk when a dataset is written."""
DISK_KEY = "ml.dataset.max_events"
"""The setting named when the disk cannot hold a dataset (the message names the folder)."""


@dataclass
class Dataset:
    """Flat candidate arrays (N windows) and per-waveform arrays (n waveforms).

    Candidates of waveform i are rows offsets[i]:offsets[i+1], in sample order. The labels
    come from true electrons or, `peak_truth` "labelled_peaks", from the input's labelled
    peaks: then `cluster` is -1 throughout and `n_electrons` counts the peaks labelled 1 or 2."""

    windows: np.ndarray  # (N, width, 1) float32
    label: np.ndarray  # (N,) int8: 0 noise, 1 primary, 2 secondary electron
    cluster: np.ndarray  # (N,) int32 true cluster (index in its waveform) of the match, or -1
    position: np.ndarray  # (N,) int32 sample of the candidate
    offsets: np.ndarray  # (n + 1,) int64
    split: np.ndarray  # (n,) int8: TRAIN, VALIDATION, TEST
    n_clusters: np.ndarray  # (n,) int64 true clusters
    n_electrons: np.ndarray  # (n,) int64 true electrons
    n_traditional: np.ndarray  # (n,) int64 clusters counted by the traditional algorithm
    momentum_gev: np.ndarray  # (n,) float64 (NaN when the input has none)
    pdg: np.ndarray  # (n,) int64 (0 when the input has none)
    event_id: np.ndarray  # (n,) int64 (entry number when the input has none)
    entry: np.ndarray  # (n,) int64 entry in its file
    file_index: np.ndarray  # (n,) int32 index into `files`
    files: list[str]
    sampling_ghz: float
    n_samples: int
    peak_truth: str = ELECTRONS  # where the labels come from: electrons or labelled_peaks
    waveforms: np.ndarray | None = None  # (n, n_samples) float16 normalized (waveform models)
    cluster_start: np.ndarray | None = None  # (sum n_clusters,) float32, with the waveforms

    @property
    def cluster_offsets(self) -> np.ndarray:
        """(n + 1,) int64: the clusters of waveform i are rows offsets[i]:offsets[i+1] of
        `cluster_start`."""
        return offsets_from_counts(self.n_clusters)

    @property
    def clusters_known(self) -> bool:
        """Whether `cluster` holds the true cluster of each matched candidate."""
        return self.peak_truth == ELECTRONS

    @property
    def n_waveforms(self) -> int:
        return int(self.split.size)

    @property
    def signal(self) -> np.ndarray:
        """(N,) float32 classifier target: 1 for a candidate matched to an electron."""
        return (self.label > 0).astype(np.float32)

    @property
    def candidate_split(self) -> np.ndarray:
        """(N,) split of each candidate (its waveform's)."""
        return np.repeat(self.split, np.diff(self.offsets))

    def save(self, folder: Path) -> None:
        """Write the dataset as an array folder (`ccframe.ml.store`), atomically: it appears
        under `folder` only once complete."""
        building = staging_folder(folder)
        writer = ArrayWriter(building, DISK_KEY)
        try:
            per_candidate = ("windows", "label", "cluster", "position")
            for lo in range(0, max(self.label.size, 1), COPY_ROWS):
                for name in per_candidate:
                    writer.append(name, getattr(self, name)[lo : lo + COPY_ROWS])
            for name in PER_WAVEFORM:
                writer.append(name, getattr(self, name))
            if self.waveforms is not None:
                rows = max(1, COPY_ROWS // max(1, self.n_samples))
                for lo in range(0, self.n_waveforms, rows):
                    writer.append("waveforms", self.waveforms[lo : lo + rows])
            if self.cluster_start is not None:
                for lo in range(0, self.cluster_start.size, COPY_ROWS):
                    writer.append("cluster_start", self.cluster_start[lo : lo + COPY_ROWS])
            writer.append("n_candidates", np.diff(self.offsets))
            writer.close(self.attrs())
        except BaseException:
            writer.discard()
            raise
        publish(building, folder)

    def attrs(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "files": self.files,
            "sampling_ghz": self.sampling_ghz,
            "n_samples": self.n_samples,
            "peak_truth": self.peak_truth,
        }

    @classmethod
    def load(cls, folder: Path) -> Dataset:
        """The dataset of an array folder: per-candidate arrays memory-mapped (read-only),
        per-waveform arrays in memory. An unreadable folder is an `InputError`."""
        arrays, attrs = read_arrays(folder)
        if attrs.get("version") != CACHE_VERSION:
            version = attrs.get("version")
            raise InputError(f"{folder}: dataset version {version}, expected {CACHE_VERSION}")
        offsets = offsets_from_counts(np.asarray(arrays.pop("n_candidates")))
        values: dict[str, Any] = {name: np.array(arrays[name]) for name in PER_WAVEFORM}
        values |= {name: arrays[name] for name in ("windows", "label", "cluster", "position")}
        values["waveforms"] = arrays.get("waveforms")
        values["cluster_start"] = arrays.get("cluster_start")
        if offsets[-1] != values["label"].size:
            raise InputError(f"{folder}: candidate counts do not add up to the candidates")
        return cls(
            offsets=offsets,
            files=[str(f) for f in attrs["files"]],
            sampling_ghz=float(attrs["sampling_ghz"]),
            n_samples=int(attrs["n_samples"]),
            peak_truth=str(attrs["peak_truth"]),
            **values,
        )


def staging_folder(target: Path) -> Path:
    """Where an array folder is written before it is renamed to `target`."""
    return target.with_name(f".{target.name}.{os.getpid()}.building")


def publish(building: Path, target: Path) -> None:
    """Rename a complete array folder onto `target` (replacing an older one)."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(building, target)


def split_waveforms(n: int, cfg: DatasetConfig, seed: int) -> np.ndarray:
    """(n,) int8 split of each waveform: a seeded shuffle cut at the configured fractions."""
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    n_train = round(n * cfg.train_fraction)
    n_val = round(n * cfg.validation_fraction)
    split = np.full(n, TEST, dtype=np.int8)
    split[order[:n_train]] = TRAIN
    split[order[n_train : n_train + n_val]] = VALIDATION
    return split


def truth_column(truth: ak.Array, name: str, fill: np.ndarray | float) -> np.ndarray:
    if name in truth.fields:
        return ak.to_numpy(truth[name])
    return np.broadcast_to(np.asarray(fill), (len(truth),)).copy()


class DatasetBuilder:
    """Builds a `Dataset` batch by batch (`add`, then `result`): the kernels run on each
    batch and its arrays are appended to an array folder on disk, so memory stays flat in
    the number of waveforms. The dataset appears at `folder` (atomically, by `result`), or,
    without one, in a temporary folder deleted once the dataset is opened (its memory maps
    stay valid). A consumer of a pass over the input: the traditional counts come from
    `shared["traditional"]` when the traditional stage ran in the same pass; at most
    `max_events` waveforms are taken. With `waveforms`, the normalized waveforms are stored
    too (float16, for the models on whole waveforms)."""

    def __init__(
        self,
        cfg: DatasetConfig,
        traditional: TraditionalConfig,
        seed: int,
        max_events: int | None = None,
        folder: Path | None = None,
        waveforms: bool = False,
    ) -> None:
        self.cfg, self.traditional, self.seed = cfg, traditional, seed
        self.waveforms = waveforms
        self.remaining = max_events
        self.target = folder
        self.files: list[str] = []
        self.sampling: float | None = None
        self.n_samples: int | None = None
        self.peak_truth: str | None = None
        self.n_waveforms = 0
        self._writer: ArrayWriter | None = None

    def __enter__(self) -> DatasetBuilder:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.discard()

    def discard(self) -> None:
        """Delete what was written (after a failure)."""
        if self._writer is not None:
            self._writer.discard()
            self._remove_temporary()
            self._writer = None

    def _remove_temporary(self) -> None:
        if self.target is None and self._writer is not None:
            shutil.rmtree(self._writer.folder.parent, ignore_errors=True)

    def _open_writer(self) -> ArrayWriter:
        if self._writer is None:
            if self.target is None:
                folder = Path(tempfile.mkdtemp(prefix="ccframe-dataset-")) / "dataset"
            else:
                self.target.parent.mkdir(parents=True, exist_ok=True)
                folder = staging_folder(self.target)
                shutil.rmtree(folder, ignore_errors=True)  # left by a killed run of this pid
            self._writer = ArrayWriter(folder, DISK_KEY)
        return self._writer

    def add(self, batch: WaveformBatch, shared: dict[str, Any] | None = None) -> None:
        if self.remaining is not None:
            if self.remaining <= 0:
                return
            if len(batch) > self.remaining:  # the last batch taken: reconstruct its part
                shared = None
                batch = batch.rows(slice(0, self.remaining))
            self.remaining -= len(batch)
        self._check(batch)
        if batch.file not in self.files:
            self.files.append(batch.file)
        reco = (shared or {}).get("traditional")
        arrays = batch_arrays(batch, self.cfg, self.traditional, reco, self.waveforms)
        arrays["file_index"] = np.full(len(batch), self.files.index(batch.file), np.int32)
        writer = self._open_writer()
        for key, value in arrays.items():
            writer.append(key, value)
        self.n_waveforms += len(batch)

    def _check(self, batch: WaveformBatch) -> None:
        if not has_truth(batch):
            raise InputError(
                f"{batch.file}: the ML stage trains on Monte Carlo truth ({TRUTH_FORMS}), "
                "which this file does not have; map its branches in data.truth"
            )
        form = peak_truth(batch.truth)
        if self.peak_truth is None:
            self.peak_truth = form
        elif form != self.peak_truth:
            raise InputError(
                f"{batch.file}: its peak labels come from {form}, the first file's from "
                f"{self.peak_truth}; one ML dataset needs one form of truth"
            )
        if self.sampling is None:
            check_window_fits(batch, self.cfg)
            self.sampling, self.n_samples = batch.sampling_ghz, batch.n_samples
        elif (batch.sampling_ghz, batch.n_samples) != (self.sampling, self.n_samples):
            raise InputError(
                f"{batch.file}: {batch.n_samples} samples at {batch.sampling_ghz} GHz, but the "
                f"first file has {self.n_samples} at {self.sampling} GHz; one ML dataset needs "
                "one sampling rate and waveform length"
            )

    def result(self) -> Dataset:
        """The dataset with its seeded train / validation / test split."""
        if self.sampling is None or self.n_samples is None or self._writer is None:
            raise InputError("the ML stage got no waveforms to train on")
        writer = self._writer
        writer.append("split", split_waveforms(self.n_waveforms, self.cfg, self.seed))
        writer.close(
            {
                "version": CACHE_VERSION,
                "files": self.files,
                "sampling_ghz": float(self.sampling),
                "n_samples": int(self.n_samples),
                "peak_truth": self.peak_truth or ELECTRONS,
            }
        )
        if self.target is not None:
            publish(writer.folder, self.target)
            return Dataset.load(self.target)
        dataset = Dataset.load(writer.folder)
        self._remove_temporary()  # the memory maps keep the data until they are closed
        return dataset


def build(
    batches: Iterable[WaveformBatch],
    cfg: DatasetConfig,
    traditional: TraditionalConfig,
    seed: int,
) -> Dataset:
    """Run the kernels over every batch and stack the results; see `Dataset`."""
    with DatasetBuilder(cfg, traditional, seed) as builder:
        for batch in batches:
            builder.add(batch)
        return builder.result()


def window_problem(n_samples: int, cfg: DatasetConfig) -> str | None:
    """Why waveforms of `n_samples` cannot train the classifier (shorter than its window:
    the windows would be mostly copies of the edge samples), or None."""
    width = cfg.window.width
    if n_samples >= width:
        return None
    return (
        f"{n_samples} samples per waveform, fewer than the classifier window of {width} "
        f"samples (ml.dataset.window: before {cfg.window.before} + 1 + after "
        f"{cfg.window.after}); record longer waveforms (e.g. simulate.detector.window_ns) or "
        "shorten the window"
    )


def check_window_fits(batch: WaveformBatch, cfg: DatasetConfig) -> None:
    """Refuse a batch of waveforms shorter than the classifier's window."""
    problem = window_problem(batch.n_samples, cfg)
    if problem:
        raise InputError(f"{batch.file}: {problem}")


def batch_arrays(
    batch: WaveformBatch,
    cfg: DatasetConfig,
    traditional: TraditionalConfig,
    reco: TraditionalResult | None = None,
    waveforms: bool = False,
) -> dict[str, np.ndarray]:
    """One batch's share of a `Dataset` (n_candidates instead of offsets); `reco`: the
    batch's traditional reconstruction, when it was already run with these settings;
    `waveforms`: include the normalized waveforms. Candidates are labelled by matching them
    to the true electrons or the labelled peaks (`reference_peaks`)."""
    truth = batch.truth
    if truth is None or not has_truth(batch):
        raise InputError(f"{batch.file}: the ML stage needs Monte Carlo truth ({TRUTH_FORMS})")
    candidates = find_candidates(batch.waveforms, batch.baseline, batch.rms, cfg.candidates)
    windows = slice_windows(batch.waveforms, batch.baseline, batch.rms, candidates, cfg.window)
    reference, reference_label = reference_peaks(batch, cfg.match)
    match = match_labelled(candidates, reference, reference_label, cfg.match)
    position, offsets = flat(candidates, np.int32)
    label, _ = flat(match.peak_label, np.int8)
    if peak_truth(truth) == ELECTRONS:
        cluster = match.peak_cluster(truth.electron_cluster)
        n_electrons = truth_column(truth, "n_electrons", 0)
    else:  # labelled peaks: no clusters; the "electrons" are the peaks labelled 1 or 2
        cluster = np.full(label.size, -1, dtype=np.int32)
        n_electrons = ak.to_numpy(ak.sum(reference_label > 0, axis=1))
    if reco is None:
        reco = reconstruct(batch, traditional.finder, traditional.clusterize)
    out = {
        "windows": windows,
        "label": label,
        "cluster": cluster,
        "position": position,
        "n_candidates": np.diff(offsets),
        "n_clusters": truth_column(truth, "n_clusters", 0).astype(np.int64),
        "n_electrons": n_electrons.astype(np.int64),
        "n_traditional": reco.n_clusters.astype(np.int64),
        "momentum_gev": truth_column(truth, "momentum_gev", np.nan).astype(np.float64),
        "pdg": truth_column(truth, "pdg", 0).astype(np.int64),
        "event_id": truth_column(truth, "event_id", batch.entry).astype(np.int64),
        "entry": batch.entry.astype(np.int64),
    }
    if waveforms:
        # float16 halves the bytes; the samples (up to a few hundred noise RMS) keep 3
        # significant digits
        out["waveforms"] = normalize(batch, cfg.window).astype(np.float16)
        if peak_truth(truth) == ELECTRONS:
            out["cluster_start"] = cluster_starts(truth, batch.sampling_ghz)
    return out


def cluster_starts(truth: ak.Array, sampling_ghz: float) -> np.ndarray:
    """(sum n_clusters,) float32: the sample at which each true cluster's first electron
    arrives, (earliest electron_time_ns + pretrigger_ns) * sampling_ghz, clusters in order
    per waveform (NaN for a cluster without electrons)."""
    n_clusters = ak.to_numpy(truth.n_clusters).astype(np.int64)
    time, e_off = flat(truth.electron_time_ns, np.float64)
    cluster, _ = flat(truth.electron_cluster, np.int64)
    c_off = offsets_from_counts(n_clusters)
    row = np.repeat(np.arange(n_clusters.size), np.diff(e_off))
    start = np.full(int(c_off[-1]), np.inf)
    np.minimum.at(start, c_off[row] + cluster, time)
    pretrigger = np.repeat(ak.to_numpy(truth.pretrigger_ns).astype(np.float64), n_clusters)
    start = (start + pretrigger) * sampling_ghz
    start[~np.isfinite(start)] = np.nan
    return start.astype(np.float32)


def normalize(batch: WaveformBatch, cfg: WindowConfig) -> np.ndarray:
    """(n, n_samples) float32: each waveform minus its baseline, divided by the window
    normalization's scale (the noise RMS by default), as the classifier's windows are."""
    scale = window_scale(batch.rms, cfg)[:, None]
    baseline = np.asarray(batch.baseline, dtype=np.float32)[:, None]
    return (batch.waveforms - baseline) / scale


def cache_key(
    files: list[str],
    data: dict[str, Any],
    cfg: DatasetConfig,
    traditional: TraditionalConfig,
    seed: int,
    waveforms: bool = False,
) -> str:
    """Hash of what shapes a dataset: each input's path, size and modification time, the data
    mapping, the dataset and traditional settings, the split seed and whether the waveforms
    are stored."""
    stats = []
    for path in files:
        st = os.stat(path)
        stats.append([os.path.realpath(path), st.st_size, st.st_mtime_ns])
    settings = {
        "version": CACHE_VERSION,
        "files": stats,
        "data": data,
        "dataset": cfg.model_dump(exclude={"cache", "cache_dir", "time_list"}),  # not stored
        "traditional": traditional.model_dump(include={"algorithm", "deriv", "d2", "clusterize"}),
        "seed": seed,
        "waveforms": waveforms,
    }
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]
