"""report.html: one self-contained page per run (plots embedded as data URIs).

It opens with a headline: what was run on what, the count resolution and bias of the ML
chain and of the traditional algorithm and the classifier's AUC and F1, each with its
statistical uncertainty (a seeded bootstrap of the evaluated waveforms,
`ccframe.metrics.uncertainty`), the wall time and the final status. Every table shows labels,
not metric keys (`ccframe.plots.text.LABELS`), and numbers rounded to their uncertainty or to
3 significant digits."""

from __future__ import annotations

import base64
import html
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
import uproot

from ccframe.errors import InputError
from ccframe.io.atomic import write_text
from ccframe.metrics.counting import available
from ccframe.metrics.uncertainty import (
    BOOTSTRAP,
    COUNT_QUANTITIES,
    Measurement,
    bootstrap_classifier,
    bootstrap_counts,
)
from ccframe.ml.dataset import TEST
from ccframe.plots import figures
from ccframe.plots.text import (
    ALGORITHMS,
    MODEL_COUNTS,
    PARTICLES,
    _h,
    count_name,
    duration,
    label,
    measured_text,
    sig,
)
from ccframe.runfolder.artifacts import (
    METRICS,
    PID,
    REPORT,
    STEERING,
    SUMMARY,
    Artifacts,
)

if TYPE_CHECKING:
    from ccframe.plots.plotter import Plot


def traditional_algorithm(metrics: dict[str, Any], artifacts: Artifacts | None) -> str | None:
    """The traditional algorithm the run used (deriv or d2): the metrics', else the steering's."""
    for section in (metrics.get("traditional"), (metrics.get("ml") or {}).get("traditional")):
        if isinstance(section, dict) and section.get("algorithm"):
            return str(section["algorithm"])
    trad = artifacts.steering.traditional if artifacts is not None else None
    return trad.algorithm if trad is not None else None


# --- what the report quotes ------------------------------------------------------------


@dataclass
class Evaluation:
    """The numbers the headline and the tables quote, with their errors, and on what."""

    sample: str = ""
    """'the test split: 225 waveforms (15 % of 1,500), 6,287 peak candidates'."""
    counts: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    """Per count (ml, traditional; and 'gain'): relative_bias and the resolutions."""
    classifier: dict[str, Measurement] = field(default_factory=dict)
    """auc, f1."""
    method: str = ""
    """How the errors were obtained (or why there are none)."""


def evaluate(artifacts: Artifacts, metrics: dict[str, Any]) -> Evaluation:
    """The headline's numbers with bootstrap errors, from predictions.root (test split) or,
    in a run without the ML chain, traditional.root (every waveform). Where neither can be
    read, the metrics' values without errors."""
    seed = artifacts.steering.seed
    method = (
        f"Uncertainties: standard deviation of {BOOTSTRAP} bootstrap resamples of the "
        f"evaluated waveforms (numpy default_rng, seed {seed})."
    )
    ml = metrics.get("ml") or {}
    try:
        if ml and artifacts.predictions.is_file():
            return _evaluate_ml(artifacts, ml, seed, method)
        if metrics.get("traditional") and artifacts.traditional.is_file():
            tree = uproot.open(artifacts.traditional)["traditional"]
            got = tree.arrays(["n_clusters_true", "n_clusters_traditional"], library="np")
            n = len(got["n_clusters_true"])
            return Evaluation(
                f"all {n:,} waveforms (the traditional algorithm is not trained: no split)",
                bootstrap_counts(
                    {"traditional": got["n_clusters_traditional"]},
                    got["n_clusters_true"],
                    seed=seed,
                ),
                {},
                method,
            )
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        method = f"No uncertainties: the predictions could not be read ({exc})."
    else:
        method = "No uncertainties: no predictions.root or traditional.root to resample."
    return _from_metrics(metrics, method)


