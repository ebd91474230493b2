"""Separation power between two species from per-track values, with bootstrap errors, and its
Poisson limit (docs/algorithms.md, "Particle identification")."""

from __future__ import annotations

import numpy as np

from ccframe.simulate import physics


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """S = |mu_a - mu_b| / ((sigma_a + sigma_b) / 2) from the means and standard deviations."""
    width = (np.std(a) + np.std(b)) / 2.0
    return float(abs(np.mean(a) - np.mean(b)) / width) if width > 0 else float("nan")


def cell_separation(a: np.ndarray, b: np.ndarray) -> float:
    """S of single cells, as the CEPC and ml4cc studies quote it: `separation` of the two
    species' distributions of the count per cell (one waveform each), not per track."""
    return separation(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def bootstrap_separation(
    a: np.ndarray, b: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[float, float]:
    """S and its bootstrap standard error (tracks of each species resampled n times)."""
    replicas = joint_bootstrap({"S": (a, b)}, n, rng)["S"]
    return separation(a, b), float(np.std(replicas)) if replicas.size else float("nan")


def joint_bootstrap(
    values: dict[str, tuple[np.ndarray, np.ndarray]], n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """n bootstrap replicas of S for each method, all from the same resampled tracks (the
    methods count the same tracks, so a ratio of two methods' S is resampled with its
    correlation); `values`: per method, the two species' per-track values, all methods with
    the same tracks in the same order. Empty replicas with fewer than 2 tracks a species."""
    sizes = {(a.size, b.size) for a, b in values.values()}
    if len(sizes) != 1:
        raise ValueError(f"every method needs the same tracks, got sizes {sorted(sizes)}")
    na, nb = sizes.pop()
    if na < 2 or nb < 2:
        return {m: np.empty(0) for m in values}
    ia = rng.integers(0, na, size=(n, na))
    ib = rng.integers(0, nb, size=(n, nb))
    return {
        m: np.array([separation(a[i], b[j]) for i, j in zip(ia, ib, strict=True)])
        for m, (a, b) in values.items()
    }


def poisson_separation(
    pa: str, pb: str, momentum_gev: float, length_cm: float, fit: list[float], scale: float
) -> float:
    """The ideal S of cluster counting: mu = scale * n_cl(bg) * L per species (L =
    `length_cm`), sigma = sqrt(mu)."""
    mu = [
        float(physics.cluster_density(physics.beta_gamma(momentum_gev, p), fit)) * scale * length_cm
        for p in (pa, pb)
    ]
    return abs(mu[0] - mu[1]) / ((np.sqrt(mu[0]) + np.sqrt(mu[1])) / 2.0)


def truncated_per_cm(counts: np.ndarray, chords: np.ndarray, keep: float) -> float:
    """Counts per cm of one track, keeping the `keep` fraction of cells with the lowest
    counts per cm (1: all cells)."""
    if keep >= 1.0:
        return float(counts.sum() / chords.sum())
    order = np.argsort(counts / chords)
    n = max(1, round(keep * counts.size))
    sel = order[:n]
    return float(counts[sel].sum() / chords[sel].sum())
