"""Metrics of the two steps on the test split (docs/algorithms.md, "Metrics")."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

from ccframe.errors import InputError
from ccframe.metrics.counting import (
    LABELLED_PEAKS_NOTE,
    available,
    count_metrics,
    momentum_edges,
    response_curve,
    versus,
)

GAINS = ("relative_resolution_rms", "relative_resolution_core")


def choose_threshold(
    scores: np.ndarray, signal: np.ndarray, rule: float | Literal["f1", "efficiency_purity"]
) -> float:
    """A fixed threshold, or the score cut that maximises F1 or efficiency x purity (on the
    validation split, which needs both signal and noise candidates for it)."""
    if not isinstance(rule, str):
        return float(rule)
    n_signal = int(np.count_nonzero(signal > 0.5))
    if n_signal == 0 or n_signal == signal.size:
        raise InputError(
            f"ml.classifier.threshold: the validation split has {n_signal} signal candidates "
            f"of {signal.size}; choosing the {rule} threshold needs both signal and noise "
            "(use more waveforms or a larger ml.dataset.validation_fraction, or set a fixed "
            "threshold)"
        )
    precision, recall, cuts = skm.precision_recall_curve(signal, scores)
    p, r = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        figure = 2 * p * r / (p + r) if rule == "f1" else p * r
    figure = np.nan_to_num(figure)
    # precision_recall_curve accepts score >= cut; the chain accepts score > threshold
    # (kept in [0, 1], the range of a sigmoid score and of a valid chain.json).
    best = int(np.argmax(figure))
    return float(np.clip(np.nextafter(cuts[best], -np.inf), 0.0, 1.0))


def classification(scores: np.ndarray, signal: np.ndarray, threshold: float) -> dict[str, Any]:
    """Counts and rates at the threshold, AUC, and sklearn's classification report."""
    truth = signal.astype(bool)
    pred = scores > threshold
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(truth, pred, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    both = truth.any() and (~truth).any()
    return {
        "threshold": threshold,
        "samples": int(truth.size),
        "signal_fraction": float(truth.mean()) if truth.size else float("nan"),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "accuracy": (tp + tn) / truth.size if truth.size else float("nan"),
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
        "balanced_accuracy": (recall + specificity) / 2,
        "efficiency_x_purity": precision * recall,
        "auc": float(skm.roc_auc_score(truth, scores)) if both else float("nan"),
        "report": skm.classification_report(
            truth,
            pred,
            labels=[0, 1],
            target_names=["noise", "signal"],
            output_dict=True,
            zero_division=0,
        ),
    }


def roc_table(scores: np.ndarray, signal: np.ndarray, points: int = 200) -> dict[str, np.ndarray]:
    """The ROC curve, thinned to about `points` rows (no rows without both classes)."""
    truth = signal.astype(bool)
    if not (truth.any() and (~truth).any()):
        empty = np.empty(0, dtype=np.float64)
        return {"threshold": empty, "fpr": empty, "tpr": empty}
    fpr, tpr, cuts = skm.roc_curve(truth, scores)
    keep = np.unique(np.linspace(0, fpr.size - 1, min(points, fpr.size)).astype(int))
    return {"threshold": cuts[keep], "fpr": fpr[keep], "tpr": tpr[keep]}


def clusters_found(accept: np.ndarray, cluster: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n,) per waveform: its true clusters with an accepted, truth-matched peak.
    `cluster`: per candidate, the matched electron's cluster (-1: noise); `counts`: candidates
    per waveform."""
    row = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    hit = accept & (cluster >= 0)
    width = int(cluster.max(initial=0)) + 1
    distinct = np.unique(row[hit] * width + cluster[hit])
    return np.bincount(distinct // width, minlength=counts.size)


def end_to_end(
    accept: np.ndarray,
    label: np.ndarray,
    cluster: np.ndarray,
    counts: np.ndarray,
    n_electrons: int,
    n_clusters: np.ndarray,
    clusters_known: bool = True,
) -> dict[str, Any]:
    """Peak finding against all true electrons (also those no candidate came near) and true
    clusters (n_clusters per waveform; `cluster`, `counts` as for `clusters_found`).
    `count_limit_*`: the resolution of found clusters / cluster_efficiency, a counter that
    knew which clusters its peaks came from: about the best a counter of these peaks can do
    when clusters are missed at random. Without `clusters_known` (labels from labelled peaks:
    the electrons are the peaks labelled 1 or 2, and no candidate knows its cluster) the
    cluster metrics are None, with the reason under `unavailable`."""
    found = int(np.count_nonzero(accept & (label > 0)))
    accepted = int(np.count_nonzero(accept))
    n_clusters_total = int(n_clusters.sum())
    out: dict[str, Any] = {
        "candidates": int(label.size),
        "accepted_peaks": accepted,
        "electrons": n_electrons,
        "candidate_coverage": int(np.count_nonzero(label > 0)) / n_electrons
        if n_electrons
        else float("nan"),
        "efficiency": found / n_electrons if n_electrons else float("nan"),
        "purity": found / accepted if accepted else float("nan"),
        "clusters": n_clusters_total,
    }
    if not clusters_known:
        return out | LABELLED_PEAKS_NOTE
    found_clusters = clusters_found(accept, cluster, counts)
    efficiency = found_clusters.sum() / n_clusters_total if n_clusters_total else float("nan")
    out["cluster_efficiency"] = float(efficiency)
    if efficiency > 0:
        limit = count_metrics(found_clusters / efficiency, n_clusters)
        out["count_limit_resolution_core"] = limit["relative_resolution_core"]
        out["count_limit_resolution_rms"] = limit["relative_resolution_rms"]
    return out


def counting(
    counts: dict[str, np.ndarray], n_true: np.ndarray, momentum: np.ndarray, bins: int
) -> dict[str, Any]:
    """Bias, resolution and response (mean predicted count per true count) of each count
    (e.g. ml, traditional) against the truth, overall and versus momentum, and the ML's
    relative gain in resolution over the traditional (None where either resolution is
    unavailable or the traditional's is 0)."""
    out: dict[str, Any] = {}
    finite = np.isfinite(momentum)
    edges = momentum_edges(momentum[finite], bins) if finite.any() else None
    for name, pred in counts.items():
        entry: dict[str, Any] = {
            "overall": count_metrics(pred, n_true),
            "response": response_curve(pred, n_true),
        }
        if edges is not None:
            entry["vs_momentum"] = versus(momentum[finite], edges, pred[finite], n_true[finite])
        out[name] = entry
    if {"ml", "traditional"} <= set(counts):
        out["ml_gain_over_traditional"] = {
            kind: gain(out["ml"]["overall"].get(kind), out["traditional"]["overall"].get(kind))
            for kind in GAINS
        }
    return out


def gain(ml: Any, traditional: Any) -> float | None:
    """1 - ml / traditional, or None when either is unavailable or traditional is not > 0."""
    if available(ml) and available(traditional) and traditional > 0:
        return 1.0 - float(ml) / float(traditional)
    return None
