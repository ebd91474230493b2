"""`ccframe infer`: apply a run's trained chain to other ROOT files, chunk by chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError, OutputError
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.io.rootwrite import write_tree
from ccframe.kernels.jagged import to_jagged
from ccframe.ml.chain import Chain

Log = Callable[[str], None]
TRUTH_COLUMNS = {
    "event_id": "event_id",
    "momentum_gev": "momentum_gev",
    "pdg": "pdg",
    "n_clusters": "n_clusters_true",
    "n_electrons": "n_electrons_true",
}


def chunks(chain: Chain, batches: Iterator[Any], files: list[str]) -> Iterator[dict[str, Any]]:
    """Per-waveform counts and the jagged `candidate` record of each batch."""
    for batch in batches:
        out = chain.apply(batch)
        counts = np.diff(out["offsets"])
        row = np.repeat(np.arange(len(batch)), counts)
        chunk: dict[str, Any] = {
            "file_index": np.full(len(batch), files.index(batch.file), dtype=np.int32),
            "entry": batch.entry,
        }
        if batch.truth is not None:
            for name, branch in TRUTH_COLUMNS.items():
                if name in batch.truth.fields:
                    chunk[branch] = ak.to_numpy(batch.truth[name])
        position = out["position"]
        chunk["n_clusters_ml"] = out["n_clusters_ml"]
        chunk["n_peaks"] = np.bincount(row[out["accept"]], minlength=len(batch)).astype(np.int32)
        chunk["candidate"] = ak.zip(
            {
                "sample": to_jagged(position, counts),
                "time_ns": to_jagged((position / batch.sampling_ghz).astype(np.float32), counts),
                "score": to_jagged(out["score"], counts),
                "accepted": to_jagged(out["accept"], counts),
            }
        )
        yield chunk


def infer(
    run_dir: Path,
    files: list[str],
    output: Path,
    data: DataConfig,
    batch: int,
    force: bool,
    log: Log,
) -> dict[str, Any]:
    """Apply the chain saved in `run_dir` to `files`; write the `predictions` tree."""
    if output.exists() and not force:
        raise OutputError(f"{output}: exists; use --force to replace it")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    chain = Chain.load(run_dir, batch)
    t0 = time.perf_counter()
    n = write_tree(output, "predictions", chunks(chain, iter_batches(data, files), files))
    wall = time.perf_counter() - t0
    log(
        f"infer: {n} waveforms from {len(files)} file(s) -> {output}:predictions in {wall:.1f} s "
        f"({n / wall if wall else 0:.0f} waveforms/s)"
    )
    return {"waveforms": n, "wall_s": wall}
