"""The `simulate` stage: generate waveforms chunk by chunk and write them to a ROOT tree."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ccframe.errors import OutputError
from ccframe.io.prefetch import prefetch
from ccframe.io.rootwrite import write_tree
from ccframe.logs import Log, Progress, with_progress
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator


def simulate_to_root(
    config: SimulateConfig,
    seed: int,
    path: str | Path,
    first_event: int = 0,
    force: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Write `config.n_waveforms` events starting at id `first_event` to `path`.

    Never overwrites an existing file unless `force`; the file appears only when complete.
    With `log`, a progress line every few seconds.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path}: file exists; use --force to replace it or choose another name")
    sim = Simulator(config, seed)
    t0 = time.perf_counter()
    chunks = prefetch(
        b.tree_arrays()
        for b in sim.iter_chunks(config.n_waveforms, config.chunk_size, start=first_event)
    )
    if log is not None:
        chunks = with_progress(chunks, Progress("simulate", log, total=config.n_waveforms))
    n = write_tree(path, config.tree, chunks, config.compression)
    wall = time.perf_counter() - t0
    return {
        "file": str(path),
        "tree": config.tree,
        "entries": n,
        "first_event": first_event,
        "seed": seed,
        "wall_s": round(wall, 3),
        "waveforms_per_s": round(n / wall, 1) if wall > 0 else None,
    }
