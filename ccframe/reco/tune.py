"""Tune the traditional algorithm's thresholds and c on a calibration sample with truth."""

from __future__ import annotations

import itertools
import math
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError
from ccframe.io.reader import WaveformBatch
from ccframe.kernels.clusterize import clusterize
from ccframe.kernels.config import ClusterizeConfig, D2Config, DerivConfig
from ccframe.metrics.counting import calibrated_resolution, count_metrics
from ccframe.reco.config import TuneConfig
from ccframe.reco.traditional import find_peaks, peak_amplitudes, track_times


def peak_sets(cfg: TuneConfig) -> list[DerivConfig | D2Config]:
    """Every peak-finding parameter set of the grid, for the algorithm being tuned."""
    if cfg.algorithm == "deriv":
        grid = itertools.product(cfg.n1, cfg.n2, cfg.n3, cfg.n4)
        return [DerivConfig(n1=a, n2=b, n3=c, n4=d) for a, b, c, d in grid]
    return [D2Config(t1_rms=a, t2_rms=b) for a, b in itertools.product(cfg.t1_rms, cfg.t2_rms)]


def tune(batches: list[WaveformBatch], cfg: TuneConfig) -> tuple[dict[str, Any], list[dict]]:
    """Scan the grid; return the chosen set (as written to tuned.yaml) and the whole table."""
    if not batches:
        raise InputError("tune: the calibration sample is empty")
    if any(b.truth is None or "n_clusters" not in b.truth.fields for b in batches):
        raise InputError("tune: the calibration sample needs truth (branch n_clusters)")
    n_true = np.concatenate(
        [ak.to_numpy(b.truth.n_clusters) for b in batches if b.truth is not None]
    )
    table = []
    clusterings = list(itertools.product(cfg.c_sqrt_ns, cfg.amplitude_power, cfg.min_window_ns))
    for finder in peak_sets(cfg):
        per_batch = []
        for b in batches:
            peaks = find_peaks(b, finder)
            per_batch.append((track_times(b, peaks), peak_amplitudes(b, peaks)))
        params = finder.model_dump()
        for c, power, floor in clusterings:
            cluster_cfg = ClusterizeConfig(c_sqrt_ns=c, amplitude_power=power, min_window_ns=floor)
            counts = np.concatenate([clusterize(t, a, cluster_cfg)[1] for t, a in per_batch])
            m = count_metrics(counts, n_true)
            m["calibrated_resolution_core"] = calibrated_resolution(counts, n_true)
            table.append({**params, **cluster_cfg.model_dump(), **m})
    files = sorted({b.file for b in batches})
    tuned = tuned_set(best_point(table, cfg), cfg, len(table), n_true.size, files)
    if cfg.adaptive and any(not _adaptive(r) for r in table):  # both rules: each one's best
        for key, adaptive in (("fixed_clusterization", False), ("adaptive_clusterization", True)):
            best = best_point(table, cfg, adaptive=adaptive, only=True)
            tuned[key] = tuned_set(best, cfg, len(table), n_true.size, files)
    return tuned, table


def _adaptive(row: dict[str, Any]) -> bool:
    return bool(row["amplitude_power"] or row["min_window_ns"])


def best_point(
    table: list[dict], cfg: TuneConfig, adaptive: bool = True, only: bool = False
) -> dict[str, Any]:
    """The grid point with the smallest objective among those within the bias limit (the
    calibrated objective has none): of every point, or (`only`) of the adaptive rule's
    points (`adaptive`) or of the fixed rule's."""
    rows = [r for r in table if _adaptive(r) == adaptive] if only else table
    allowed = rows
    if cfg.objective != "calibrated_resolution_core":
        allowed = [r for r in rows if abs(r["relative_bias"]) <= cfg.max_relative_bias]
    if not allowed:
        closest = min(rows, key=lambda r: abs(r["relative_bias"]))
        raise InputError(
            f"tune: no grid point has |relative bias| <= {cfg.max_relative_bias} "
            f"(closest {closest['relative_bias']:+.3f}); widen the grid or tune.max_relative_bias"
        )
    return min(allowed, key=lambda r: _nan_last(r[cfg.objective]))


def tuned_set(
    best: dict[str, Any], cfg: TuneConfig, points: int, waveforms: int, files: list[str]
) -> dict[str, Any]:
    """A grid point as tuned.yaml holds it: thresholds, clusterization, calibration figures."""
    names = list(DerivConfig.model_fields if cfg.algorithm == "deriv" else D2Config.model_fields)
    return {
        "algorithm": cfg.algorithm,
        cfg.algorithm: {k: best[k] for k in names},
        "clusterize": {k: best[k] for k in ClusterizeConfig.model_fields},
        "calibration": {
            "waveforms": int(waveforms),
            "files": files,
            "grid_points": points,
            "objective": cfg.objective,
            "relative_bias": best["relative_bias"],
            "relative_resolution_rms": best["relative_resolution_rms"],
            "relative_resolution_core": best["relative_resolution_core"],
            "calibrated_resolution_core": best["calibrated_resolution_core"],
        },
    }


def _nan_last(value: float) -> tuple[bool, float]:
    """Sort key: an unavailable (NaN) resolution after every measured one."""
    return (math.isnan(value), value)
