"""The `tune` and `traditional` stages of `ccframe run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ccframe.errors import SteeringError
from ccframe.io.atomic import write_csv, write_text
from ccframe.io.config import DataConfig
from ccframe.io.reader import WaveformBatch, iter_batches
from ccframe.io.rootwrite import TreeWriter
from ccframe.logs import Log
from ccframe.metrics.counting import count_summary, fmt, json_ready
from ccframe.reco.config import TraditionalConfig, TuneConfig
from ccframe.reco.traditional import (
    Accumulator,
    config_with_thresholds,
    has_truth,
    match_truth,
    reconstruct,
    tree_chunk,
)
from ccframe.reco.tune import tune
from ccframe.runfolder.artifacts import TUNE_TABLE, Artifacts, tuned_other


def run_tune(
    cfg: TuneConfig,
    data: DataConfig,
    files: list[str],
    run_dir: Path,
    log: Log,
    table_name: str = TUNE_TABLE,
) -> dict:
    """Scan the grid on the first `cfg.max_events` waveforms; write tuned.yaml and tune.csv
    (`cfg.output` and `table_name` in the run folder)."""
    limited = data.model_copy(update={"max_events": cfg.max_events})
    batches = list(iter_batches(limited, files))
    tuned, table = tune(batches, cfg)
    write_text(run_dir / cfg.output, yaml.safe_dump(tuned, sort_keys=False))
    write_csv(run_dir / table_name, table)
    cal = tuned["calibration"]
    log(f"tune: {cal['grid_points']} points on {cal['waveforms']} waveforms")
    for name, chosen in (
        ("", tuned),
        (" (fixed clusterization)", tuned.get("fixed_clusterization")),
        (" (adaptive clusterization)", tuned.get("adaptive_clusterization")),
    ):
        if chosen is None:
            continue
        cal = chosen["calibration"]
        log(
            f"  {tuned['algorithm']}{name} -> {chosen[chosen['algorithm']]} "
            f"{_clusterization(chosen['clusterize'])}: bias {cal['relative_bias']:+.3f}, "
            f"resolution {cal['relative_resolution_core']:.3f} (core), "
            f"{cal['relative_resolution_rms']:.3f} (RMS), "
            f"{cal['calibrated_resolution_core']:.3f} (core, calibrated)"
        )
    log(f"  written to {run_dir / cfg.output}")
    return tuned


def _clusterization(cfg: dict[str, Any]) -> str:
    """c, and the adaptive terms where they are used."""
    text = f"c={cfg['c_sqrt_ns']}"
    if cfg.get("amplitude_power") or cfg.get("min_window_ns"):
        text += f" power={cfg['amplitude_power']} floor={cfg['min_window_ns']} ns"
    return text


def load_thresholds(path: str) -> dict[str, Any]:
    """The thresholds of a tuned.yaml (a `SteeringError` naming traditional.thresholds)."""
    return _parse_thresholds(load_thresholds_text(path), path)


def load_thresholds_text(path: str) -> str:
    """The text of a tuned.yaml, checked."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SteeringError(
            f"traditional.thresholds = {path!r}: cannot read it ({exc}); expected a tuned.yaml "
            "written by the tune stage"
        ) from None
    _parse_thresholds(text, path)
    return text


def _parse_thresholds(text: str, path: str) -> dict[str, Any]:
    try:
        tuned = yaml.safe_load(text)
        if not isinstance(tuned, dict) or not {"algorithm", "clusterize"} <= set(tuned):
            raise ValueError("not a tuned.yaml")
        return tuned
    except (ValueError, yaml.YAMLError) as exc:
        raise SteeringError(
            f"traditional.thresholds = {path!r}: cannot use it ({exc}); expected a tuned.yaml "
            "written by the tune stage"
        ) from None


def tuned_for(
    algorithm: str,
    cfg: TuneConfig,
    data: DataConfig,
    files: list[str],
    run_dir: Path,
    log: Log,
) -> dict[str, Any]:
    """The thresholds and clusterization of `algorithm` as its peak finder, tuned on the tune
    stage's calibration sample with the tune stage's grid and objective (written to
    tuned_<algorithm>.yaml and tune_<algorithm>.csv): so that a comparison of DERIV and D2
    compares both at their best."""
    thresholds, table = tuned_other(algorithm)
    other = cfg.model_copy(update={"algorithm": algorithm, "output": thresholds})
    return run_tune(other, data, files, run_dir, log, table)


