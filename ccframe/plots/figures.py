"""The plots of a run. Each function draws on `ax` (a new figure if None) and returns the
artists it made, so it composes into any layout."""

from __future__ import annotations

from typing import Any

import hist
import mplhep as hep
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn import metrics as skm

from ccframe.metrics.counting import core_sigma
from ccframe.plots.style import COLORS, axes, experiment_label

HISTORY_LABELS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "precision": "precision (purity)",
    "recall": "recall (efficiency)",
    "f1": "F1",
    "auc": "AUC",
    "efficiency_x_purity": "efficiency \u00d7 purity",
    "mae_scaled": "MAE (count / mean count)",
}

QUANTITY_LABELS = {
    "relative_resolution_core": "count resolution (Gaussian core)",
    "relative_resolution_rms": "count resolution (RMS)",
    "relative_bias": "relative bias $\\Sigma N / \\Sigma N_{true}$ - 1",
}


def history_plot(history: dict[str, np.ndarray], metric: str, ax: Any = None) -> list[Any]:
    """`metric` versus epoch for the training and validation splits."""
    ax = axes(ax)
    epoch = history["epoch"]
    artists = []
    for key, label, style in ((metric, "train", "-"), (f"val_{metric}", "validation", "--")):
        if key in history:
            artists += ax.plot(epoch, history[key], style, marker="o", ms=4, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(HISTORY_LABELS.get(metric, metric))
    ax.legend(loc="best")
    experiment_label(ax)
    return artists


def roc_plot(scores: np.ndarray, signal: np.ndarray, ax: Any = None) -> list[Any]:
    """Signal efficiency versus noise efficiency, with the AUC."""
    ax = axes(ax)
    fpr, tpr, _ = skm.roc_curve(signal.astype(bool), scores)
    auc = skm.auc(fpr, tpr)
    artists = ax.plot(fpr, tpr, color=COLORS["ml"], label=f"LSTM, AUC = {auc:.4f}")
    artists += ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    ax.set_xlabel("noise efficiency (false positive rate)")
    ax.set_ylabel("signal efficiency (true positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    experiment_label(ax, rlabel="test split")
    return artists


def precision_recall_plot(
    scores: np.ndarray, signal: np.ndarray, threshold: float, ax: Any = None
) -> list[Any]:
    """Purity versus efficiency as the threshold moves; the chosen threshold marked."""
    ax = axes(ax)
    precision, recall, _ = skm.precision_recall_curve(signal.astype(bool), scores)
    pred = scores > threshold
    tp = int(np.count_nonzero(pred & (signal > 0)))
    p_at = tp / max(int(np.count_nonzero(pred)), 1)
    r_at = tp / max(int(np.count_nonzero(signal > 0)), 1)
    artists = ax.plot(recall, precision, color=COLORS["ml"], label="LSTM")
    artists += ax.plot(
        [r_at], [p_at], "o", color=COLORS["noise"], label=f"threshold {threshold:.3f}"
    )
    ax.set_xlabel("efficiency (recall)")
    ax.set_ylabel("purity (precision)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    experiment_label(ax, rlabel="test split")
    return artists


def score_plot(
    scores: np.ndarray, signal: np.ndarray, threshold: float, ax: Any = None
) -> list[Any]:
    """The classifier's response for true signal and noise candidates (normalised)."""
    ax = axes(ax)
    h: Any = hist.Hist(
        hist.axis.Regular(50, 0, 1, name="score", label="LSTM score"),
        hist.axis.IntCategory([0, 1], name="truth"),
    )
    h.fill(score=scores, truth=(signal > 0).astype(int))
    artists = []
    for cat, label, color in (
        (1, "signal (electron)", COLORS["ml"]),
        (0, "noise", COLORS["noise"]),
    ):
        part = h[:, hist.loc(cat)]
        if part.sum() > 0:
            artists += hep.histplot(part, density=True, label=label, color=color, ax=ax)
    artists.append(ax.axvline(threshold, color="grey", ls="--", label="threshold"))
    ax.set_yscale("log")
    ax.set_xlabel("LSTM score")
    ax.set_ylabel("candidates (normalised)")
    ax.legend(loc="upper center")
    experiment_label(ax, rlabel="test split")
    return artists


def confusion_plot(cm: dict[str, int], ax: Any = None) -> list[Any]:
    """The confusion matrix at the chosen threshold, counts and fractions of each true class."""
    ax = axes(ax, figsize=(7.0, 6.5))
    table = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]], dtype=float)
    rows = table.sum(axis=1, keepdims=True)
    frac = np.divide(table, rows, out=np.zeros_like(table), where=rows > 0)
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    artists: list[Any] = [image]
    for i in range(2):
        for j in range(2):
            color = "white" if frac[i, j] > 0.5 else "black"
            text = f"{int(table[i, j]):,}\n{frac[i, j]:.3f}"
            artists.append(ax.text(j, i, text, ha="center", va="center", color=color))
    ax.set_xticks([0, 1], ["noise", "signal"])
    ax.set_yticks([0, 1], ["noise", "signal"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.minorticks_off()
    experiment_label(ax, rlabel="test split")
    return artists


def count_2d_plot(
    n_true: np.ndarray, n_pred: np.ndarray, name: str, ax: Any = None, *, sample: str = "test split"
) -> list[Any]:
    """Predicted versus true number of clusters, with the diagonal."""
    ax = axes(ax, figsize=(8.5, 7.0))
    top = float(np.percentile(np.concatenate([n_true, n_pred]), 99.5)) + 2
    edges = np.arange(-0.5, top + 1, 1.0)
    h: Any = hist.Hist(
        hist.axis.Variable(edges, name="true", label="true number of clusters"),
        hist.axis.Variable(edges, name="pred", label=f"{name} number of clusters"),
    )
    h.fill(true=n_true, pred=n_pred)
    mesh = hep.hist2dplot(h, ax=ax, cmin=1, flow=None)
    if mesh.cbar is not None:
        mesh.cbar.set_label("waveforms")
        mesh.cbar.locator = MaxNLocator(integer=True)
        mesh.cbar.update_ticks()
    artists = [mesh]
    artists += ax.plot([0, top], [0, top], "--", color="grey")
    ax.set_xlabel("true number of clusters")
    ax.set_ylabel(f"{name} number of clusters")
    experiment_label(ax, rlabel=sample)
    return artists


def response_plot(
    n_true: np.ndarray,
    counts: dict[str, np.ndarray],
    names: dict[str, str],
    ax: Any = None,
    *,
    sample: str = "test split",
) -> list[Any]:
    """Mean predicted count (band: its standard deviation) per true count, for each method,
    with the diagonal and each method's response slope in the legend."""
    from ccframe.metrics.counting import response_curve, response_slope

    ax = axes(ax)
    true = np.asarray(n_true, dtype=np.float64)
    artists: list[Any] = []
    low, top = np.inf, 0.0
    for name, pred in counts.items():
        pred = np.asarray(pred, dtype=np.float64)
        curve = response_curve(pred, n_true)
        x = np.asarray(curve["n_true"], dtype=np.float64)
        if not x.size:
            continue
        mean, std = np.asarray(curve["mean_pred"]), np.asarray(curve["std_pred"])
        color = COLORS.get(name)
        slope = response_slope(pred, true)
        artists.append(ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2))
        label = f"{names[name]}, slope {slope:.3f}"
        artists += ax.plot(x, mean, "o-", ms=4, color=color, label=label)
        low = min(low, float(x.min()), float((mean - std).min()))
        top = max(top, float(x.max()), float((mean + std).max()))
    low = max(0.0, low - 1.0) if np.isfinite(low) else 0.0
    top += 1.0
    artists += ax.plot([low, top], [low, top], "--", color="grey", label="N = N$_{true}$")
    ax.set_xlabel("true number of clusters")
    ax.set_ylabel("predicted number of clusters")
    ax.set_xlim(low, top)
    ax.set_ylim(low, top)
    ax.legend(loc="upper left", fontsize=13)
    experiment_label(ax, rlabel=sample)
    return artists


RESIDUAL_RANGE = (-1.5, 1.5)
RESIDUAL_BINS = 60


def is_integer_count(values: np.ndarray) -> bool:
    """Whether a count takes integer values only (e.g. the traditional algorithm's)."""
    v = np.asarray(values, dtype=np.float64)
    return bool(v.size) and bool(np.all(np.isfinite(v))) and bool(np.all(v == np.round(v)))


def count_histogram(counts: np.ndarray, label: str, ax: Any = None) -> list[Any]:
    """Clusters counted per waveform, for an input without truth (data): integer bins, the
    mean and RMS in the legend."""
    ax = axes(ax)
    counts = np.asarray(counts, dtype=np.float64)
    lo, hi = (float(counts.min()), float(counts.max())) if counts.size else (0.0, 1.0)
    h: hist.Hist = hist.Hist(hist.axis.Regular(int(hi - lo) + 1, lo - 0.5, hi + 0.5, name="n"))
    h.fill(counts)
    mean = counts.mean() if counts.size else float("nan")
    rms = counts.std() if counts.size else float("nan")
    artists = hep.histplot(h, ax=ax, histtype="errorbar", color="black", label=label)
    ax.set_xlabel("clusters counted per waveform")
    ax.set_ylabel("waveforms")
    ax.set_ylim(0, 1.35 * float(h.values().max(initial=1.0)))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(
        loc="upper right",
        fontsize="small",
        title=f"{counts.size} waveforms\nmean {mean:.2f}, RMS {rms:.2f}",
        title_fontsize="small",
    )
    experiment_label(ax, simulation=False, rlabel="no truth")
    return list(artists)


def spread_histogram(
    low: np.ndarray, high: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weights and of squared weights per bin when each entry is spread uniformly over
    [low, high] (unit weight each; the part outside the edges is lost, like an overflow).

    For the relative residual of an integer count, (N - N_true) / N_true only takes the values
    k / N_true, a comb whose spacing changes with N_true, so fixed bins collect 1 or 2 values
    each and show spikes that are no physics. Spreading each entry over its own cell
    [(k - 1/2) / N_true, (k + 1/2) / N_true] (N treated as uniform within +-1/2) removes the
    comb and keeps each entry's weight and, to 1/(12 N_true^2), its variance."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    values = np.zeros(edges.size - 1)
    variances = np.zeros(edges.size - 1)
    for start in range(0, low.size, 20_000):  # (entries, edges) per chunk: bounded memory
        lo = low[start : start + 20_000, None]
        width = high[start : start + 20_000, None] - lo
        frac = np.diff(np.clip((edges[None, :] - lo) / width, 0.0, 1.0), axis=1)
        values += frac.sum(axis=0)
        variances += (frac**2).sum(axis=0)
    return values, variances


def residual_plot(
    n_true: np.ndarray, counts: dict[str, np.ndarray], ax: Any = None, *, sample: str = "test split"
) -> list[Any]:
    """(N - N_true) / N_true for each count (normalised to the waveforms with N_true > 0),
    with a Gaussian of its core width and core mean.

    The legend gives the core width and the core mean (mean of the per-waveform residuals
    within 2 core sigma of the median) and the relative bias of the tables, the ratio of sums
    sum(N) / sum(N_true) - 1 over all waveforms: it weights each waveform by its N_true and
    keeps the tails, so the two differ when the residual depends on N_true or has tails.
    An integer count is histogrammed with each entry spread over its cell (`spread_histogram`),
    which removes the binning comb of k / N_true."""
    ax = axes(ax)
    ok = n_true > 0
    edges = np.linspace(*RESIDUAL_RANGE, RESIDUAL_BINS + 1)
    width = float(edges[1] - edges[0])
    x = np.linspace(*RESIDUAL_RANGE, 400)
    artists = []
    for name, pred in counts.items():
        true = np.asarray(n_true[ok], dtype=np.float64)
        p = np.asarray(pred[ok], dtype=np.float64)
        r = (p - true) / true
        integer = is_integer_count(p)
        if integer:
            values, variances = spread_histogram(
                (p - 0.5 - true) / true, (p + 0.5 - true) / true, edges
            )
        else:
            values, _ = np.histogram(r, edges)
            values = values.astype(np.float64)
            variances = values.copy()
        norm = max(r.size, 1) * width
        sigma = core_sigma(r)
        core = r[np.abs(r - np.median(r)) < 2 * sigma] if sigma > 0 else r
        mean = float(core.mean()) if core.size else 0.0
        bias = float(p.sum() / true.sum() - 1.0) if true.size else float("nan")
        color = COLORS.get(name, None)
        label = (
            f"{name}\ncore $\\sigma$ = {sigma:.3f}, core mean {mean:+.3f}\n"
            f"bias $\\Sigma N / \\Sigma N_{{true}}$ - 1 = {bias:+.3f}"
        )
        if integer:
            label += "\n(integer N spread over N $\\pm$ 0.5)"
        artists += hep.histplot(
            values / norm, edges, yerr=np.sqrt(variances) / norm, color=color, label=label, ax=ax
        )
        if sigma > 0:
            gauss = np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
            artists += ax.plot(x, gauss, ":", color=color)
    ax.set_xlabel("(N - N$_{true}$) / N$_{true}$")
    ax.set_ylabel("waveforms (normalised)")
    ax.legend(loc="upper left", fontsize=12)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.6)
    experiment_label(ax, rlabel=sample)
    return artists


def difference_plot(
    n_true: np.ndarray, counts: dict[str, np.ndarray], ax: Any = None, *, sample: str = "test split"
) -> list[Any]:
    """N - N_true for each count in bins of one cluster centred on the integers (an integer
    count falls in the middle of its bin: no binning comb), normalised to the waveforms."""
    ax = axes(ax)
    diffs = {name: np.asarray(pred, dtype=np.float64) - n_true for name, pred in counts.items()}
    finite = np.concatenate([d[np.isfinite(d)] for d in diffs.values()] or [np.zeros(1)])
    reach = max(3, int(np.ceil(np.percentile(np.abs(finite), 99.5))) + 1) if finite.size else 3
    edges = np.arange(-reach - 0.5, reach + 1.0, 1.0)
    artists = []
    for name, d in diffs.items():
        values, _ = np.histogram(d[np.isfinite(d)], edges)
        norm = max(d.size, 1)
        label = f"{name}: mean {float(np.mean(d)):+.2f}, RMS {float(np.std(d)):.2f}"
        artists += hep.histplot(
            values / norm, edges, yerr=np.sqrt(values) / norm, color=COLORS.get(name),
            label=label, ax=ax,
        )  # fmt: skip
    artists.append(ax.axvline(0, color="grey", lw=1))
    ax.set_xlabel("N - N$_{true}$ [clusters]")
    ax.set_ylabel("fraction of waveforms / cluster")
    ax.legend(loc="upper left", fontsize=13)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
    experiment_label(ax, rlabel=sample)
    return artists


CORE_ERROR_FACTOR = 1.55
"""The spread of `core_sigma` over Gaussian samples of n values, in units of the RMS's
sigma / sqrt(2 (n - 1)): 1.38 at n = 50, 1.44 at 200, 1.55 at 1000, 1.58 at 5000 (3000
toys each); the clipping throws information away."""


def approximate_error(entry: dict[str, Any], quantity: str) -> float:
    """Statistical error of a count metric from the numbers of its `count_metrics` entry
    alone (NaN where they do not allow one): a width sigma from n waveforms has
    sigma / sqrt(2 (n - 1)) (Gaussian), times CORE_ERROR_FACTOR for the core; the relative
    bias sum(N) / sum(N_true) - 1 has about std(N - N_true) / (sqrt(n) mean N_true)."""
    n = entry.get("waveforms") or 0
    value = entry.get(quantity)
    if n < 2 or value is None or not np.isfinite(value):
        return float("nan")
    if quantity == "relative_resolution_rms":
        return float(value) / np.sqrt(2 * (n - 1))
    if quantity == "relative_resolution_core":
        return CORE_ERROR_FACTOR * float(value) / np.sqrt(2 * (n - 1))
    if quantity == "relative_bias" and {"mse", "bias", "mean_true"} <= set(entry):
        spread = np.sqrt(max(entry["mse"] - entry["bias"] ** 2, 0.0))
        return float(spread / (np.sqrt(n) * entry["mean_true"])) if entry["mean_true"] else np.nan
    return float("nan")


def metric_error(entry: dict[str, Any], quantity: str) -> float:
    """`entry[quantity + "_err"]` (e.g. a bootstrap's) if given, else `approximate_error`."""
    given = entry.get(f"{quantity}_err")
    if given is not None and np.isfinite(given):
        return float(given)
    return approximate_error(entry, quantity)


def versus_momentum_plot(
    rows: dict[str, list[dict[str, Any]]],
    quantity: str,
    ax: Any = None,
    *,
    sample: str = "test split",
) -> list[Any]:
    """A count metric (e.g. relative_resolution_core, relative_bias) in momentum bins, for
    each count, with its statistical error (`metric_error`: a row's `<quantity>_err` if it
    has one, else `approximate_error`). With a resolution, the y axis starts at 0 and the
    relative Poisson fluctuation of the true count itself, 1 / sqrt(mean N_true), is drawn
    for scale: it is the spread of the physics (what the count measures), not a limit on
    how well a waveform's clusters can be counted."""
    ax = axes(ax)
    artists = []
    reference = None
    top = 0.0
    for name, entries in rows.items():
        if not entries:
            continue
        lo = np.array([e["low"] for e in entries])
        hi = np.array([e["high"] for e in entries])
        centre = np.sqrt(lo * hi)
        value = np.array([np.nan if e.get(quantity) is None else e[quantity] for e in entries])
        error = np.array([metric_error(e, quantity) for e in entries])
        yerr = np.where(np.isfinite(error), error, 0.0) if np.isfinite(error).any() else None
        artists.append(
            ax.errorbar(
                centre,
                value,
                xerr=[centre - lo, hi - centre],
                yerr=yerr,
                fmt="o",
                ms=5,
                capsize=3,
                color=COLORS.get(name),
                label=name,
            )
        )
        top = max(top, float(np.nanmax(value + (yerr if yerr is not None else 0.0), initial=0)))
        means = [e.get("mean_true") for e in entries]  # none in a bin without clusters
        reference = (lo, hi, np.array([np.nan if m is None else m for m in means], float))
    resolution = quantity.startswith("relative_resolution")
    if reference is not None and resolution:
        lo, hi, mean_true = reference
        with np.errstate(divide="ignore", invalid="ignore"):
            poisson = 1 / np.sqrt(mean_true)
        artists.append(
            ax.hlines(
                poisson, lo, hi, colors=COLORS["truth"], linestyles="--", lw=1.5,
                label="1/\u221a$\\langle N_{true} \\rangle$: Poisson spread of N$_{true}$"
                "\n(physics to be measured, not a limit)",
            )
        )  # fmt: skip
        top = max(top, float(np.nanmax(poisson, initial=0)))
    if quantity == "relative_bias":
        ax.axhline(0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("momentum [GeV/c]")
    ax.set_ylabel(QUANTITY_LABELS.get(quantity, quantity.replace("_", " ")))
    ax.legend(loc="upper left", fontsize=13)
    if resolution:
        ax.set_ylim(0, (top if top > 0 else 1.0) * 1.6)
    else:
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.35 * (high - low))  # room for the legend
    experiment_label(ax, rlabel=sample)
    return artists


def event_display(
    wave_mv: np.ndarray,
    sampling_ghz: float,
    candidates: np.ndarray,
    accepted: np.ndarray,
    electrons_ns: np.ndarray | None = None,
    primary: np.ndarray | None = None,
    traditional_peaks: np.ndarray | None = None,
    title: str = "",
    ax: Any = None,
    *,
    algorithm: str = "deriv",
) -> list[Any]:
    """One waveform (window time in ns) with its candidates, the LSTM-accepted peaks, the
    expected peak times of true primary and secondary electrons and the peaks of the
    traditional `algorithm` (deriv or d2: the label names it)."""
    ax = axes(ax, figsize=(14.0, 6.0))
    t = np.arange(wave_mv.size) / sampling_ghz
    artists = ax.plot(t, wave_mv, color="black", lw=0.8, label="waveform")
    c = np.asarray(candidates, dtype=np.int64)
    acc = np.asarray(accepted, dtype=bool)
    artists += ax.plot(t[c[~acc]], wave_mv[c[~acc]], "x", color="grey", ms=5, label="rejected")
    artists += ax.plot(
        t[c[acc]], wave_mv[c[acc]], "o", mfc="none", color=COLORS["ml"], ms=8, label="accepted"
    )
    if traditional_peaks is not None and len(traditional_peaks):
        p = np.asarray(traditional_peaks, dtype=np.int64)
        artists += ax.plot(
            t[p],
            wave_mv[p] + 3,
            "v",
            color=COLORS["traditional"],
            ms=6,
            label=f"{algorithm.upper()} peak",
        )
    if electrons_ns is not None and primary is not None:
        bottom = float(np.min(wave_mv)) - 2
        is_primary = np.asarray(primary, dtype=bool)
        for flag, label, color in (
            (True, "primary e$^-$", "#2ca02c"),
            (False, "secondary e$^-$", "#9467bd"),
        ):
            sel = np.asarray(electrons_ns)[is_primary == flag]
            if sel.size:
                artists.append(ax.vlines(sel, bottom - 3, bottom, color=color, lw=1.2, label=label))
    ax.set_xlabel("time in window [ns]")
    ax.set_ylabel("amplitude [mV]")
    ax.legend(loc="upper right", ncol=3, fontsize=12)
    experiment_label(ax, rlabel=title)
    return artists


SMEARING_LABELS = {
    "noise": "noise RMS / nominal",
    "gain": "gain / nominal",
    "jitter_ns": "time jitter $\\sigma$ [ns]",
}


def robustness_plot(
    rows: list[dict[str, Any]], kind: str, quantity: str, ax: Any = None
) -> list[Any]:
    """A count metric of the ML chain and the traditional algorithm versus one smearing."""
    ax = axes(ax)
    sel = [r for r in rows if r["smearing"] == kind]
    x = np.array([r["value"] for r in sel])
    artists = []
    for name, marker in (("ml", "o-"), ("traditional", "s--")):
        y = np.array([r[name].get(quantity, np.nan) for r in sel])
        error = np.array([metric_error(r[name], quantity) for r in sel])
        yerr = np.where(np.isfinite(error), error, 0.0) if np.isfinite(error).any() else None
        artists.append(
            ax.errorbar(x, y, yerr=yerr, fmt=marker, color=COLORS[name], label=name, capsize=3)
        )
    if quantity == "relative_bias":
        ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel(SMEARING_LABELS.get(kind, kind))
    ax.set_ylabel(QUANTITY_LABELS.get(quantity, quantity))
    ax.legend(loc="best")
    experiment_label(ax, rlabel="test split, smeared")
    return artists


METHOD_STYLE = {
    "truth": ("truth count", COLORS["truth"], "s"),
    "deriv": ("DERIV + clusterization", COLORS["traditional"], "v"),
    "deriv_adaptive": ("DERIV + adaptive clusterization", "#f89c20", "<"),
    "d2": ("D2 + clusterization", "#a96b59", "^"),
    "d2_adaptive": ("D2 + adaptive clusterization", "#94a4a2", ">"),
    "ml": ("ML (LSTM + CNN)", COLORS["ml"], "o"),
    "waveform": ("ML one-step (waveform CNN)", COLORS["waveform"], "D"),
    "peak_sequence": ("ML per-peak (GRU over peaks)", COLORS["peak_sequence"], "X"),
    "peak_map": ("ML peak map (U-Net)", COLORS["peak_map"], "P"),
}


def method_legend(ax: Any, entries: int, top: float) -> None:
    """The legend of a per-method plot in columns above the data (whose largest value is
    `top`), with room made for it: many methods would otherwise cover the points."""
    columns = 1 if entries <= 4 else 2
    rows = -(-entries // columns)
    ax.set_ylim(0, top * (1.15 + 0.085 * rows))
    ax.legend(loc="upper center", ncol=columns, fontsize=11 if columns > 1 else 13)


def separation_plot(rows: list[dict[str, Any]], pair: str, ax: Any = None) -> list[Any]:
    """Separation power versus momentum for each counting method, with bootstrap errors, and
    the ideal Poisson curve."""
    ax = axes(ax)
    sel = [r for r in rows if r["pair"] == pair]
    p = np.array([r["momentum_gev"] for r in sel])
    artists = ax.plot(p, [r["poisson"] for r in sel], "-", color="grey", label="Poisson limit")
    for method, (label, color, marker) in METHOD_STYLE.items():
        if sel and method in sel[0]:
            artists.append(
                ax.errorbar(
                    p, [r[method] for r in sel], yerr=[r[f"{method}_err"] for r in sel],
                    fmt=marker, color=color, label=label, capsize=3,
                )
            )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("momentum [GeV/c]")
    ax.set_ylabel(f"{pair} separation power [$\\sigma$]")
    tops = [max(r["poisson"], r.get("truth", 0.0) + r.get("truth_err", 0.0)) for r in sel]
    method_legend(ax, len(artists), max(tops, default=1.0))
    experiment_label(ax, rlabel=f"{sel[0]['track_length_cm']:.0f} cm tracks" if sel else "")
    return artists


def share_plot(rows: list[dict[str, Any]], pair: str, ax: Any = None) -> list[Any]:
    """Each method's separation power as a share of the truth count's, versus momentum, with
    bootstrap errors from the same resampled tracks."""
    ax = axes(ax)
    sel = [r for r in rows if r["pair"] == pair]
    p = np.array([r["momentum_gev"] for r in sel])
    artists = [ax.axhline(1.0, color=COLORS["truth"], ls="--", label="truth count")]
    for method, (label, color, marker) in METHOD_STYLE.items():
        key = f"{method}_over_truth"
        if sel and key in sel[0]:
            artists.append(
                ax.errorbar(
                    p, [r[key] for r in sel], yerr=[r.get(f"{key}_err", np.nan) for r in sel],
                    fmt=marker, color=color, label=label, capsize=3,
                )
            )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("momentum [GeV/c]")
    ax.set_ylabel(f"{pair} separation / truth's")
    method_legend(ax, len(artists), 1.0)
    experiment_label(ax, rlabel=f"{sel[0]['track_length_cm']:.0f} cm tracks" if sel else "")
    return artists


def sweep_plot(
    values: list[Any], metric: list[float | None], parameter: str, name: str, ax: Any = None
) -> list[Any]:
    """A sweep metric against one swept parameter, one point per finished trial (categories,
    e.g. optimizers or topologies, on an evenly spaced axis)."""
    ax = axes(ax)
    keep = [(v, m) for v, m in zip(values, metric, strict=True) if m is not None]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v, _ in keep)
    if numeric:
        x = [float(v) for v, _ in keep]
    else:
        labels = list(dict.fromkeys(str(v) for v, _ in keep))
        x = [float(labels.index(str(v))) for v, _ in keep]
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=11)
        ax.minorticks_off()
    artists = ax.plot(x, [m for _, m in keep], "o", color=COLORS["ml"], ms=7)
    ax.margins(x=0.15)
    ax.set_xlabel(parameter)
    ax.set_ylabel(name)
    experiment_label(ax, rlabel=f"{len(keep)} trials")
    return artists