def _evaluate_ml(artifacts: Artifacts, ml: dict[str, Any], seed: int, method: str) -> Evaluation:
    tree = uproot.open(artifacts.predictions)["predictions"]
    pred = tree.arrays(
        ["split", "n_clusters_true", "n_clusters_ml", "n_clusters_traditional",
         "candidate_score", "candidate_label"]
    )  # fmt: skip
    test = ak.to_numpy(pred["split"]) == TEST
    n_test, n_all = int(np.count_nonzero(test)), len(test)
    counts = {
        "ml": ak.to_numpy(pred["n_clusters_ml"][test]),
        "traditional": ak.to_numpy(pred["n_clusters_traditional"][test]),
    }
    for name in MODEL_COUNTS:
        if f"n_clusters_{name}" in tree:
            counts[name] = tree[f"n_clusters_{name}"].array(library="np")[test]
    scores = pred["candidate_score"][test]
    per_waveform = ak.to_numpy(ak.num(scores))
    classifier = bootstrap_classifier(
        ak.to_numpy(ak.flatten(scores)),
        ak.to_numpy(ak.flatten(pred["candidate_label"][test])) > 0,
        np.repeat(np.arange(n_test), per_waveform),
        float(ml["classifier"]["test"]["threshold"]),
        seed=seed,
        n_waveforms=n_test,
    )
    share = f" ({n_test / n_all:.0%} of {n_all:,})" if n_all else ""
    method = (
        method.rstrip(".") + "; for the classifier each drawn waveform brings all its candidates."
    )
    return Evaluation(
        f"the test split: {n_test:,} waveforms{share}, {int(per_waveform.sum()):,} peak candidates",
        bootstrap_counts(counts, ak.to_numpy(pred["n_clusters_true"][test]), seed=seed),
        classifier,
        method,
    )


def _from_metrics(metrics: dict[str, Any], method: str) -> Evaluation:
    ml = metrics.get("ml") or {}
    counts = {
        name: entry["overall"]
        for name, entry in (ml.get("count_test") or {}).items()
        if isinstance(entry, dict) and "overall" in entry
    }
    if not counts and (metrics.get("traditional") or {}).get("count"):
        counts = {"traditional": metrics["traditional"]["count"]}
    test = (ml.get("classifier") or {}).get("test") or {}
    nan = float("nan")
    return Evaluation(
        "the test split" if ml else "all waveforms",
        {
            name: {q: Measurement(m[q] if available(m.get(q)) else nan) for q in COUNT_QUANTITIES}
            for name, m in counts.items()
        },
        {k: Measurement(test[k] if available(test.get(k)) else nan) for k in ("auc", "f1") if test},
        method,
    )


# --- the report ----------------------------------------------------------------------


def _cell(value: Any) -> str:
    return _h(value if isinstance(value, str) else sig(value))


