"""How much of the true count's K/pi separation any waveform method can keep on a detector:
counts of the clusters an ideal reconstruction could still resolve, from the Monte Carlo
truth alone (no reconstruction, no training).

    python bench/resolution_limit.py [--n 20000] [--steering steering/quickstart.yaml]
    python bench/resolution_limit.py --run runs/method_comparison

Simulates n waveforms with the steering file's simulate section and, for each pulse-pair
resolution dt (ns) and each charge threshold q (in mean gains), counts per waveform the
clusters whose summed charge exceeds q and whose first electron arrives more than dt after
the previous such cluster's. For each count C it prints its relative resolution (Gaussian
core, after inverting its linear response), its slope k against the true count N at fixed
chord, momentum and species, and the estimated share of the truth's K/pi separation over
tracks of many cells:

    share = k sqrt(V_N / (k^2 V_N + V_C)),

V_N the variance of N about its mean at that chord, momentum and species (the Poisson
fluctuation that tells the species apart), V_C the variance of C about its fit in N at the
same (the counting noise). A track sums its cells and divides by their summed chord, so
the chord's own fluctuation drops out of both; a count that follows the chord (visible in a
waveform's extent) rather than the clusters gets a small k. On a run's test predictions
(`--run`: every n_clusters_<method> of predictions.root, the chord from the run's sim.root
by entry) the estimate agrees with the pid stage's measured shares, averaged over momentum,
within about 0.04.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ccframe.metrics.counting import calibrated_resolution
from ccframe.simulate.generator import Simulator
from ccframe.steering.loader import load_steering

REPO = Path(__file__).resolve().parents[1]
MOMENTUM_BINS = 8


def group_design(chord: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Columns for a mean and a slope in the chord per group (momentum bin and species)."""
    one_hot = (groups[:, None] == np.unique(groups)[None, :]).astype(np.float64)
    return np.column_stack([one_hot, one_hot * chord[:, None]])


def residual(y: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares residuals of y and the coefficients."""
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return y - design @ coef, coef


def share_estimate(
    count: np.ndarray, n_true: np.ndarray, chord: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Slope at fixed chord, momentum and species, calibrated core resolution and estimated
    share of the truth's separation of a count (see the module)."""
    design = group_design(chord, groups)
    poisson, _ = residual(n_true, design)
    noise, coef = residual(count, np.column_stack([n_true, design]))
    k, v_n = float(coef[0]), float(poisson.var())
    share = k * np.sqrt(v_n / (k**2 * v_n + float(noise.var())))
    core = calibrated_resolution(count, n_true)
    return {"slope_fixed_chord": k, "core": core, "share": float(share)}


def momentum_groups(log_p: np.ndarray) -> np.ndarray:
    """Bins of equal width in log momentum."""
    edges = np.linspace(log_p.min(), log_p.max() + 1e-9, MOMENTUM_BINS + 1)
    return np.digitize(log_p, edges)


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
    columns = ["entry", "split", "momentum_gev", "pdg", "n_clusters_true", *names]
    pred = tree.arrays(columns, library="np")
    chord_all = uproot.open(run / "sim.root")["sim"]["chord_cm"].array(library="np")
    test = pred["split"] == 2
    n_true = pred["n_clusters_true"][test].astype(np.float64)
    chord = chord_all[pred["entry"][test]]
    log_p = np.log(pred["momentum_gev"][test])
    groups = momentum_groups(log_p) * 10_000 + pred["pdg"][test]
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
    groups = momentum_groups(np.log(batch.momentum_gev)) * 10_000 + batch.pdg
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
