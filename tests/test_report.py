"""The report's headline, labels and rounding, the statistical uncertainties it quotes (against
samples whose answer is known), and the plot fixes a physicist asked for."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ccframe.cli import main
from ccframe.metrics.counting import count_metrics
from ccframe.metrics.uncertainty import (
    bootstrap_classifier,
    bootstrap_counts,
    with_bootstrap_errors,
)
from ccframe.plots import figures
from ccframe.plots.plotter import make_plots
from ccframe.plots.report import write_report
from ccframe.plots.style import axes, use_style
from ccframe.plots.text import duration, sig, with_error

MINUS = "\u2212"
PM = "\u00b1"


@pytest.fixture(autouse=True)
def _style():
    use_style()


# --- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (0.17400408, 0.0147, f"0.174 {PM} 0.015"),  # 147: two digits
        (-0.2184043, 0.0123, f"{MINUS}0.218 {PM} 0.012"),
        (0.9117534, 0.0041, f"0.912 {PM} 0.004"),  # 410: one digit
        (0.5, 0.0097, f"0.500 {PM} 0.010"),  # 970 rounds up to 1000: two digits
        (123.44, 25.2, f"123 {PM} 25"),
        (12345.0, 640.0, f"12300 {PM} 600"),
        (-0.0004, 0.012, f"0.000 {PM} 0.012"),  # no "-0.000"
        (0.1234567, float("nan"), "0.123"),  # no error: 3 significant digits
    ],
)
def test_values_are_rounded_to_their_error(value, error, text):
    assert with_error(value, error) == text


def test_plain_numbers_have_three_significant_digits():
    assert sig(0.25) == "0.250"
    assert sig(0.91175342) == "0.912"
    assert sig(18.502222) == "18.5"
    assert sig(-0.0444391) == f"{MINUS}0.0444"
    assert sig(6287) == "6,287"
    assert sig(4163.0) == "4,163"
    assert sig(float("nan")) == "n/a" and sig(None) == "n/a"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(292.4, "4 min 52 s"), (74.716, "1 min 15 s"), (7.61, "7.6 s"), (3725, "1 h 02 min")],
)
def test_wall_time_reads_as_minutes_and_seconds(seconds, text):
    assert duration(seconds) == text


# --- uncertainties against known samples ------------------------------------------------


def gaussian_counts(rng, n, sigma=0.1, bias=0.0, mean_true=20.0):
    """Counts whose relative residual is exactly Gaussian(bias, sigma) (N_true constant)."""
    n_true = np.full(n, mean_true)
    return n_true * (1 + rng.normal(bias, sigma, n)), n_true


def test_count_errors_match_the_spread_of_independent_samples():
    """The bootstrap error of each count metric against the true spread of that metric over
    independent samples of the same Gaussian (and against the analytic approximations)."""
    rng = np.random.default_rng(11)
    n, sigma = 800, 0.1
    toys = [count_metrics(*gaussian_counts(rng, n, sigma, bias=-0.05)) for _ in range(300)]
    truth = {
        q: float(np.std([t[q] for t in toys], ddof=1))
        for q in ("relative_bias", "relative_resolution_core", "relative_resolution_rms")
    }
    pred, true = gaussian_counts(rng, n, sigma, bias=-0.05)
    got = bootstrap_counts({"ml": pred}, true, seed=3)["ml"]
    central = count_metrics(pred, true)
    for q, spread in truth.items():
        assert got[q].value == central[q]  # the metrics.json number itself
        # the bootstrap error of a clipped width varies by ~15 % from sample to sample (it
        # hangs on the few values near the clip), that of the others by ~5 %
        low, high = (0.7, 1.4) if q == "relative_resolution_core" else (0.8, 1.25)
        assert low < got[q].error / spread < high, (q, got[q].error, spread)
    # what the analytic formulas say for a Gaussian: sigma/sqrt(n) for the bias (N_true is
    # constant), sigma/sqrt(2(n-1)) for the RMS, CORE_ERROR_FACTOR times that for the core
    assert truth["relative_bias"] == pytest.approx(sigma / np.sqrt(n), rel=0.15)
    assert truth["relative_resolution_rms"] == pytest.approx(sigma / np.sqrt(2 * n), rel=0.15)
    core = figures.CORE_ERROR_FACTOR * sigma / np.sqrt(2 * (n - 1))
    assert truth["relative_resolution_core"] == pytest.approx(core, rel=0.15)
    entry = count_metrics(pred, true)
    for q, spread in truth.items():
        assert figures.approximate_error(entry, q) == pytest.approx(spread, rel=0.2), q
    # the central values are right within their errors
    assert (
        abs(got["relative_resolution_core"].value - sigma)
        < 3 * got["relative_resolution_core"].error
    )
    assert abs(got["relative_bias"].value + 0.05) < 3 * got["relative_bias"].error


def test_bootstrap_is_seeded_and_pairs_the_counts():
    rng = np.random.default_rng(2)
    true = rng.poisson(20, 500).astype(float)
    counts = {"ml": true + rng.normal(0, 2, 500), "traditional": true + rng.normal(0, 4, 500)}
    a = bootstrap_counts(counts, true, resamples=50, seed=9)
    b = bootstrap_counts(counts, true, resamples=50, seed=9)
    assert a == b
    assert a != bootstrap_counts(counts, true, resamples=50, seed=10)
    gain = a["gain"]["relative_resolution_core"]
    ml, trad = a["ml"]["relative_resolution_core"], a["traditional"]["relative_resolution_core"]
    assert gain.value == pytest.approx(1 - ml.value / trad.value)
    assert 0.3 < gain.value < 0.7 and 0 < gain.error < 0.1


def test_classifier_errors_match_the_spread_of_independent_samples():
    rng = np.random.default_rng(4)

    def sample(n_waveforms=300, per=5):
        signal = rng.random(n_waveforms * per) < 0.6
        scores = np.round(np.clip(rng.normal(0.35 + 0.3 * signal, 0.2), 0, 1), 2)  # ties
        return scores, signal, np.repeat(np.arange(n_waveforms), per)

    toys = [bootstrap_classifier(*sample(), 0.5, resamples=0) for _ in range(200)]
    scores, signal, waveform = sample()
    got = bootstrap_classifier(scores, signal, waveform, 0.5, seed=1)
    assert got["auc"].value == pytest.approx(roc_auc_score(signal, scores), abs=1e-12)
    pred = scores > 0.5
    tp = np.count_nonzero(pred & signal)
    f1 = 2 * tp / (2 * tp + np.count_nonzero(pred != signal))
    assert got["f1"].value == pytest.approx(f1, abs=1e-12)
    for key in ("auc", "f1"):
        spread = float(np.std([t[key].value for t in toys], ddof=1))
        assert 0.75 < got[key].error / spread < 1.33, (key, got[key].error, spread)


def test_momentum_bins_get_bootstrap_errors_of_their_own_waveforms():
    rng = np.random.default_rng(6)
    momentum = rng.uniform(1, 100, 2000)
    pred, true = gaussian_counts(rng, 2000, sigma=0.1)
    from ccframe.metrics.counting import versus

    rows = versus(momentum, np.array([1.0, 10.0, 100.0]), pred, true)
    with_errors, complete = with_bootstrap_errors(rows, momentum, pred, true, resamples=100)
    assert complete and rows[0].get("relative_resolution_core_err") is None  # copies
    for row in with_errors:
        expected = figures.approximate_error(row, "relative_resolution_core")
        assert row["relative_resolution_core_err"] == pytest.approx(expected, rel=0.3)
    # a row whose waveforms are not those of its bin gets no bootstrap error
    bad = [dict(rows[0], waveforms=rows[0]["waveforms"] + 1)]
    assert with_bootstrap_errors(bad, momentum, pred, true, resamples=10)[1] is False


# --- the plots ---------------------------------------------------------------------------


def vs_rows():
    return {
        name: [
            {
                "low": 4.0,
                "high": 8.0,
                "waveforms": 400,
                "mean_true": 20.0,
                "bias": -0.4,
                "mse": 9.0,
                "relative_bias": -0.02 * k,
                "relative_resolution_core": 0.1 * k,
            },
            {
                "low": 8.0,
                "high": 16.0,
                "waveforms": 300,
                "mean_true": 25.0,
                "bias": 0.2,
                "mse": 12.0,
                "relative_bias": 0.01 * k,
                "relative_resolution_core": 0.12 * k,
                "relative_resolution_core_err": 0.0123,
            },
        ]
        for k, name in ((1, "ml"), (2, "traditional"))
    }


def test_resolution_versus_momentum_starts_at_zero_with_error_bars():
    ax = axes()
    artists = figures.versus_momentum_plot(vs_rows(), "relative_resolution_core", ax)
    assert ax.get_ylim()[0] == 0
    ml, trad, poisson = artists
    assert ml.has_yerr and trad.has_yerr
    # the bar of the first bin: the approximation, of the second: the row's own error
    segments = ml.lines[2][1].get_segments()
    lengths = [s[1][1] - s[0][1] for s in segments]
    approx = figures.approximate_error(vs_rows()["ml"][0], "relative_resolution_core")
    assert lengths == pytest.approx([2 * approx, 2 * 0.0123])
    assert "not a limit" in poisson.get_label()
    assert ax.get_ylim()[1] > 0.24 + 2 * 0.0123  # every point and bar inside


def test_bias_versus_momentum_has_error_bars_and_keeps_its_sign():
    ax = axes()
    artists = figures.versus_momentum_plot(vs_rows(), "relative_bias", ax)
    assert artists[0].has_yerr and ax.get_ylim()[0] < -0.04
    assert "\\Sigma N" in ax.get_ylabel()


def test_count_2d_colour_bar_is_labelled():
    rng = np.random.default_rng(1)
    true = rng.poisson(20, 300)
    mesh = figures.count_2d_plot(true, true + rng.normal(0, 2, 300), "ml", axes())[0]
    assert mesh.cbar.ax.get_ylabel() == "waveforms"


def roughness(values):
    """Bin-to-bin jumps relative to the content (a comb is rough, a Gaussian smooth)."""
    v = np.asarray(values)
    return float(np.sum(np.diff(v) ** 2) / np.sum(v**2))


def test_integer_residuals_show_no_binning_comb():
    """The traditional count is an integer: (N - N_true)/N_true takes values k/N_true, which
    fixed bins collect unevenly. The plot must be as smooth as a continuous count's."""
    rng = np.random.default_rng(8)
    n = 20_000
    true = rng.poisson(18, n).astype(float)
    smooth = true * (1 + rng.normal(0, 0.25, n))
    counts = {"ml": smooth, "traditional": np.round(smooth)}
    ax = axes()
    artists = figures.residual_plot(true, counts, ax)
    ml, trad = artists[0].stairs.get_data().values, artists[2].stairs.get_data().values
    core = slice(20, 40)  # +-0.5 around 0
    naive, _ = np.histogram((counts["traditional"] - true)[true > 0] / true[true > 0],
                            np.linspace(-1.5, 1.5, 61))  # fmt: skip
    assert roughness(naive[core]) > 3 * roughness(ml[core])  # the comb the plot must avoid
    assert roughness(trad[core]) < 2 * roughness(ml[core])
    assert np.sum(trad) * 0.05 == pytest.approx(1.0, abs=0.01)  # still normalised
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    ok = true > 0
    bias = counts["traditional"][ok].sum() / true[ok].sum() - 1
    assert f"- 1 = {bias:+.3f}" in labels[1] and "core mean" in labels[1]
    assert "spread" in labels[1] and "spread" not in labels[0]


