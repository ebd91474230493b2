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
    "efficiency_x_purity": "efficiency x purity",
    "mae_scaled": "MAE (count / mean count)",
}

QUANTITY_LABELS = {
    "relative_resolution_core": "relative resolution (Gaussian core)",
    "relative_resolution_rms": "relative resolution (RMS)",
    "relative_bias": "relative bias",
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


def count_2d_plot(n_true: np.ndarray, n_pred: np.ndarray, name: str, ax: Any = None) -> list[Any]:
    """Predicted versus true number of clusters, with the diagonal."""
    ax = axes(ax, figsize=(8.5, 7.0))
    top = float(np.percentile(np.concatenate([n_true, n_pred]), 99.5)) + 2
    edges = np.arange(-0.5, top + 1, 1.0)
    h: Any = hist.Hist(
        hist.axis.Variable(edges, name="true", label="true number of clusters"),
        hist.axis.Variable(edges, name="pred", label=f"{name} number of clusters"),
    )
    h.fill(true=n_true, pred=n_pred)
    artists = [hep.hist2dplot(h, ax=ax, cmin=1, flow=None)]
    artists += ax.plot([0, top], [0, top], "--", color="grey")
    ax.set_xlabel("true number of clusters")
    ax.set_ylabel(f"{name} number of clusters")
    experiment_label(ax, rlabel="test split")
    return artists


def residual_plot(n_true: np.ndarray, counts: dict[str, np.ndarray], ax: Any = None) -> list[Any]:
    """(N - N_true) / N_true for each count, with a Gaussian of its core width and mean."""
    ax = axes(ax)
    ok = n_true > 0
    h_axis = hist.axis.Regular(60, -1.5, 1.5, name="r", label="(N - N_true) / N_true")
    x = np.linspace(-1.5, 1.5, 400)
    artists = []
    for name, pred in counts.items():
        r = (pred[ok] - n_true[ok]) / n_true[ok]
        h: Any = hist.Hist(h_axis)
        h.fill(r)
        sigma = core_sigma(r)
        core = r[np.abs(r - np.median(r)) < 2 * sigma] if sigma > 0 else r
        mean = float(core.mean()) if core.size else 0.0
        color = COLORS.get(name, None)
        label = f"{name}\ncore $\\sigma$ = {sigma:.3f}, mean {mean:+.3f}"
        artists += hep.histplot(h, density=True, color=color, label=label, ax=ax)
        if sigma > 0:
            gauss = np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
            artists += ax.plot(x, gauss, ":", color=color)
    ax.set_xlabel("(N - N$_{true}$) / N$_{true}$")
    ax.set_ylabel("waveforms (normalised)")
    ax.legend(loc="upper left", fontsize=13)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    experiment_label(ax, rlabel="test split")
    return artists


def versus_momentum_plot(
    rows: dict[str, list[dict[str, Any]]], quantity: str, ax: Any = None
) -> list[Any]:
    """A count metric (e.g. relative_resolution_core, relative_bias) in momentum bins, for
    each count; with resolution, the truth's own Poisson fluctuation 1/sqrt(mean N_true)."""
    ax = axes(ax)
    artists = []
    reference = None
    for name, entries in rows.items():
        if not entries:
            continue
        lo = np.array([e["low"] for e in entries])
        hi = np.array([e["high"] for e in entries])
        centre = np.sqrt(lo * hi)
        value = np.array([e.get(quantity, np.nan) for e in entries])
        artists.append(
            ax.errorbar(
                centre,
                value,
                xerr=[centre - lo, hi - centre],
                fmt="o",
                ms=5,
                color=COLORS.get(name),
                label=name,
            )
        )
        reference = (centre, lo, hi, np.array([e["mean_true"] for e in entries]))
    if reference is not None and quantity.startswith("relative_resolution"):
        centre, lo, hi, mean_true = reference
        artists.append(
            ax.errorbar(
                centre,
                1 / np.sqrt(mean_true),
                xerr=[centre - lo, hi - centre],
                fmt="s",
                ms=4,
                color=COLORS["truth"],
                mfc="none",
                label="Poisson spread of N$_{true}$: 1/\u221aN",
            )
        )
    if quantity == "relative_bias":
        ax.axhline(0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("momentum [GeV/c]")
    ax.set_ylabel(QUANTITY_LABELS.get(quantity, quantity.replace("_", " ")))
    ax.legend(loc="best")
    experiment_label(ax, rlabel="test split")
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
) -> list[Any]:
    """One waveform (window time in ns) with its candidates, the LSTM-accepted peaks, the
    expected peak times of true primary and secondary electrons and the traditional peaks."""
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
            t[p], wave_mv[p] + 3, "v", color=COLORS["traditional"], ms=6, label="DERIV peak"
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
        # statistical error of a width from n waveforms: sigma / sqrt(2 n)
        n = np.array([max(r[name].get("waveforms", 0), 1) for r in sel])
        yerr = y / np.sqrt(2 * n) if quantity.startswith("relative_resolution") else None
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
    "d2": ("D2 + clusterization", "#a96b59", "^"),
    "ml": ("ML (LSTM + CNN)", COLORS["ml"], "o"),
}


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
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=13)
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
