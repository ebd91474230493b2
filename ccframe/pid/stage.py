"""The `pid` stage and `ccframe pid`: simulate tracks, count clusters per cell with every
method, sum per track, and measure the separation power versus momentum."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.io.atomic import write_csv, write_json
from ccframe.io.reader import iter_batches
from ccframe.io.rootwrite import write_tree
from ccframe.logs import Log
from ccframe.metrics.counting import fmt
from ccframe.ml.apply import count_with
from ccframe.pid.config import PidConfig
from ccframe.pid.separation import (
    cell_separation,
    joint_bootstrap,
    poisson_separation,
    separation,
    truncated_per_cm,
)
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.traditional import reconstruct
from ccframe.runfolder.artifacts import PID, PID_TABLE, PID_TRACKS_TREE
from ccframe.simulate import physics
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator
from ccframe.steering.schema import Steering


def points(cfg: PidConfig) -> list[tuple[str, float]]:
    return [(s, float(p)) for p in cfg.momenta_gev for s in cfg.species]


def simulate_tracks(cfg: PidConfig, sim: SimulateConfig, seed: int, path: Path) -> int:
    """Every (species, momentum) point's tracks, one waveform per cell, into one ROOT file
    with a `track_id` branch (tracks are consecutive: entry // cells within the file)."""
    n_per_point = cfg.tracks * cfg.cells

    def chunks() -> Iterator[dict[str, Any]]:
        for k, (species, momentum) in enumerate(points(cfg)):
            point = sim.model_copy(
                update={
                    "particle": species,
                    "momentum": sim.momentum.model_copy(
                        update={"distribution": "fixed", "min_gev": momentum, "max_gev": momentum}
                    ),
                }
            )
            simulator = Simulator(point, seed * 1000 + k)
            first = k * n_per_point
            for batch in simulator.iter_chunks(n_per_point, cfg.cells * 40, start=first):
                arrays = batch.tree_arrays()
                arrays["track_id"] = (batch.event_id // cfg.cells).astype(np.int64)
                yield arrays

    return write_tree(path, sim.tree, chunks(), sim.compression)


def count_cells(
    steering: Steering,
    path: Path,
    traditional: TraditionalConfig,
    chain: Any,
    log: Log,
    counters: dict[str, Any] | None = None,
    finders: dict[str, TraditionalConfig] | None = None,
) -> dict[str, np.ndarray]:
    """Per cell: truth count, each traditional method's count (`finders`, by method name;
    default: `traditional` as DERIV and as D2), the two-step chain's count (`ml`), each other
    trained counter's (`counters`, by name), chord, pdg, momentum, entry."""
    sim = steering.simulate
    assert sim is not None
    data = steering.data.model_copy(update={"files": [], "tree": sim.tree, "max_events": None})
    finders = finders or default_finders(traditional)
    cols: dict[str, list[np.ndarray]] = {}
    for batch in iter_batches(data, [str(path)]):
        truth = batch.truth
        assert truth is not None
        add = cols.setdefault
        add("entry", []).append(batch.entry)
        add("pdg", []).append(np.asarray(truth.pdg))
        add("momentum_gev", []).append(np.asarray(truth.momentum_gev))
        add("chord_cm", []).append(np.asarray(truth.chord_cm))
        add("truth", []).append(np.asarray(truth.n_clusters, dtype=np.float64))
        for name, cfg in finders.items():
            add(name, []).append(reconstruct(batch, cfg.finder, cfg.clusterize).n_clusters)
        out = chain.apply(batch) if chain is not None else None
        if out is not None:
            add("ml", []).append(out["n_clusters_ml"].astype(np.float64))
        for name, counter in (counters or {}).items():
            add(name, []).append(count_with(counter, batch, out).astype(np.float64))
    return {k: np.concatenate(v) for k, v in cols.items()}


def default_finders(traditional: TraditionalConfig) -> dict[str, TraditionalConfig]:
    """`traditional`'s settings with each peak finder, by algorithm."""
    return {a: traditional.model_copy(update={"algorithm": a}) for a in ("deriv", "d2")}


def track_table(cells: dict[str, np.ndarray], cfg: PidConfig, methods: list[str]) -> dict:
    """Per track: species pdg, momentum, total chord and counts per cm for each method."""
    track = cells["entry"] // cfg.cells
    n_tracks = int(track.max()) + 1
    bounds = np.searchsorted(track, np.arange(n_tracks + 1))
    out: dict[str, Any] = {
        "track_id": np.arange(n_tracks),
        "pdg": cells["pdg"][bounds[:-1]],
        "momentum_gev": cells["momentum_gev"][bounds[:-1]],
        "chord_cm": np.add.reduceat(cells["chord_cm"], bounds[:-1]),
    }
    for m in methods:
        out[f"n_{m}"] = np.add.reduceat(cells[m], bounds[:-1])
        out[f"dndx_{m}"] = np.array(
            [
                truncated_per_cm(cells[m][a:b], cells["chord_cm"][a:b], cfg.truncation)
                for a, b in itertools.pairwise(bounds)
            ]
        )
    return out


def separations(
    tracks: dict[str, Any],
    cfg: PidConfig,
    methods: list[str],
    sim: SimulateConfig,
    seed: int,
    cells: dict[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One row per pair and momentum: the Poisson limit and, per method, S of the tracks'
    dN/dx with its bootstrap error, its fraction of the truth's and (given `cells`) `{m}_cell`,
    S of the counts of single cells (`cell_separation`)."""
    rng = np.random.default_rng([seed, 0x91D])
    rows = []
    for pa, pb in cfg.pairs:
        for p in cfg.momenta_gev:
            at_p = np.isclose(tracks["momentum_gev"], p)
            sel_a = at_p & (tracks["pdg"] == physics.PDG_ID[pa])
            sel_b = at_p & (tracks["pdg"] == physics.PDG_ID[pb])
            length = float(np.mean(tracks["chord_cm"][at_p]))
            row: dict[str, Any] = {
                "pair": f"{pa}/{pb}",
                "momentum_gev": p,
                "track_length_cm": length,
                "poisson": poisson_separation(
                    pa, pb, p, length, sim.ionization.density_fit, sim.ionization.density_scale
                ),
            }
            values = {m: (tracks[f"dndx_{m}"][sel_a], tracks[f"dndx_{m}"][sel_b]) for m in methods}
            replicas = joint_bootstrap(values, cfg.bootstrap, rng)
            for m, (a, b) in values.items():
                row[m] = separation(a, b)
                row[f"{m}_err"] = float(np.std(replicas[m])) if replicas[m].size else np.nan
            for m in methods:
                if m != "truth":
                    row[f"{m}_over_truth"] = row[m] / row["truth"] if row["truth"] else np.nan
                    with np.errstate(divide="ignore", invalid="ignore"):
                        share = replicas[m] / replicas["truth"]
                    row[f"{m}_over_truth_err"] = float(np.std(share)) if share.size else np.nan
            if cells is not None:
                cell_p = np.isclose(cells["momentum_gev"], p)
                cell_a = cell_p & (cells["pdg"] == physics.PDG_ID[pa])
                cell_b = cell_p & (cells["pdg"] == physics.PDG_ID[pb])
                for m in methods:
                    row[f"{m}_cell"] = cell_separation(cells[m][cell_a], cells[m][cell_b])
            rows.append(row)
    return rows


def run_pid(
    steering: Steering,
    cfg: PidConfig,
    run_dir: Path,
    traditional: TraditionalConfig,
    chain: Any,
    log: Log,
    counters: dict[str, Any] | None = None,
    finders: dict[str, TraditionalConfig] | None = None,
) -> list[dict[str, Any]]:
    """Simulate, count, separate; write pid_tracks.root, pid.root, pid.json and pid.csv.
    `chain`: the two-step chain (method `ml`), `counters`: other trained counters by name,
    `finders`: the traditional methods by name (default: `traditional` as DERIV and D2)."""
    sim = steering.simulate
    if sim is None:
        from ccframe.errors import SteeringError

        raise SteeringError("pid: needs a simulate: section (the detector the tracks cross)")
    path = run_dir / cfg.output
    t0 = time.perf_counter()
    n = simulate_tracks(cfg, sim, steering.seed, path)
    log(
        f"pid: {n} waveforms = {n // cfg.cells} tracks x {cfg.cells} cells "
        f"({len(points(cfg))} species/momentum points) in {time.perf_counter() - t0:.1f} s"
    )
    finders = finders or default_finders(traditional)
    methods = ["truth", *finders] + (["ml"] if chain is not None else [])
    methods += list(counters or {})
    t0 = time.perf_counter()
    cells = count_cells(steering, path, traditional, chain, log, counters, finders)
    log(f"pid: counted with {', '.join(methods)} in {time.perf_counter() - t0:.1f} s")
    tracks = track_table(cells, cfg, methods)
    rows = separations(tracks, cfg, methods, sim, steering.seed, cells)
    write_tree(run_dir / PID_TRACKS_TREE, "tracks", [tracks])
    write_json(run_dir / PID, rows)
    write_csv(run_dir / PID_TABLE, rows)
    log(format_pid(rows, methods))
    return rows


def format_pid(rows: list[dict[str, Any]], methods: list[str]) -> str:
    head = f"  {'pair':6s} {'p GeV':>6s} {'Poisson':>8s} " + " ".join(f"{m:>13s}" for m in methods)
    lines = ["pid: separation power S (bootstrap error), fraction of the truth's", head]
    for r in rows:
        cells = []
        for m in methods:
            frac = f" {r[f'{m}_over_truth']:.0%}" if m != "truth" else ""
            cells.append(f"{r[m]:5.2f}±{r[f'{m}_err']:.2f}{frac:>5s}")
        lines.append(
            f"  {r['pair']:6s} {r['momentum_gev']:6.1f} {r['poisson']:8.2f} "
            + " ".join(f"{c:>13s}" for c in cells)
        )
    if rows and f"{methods[0]}_cell" in rows[0]:
        lines.append("pid: separation power S of single cells (count per cell, as CEPC/ml4cc)")
        lines += [
            f"  {r['pair']:6s} {r['momentum_gev']:6.1f} {'':8s} "
            + " ".join(f"{fmt(r[f'{m}_cell'], '.3f'):>13s}" for m in methods)
            for r in rows
        ]
    return "\n".join(lines)