def test_difference_plot_has_integer_centred_bins():
    rng = np.random.default_rng(3)
    true = rng.poisson(18, 500)
    ax = axes()
    artists = figures.difference_plot(true, {"traditional": true + rng.integers(-3, 4, 500)}, ax)
    edges = artists[0].stairs.get_data().edges
    assert np.allclose(edges - np.floor(edges), 0.5)
    assert "N - N$_{true}$" in ax.get_xlabel()


def test_event_display_names_the_algorithm():
    wave = np.zeros(600)
    wave[100:104] = [5, 20, 10, 2]
    artists = figures.event_display(
        wave, 1.2, np.array([101]), np.array([True]), None, None, np.array([101]), "", axes(),
        algorithm="d2",
    )  # fmt: skip
    labels = {a.get_label() for a in artists}
    assert "D2 peak" in labels and "DERIV peak" not in labels


# --- the report ------------------------------------------------------------------------


class Text(HTMLParser):
    """The visible text inside <table> elements and inside #headline."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []
        self.headline: list[str] = []
        self._table = self._headline = 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table += 1
        if tag == "section" and ("id", "headline") in attrs:
            self._headline += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._table -= 1
        if tag == "section" and self._headline:
            self._headline -= 1

    def handle_data(self, data):
        if self._table:
            self.tables.append(data)
        if self._headline:
            self.headline.append(data)


def parsed(report: str) -> Text:
    text = Text()
    text.feed(report)
    return text


def visible(parts: list[str]) -> str:
    return re.sub(r"\s+", " ", "".join(parts))


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the tiny end-to-end run, with its plots and report."""
    folder = shutil.copytree(trained, tmp_path / trained.name, symlinks=True)
    make_plots(folder, ("png",), events=1, log=lambda _: None)
    return folder