def _table(rows: list[tuple[str, Any]], cls: str = "") -> str:
    cells = "".join(f"<tr><th>{_h(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>{cells}</table>"


def describe_input(artifacts: Artifacts, summary: dict[str, Any]) -> str:
    """'simulated: 1,500 π waveforms, p = 4–180 GeV/c (log-uniform)' or the data files."""
    steering = artifacts.steering
    read = (summary.get("read") or {}).get("waveforms")
    sim = steering.simulate
    if sim is not None and not steering.data.files:
        n = read if isinstance(read, int) else sim.n_waveforms
        particles = ", ".join(PARTICLES.get(p, p) for p in sim.particles)
        mom = sim.momentum
        if mom.distribution == "fixed":
            p_range = f"p = {mom.min_gev:g} GeV/c"
        else:
            p_range = (
                f"p = {mom.min_gev:g}\u2013{mom.max_gev:g} GeV/c "
                f"({mom.distribution.replace('_', '-')})"
            )
        return f"simulated: {n:,} {particles} waveforms, {p_range}"
    files = artifacts.input_files()
    names = ", ".join(Path(f).name for f in files[:3]) + (", \u2026" if len(files) > 3 else "")
    count = f" ({read:,} waveforms read)" if isinstance(read, int) else ""
    return f"data: {len(files)} file{'s' if len(files) != 1 else ''}: {names}{count}"


def _stages(artifacts: Artifacts, algorithm: str | None) -> str:
    from ccframe.pipeline.stages import enabled

    steering = artifacts.steering
    tuned = steering.tune.algorithm if steering.tune is not None else None
    names = []
    for stage in enabled(steering):
        which = {"traditional": algorithm, "tune": tuned}.get(stage.name)
        if stage.name == "read":
            continue
        names.append(f"{stage.name} ({ALGORITHMS.get(which, which)})" if which else stage.name)
    return " \u2192 ".join(names)


def headline(
    artifacts: Artifacts,
    metrics: dict[str, Any],
    status: dict[str, Any],
    evaluation: Evaluation,
) -> str:
    """The top of the report: what was run on what, the numbers that matter with their
    uncertainties, the wall time and the final status."""
    algorithm = traditional_algorithm(metrics, artifacts)
    name = html.escape(str(status.get("name", artifacts.steering.name)))
    state = str(status.get("status", "unknown"))
    error = f": {status['error']}" if state == "failed" and status.get("error") else ""
    summary_path = artifacts.path(SUMMARY)
    summary = read_json(summary_path) if summary_path.is_file() else {}
    lines = [
        f"<b>Stages</b>: {html.escape(_stages(artifacts, algorithm))}",
        f"<b>Input</b>: {html.escape(describe_input(artifacts, summary))}",
        f"<b>Evaluated on</b>: {_h(evaluation.sample)}",
    ]
    if status.get("command"):
        lines.append(f"<b>Command</b>: <code>{html.escape(shlex.join(status['command']))}</code>")
    parts = [
        '<section id="headline">',
        f"<h1>ccframe run {name}</h1>",
        f'<p class="status status-{html.escape(state)}">status <b>{html.escape(state)}</b>'
        f"{html.escape(error)} &middot; wall time <b>{duration(status.get('wall_s'))}</b>"
        + (
            f" &middot; started {html.escape(str(status['started']))}"
            if "started" in status
            else ""
        )
        + "</p>",
        "<p>" + "<br>\n".join(lines) + "</p>",
    ]
    counts = {k: v for k, v in evaluation.counts.items() if k != "gain"}
    if counts:
        head = "".join(
            f"<th>{_h(label(q))}</th>" for q in ("relative_resolution_core", "relative_bias")
        )
        body = "".join(
            f"<tr><th>{html.escape(count_name(n, algorithm))}</th>"
            f"<td>{html.escape(measured_text(m['relative_resolution_core']))}</td>"
            f"<td>{html.escape(measured_text(m['relative_bias']))}</td></tr>"
            for n, m in counts.items()
        )
        parts.append(f'<table class="headline"><tr><th>cluster count</th>{head}</tr>{body}</table>')
    if evaluation.classifier:
        thr = ((metrics.get("ml") or {}).get("classifier") or {}).get("test", {}).get("threshold")
        c = evaluation.classifier
        parts.append(
            '<table class="headline"><tr><th>peak classifier</th>'
            f"<th>{_h(label('auc'))}</th>"
            f"<th>F1 at score &gt; {html.escape(sig(thr))}</th></tr>"
            f"<tr><th>LSTM</th><td>{html.escape(measured_text(c['auc']))}</td>"
            f"<td>{html.escape(measured_text(c['f1']))}</td></tr></table>"
        )
    parts.append(
        '<p class="note">Count resolution: width of the Gaussian core of the per-waveform '
        "(N \u2212 N<sub>true</sub>)/N<sub>true</sub> (iterative clipping at 2\u03c3, "
        "corrected for the clipping). Relative bias: the ratio of sums "
        "\u03a3N/\u03a3N<sub>true</sub> \u2212 1 over the waveforms, not the mean of the "
        f"per-waveform ratios. {_h(evaluation.method)}</p>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _provenance(status: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = []
    for key in ("status", "seed", "started", "wall_s", "git", "host"):
        if key in status:
            value = duration(status[key]) if key == "wall_s" else status[key]
            rows.append((label(key), value if key != "seed" else str(value)))
    versions = status.get("versions")
    if isinstance(versions, dict) and versions:
        rows.append((label("versions"), ", ".join(f"{k} {v}" for k, v in versions.items())))
    return "<h2>Provenance</h2>" + _table(rows) if rows else ""


CLASSIFIER_KEYS = (
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
COUNT_COLUMNS = (
    "waveforms",
    "mean_true",
    "mean_pred",
    "relative_bias",
    "relative_resolution_core",
    "relative_resolution_rms",
    "iqr_over_median",
    "mae",
)


def _metric_tables(metrics: dict[str, Any], evaluation: Evaluation, algorithm: str | None) -> str:
    parts = []
    ml = metrics.get("ml")
    if ml:
        test = ml["classifier"]["test"]
        rows = []
        for k in CLASSIFIER_KEYS:
            if k in evaluation.classifier:
                rows.append((label(k), measured_text(evaluation.classifier[k])))
            elif k in test:
                rows.append((label(k), test[k]))
        parts.append("<h2>Peak classifier (test split)</h2>" + _table(rows))
        pf = ml["peak_finding_test"]
        parts.append(
            "<h3>ML peak finding against all true electrons (test split)</h3>"
            + _table([(label(k), v) for k, v in pf.items()])
        )
    trad_pf = (metrics.get("traditional") or {}).get("peak_finding")
    if trad_pf:
        parts.append(
            f"<h3>{html.escape(count_name('traditional', algorithm))} peak finding against all "
            "true electrons (every waveform)</h3>"
            + _table([(label(k), v) for k, v in trad_pf.items()])
        )
    counts = (ml or {}).get("count_test") or {}
    where = "test split"
    if not counts and (metrics.get("traditional") or {}).get("count"):
        counts = {"traditional": {"overall": metrics["traditional"]["count"]}}
        where = "every waveform"
    if counts:
        head = "".join(f"<th>{_h(label(k))}</th>" for k in COUNT_COLUMNS)
        body = ""
        for name, entry in counts.items():
            if not isinstance(entry, dict) or "overall" not in entry:
                continue
            measured = evaluation.counts.get(name, {})
            cells = []
            for k in COUNT_COLUMNS:
                value = measured_text(measured[k]) if k in measured else entry["overall"].get(k)
                cells.append(f"<td>{_cell(value)}</td>")
            body += f"<tr><th>{html.escape(count_name(name, algorithm))}</th>{''.join(cells)}</tr>"
        gain = evaluation.counts.get("gain")
        gain_note = (
            " ML resolution gain over the traditional algorithm, 1 \u2212 \u03c3<sub>ML</sub>/"
            "\u03c3<sub>traditional</sub>: "
            f"{html.escape(measured_text(gain['relative_resolution_core']))} "
            f"(Gaussian core), {html.escape(measured_text(gain['relative_resolution_rms']))} (RMS)."
            if gain
            else ""
        )
        parts.append(
            f"<h2>Cluster count ({where})</h2>"
            f"<table><tr><th></th>{head}</tr>{body}</table>"
            '<p class="note">N: the reconstructed number of clusters of a waveform, '
            "N<sub>true</sub>: the true one. Relative bias: \u03a3N/\u03a3N<sub>true</sub> "
            "\u2212 1 (a ratio of sums, = mean N / mean N<sub>true</sub> \u2212 1), not the "
            "mean of the per-waveform (N \u2212 N<sub>true</sub>)/N<sub>true</sub>; the residual "
            "plot's legend gives both, the core mean leaving out the tails. Count resolution: "
            "the spread of (N \u2212 N<sub>true</sub>)/N<sub>true</sub>, its Gaussian-core width "
            f"and its RMS. {_h(evaluation.method)}{gain_note}</p>"
        )
    return "\n".join(parts)


def _pid_table(run_dir: Path) -> str:
    path = run_dir / PID
    if not path.is_file():
        return ""
    rows = json.loads(path.read_text())
    methods = [m for m in figures.METHOD_STYLE if m in rows[0]]
    names = [figures.METHOD_STYLE[m][0] for m in methods]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ["pair", "p [GeV/c]", "Poisson", *names])
    body = ""
    for r in rows:
        cells = [html.escape(r["pair"]), f"{r['momentum_gev']:g}", f"{r['poisson']:.2f}"]
        for m in methods:
            frac = ""
            if m != "truth":
                frac = f" ({r[f'{m}_over_truth']:.0%}"
                err = r.get(f"{m}_over_truth_err")
                frac += f" &plusmn; {err:.0%})" if err is not None and np.isfinite(err) else ")"
            cells.append(f"{r[m]:.2f} &plusmn; {r[f'{m}_err']:.2f}{frac}")
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return (
        "<h2>Separation power [\u03c3] (fraction of the truth count's)</h2>"
        f"<table><tr>{head}</tr>{body}</table>"
    )


def write_report(
    run_dir: Path, plots: list[Plot], metrics: dict[str, Any], status: dict[str, Any]
) -> Path:
    """report.html: the headline (`headline`; `status`: the run's run.json record), the
    metrics with their uncertainties, every PNG embedded, and the resolved steering file."""
    artifacts = Artifacts.of_run(run_dir)
    evaluation = evaluate(artifacts, metrics)
    algorithm = traditional_algorithm(metrics, artifacts)
    figures_html = []
    for plot in plots:
        png = next((f for f in plot.files if f.suffix == ".png"), None)
        if png is None:
            continue
        data = base64.b64encode(png.read_bytes()).decode()
        figures_html.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(plot.name)}">'
            f"<figcaption>{_h(plot.caption)}</figcaption></figure>"
        )
    steering = (run_dir / STEERING).read_text()
    name = html.escape(str(status.get("name", run_dir.name)))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ccframe run {name}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
#headline {{ border: 2px solid #3f90da; padding: 0 1em 0.5em; margin-bottom: 2em; }}
#headline table.headline td {{ font-size: 1.2em; font-weight: bold; }}
.status-done b {{ color: #1a7f37; }} .status-failed b {{ color: #bd1f01; }}
.note {{ font-size: 0.9em; color: #444; max-width: 1000px; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 640px; }} figcaption {{ font-size: 0.9em; color: #444; max-width: 640px; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head><body>
{headline(artifacts, metrics, status, evaluation)}
{_metric_tables(metrics, evaluation, algorithm)}
{_pid_table(run_dir)}
{_provenance(status)}
<h2>Plots</h2>
{"".join(figures_html)}
<h2>Resolved steering file</h2>
<pre>{html.escape(steering)}</pre>
</body></html>
"""
    target = run_dir / REPORT
    write_text(target, page)
    return target


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    return read_json(path) if path.is_file() else {}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from None
