"""The calibration report: data against the fitted simulation on one page, and the
goodness-of-fit numbers behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ccframe.calibrate.fit import Result
from ccframe.calibrate.measure import Measurement

DATA_COLOR = "#222222"
SIM_COLOR = "#3f90da"


def edges_for(a: np.ndarray, b: np.ndarray, bins: int = 50, q: float = 0.5) -> np.ndarray:
    """Common bins over the central range of both samples."""
    both = np.concatenate([a, b])
    if both.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.percentile(both, [q, 100 - q])
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, bins + 1)


def hist_chi2(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> float:
    """chi2 / ndf of two histograms' shapes (each normalised to its own total)."""
    ha, _ = np.histogram(a, edges)
    hb, _ = np.histogram(b, edges)
    na, nb = ha.sum(), hb.sum()
    ok = (ha + hb) > 0
    if na == 0 or nb == 0 or ok.sum() < 2:
        return float("nan")
    num = (ha[ok] / na - hb[ok] / nb) ** 2
    den = ha[ok] / na**2 + hb[ok] / nb**2
    return float(np.sum(num / den) / (ok.sum() - 1))


def goodness(result: Result) -> dict[str, float]:
    """chi2 / ndf of data against the final simulation for each measured distribution."""
    d, s = result.data, result.sim
    out: dict[str, float] = {}
    pd, ps = d.profile, s.profile
    ok = (pd.count > 2) & (ps.count > 2)
    err2 = pd.err[ok] ** 2 + ps.err[ok] ** 2
    good = err2 > 0
    if good.any():
        out["pulse_shape_chi2_ndf"] = float(
            np.mean((pd.mean[ok][good] - ps.mean[ok][good]) ** 2 / err2[good])
        )
    a, b = d.pulses.amplitude, s.pulses.amplitude
    out["amplitude_chi2_ndf"] = hist_chi2(a, b, edges_for(a, b))
    out["first_pulse_chi2_ndf"] = hist_chi2(
        d.first_ns, s.first_ns, edges_for(d.first_ns, s.first_ns)
    )
    out["last_pulse_chi2_ndf"] = hist_chi2(d.last_ns, s.last_ns, edges_for(d.last_ns, s.last_ns))
    nd, ns = max(d.noise.segments, 1), max(s.noise.segments, 1)
    pdn, psn = d.noise.power[1:], s.noise.power[1:]
    var = pdn**2 / nd + psn**2 / ns
    good = var > 0
    if good.any():
        out["noise_spectrum_chi2_ndf"] = float(np.mean((pdn - psn)[good] ** 2 / var[good]))
    return {k: round(v, 3) for k, v in out.items()}


def _step(ax: Any, x: np.ndarray, edges: np.ndarray, label: str, color: str, data: bool) -> Any:
    h, _ = np.histogram(x, edges)
    width = np.diff(edges)
    dens = h / max(h.sum(), 1) / width
    centres = 0.5 * (edges[:-1] + edges[1:])
    if data:
        err = np.sqrt(h) / max(h.sum(), 1) / width
        return ax.errorbar(centres, dens, yerr=err, fmt="o", ms=3, color=color, label=label)
    return ax.stairs(dens, edges, color=color, lw=1.8, label=label)


def _pair(ax: Any, d: np.ndarray, s: np.ndarray, xlabel: str, log: bool = False) -> None:
    edges = edges_for(d, s)
    _step(ax, s, edges, "fitted simulation", SIM_COLOR, data=False)
    _step(ax, d, edges, "data", DATA_COLOR, data=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised")
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=11, loc="best")


def _noise_panel(ax: Any, d: Measurement, s: Measurement) -> None:
    f = d.noise.freq_mhz[1:]
    ax.plot(
        s.noise.freq_mhz[1:], s.noise.power[1:], color=SIM_COLOR, lw=1.8, label="fitted simulation"
    )
    ax.plot(f, d.noise.power[1:], "o", ms=2.5, color=DATA_COLOR, label="data")
    ax.set_yscale("log")
    ax.set_xlabel("frequency [MHz]")
    ax.set_ylabel("noise power density [mV$^2$/MHz]")
    ax.legend(fontsize=11, loc="best")


