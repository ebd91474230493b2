"""Statistical uncertainties of the headline metrics: a seeded bootstrap of the evaluated
waveforms (counts: relative bias and resolutions as `count_metrics` computes them; the
classifier: AUC and F1 with each waveform's candidates drawn together). See
docs/algorithms.md, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ccframe.metrics.counting import available, count_metrics

BOOTSTRAP = 200
"""Bootstrap resamples behind every uncertainty (the error of an error from 200 resamples is
about 5 %)."""
COUNT_QUANTITIES = ("relative_bias", "relative_resolution_core", "relative_resolution_rms")


@dataclass(frozen=True)
class Measurement:
    """A number with its statistical error (NaN: none)."""

    value: float
    error: float = float("nan")


def _spread(draws: list[float]) -> float:
    values = np.asarray(draws, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if values.size > 1 else float("nan")


def bootstrap_counts(
    counts: dict[str, np.ndarray],
    n_true: np.ndarray,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
) -> dict[str, dict[str, Measurement]]:
    """Each count's relative bias and relative resolutions (core, RMS) as `count_metrics`
    gives them (so they equal metrics.json's), with errors: the standard deviation over
    `resamples` bootstrap resamples of the waveforms (with N_true > 0; drawn with
    numpy's default_rng(seed), the same resample for every count). With 'ml' and
    'traditional', also 'gain' (1 - ML / traditional resolution, paired resamples)."""
    true = np.asarray(n_true, dtype=np.float64)
    ok = true > 0
    true = true[ok]
    preds = {name: np.asarray(pred, dtype=np.float64)[ok] for name, pred in counts.items()}
    central = {name: count_metrics(pred, true) for name, pred in preds.items()}
    draws: dict[str, dict[str, list[float]]] = {n: {q: [] for q in COUNT_QUANTITIES} for n in preds}
    rng = np.random.default_rng(seed)
    n = true.size
    gains: dict[str, list[float]] = {q: [] for q in COUNT_QUANTITIES[1:]}
    for _ in range(resamples if n > 1 else 0):
        index = rng.integers(0, n, n)
        once = {name: count_metrics(pred[index], true[index]) for name, pred in preds.items()}
        for name, m in once.items():
            for q in COUNT_QUANTITIES:
                draws[name][q].append(m.get(q, float("nan")))
        if {"ml", "traditional"} <= set(once):
            for q in gains:
                gains[q].append(_gain(once["ml"].get(q), once["traditional"].get(q)))
    out = {
        name: {
            q: Measurement(float(central[name].get(q, float("nan"))), _spread(draws[name][q]))
            for q in COUNT_QUANTITIES
        }
        for name in preds
    }
    if {"ml", "traditional"} <= set(preds):
        out["gain"] = {
            q: Measurement(
                _gain(central["ml"].get(q), central["traditional"].get(q)), _spread(gains[q])
            )
            for q in gains
        }
    return out


def _gain(ml: Any, traditional: Any) -> float:
    if available(ml) and available(traditional) and traditional > 0:
        return 1.0 - float(ml) / float(traditional)
    return float("nan")


def bootstrap_classifier(
    scores: np.ndarray,
    signal: np.ndarray,
    waveform: np.ndarray,
    threshold: float,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
    n_waveforms: int | None = None,
) -> dict[str, Measurement]:
    """AUC and F1 (at score > threshold) of the candidates, with errors: the standard
    deviation over bootstrap resamples of the waveforms (`waveform`: each candidate's
    waveform index, of `n_waveforms`: by default the largest index + 1), each drawn
    waveform bringing all its candidates, which are not independent. The AUC is the
    Mann-Whitney statistic with weights (ties count one half), equal to sklearn's
    roc_auc_score for the sample itself."""
    scores = np.asarray(scores, dtype=np.float64)
    sig_ = np.asarray(signal, dtype=bool)
    waveform = np.asarray(waveform, dtype=np.int64)
    nan = Measurement(float("nan"))
    if scores.size == 0:
        return {"auc": nan, "f1": nan}
    _, group = np.unique(scores, return_inverse=True)
    groups = int(group.max()) + 1
    accepted = scores > threshold
    tp_mask, fp_mask, fn_mask = accepted & sig_, accepted & ~sig_, ~accepted & sig_

    def auc_f1(weight: np.ndarray) -> tuple[float, float]:
        pos = np.bincount(group, weights=weight * sig_, minlength=groups)
        neg = np.bincount(group, weights=weight * ~sig_, minlength=groups)
        below = np.cumsum(neg) - neg
        w_pos, w_neg = pos.sum(), neg.sum()
        auc = (
            float((pos * (below + 0.5 * neg)).sum() / (w_pos * w_neg)) if w_pos * w_neg else np.nan
        )
        tp, fp, fn = (float(weight[m].sum()) for m in (tp_mask, fp_mask, fn_mask))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        return auc, f1

    auc, f1 = auc_f1(np.ones(scores.size))
    n_waveforms = max(n_waveforms or 0, int(waveform.max()) + 1)
    rng = np.random.default_rng(seed)
    aucs, f1s = [], []
    for _ in range(resamples if n_waveforms > 1 else 0):
        times = np.bincount(rng.integers(0, n_waveforms, n_waveforms), minlength=n_waveforms)
        a, f = auc_f1(times[waveform].astype(np.float64))
        aucs.append(a)
        f1s.append(f)
    return {"auc": Measurement(auc, _spread(aucs)), "f1": Measurement(f1, _spread(f1s))}


def with_bootstrap_errors(
    rows: list[dict[str, Any]],
    momentum: np.ndarray,
    n_pred: np.ndarray,
    n_true: np.ndarray,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], bool]:
    """Copies of the momentum-bin `rows` (metrics' `vs_momentum`) with `<quantity>_err`, the
    bootstrap errors of the waveforms in each bin (low <= p < high, as
    ccframe.metrics.counting.versus bins them); and whether every row got them (a row whose
    waveforms do not match its count keeps none)."""
    momentum = np.asarray(momentum, dtype=np.float64)
    out, complete = [], True
    for row in rows:
        sel = np.isfinite(momentum) & (momentum >= row["low"]) & (momentum < row["high"])
        row = dict(row)
        if int(np.count_nonzero(sel & (np.asarray(n_true) > 0))) == row.get("waveforms"):
            got = bootstrap_counts({"x": np.asarray(n_pred)[sel]}, np.asarray(n_true)[sel],
                                   resamples, seed)["x"]  # fmt: skip
            row.update({f"{q}_err": m.error for q, m in got.items()})
        else:
            complete = False
        out.append(row)
    return out, complete
