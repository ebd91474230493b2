"""How much of the true count's K/pi separation any waveform method can keep on a detector:
counts of the clusters an ideal reconstruction could still resolve, from the Monte Carlo
truth alone (no reconstruction, no training).

    python bench/resolution_limit.py [--n 20000] [--steering steering/quickstart.yaml]
    python bench/resolution_limit.py --run runs/method_comparison

Simulates n waveforms with the steering file's simulate section and, for each pulse-pair
resolution dt (ns) and each charge threshold q (in mean gains), counts per waveform the
clusters whose summed charge exceeds q and whose first electron arrives more than dt after
the previous such cluster's. For each count it prints the relative resolution (Gaussian
core) after inverting its linear response, its response slope to the true count at fixed
chord and momentum, and the estimated share of the truth's separation,

    share = k * sqrt(Var(N | p) / Var(C | p)),

k the slope of C against N at fixed chord (a least-squares fit of C on N and the chord),
the variances within bins of log momentum. A count that follows the chord (visible in a
waveform's extent) instead of the clusters gets a small k whatever its resolution. The same
estimate on a run's test-split predictions (`--run`: every n_clusters_<method> of
predictions.root, the chord from the run's sim.root by entry) puts trained counters on the
same scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ccframe.metrics.counting import core_sigma
from ccframe.simulate.generator import Simulator
from ccframe.steering.loader import load_steering

REPO = Path(__file__).resolve().parents[1]
MOMENTUM_BINS = 14


def conditional_variance(values: np.ndarray, groups: np.ndarray) -> float:
    """Variance of `values` about the mean of their group."""
    centred = values.astype(np.float64).copy()
    for g in np.unique(groups):
        sel = groups == g
        centred[sel] -= centred[sel].mean()
    return float(centred.var())


def share_estimate(
    count: np.ndarray, n_true: np.ndarray, chord: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Response slope at fixed chord, calibrated core resolution and estimated share of the
    truth's separation of a count (see the module)."""
    design = np.column_stack([np.ones(n_true.size), n_true, chord])
    k = float(np.linalg.lstsq(design, count, rcond=None)[0][1])
    share = k * np.sqrt(conditional_variance(n_true, groups) / conditional_variance(count, groups))
    ok = n_true > 0
    b, a = np.polyfit(n_true[ok], count[ok], 1)
    core = core_sigma(((count[ok] - a) / b - n_true[ok]) / n_true[ok])
    return {"slope_fixed_chord": k, "core": core, "share": float(share)}


def resolvable_counts(batch, dt_ns: float, q: float) -> np.ndarray:
    """Per waveform: clusters with charge > q mean gains, first electrons > dt_ns apart."""
    n = len(batch)
    c_off, e_off = batch.cluster_offsets(), batch.electron_offsets()
    row = np.repeat(np.arange(n), np.diff(e_off))
    cluster = c_off[row] + batch.electron_cluster
    start = np.full(c_off[-1], np.inf)
    np.minimum.at(start, cluster, batch.electron_time_ns)
    charge = np.zeros(c_off[-1])
    np.add.at(charge, cluster, batch.electron_charge / batch.electron_charge.mean())
    out = np.zeros(n)
    for i in range(n):
        lo, hi = c_off[i], c_off[i + 1]
        times = np.sort(start[lo:hi][charge[lo:hi] > q])
        out[i] = (times.size > 0) + np.count_nonzero(np.diff(times) > dt_ns)
    return out


def run_estimates(run: Path) -> None:
    """The estimate for every count of a run's test split."""
    import uproot

    tree = uproot.open(run / "predictions.root")["predictions"]
    branches: list[str] = tree.keys()
    names = [k for k in branches if k.startswith("n_clusters_") and k != "n_clusters_true"]
    pred = tree.arrays(["entry", "split", "momentum_gev", "n_clusters_true", *names], library="np")
    chord_all = uproot.open(run / "sim.root")["sim"]["chord_cm"].array(library="np")
    test = pred["split"] == 2
    n_true = pred["n_clusters_true"][test].astype(np.float64)
    chord = chord_all[pred["entry"][test]]
    log_p = np.log(pred["momentum_gev"][test])
    groups = np.digitize(log_p, np.linspace(log_p.min(), log_p.max() + 1e-9, MOMENTUM_BINS + 1))
    print(f"{run}: {test.sum()} test waveforms")
    print(f"  {'count':<34s} {'slope@chord':>11s} {'core':>7s} {'share':>7s}")
    for name in names:
        m = share_estimate(pred[name][test].astype(np.float64), n_true, chord, groups)
        print(f"  {name:<34s} {m['slope_fixed_chord']:11.3f} {m['core']:7.3f} {m['share']:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--steering", default=str(REPO / "steering" / "quickstart.yaml"))
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--run", type=Path, help="a run folder: estimate its test predictions")
    args = parser.parse_args()
    if args.run is not None:
        run_estimates(args.run)
        return
    sim = load_steering(args.steering).simulate
    if sim is None:
        raise SystemExit(f"{args.steering}: needs a simulate: section")
    batch = Simulator(sim.model_copy(update={"n_waveforms": args.n}), args.seed).generate(0, args.n)
    n_true = batch.n_clusters.astype(np.float64)
    log_p = np.log(batch.momentum_gev)
    edges = np.linspace(log_p.min(), log_p.max() + 1e-9, MOMENTUM_BINS + 1)
    groups = np.digitize(log_p, edges)
    print(f"{args.n} waveforms of {args.steering}; mean {n_true.mean():.2f} clusters")
    print(f"  {'count':<34s} {'slope@chord':>11s} {'core':>7s} {'share':>7s}")
    rows = [("truth", n_true)]
    rows += [
        (f"resolvable: dt > {dt:g} ns, q > {q:g}", resolvable_counts(batch, dt, q))
        for dt in (1.0, 3.0, 5.0, 8.0)
        for q in (0.0, 0.4)
    ]
    for name, count in rows:
        m = share_estimate(count, n_true, batch.chord_cm, groups)
        print(f"  {name:<34s} {m['slope_fixed_chord']:11.3f} {m['core']:7.3f} {m['share']:7.3f}")


if __name__ == "__main__":
    main()
