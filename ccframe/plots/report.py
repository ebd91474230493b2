"""`ccframe plot RUN_DIR` and the `plots` stage: every plot a run's outputs allow, as PNG and
PDF in RUN_DIR/plots, and one self-contained report.html (plots embedded as data URIs)."""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from ccframe.errors import InputError
from ccframe.io.atomic import write_text
from ccframe.io.reader import iter_batches
from ccframe.plots import figures
from ccframe.plots.style import axes, save, use_style
from ccframe.runfolder.artifacts import (
    METRICS,
    PID,
    PLOTS,
    REPORT,
    ROBUSTNESS,
    STATUS,
    STEERING,
    Artifacts,
)
from ccframe.runfolder.artifacts import (
    history as history_file,
)

Log = Callable[[str], None]
TEST = 2


@dataclass
class Plot:
    name: str
    caption: str
    files: list[Path]


def read_history(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in (rows[0] if rows else {})}


def _figure(draw: Callable[[Any], Any], figsize: tuple[float, float] = (8.0, 6.5)) -> Any:
    ax = axes(None, figsize)
    draw(ax)
    return ax.figure


class Plotter:
    """Collects the plots of one run folder."""

    def __init__(self, artifacts: Artifacts, formats: tuple[str, ...], log: Log) -> None:
        self.artifacts, self.formats, self.log = artifacts, formats, log
        self.run_dir = artifacts.run_dir
        self.folder = artifacts.path(PLOTS)
        self.plots: list[Plot] = []

    def add(self, name: str, caption: str, draw: Callable[[Any], Any], **kw: Any) -> None:
        fig = _figure(draw, **kw)
        self.plots.append(Plot(name, caption, save(fig, self.folder, name, self.formats)))

    def training(self) -> None:
        for model in ("classifier", "counter"):
            path = self.artifacts.path(history_file(model))
            if not path.is_file():
                continue
            history = read_history(path)
            metrics = [k for k in figures.HISTORY_LABELS if k in history]
            for metric in metrics:
                self.add(
                    f"history_{model}_{metric}",
                    f"{model}: {figures.HISTORY_LABELS[metric]} per epoch (train, validation)",
                    partial(figures.history_plot, history, metric),
                )

    def classifier(self, pred: ak.Array, metrics: dict[str, Any]) -> None:
        test = ak.to_numpy(pred["split"]) == TEST
        scores = ak.to_numpy(ak.flatten(pred["candidate_score"][test]))
        signal = ak.to_numpy(ak.flatten(pred["candidate_label"][test])) > 0
        info = metrics["classifier"]["test"]
        thr = float(info["threshold"])
        self.add(
            "roc",
            "ROC curve of the LSTM peak classifier (test split)",
            lambda ax: figures.roc_plot(scores, signal, ax),
        )
        self.add(
            "precision_recall",
            "purity versus efficiency, chosen threshold marked",
            lambda ax: figures.precision_recall_plot(scores, signal, thr, ax),
        )
        self.add(
            "scores",
            "LSTM score for true signal and noise candidates",
            lambda ax: figures.score_plot(scores, signal, thr, ax),
        )
        self.add(
            "confusion",
            "confusion matrix at the chosen threshold",
            lambda ax: figures.confusion_plot(info["confusion_matrix"], ax),
            figsize=(7.0, 6.5),
        )

    def counts(self, n_true: np.ndarray, counts: dict[str, np.ndarray], vs: dict) -> None:
        for name, pred in counts.items():
            self.add(
                f"counts_2d_{name}",
                f"{name} versus true number of clusters (test split)",
                partial(figures.count_2d_plot, n_true, pred, name),
                figsize=(8.5, 7.0),
            )
        self.add(
            "residuals",
            "relative count residual with its Gaussian core",
            lambda ax: figures.residual_plot(n_true, counts, ax),
        )
        if any(vs.values()):
            for quantity in (
                "relative_resolution_core",
                "relative_resolution_rms",
                "relative_bias",
            ):
                self.add(
                    f"vs_momentum_{quantity}",
                    f"{quantity.replace('_', ' ')} versus momentum",
                    partial(figures.versus_momentum_plot, vs, quantity),
                )

    def robustness(self, rows: list[dict[str, Any]]) -> None:
        for kind in dict.fromkeys(r["smearing"] for r in rows):
            for quantity in ("relative_resolution_core", "relative_bias"):
                self.add(
                    f"robustness_{kind}_{quantity}",
                    f"{quantity.replace('_', ' ')} versus {kind} smearing (ML, traditional)",
                    partial(figures.robustness_plot, rows, kind, quantity),
                )

    def event(self, pred: ak.Array, row: int) -> None:
        data = self.artifacts.steering.input_data
        files = self.artifacts.input_files()
        file = files[int(pred["file_index"][row])]
        entry = int(pred["entry"][row])
        limited = data.model_copy(update={"max_events": entry + 1})
        batch = None
        for batch in iter_batches(limited, [file]):
            if batch.entry[-1] >= entry:
                break
        if batch is None or entry not in batch.entry:
            return
        i = int(np.flatnonzero(batch.entry == entry)[0])
        wave = batch.waveforms[i] - batch.baseline[i]
        electrons = primary = None
        if batch.truth is not None and "electron_time_ns" in batch.truth.fields:
            electrons = ak.to_numpy(batch.truth.electron_time_ns[i] + batch.truth.pretrigger_ns[i])
            primary = ak.to_numpy(batch.truth.electron_primary[i])
        trad = None
        trad_file = self.artifacts.traditional
        if trad_file.is_file():
            tree = uproot.open(trad_file)["traditional"]
            got = tree.arrays(["entry", "peak_sample"], entry_start=row, entry_stop=row + 1)
            if len(got) and int(got["entry"][0]) == entry:
                trad = ak.to_numpy(got["peak_sample"][0])
        cands = ak.to_numpy(pred["candidate_sample"][row])
        accepted = ak.to_numpy(pred["candidate_accepted"][row])
        title = f"entry {entry}"
        if "n_clusters_true" in pred.fields:
            title += (
                f": {int(pred['n_clusters_true'][row])} true clusters, "
                f"ML {float(pred['n_clusters_ml'][row]):.1f}"
            )
        self.add(
            f"event_{entry}",
            f"event display of entry {entry} of {Path(file).name}",
            lambda ax: figures.event_display(
                wave, batch.sampling_ghz, cands, accepted, electrons, primary, trad, title, ax
            ),
            figsize=(14.0, 6.0),
        )


