"""`ccframe collect RUN`: the leaderboard of a sweep's trials (RUN/leaderboard.csv and a
terminal table) and a copy of the best trial's folder in RUN/best."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ccframe.errors import SweepError
from ccframe.io.atomic import write_csv
from ccframe.sweep.config import SweepConfig
from ccframe.sweep.trials import Trial, load_trials

SWEEP_FILE = "sweep.yaml"
BEST_DIR = "best"


def load_sweep(run_dir: Path) -> SweepConfig:
    """The sweep section recorded in RUN/sweep.yaml by `ccframe sweep`."""
    from ccframe.steering.loader import load_steering

    path = run_dir / SWEEP_FILE
    if not path.is_file():
        raise SweepError(f"{run_dir}: not a ccframe sweep folder (no {SWEEP_FILE})")
    steering = load_steering(path)
    if steering.sweep is None:
        raise SweepError(f"{path}: has no sweep: section")
    return steering.sweep


def lookup(data: Any, dotted: str) -> float | None:
    """A number at a dotted path of metrics.json, or None."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
        return None
    return float(data)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def run_folder(trial: Trial) -> Path:
    """Where the trial's run wrote (a condor trial with transfer: files writes into out/)."""
    out = trial.folder / "out"
    return out if (out / "run.json").is_file() else trial.folder


def trial_row(trial: Trial, sweep: SweepConfig) -> dict[str, Any]:
    folder = run_folder(trial)
    status = _read_json(folder / "run.json")
    metrics = _read_json(folder / "metrics.json")
    res = _read_json(trial.folder / "resources.json") or _read_json(folder / "resources.json")
    row: dict[str, Any] = {"trial": f"{trial.number:04d}"}
    for key, value in trial.params.items():
        plain = isinstance(value, str | int | float) and not isinstance(value, bool)
        row[key] = value if plain else json.dumps(value)
    row[sweep.metric] = lookup(metrics, sweep.metric)
    for name in sweep.tie_breakers:
        row[name] = lookup(metrics, name)
    row["status"] = status.get("status", res.get("status", "pending"))
    row["wall_s"] = res.get("wall_s", status.get("wall_s"))
    row["cores"] = res.get("cores_used")
    row["peak_mb"] = res.get("peak_rss_mb")
    row["reason"] = status.get("error") or res.get("reason") or ""
    if row["status"] == "done":
        row["reason"] = ""
    return row


def rank(rows: list[dict[str, Any]], sweep: SweepConfig) -> list[dict[str, Any]]:
    """Done trials with a metric, best first (metric, then tie-breakers, direction-aware);
    then the others by trial number."""
    sign = 1.0 if sweep.direction == "maximize" else -1.0
    keys = [sweep.metric, *sweep.tie_breakers]

    def score(row: dict[str, Any]) -> tuple[float, ...]:
        return tuple(-math.inf if row[k] is None else sign * row[k] for k in keys)

    ranked = [r for r in rows if r["status"] == "done" and r[sweep.metric] is not None]
    ranked.sort(key=lambda r: (tuple(-s for s in score(r)), r["trial"]))
    rest = sorted((r for r in rows if r not in ranked), key=lambda r: r["trial"])
    for i, row in enumerate(ranked, 1):
        row["rank"] = i
    for row in rest:
        row["rank"] = ""
    return ranked + rest


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def copy_best(run_dir: Path, source: Path) -> Path:
    """Copy `source` to RUN/best atomically (copy beside it, then rename)."""
    target = run_dir / BEST_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".best.", suffix=".tmp", dir=run_dir))
    try:
        shutil.copytree(source, tmp / "copy", symlinks=True)
        if target.exists():
            old = tmp / "old"
            os.replace(target, old)
        os.replace(tmp / "copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def plot_sweep(
    run_dir: Path, rows: list[dict[str, Any]], params: list[str], metrics: list[str]
) -> list[Path]:
    """RUN/plots/sweep_<metric>_vs_<parameter>.png for every metric and swept parameter."""
    from functools import partial

    from ccframe.plots import figures
    from ccframe.plots.style import axes, save, use_style

    done = [r for r in rows if r["status"] == "done"]
    if not done:
        return []
    use_style()
    written = []
    for metric in metrics:
        for param in params:
            draw = partial(
                figures.sweep_plot, [r[param] for r in done], [r[metric] for r in done],
                param.rsplit(".", 1)[-1], metric.rsplit(".", 2)[-1],
            )  # fmt: skip
            ax = axes()
            draw(ax)
            name = f"sweep_{metric.rsplit('.', 1)[-1]}_vs_{param.replace('.', '-')}"
            written += save(ax.figure, run_dir / "plots", name, ("png",))
    return written


def collect(run_dir: Path, log: Any = print) -> dict[str, Any] | None:
    """Write RUN/leaderboard.csv, log the table, copy the best trial to RUN/best; return
    the best row (None when no trial finished with the metric)."""
    run_dir = Path(run_dir)
    sweep = load_sweep(run_dir)
    trials = {t.number: t for t in load_trials(run_dir)}
    if not trials:
        raise SweepError(f"{run_dir}: the sweep has no trials yet (run ccframe sweep)")
    rows = rank([trial_row(t, sweep) for t in trials.values()], sweep)
    params = list(dict.fromkeys(k for t in trials.values() for k in t.params))
    columns = ["rank", "trial", *params, sweep.metric, *sweep.tie_breakers]
    columns += ["status", "wall_s", "cores", "peak_mb", "reason"]
    write_csv(run_dir / "leaderboard.csv", rows, columns)
    tails = [p.rsplit(".", 1)[-1] for p in params]
    short = {
        c: c.rsplit(".", 1)[-1] if tails.count(c.rsplit(".", 1)[-1]) == 1 else c for c in params
    }
    short = {c: short.get(c, c) for c in columns}
    shown = [{short[c]: r.get(c) for c in columns} for r in rows]
    log(table(shown, list(short.values())))
    plot_sweep(run_dir, rows, params, [sweep.metric, *sweep.tie_breakers])
    best = rows[0] if rows and rows[0]["rank"] == 1 else None
    if best is None:
        log(f"collect: no trial finished with {sweep.metric}; {run_dir / BEST_DIR} not written")
        return None
    target = copy_best(run_dir, run_folder(trials[int(best["trial"])]))
    log(
        f"collect: best trial {best['trial']} ({sweep.metric} = {_fmt(best[sweep.metric])}) "
        f"-> {target}; leaderboard {run_dir / 'leaderboard.csv'}"
    )
    return best
