"""`ccframe infer`: apply a run's trained chain to other ROOT files, chunk by chunk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.errors import InputError, OutputError
from ccframe.io.config import DataConfig
from ccframe.io.prefetch import prefetch
from ccframe.io.reader import WaveformBatch, iter_batches
from ccframe.io.rootwrite import write_tree
from ccframe.logs import Log, Progress, with_progress
from ccframe.ml.apply import count_with
from ccframe.ml.chain import Backend, Chain, accepted_counts, candidate_record
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.stage import traditional_of_run
from ccframe.reco.traditional import reconstruct, truth_branches
from ccframe.runfolder.artifacts import COUNTER_FILES, PEAK_SEQUENCE_FILE, Artifacts

TRUTH_TYPES = {
    "momentum_gev": np.float64,
    "pdg": np.int64,
    "n_clusters_true": np.int64,
    "n_electrons_true": np.int64,
}
"""Types of the truth branches, as the ml stage writes them in predictions.root."""


def chunks(
    chain: Chain,
    traditional: TraditionalConfig,
    batches: Iterator[WaveformBatch],
    files: list[str],
    counters: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Per-waveform counts (the chain's, each of `counters`' as `n_clusters_<name>`, and the
    run's traditional algorithm's) and the jagged `candidate` record of each batch.
    `event_id` is the input's, or the entry number where the input has none (as in the ml
    stage's predictions.root). Reading and the kernels run a batch ahead of the networks
    (`Chain.apply_all`)."""

    def traditional_counts(batch: WaveformBatch) -> np.ndarray:
        return reconstruct(batch, traditional.finder, traditional.clusterize).n_clusters

    for batch, out, n_traditional in chain.apply_all(batches, traditional_counts):
        counts = np.diff(out["offsets"])
        truth = truth_branches(batch.truth)
        entry = np.asarray(batch.entry, dtype=np.int64)
        chunk: dict[str, Any] = {
            "file_index": np.full(len(batch), files.index(batch.file), dtype=np.int32),
            "entry": entry,
            "event_id": np.asarray(truth.pop("event_id", entry), dtype=np.int64),
            **{k: np.asarray(v, dtype=TRUTH_TYPES.get(k)) for k, v in truth.items()},
            "n_clusters_ml": out["n_clusters_ml"],
            **{
                f"n_clusters_{name}": count_with(c, batch, out)
                for name, c in (counters or {}).items()
            },
            "n_clusters_traditional": np.asarray(n_traditional, dtype=np.int64),
            "n_peaks": accepted_counts(out["offsets"], out["accept"]),
            "candidate": candidate_record(
                out["position"], counts, batch.sampling_ghz, out["score"], out["accept"]
            ),
        }
        yield chunk


def infer(
    run_dir: Path,
    files: list[str],
    output: Path,
    data: DataConfig,
    batch: int,
    force: bool,
    log: Log,
    backend: Backend = "keras",
) -> dict[str, Any]:
    """Apply the chain saved in `run_dir` to `files`, and its traditional algorithm with the
    thresholds the run used, and the run's counters on whole waveforms (one-step counter,
    peak map) and its per-peak clusterization where it has them; write the `predictions`
    tree. Backend `onnx` runs the
    networks that `ccframe export` wrote with ONNX Runtime (no TensorFlow, so no counter on
    whole waveforms); `mixed` only the time-list counter."""
    if output.exists() and not force:
        raise OutputError(f"{output}: exists; use --force to replace it")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    chain = Chain.load(run_dir, batch, data=data, files=files, backend=backend)
    traditional = traditional_of_run(Artifacts.of_run(run_dir))
    counters: dict[str, Any] = {}
    for name, file in {**COUNTER_FILES, "peak_sequence": PEAK_SEQUENCE_FILE}.items():
        if not (run_dir / file).is_file():
            continue
        if backend == "onnx":
            log(f"infer: {file} not applied (it runs with Keras only)")
        elif name == "peak_sequence":
            from ccframe.ml.sequence import SequenceCounter

            counters[name] = SequenceCounter.load(run_dir)
        else:
            from ccframe.ml.waveform import WaveformCounter

            counters[name] = WaveformCounter.load(run_dir, chain.settings.window, file=file)
    t0 = time.perf_counter()
    progress = Progress("infer", log)
    out = prefetch(chunks(chain, traditional, iter_batches(data, files), files, counters))
    n = write_tree(output, "predictions", with_progress(out, progress))
    wall = time.perf_counter() - t0
    log(
        f"infer: {n} waveforms from {len(files)} file(s) -> {output}:predictions in {wall:.1f} s "
        f"({n / wall if wall else 0:.0f} waveforms/s, {backend})"
    )
    return {"waveforms": n, "wall_s": wall, "backend": backend}