def make_plots(
    run_dir: Path,
    formats: tuple[str, ...] = ("png", "pdf"),
    events: int = 2,
    log: Log = print,
    report: bool = True,
) -> list[Plot]:
    """Every plot the run folder's outputs allow; returns them (also written to plots/).
    With `report`, also report.html (the pipeline writes it itself, after the last stage)."""
    artifacts = Artifacts.of_run(run_dir)
    use_style()
    metrics = _read_metrics(run_dir)
    p = Plotter(artifacts, formats, log)
    p.training()
    pred_file = artifacts.predictions
    if pred_file.is_file() and "ml" in metrics:
        pred = uproot.open(pred_file)["predictions"].arrays()
        p.classifier(pred, metrics["ml"])
        test = ak.to_numpy(pred["split"]) == TEST
        counts = {
            "ml": ak.to_numpy(pred["n_clusters_ml"][test]).astype(float),
            "traditional": ak.to_numpy(pred["n_clusters_traditional"][test]).astype(float),
        }
        vs = {
            k: v.get("vs_momentum", [])
            for k, v in metrics["ml"]["count_test"].items()
            if k in counts
        }
        p.counts(ak.to_numpy(pred["n_clusters_true"][test]), counts, vs)
        for row in np.flatnonzero(test)[:events]:
            p.event(pred, int(row))
    elif artifacts.traditional.is_file() and "traditional" in metrics:
        trad = uproot.open(artifacts.traditional)["traditional"].arrays(
            ["n_clusters_true", "n_clusters_reco"]
        )
        vs = {"traditional": metrics["traditional"].get("count_vs_momentum", [])}
        counts = {"traditional": ak.to_numpy(trad["n_clusters_reco"]).astype(float)}
        p.counts(ak.to_numpy(trad["n_clusters_true"]), counts, vs)
    if artifacts.path(PID).is_file():
        rows = json.loads(artifacts.path(PID).read_text())
        for pair in dict.fromkeys(r["pair"] for r in rows):
            p.add(
                f"pid_{pair.replace('/', '_')}",
                f"{pair} separation power versus momentum",
                partial(figures.separation_plot, rows, pair),
            )
    if artifacts.path(ROBUSTNESS).is_file():
        p.robustness(json.loads(artifacts.path(ROBUSTNESS).read_text()))
    if not p.plots:
        raise InputError(f"{run_dir}: nothing to plot (no histories, predictions or counts yet)")
    log(f"plots: {len(p.plots)} plots in {p.folder}")
    if report:
        status = _read_json(artifacts.path(STATUS)) if artifacts.path(STATUS).is_file() else {}
        log(f"plots: report {write_report(run_dir, p.plots, metrics, status)}")
    return p.plots


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    return _read_json(path) if path.is_file() else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from None


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _metric_tables(metrics: dict[str, Any]) -> str:
    parts = []
    ml = metrics.get("ml")
    if ml:
        test = ml["classifier"]["test"]
        keys = (
            "threshold",
            "auc",
            "f1",
            "precision",
            "recall",
            "efficiency_x_purity",
            "accuracy",
            "specificity",
            "samples",
        )
        parts.append("<h2>Peak classifier (test split)</h2>" + _table([(k, test[k]) for k in keys]))
        pf = ml["peak_finding_test"]
        parts.append("<h3>Peak finding against all true electrons</h3>" + _table(list(pf.items())))
    counts = (ml or {}).get("count_test") or {}
    if not counts and metrics.get("traditional", {}).get("count"):
        counts = {"traditional": {"overall": metrics["traditional"]["count"]}}
    if counts:
        columns = (
            "waveforms",
            "mean_true",
            "mean_pred",
            "relative_bias",
            "relative_resolution_core",
            "relative_resolution_rms",
            "mae",
        )
        head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in columns)
        body = "".join(
            f"<tr><th>{html.escape(name)}</th>"
            + "".join(f"<td>{_fmt(entry['overall'].get(k))}</td>" for k in columns)
            + "</tr>"
            for name, entry in counts.items()
            if "overall" in entry
        )
        parts.append(
            f"<h2>Cluster count (test split)</h2><table><tr><th></th>{head}</tr>{body}</table>"
        )
    return "\n".join(parts)