def tuned_methods(
    traditional: TraditionalConfig, tuned: dict[str, Any]
) -> dict[str, TraditionalConfig]:
    """The settings of a tuned set by method name: `<algorithm>` (or `<algorithm>_adaptive`)
    for its best point or, when the grid held both clusterization rules, `<algorithm>` for
    the fixed rule's best point and `<algorithm>_adaptive` for the adaptive rule's."""
    algorithm = tuned["algorithm"]
    base = traditional.model_copy(update={"algorithm": algorithm})
    if "fixed_clusterization" not in tuned:
        best = config_with_thresholds(base, tuned)
        return {method_name(best): best}
    return {
        algorithm: config_with_thresholds(base, tuned["fixed_clusterization"]),
        f"{algorithm}_adaptive": config_with_thresholds(base, tuned["adaptive_clusterization"]),
    }


def method_name(cfg: TraditionalConfig) -> str:
    """`deriv` or `d2`, with `_adaptive` for the adaptive clusterization."""
    return f"{cfg.algorithm}_adaptive" if cfg.clusterize.adaptive else cfg.algorithm


def resolve_traditional(cfg: TraditionalConfig, tuned: dict | None) -> TraditionalConfig:
    """The traditional settings with the thresholds of `cfg.thresholds` (a tuned.yaml) or,
    without one, of a tune stage in the same run applied."""
    if cfg.thresholds is not None:
        return config_with_thresholds(cfg, load_thresholds(cfg.thresholds))
    if tuned is not None:
        return config_with_thresholds(cfg, tuned)
    return cfg


class TraditionalPass:
    """The traditional reconstruction as a consumer of a pass over the input: each batch is
    reconstructed (resolved settings, `resolve_traditional`), written to the `traditional`
    tree and accumulated for the metrics; the result is shared with the other consumers
    (`shared["traditional"]`), so the ML dataset does not reconstruct again. A context
    manager: the tree file appears only when the pass completes."""

    def __init__(self, cfg: TraditionalConfig, target: Path) -> None:
        self.cfg, self.target = cfg, target
        self._acc = Accumulator()
        self._writer = TreeWriter(target, "traditional")

    def __enter__(self) -> TraditionalPass:
        self._writer.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        return self._writer.__exit__(*exc)

    def add(self, batch: WaveformBatch, shared: dict[str, Any]) -> None:
        cfg = self.cfg
        result = reconstruct(batch, cfg.finder, cfg.clusterize)
        match = match_truth(batch, result.peaks, cfg.match) if has_truth(batch) else None
        if match is not None:
            self._acc.add_matching(match, batch)
        chunk = tree_chunk(batch, result, match)
        self._acc.add(**{k: v for k, v in chunk.items() if k != "peak"})
        self._writer.add(chunk)
        shared["traditional"] = result

    def metrics(self) -> dict[str, Any]:
        """Peak-finding and count metrics against the truth (after the pass)."""
        cfg = self.cfg
        metrics = self._acc.metrics(cfg.momentum_bins)
        metrics["algorithm"] = cfg.algorithm
        metrics["parameters"] = {
            cfg.algorithm: cfg.finder.model_dump(),
            "clusterize": cfg.clusterize.model_dump(),
        }
        metrics["waveforms"] = self._writer.entries
        return dict(json_ready(metrics))


def traditional_summary(metrics: dict[str, Any], target: Path) -> str:
    """The traditional stage's lines for the log."""
    head = (
        f"traditional: {metrics['algorithm']} + clusterization on {metrics['waveforms']} "
        f"waveforms -> {target}"
    )
    return head + "\n" + format_metrics(metrics)


def format_metrics(m: dict[str, Any]) -> str:
    lines = []
    pf = m.get("peak_finding")
    if pf:
        lines.append(
            f"  peak finding     efficiency {fmt(pf['efficiency'], '.3f')} (electrons), "
            f"{fmt(pf.get('cluster_efficiency'), '.3f')} (clusters with a found electron), "
            f"purity {fmt(pf['purity'], '.3f')}"
        )
    c = m.get("count")
    if c and c.get("waveforms"):
        lines.append(f"  cluster count    {count_summary(c)}")
    lines.extend(
        f"    p {row['low']:7.2f}-{row['high']:7.2f} GeV  n={row['waveforms']:6d}  "
        f"bias {row['relative_bias']:+.3f}  resolution {row['relative_resolution_rms']:.3f}"
        for row in m.get("count_vs_momentum", [])
    )
    return "\n".join(lines) if lines else "  (no truth: counts written, no metrics)"


def traditional_of_run(artifacts: Artifacts) -> TraditionalConfig:
    """The traditional settings a run used, resolved as the run resolved them
    (`resolve_traditional`): the copy of `traditional.thresholds` in the run folder, else its
    tune stage's thresholds, else its steering file's."""
    cfg = artifacts.steering.traditional or TraditionalConfig()
    copy = artifacts.thresholds
    cfg = cfg.model_copy(update={"thresholds": str(copy) if copy.is_file() else None})
    tuned = load_thresholds(str(artifacts.tuned)) if artifacts.tuned.is_file() else None
    return resolve_traditional(cfg, tuned)
