"""`ccframe plot RUN_DIR` and the `plots` stage: every plot a run's outputs allow, as PNG and
PDF in RUN_DIR/plots (and, for `ccframe plot`, report.html)."""

from __future__ import annotations

import csv
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
from ccframe.io.reader import iter_batches
from ccframe.logs import Log
from ccframe.metrics.uncertainty import BOOTSTRAP, COUNT_QUANTITIES, with_bootstrap_errors
from ccframe.ml.dataset import TEST
from ccframe.plots import figures
from ccframe.plots.report import read_json, read_metrics, traditional_algorithm, write_report
from ccframe.plots.style import axes, save, use_style
from ccframe.plots.text import MODEL_COUNTS, count_name, label, sig
from ccframe.runfolder.artifacts import (
    PID,
    PLOTS,
    ROBUSTNESS,
    STATUS,
    Artifacts,
)
from ccframe.runfolder.artifacts import (
    history as history_file,
)


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


APPROXIMATE_ERRORS = (
    "error bars: \u03c3/\u221a(2(n\u22121)) for a resolution from n waveforms (\u00d7"
    f"{figures.CORE_ERROR_FACTOR} for the Gaussian core, its spread on Gaussian samples), "
    "std(N \u2212 N_true)/(\u221an \u27e8N_true\u27e9) for the relative bias"
)
POISSON_NOTE = (
    "Dashed: 1/\u221a\u27e8N_true\u27e9, the relative Poisson spread of the true count "
    "itself, drawn for scale. It is the fluctuation of the physics that cluster counting "
    "measures, not a floor: the count resolution compares each waveform's count with its "
    "own N_true and can be smaller."
)