def _pid_table(run_dir: Path) -> str:
    path = run_dir / PID
    if not path.is_file():
        return ""
    rows = json.loads(path.read_text())
    methods = [m for m in ("truth", "deriv", "d2", "ml") if m in rows[0]]
    head = "".join(f"<th>{m}</th>" for m in ["pair", "p [GeV/c]", "Poisson", *methods])
    body = ""
    for r in rows:
        cells = [r["pair"], f"{r['momentum_gev']:g}", f"{r['poisson']:.2f}"]
        for m in methods:
            frac = f" ({r[f'{m}_over_truth']:.0%})" if m != "truth" else ""
            cells.append(f"{r[m]:.2f} &plusmn; {r[f'{m}_err']:.2f}{frac}")
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return (
        "<h2>Separation power (fraction of the truth count's)</h2>"
        f"<table><tr>{head}</tr>{body}</table>"
    )


def write_report(
    run_dir: Path, plots: list[Plot], metrics: dict[str, Any], status: dict[str, Any]
) -> Path:
    """report.html with the run's status (`status`: its run.json record), the metrics, every
    PNG embedded, and the resolved steering file."""
    figures_html = []
    for plot in plots:
        png = next((f for f in plot.files if f.suffix == ".png"), None)
        if png is None:
            continue
        data = base64.b64encode(png.read_bytes()).decode()
        figures_html.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(plot.name)}">'
            f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>"
        )
    steering = (run_dir / STEERING).read_text()
    name = html.escape(str(status.get("name", run_dir.name)))
    provenance = _table(
        [(k, status[k]) for k in ("status", "seed", "started", "wall_s", "git") if k in status]
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ccframe run {name}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 640px; }} figcaption {{ font-size: 0.9em; color: #444; max-width: 640px; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>ccframe run {name}</h1>
{provenance}
{_metric_tables(metrics)}
{_pid_table(run_dir)}
<h2>Plots</h2>
{"".join(figures_html)}
<h2>Resolved steering file</h2>
<pre>{html.escape(steering)}</pre>
</body></html>
"""
    target = run_dir / REPORT
    write_text(target, page)
    return target