def measured(cell: str) -> tuple[float, float]:
    value, error = cell.replace(MINUS, "-").split(PM)
    return float(value), float(error)


@pytest.mark.slow  # ~15 s, plus the session's `trained` run
def test_headline_quotes_the_numbers_that_matter_with_errors(run):
    report = (run / "report.html").read_text()
    status = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())["ml"]
    head = report[: report.index("<h2>")]
    assert '<section id="headline">' in head
    text = visible(parsed(report).headline)
    assert f"status {status['status']}" in text and status["status"] == "done"
    assert f"wall time {duration(status['wall_s'])}" in text
    assert "simulate \u2192 traditional (DERIV) \u2192 ml" in text
    assert "simulated: 300 \u03c0 waveforms" in text
    n_test = metrics["dataset"]["test"]["waveforms"]
    assert f"the test split: {n_test} waveforms" in text
    assert "bootstrap" in text and "ratio of sums" in text
    cells = re.findall(r"<td>([^<]*\u00b1[^<]*)</td>", head)
    assert len(cells) == 6  # ML and traditional: core resolution, bias; AUC, F1
    expected = [
        metrics["count_test"]["ml"]["overall"]["relative_resolution_core"],
        metrics["count_test"]["ml"]["overall"]["relative_bias"],
        metrics["count_test"]["traditional"]["overall"]["relative_resolution_core"],
        metrics["count_test"]["traditional"]["overall"]["relative_bias"],
        metrics["classifier"]["test"]["auc"],
        metrics["classifier"]["test"]["f1"],
    ]
    for cell, value in zip(cells, expected, strict=True):
        shown, error = measured(cell)
        assert error > 0
        decimals = len(cell.split(PM)[1].strip().split(".")[-1]) if "." in cell else 0
        assert shown == pytest.approx(value, abs=0.51 * 10**-decimals), (cell, value)