def _pulse_panel(ax: Any, result: Result) -> None:
    d, s = result.data.profile, result.sim.profile
    ok = d.count > 2
    ax.plot(
        s.t_ns[s.count > 2], s.mean[s.count > 2], color=SIM_COLOR, lw=1.8, label="fitted simulation"
    )
    ax.errorbar(
        d.t_ns[ok], d.mean[ok], yerr=d.err[ok], fmt="o", ms=2, color=DATA_COLOR, label="data"
    )
    v = result.params.values
    ax.text(
        0.97,
        0.6,
        f"rise {v['rise_ns']:.3g} ns\nfall {v['fall_ns']:.3g} ns",
        transform=ax.transAxes,
        ha="right",
        fontsize=12,
    )
    ax.set_xlabel("time from the 50% leading edge [ns]")
    ax.set_ylabel("isolated pulse / its amplitude")
    ax.legend(fontsize=11, loc="upper right")


def _table(result: Result, errors: dict[str, float], good: dict[str, float]) -> str:
    v, direct = result.params.values, result.direct
    units = {
        "baseline_mv": "mV",
        "noise_rms_mv": "mV",
        "slow_power": "mV^2/MHz",
        "rise_ns": "ns",
        "fall_ns": "ns",
        "amplitude_mv": "mV",
        "polya_shape": "",
        "pretrigger_ns": "ns",
    }
    names = {
        "baseline_mv": "baseline",
        "noise_rms_mv": "noise RMS",
        "slow_power": "noise density at 0 MHz",
        "rise_ns": "rise",
        "fall_ns": "fall",
        "amplitude_mv": "mean single-electron amplitude",
        "polya_shape": "Polya 1 + theta",
        "pretrigger_ns": "pretrigger",
    }
    lines = []
    for key, name in names.items():
        err = errors.get(key)
        pm = f" +- {err:.2g}" if err is not None else ""
        fixed = "" if key != "polya_shape" or result.theta_free else "  (kept: not constrained)"
        lines.append(f"{name}: {v[key]:.4g}{pm} {units[key]}   (direct {direct[key]:.4g}){fixed}")
    lines.append(
        "chi2/ndf: " + ", ".join(f"{k.removesuffix('_chi2_ndf')} {x:.2f}" for k, x in good.items())
    )
    return "\n".join(lines)


def draw_report(
    result: Result,
    errors: dict[str, float],
    good: dict[str, float],
    title: str,
    targets: list[Path],
) -> list[Path]:
    """One page: noise spectrum, average pulse, amplitudes, first and last pulse times and
    baseline-window RMS of data and fitted simulation, with the fitted values."""
    import matplotlib.pyplot as plt

    from ccframe.io.atomic import atomic_path
    from ccframe.plots.style import experiment_label, use_style

    use_style()
    d, s = result.data, result.sim
    fig, axes = plt.subplots(2, 3, figsize=(22, 14))
    _noise_panel(axes[0, 0], d, s)
    _pulse_panel(axes[0, 1], result)
    _pair(
        axes[0, 2],
        d.pulses.amplitude,
        s.pulses.amplitude,
        "isolated pulse amplitude [mV]",
        log=True,
    )
    _pair(axes[1, 0], d.first_ns, s.first_ns, "first pulse time in window [ns]")
    _pair(axes[1, 1], d.last_ns, s.last_ns, "last pulse time in window [ns]")
    _pair(axes[1, 2], d.window_rms_mv, s.window_rms_mv, "baseline-window RMS [mV]")
    for ax in axes.ravel():
        experiment_label(ax, simulation=False, rlabel="data vs fitted sim.")
    fig.text(0.01, 0.005, _table(result, errors, good), fontsize=13, family="monospace", va="top")
    fig.suptitle(title, fontsize=18, y=1.0)
    fig.tight_layout()
    for target in targets:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:], bbox_inches="tight", dpi=90)
    plt.close(fig)
    return targets
