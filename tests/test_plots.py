"""Plots and the HTML report: each figure function on tiny inputs, `ccframe plot` on a tiny
run, and the `plots:` stage."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ccframe.cli import main
from ccframe.metrics.counting import core_sigma
from ccframe.plots import figures
from ccframe.plots.plotter import read_history
from ccframe.plots.style import axes, save, use_style


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


@pytest.fixture
def rng():
    use_style()
    return np.random.default_rng(5)


def saved(ax, tmp_path, name="fig"):
    (path,) = save(ax.figure, tmp_path, name, ("png",))
    assert path.stat().st_size > 5000
    return path


def test_history_plot(tmp_path, rng):
    history = {"epoch": np.arange(1, 6.0), "f1": rng.random(5), "val_f1": rng.random(5)}
    ax = axes()
    lines = figures.history_plot(history, "f1", ax)
    assert len(lines) == 2 and ax.get_xlabel() == "epoch" and ax.get_ylabel() == "F1"
    saved(ax, tmp_path)


def test_classifier_plots(tmp_path, rng):
    signal = rng.random(500) < 0.3
    scores = np.clip(rng.normal(0.3 + 0.4 * signal, 0.2), 0, 1)
    ax = axes()
    roc = figures.roc_plot(scores, signal, ax)
    assert "AUC = 0.9" in roc[0].get_label()
    saved(ax, tmp_path, "roc")
    ax = axes()
    assert len(figures.precision_recall_plot(scores, signal, 0.5, ax)) == 2
    saved(ax, tmp_path, "pr")
    ax = axes()
    artists = figures.score_plot(scores, signal, 0.5, ax)
    assert ax.get_yscale() == "log" and len(artists) == 3
    saved(ax, tmp_path, "scores")
    ax = axes()
    artists = figures.confusion_plot({"tn": 50, "fp": 10, "fn": 5, "tp": 35}, ax)
    texts = [a.get_text() for a in artists[1:]]
    assert texts == ["50\n0.833", "10\n0.167", "5\n0.125", "35\n0.875"]
    saved(ax, tmp_path, "confusion")


def test_count_plots(tmp_path, rng):
    n_true = rng.poisson(20, 300)
    counts = {"ml": n_true + rng.normal(0, 2, 300), "traditional": n_true + rng.normal(1, 5, 300)}
    ax = axes()
    assert figures.count_2d_plot(n_true, counts["ml"], "ml", ax)
    saved(ax, tmp_path, "c2d")
    ax = axes()
    artists = figures.residual_plot(n_true, counts, ax)
    assert len(artists) == 4  # a histogram and its core Gaussian per count
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    sigma = core_sigma((counts["ml"] - n_true) / n_true)
    assert 0.07 < sigma < 0.13  # 2 / sqrt(20)-ish spread of the fake ML count
    assert len(labels) == 2 and labels[0].startswith(f"ml\ncore $\\sigma$ = {sigma:.3f}")
    saved(ax, tmp_path, "residual")
    rows = {
        name: [
            {"low": 4.0, "high": 8.0, "mean_true": 20.0, "relative_resolution_core": 0.1 * k},
            {"low": 8.0, "high": 16.0, "mean_true": 25.0, "relative_resolution_core": 0.12 * k},
        ]
        for k, name in ((1, "ml"), (2, "traditional"))
    }
    ax = axes()
    artists = figures.versus_momentum_plot(rows, "relative_resolution_core", ax)
    assert len(artists) == 3  # ml, traditional, and the Poisson reference
    assert ax.get_xscale() == "log"
    saved(ax, tmp_path, "vs")


def test_event_display(tmp_path, rng):
    wave = rng.normal(0, 1, 600).astype(np.float32)
    wave[100:110] += np.array([0, 5, 20, 15, 10, 6, 4, 2, 1, 0])
    ax = axes(figsize=(14, 6))
    artists = figures.event_display(
        wave, 1.2, np.array([50, 102, 300]), np.array([False, True, False]),
        np.array([83.0, 84.0]), np.array([True, False]), np.array([102]), "entry 0", ax,
    )  # fmt: skip
    labels = {a.get_label() for a in artists}
    assert {"waveform", "accepted", "rejected", "DERIV peak", "primary e$^-$"} <= labels
    saved(ax, tmp_path, "event")


@pytest.mark.slow  # ~10-15 s, plus the session's `trained` run
def test_plot_command_writes_every_plot_and_the_report(trained_copy, capsys):
    run = trained_copy
    assert run_cli("plot", str(run), "--events", "1") == 0
    assert "report" in capsys.readouterr().out  # progress goes to stdout
    pngs = sorted((run / "plots").glob("*.png"))
    pdfs = sorted((run / "plots").glob("*.pdf"))
    names = {p.stem for p in pngs}
    assert {"roc", "scores", "confusion", "residuals", "counts_2d_ml"} <= names
    assert {"history_classifier_loss", "history_counter_loss", "precision_recall"} <= names
    assert any(n.startswith("event_") for n in names)
    assert len(pdfs) == len(pngs) and all(p.stat().st_size > 3000 for p in pngs)
    report = (run / "report.html").read_text()
    assert report.count('src="data:image/png;base64,') == len(pngs)
    metrics = json.loads((run / "metrics.json").read_text())["ml"]
    tables = report.split("<h2>Plots")[0]
    shown = [float(x) for x in re.findall(r"\d+\.\d+", tables)]
    auc = metrics["classifier"]["test"]["auc"]
    core = metrics["count_test"]["ml"]["overall"]["relative_resolution_core"]
    for value in (auc, core):  # to the precision the report chooses
        assert any(abs(x - value) < 5e-3 for x in shown), value
    assert "schema_version: 1" in report
    assert not re.search(r"\bnan\b", tables)


def test_plot_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert run_cli("plot", str(tmp_path)) == 2
    assert "not a ccframe run folder" in capsys.readouterr().err


def test_history_round_trip(trained):
    history = read_history(trained / "history_classifier.csv")
    assert history["epoch"].tolist() == [1.0, 2.0]
    assert {"loss", "val_loss", "val_auc", "val_f1"} <= set(history)


def test_plots_stage_on_a_traditional_run(tmp_path, capsys):
    path = tmp_path / "trad.yaml"
    path.write_text(
        "schema_version: 1\nname: trad\n"
        f"output: {json.dumps(str(tmp_path / 'trad'))}\n"
        "simulate: {n_waveforms: 200}\ntraditional: {}\nplots: {formats: [png]}\n"
    )
    assert run_cli("run", str(path)) == 0, capsys.readouterr().err
    names = {p.stem for p in (tmp_path / "trad" / "plots").glob("*.png")}
    assert {"counts_2d_traditional", "residuals", "vs_momentum_relative_bias"} <= names
    assert not list((tmp_path / "trad" / "plots").glob("*.pdf"))
    assert (tmp_path / "trad" / "report.html").is_file()


def test_plots_of_data_without_truth(sim_file, tmp_path, capsys):
    """A traditional run on data (no truth): the count distribution, labelled Data, and the
    report; no traceback for the truth it does not have."""
    import yaml

    steering = {
        "schema_version": 1,
        "name": "data",
        "output": str(tmp_path / "run"),
        "data": {"files": [str(sim_file)], "truth": "none"},
        "traditional": {},
        "plots": {"formats": ["png"]},
    }
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(steering))
    with pytest.raises(SystemExit) as info:
        main(["run", str(path)])
    assert info.value.code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "plots" / "counts_traditional.png").is_file()
    assert (tmp_path / "run" / "report.html").is_file()
    assert "Traceback" not in capsys.readouterr().err


def test_count_histogram_of_data(rng):
    """The legend states how many waveforms and their mean and RMS count."""
    counts = rng.poisson(20, 500)
    ax = axes()
    figures.count_histogram(counts, "DERIV + clusterization", ax)
    title = ax.get_legend().get_title().get_text()
    assert "500 waveforms" in title
    assert f"mean {counts.mean():.2f}, RMS {counts.std():.2f}" in title