@pytest.mark.slow  # ~15 s, plus the session's `trained` run
def test_tables_show_labels_not_keys(run):
    report = (run / "report.html").read_text()
    text = " ".join(parsed(report).tables)
    assert not re.findall(r"\b[a-z0-9]+_[a-z0-9_]+\b", text)
    assert "efficiency \u00d7 purity" in text and "count resolution (Gaussian core)" in text
    assert not re.search(r"\bnan\b", text)
    assert not re.search(r"\d\.\d{5,}", text)  # nothing unrounded
    assert "\u03a3N/\u03a3N" in report.split("<h2>Plots")[0]  # the bias explained


@pytest.mark.slow  # ~15 s, plus the session's `trained` run
def test_report_of_a_failed_run_says_so(run):
    status = {"status": "failed", "error": "disk full", "wall_s": 292.4, "name": "tinyml"}
    metrics = json.loads((run / "metrics.json").read_text())
    write_report(run, [], metrics, status)
    text = visible(parsed((run / "report.html").read_text()).headline)
    assert "status failed: disk full" in text and "wall time 4 min 52 s" in text


@pytest.mark.slow  # ~10 s: a run
def test_traditional_only_report_names_its_algorithm_and_sample(tmp_path, capsys):
    path = tmp_path / "trad.yaml"
    path.write_text(
        "schema_version: 1\nname: trad\n"
        f"output: {json.dumps(str(tmp_path / 'trad'))}\n"
        "simulate: {n_waveforms: 200}\ntraditional: {algorithm: d2}\nplots: {formats: [png]}\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["run", str(path)])
    assert info.value.code == 0, capsys.readouterr().err
    report = (tmp_path / "trad" / "report.html").read_text()
    text = visible(parsed(report).headline)
    assert "traditional (D2)" in text and "all 200 waveforms" in text
    assert "D2 + clusterization" in text and text.count(PM) == 2
    assert "LSTM" not in text