class Plotter:
    """Collects the plots of one run folder."""

    def __init__(self, artifacts: Artifacts, formats: tuple[str, ...], log: Log) -> None:
        self.artifacts, self.formats, self.log = artifacts, formats, log
        self.run_dir = artifacts.run_dir
        self.folder = artifacts.path(PLOTS)
        self.plots: list[Plot] = []
        self.algorithm: str | None = None
        self.seed = artifacts.steering.seed

    def add(self, name: str, caption: str, draw: Callable[[Any], Any], **kw: Any) -> None:
        fig = _figure(draw, **kw)
        self.plots.append(Plot(name, caption, save(fig, self.folder, name, self.formats)))

    def training(self) -> None:
        models = ("classifier", "counter", "waveform_counter", "peak_sequence", "peak_map")
        for model in models:
            path = self.artifacts.path(history_file(model))
            if not path.is_file():
                continue
            history = read_history(path)
            metrics = [k for k in figures.HISTORY_LABELS if k in history]
            for metric in metrics:
                self.add(
                    f"history_{model}_{metric}",
                    f"{model}: {figures.HISTORY_LABELS[metric]} per epoch (training and "
                    "validation splits)",
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
            f"purity versus efficiency of the peak classifier, its threshold {sig(thr)} marked",
            lambda ax: figures.precision_recall_plot(scores, signal, thr, ax),
        )
        self.add(
            "scores",
            "LSTM score of the candidates matched to a true electron (signal) and of the others",
            lambda ax: figures.score_plot(scores, signal, thr, ax),
        )
        self.add(
            "confusion",
            "confusion matrix at the threshold: candidates and fraction of each true class",
            lambda ax: figures.confusion_plot(info["confusion_matrix"], ax),
            figsize=(7.0, 6.5),
        )

    def counts(
        self,
        n_true: np.ndarray,
        counts: dict[str, np.ndarray],
        vs: dict[str, list[dict[str, Any]]],
        bootstrapped: bool = False,
        sample: str = "test split",
    ) -> None:
        """The count plots of the waveforms of `sample`; `vs`: each count's momentum-bin rows,
        with bootstrap errors (`bootstrapped`) or without (the plots then use
        `figures.approximate_error`)."""
        for name, pred in counts.items():
            self.add(
                f"counts_2d_{name}",
                f"{count_name(name, self.algorithm)} count versus the true number of clusters, "
                f"one entry per waveform ({sample}; colour: waveforms per bin)",
                partial(figures.count_2d_plot, n_true, pred, name, sample=sample),
                figsize=(8.5, 7.0),
            )
        integer = [
            count_name(n, self.algorithm) for n, c in counts.items() if figures.is_integer_count(c)
        ]
        comb = (
            f" The integer count ({', '.join(integer)}) is histogrammed with each waveform spread "
            "uniformly over N \u00b1 0.5, i.e. over its own cell of (N \u2212 N_true)/N_true: the "
            "values k/N_true would otherwise fill fixed bins unevenly (a comb that is no physics); "
            "the plot of N \u2212 N_true shows the counts unsmeared."
            if integer
            else ""
        )
        self.add(
            "residuals",
            "relative count residual (N \u2212 N_true)/N_true, dotted: a Gaussian of its core "
            "width and core mean. Legend: the core \u03c3 (the resolution of the tables), the "
            "core mean (mean of the residuals within 2\u03c3 of the median, each waveform "
            "weighted alike) and the relative bias of the tables, the ratio of sums "
            "\u03a3N/\u03a3N_true \u2212 1 over all waveforms, which weights each waveform by "
            "its N_true and keeps the tails: the two differ where the residual depends on "
            "N_true or has tails." + comb,
            lambda ax: figures.residual_plot(n_true, counts, ax, sample=sample),
        )
        names = {name: count_name(name, self.algorithm) for name in counts}
        self.add(
            "response",
            "response of each count: the mean predicted count per true count (band: its "
            "standard deviation; true counts of at least 20 waveforms) against the diagonal. "
            "A slope below 1 is a count that shrinks towards the mean of its training sample "
            f"({sample})",
            lambda ax: figures.response_plot(n_true, counts, names, ax, sample=sample),
        )
        self.add(
            "differences",
            "count difference N \u2212 N_true in bins of one cluster centred on the integers "
            f"({sample})",
            lambda ax: figures.difference_plot(n_true, counts, ax, sample=sample),
        )
        if any(vs.values()):
            errors = (
                f"error bars: standard deviation of {BOOTSTRAP} bootstrap resamples of the "
                f"waveforms in each bin (seed {self.seed})"
                if bootstrapped
                else APPROXIMATE_ERRORS
            )
            for quantity in COUNT_QUANTITIES[1:] + COUNT_QUANTITIES[:1]:
                note = POISSON_NOTE if quantity.startswith("relative_resolution") else ""
                self.add(
                    f"vs_momentum_{quantity}",
                    f"{label(quantity)} versus momentum ({sample}); {errors}. {note}".strip(),
                    partial(figures.versus_momentum_plot, vs, quantity, sample=sample),
                )

    def robustness(self, rows: list[dict[str, Any]]) -> None:
        for kind in dict.fromkeys(r["smearing"] for r in rows):
            for quantity in ("relative_resolution_core", "relative_bias"):
                self.add(
                    f"robustness_{kind}_{quantity}",
                    f"{label(quantity)} versus {figures.SMEARING_LABELS.get(kind, kind)} "
                    f"(ML, traditional; test split smeared); {APPROXIMATE_ERRORS}",
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
        algorithm = self.algorithm or "deriv"
        title = f"entry {entry}"
        if "n_clusters_true" in pred.fields:
            title += (
                f": {int(pred['n_clusters_true'][row])} true clusters, "
                f"ML {float(pred['n_clusters_ml'][row]):.1f}"
            )
            if "n_clusters_traditional" in pred.fields:
                title += f", {algorithm.upper()} {int(pred['n_clusters_traditional'][row])}"
        self.add(
            f"event_{entry}",
            f"event display of entry {entry} of {Path(file).name}: the waveform, the peak "
            f"candidates accepted and rejected by the classifier, the {algorithm.upper()} peaks "
            "and the expected peak times of the true primary and secondary electrons",
            lambda ax: figures.event_display(
                wave,
                batch.sampling_ghz,
                cands,
                accepted,
                electrons,
                primary,
                trad,
                title,
                ax,
                algorithm=algorithm,
            ),
            figsize=(14.0, 6.0),
        )

    def traditional_counts(self, metrics: dict[str, Any]) -> None:
        """The traditional stage's counts: against the truth, or (data without truth) their
        distribution."""
        tree = uproot.open(self.artifacts.traditional)["traditional"]
        if "n_clusters_true" not in tree:
            counts = ak.to_numpy(tree["n_clusters_traditional"].array())
            name = count_name("traditional", self.algorithm)
            self.add(
                "counts_traditional",
                f"{name} count per waveform of the input, which has no truth (data)",
                partial(figures.count_histogram, counts, name),
            )
            return
        trad = tree.arrays(["n_clusters_true", "n_clusters_traditional", "momentum_gev"])
        counts = {"traditional": ak.to_numpy(trad["n_clusters_traditional"]).astype(float)}
        n_true = ak.to_numpy(trad["n_clusters_true"])
        rows, complete = with_bootstrap_errors(
            metrics.get("count_vs_momentum", []),
            ak.to_numpy(trad["momentum_gev"]),
            counts["traditional"],
            n_true,
            seed=self.seed,
        )
        self.counts(
            n_true, counts, {"traditional": rows}, bootstrapped=complete, sample="all waveforms"
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
    metrics = read_metrics(run_dir)
    p = Plotter(artifacts, formats, log)
    p.algorithm = traditional_algorithm(metrics, artifacts)
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
        for name in MODEL_COUNTS:
            if f"n_clusters_{name}" in pred.fields:
                counts[name] = ak.to_numpy(pred[f"n_clusters_{name}"][test]).astype(float)
        n_true = ak.to_numpy(pred["n_clusters_true"][test])
        momentum = (
            ak.to_numpy(pred["momentum_gev"][test]) if "momentum_gev" in pred.fields else None
        )
        vs, complete = {}, momentum is not None
        for k, v in metrics["ml"]["count_test"].items():
            if k in counts:
                rows = v.get("vs_momentum", [])
                if momentum is not None:
                    rows, done = with_bootstrap_errors(
                        rows, momentum, counts[k], n_true, seed=p.seed
                    )
                    complete = complete and done
                vs[k] = rows
        p.counts(n_true, counts, vs, bootstrapped=complete)
        for row in np.flatnonzero(test)[:events]:
            p.event(pred, int(row))
    elif artifacts.traditional.is_file() and "traditional" in metrics:
        p.traditional_counts(metrics["traditional"])
    if artifacts.path(PID).is_file():
        rows = json.loads(artifacts.path(PID).read_text())
        for pair in dict.fromkeys(r["pair"] for r in rows):
            p.add(
                f"pid_{pair.replace('/', '_')}",
                f"{pair} separation power versus momentum for each counting method (bootstrap "
                "errors), and the Poisson limit of the true count",
                partial(figures.separation_plot, rows, pair),
            )
            p.add(
                f"pid_share_{pair.replace('/', '_')}",
                f"{pair} separation power of each counting method as a share of the truth "
                "count's, versus momentum (errors: bootstrap of the same tracks for both)",
                partial(figures.share_plot, rows, pair),
            )
    if artifacts.path(ROBUSTNESS).is_file():
        p.robustness(json.loads(artifacts.path(ROBUSTNESS).read_text()))
    if not p.plots:
        raise InputError(f"{run_dir}: nothing to plot (no histories, predictions or counts yet)")
    log(f"plots: {len(p.plots)} plots in {p.folder}")
    if report:
        status = read_json(artifacts.path(STATUS)) if artifacts.path(STATUS).is_file() else {}
        log(f"plots: report {write_report(run_dir, p.plots, metrics, status)}")
    return p.plots
