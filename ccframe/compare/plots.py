"""Figures of `ccframe compare`: normalised overlays with a ratio panel to the reference,
the noise power spectra, and the one-page verdict table."""

from __future__ import annotations

from typing import Any

import numpy as np

from ccframe.compare.measure import LOG_Y, Sample
from ccframe.compare.verdict import HEADER, MISMATCH, OK, Row, cells, rule

REF_BAND = "#bbbbbb"
FLAG_COLORS = {OK: "#d8f0d8", MISMATCH: "#f4b4b4"}


def figure_label(ax: Any, samples: list[Sample], rlabel: str = "") -> Any:
    """'ccframe Simulation', 'ccframe Data' or 'ccframe Data vs. Simulation' at the top."""
    import mplhep as hep

    kinds = {s.kind for s in samples}
    text = "Data vs. Simulation" if len(kinds) == 2 else kinds.pop().capitalize()
    return hep.label.exp_label(
        exp="ccframe", data=True, text=text, com=None, rlabel=rlabel, loc=0, ax=ax, fontsize=16
    )


def legend_label(s: Sample, row: Row | None, is_ref: bool) -> str:
    """'name (simulation), reference' or 'name (data): D = 0.31 MISMATCH'."""
    text = f"{s.label} ({s.kind})"
    if is_ref:
        return text + ", reference"
    if row is not None and np.isfinite(row.ks_d):
        text += f": D = {row.ks_d:.2f}"
    if row is not None and np.isfinite(row.max_dev):
        text += f": max. band dev. {row.max_dev:+.0%}"
    return text + (f" {row.verdict}" if row is not None else "")


def _panels(figsize: tuple[float, float] = (8.0, 8.0)) -> tuple[Any, Any, Any]:
    import matplotlib.pyplot as plt

    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    return fig, ax, rax


RATIO_TOP = 2.0


def _ratio_points(rax: Any, x: np.ndarray, ratio: np.ndarray, err: np.ndarray, color: str) -> None:
    """Ratio points with errors; those above the panel as arrows at its top edge."""
    rax.errorbar(x, ratio, yerr=err, fmt="o", ms=3, color=color)
    high = ratio > RATIO_TOP
    if high.any():
        rax.plot(x[high], np.full(high.sum(), RATIO_TOP * 0.96), "^", ms=6, color=color)


def _ratio_frame(rax: Any) -> None:
    rax.set_ylim(0, RATIO_TOP)
    rax.set_yticks([0.0, 0.5, 1.0, 1.5])
    rax.axhline(1, color="grey", lw=1)


def waveforms_label(samples: list[Sample]) -> str:
    """'400 waveforms per input', or the range when the inputs differ."""
    counts = sorted({s.waveforms for s in samples})
    shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{shown} waveforms per input"


def input_colors(samples: list[Sample]) -> list[str]:
    """Black for the first data input (points, as data are drawn), C0, C1... otherwise."""
    first_data = next((i for i, s in enumerate(samples) if s.kind == "data"), None)
    return ["black" if i == first_data else f"C{i}" for i in range(len(samples))]


def _style(s: Sample, i: int, ref: int, color: str) -> dict[str, Any]:
    """The reference filled, data as points with errors, other simulations as lines."""
    if i == ref:
        return {"histtype": "fill", "alpha": 0.4, "color": color}
    if s.kind == "data":
        return {"histtype": "errorbar", "color": color, "marker": "o", "markersize": 4}
    return {"histtype": "step", "lw": 2, "color": color}


def ratio_plot(
    key: str,
    xlabel: str,
    samples: list[Sample],
    ref: int,
    edges: np.ndarray,
    rows: dict[str, Row],
    ratio_label: str,
    caption: str = "",
) -> Any:
    """Normalised histograms of `key` for each input and their ratio to the reference (the
    reference's statistical uncertainty as a grey band around 1)."""
    import hist
    import mplhep as hep

    fig, ax, rax = _panels()
    colors = input_colors(samples)
    counts = []
    for i, s in enumerate(samples):
        h: Any = hist.Hist(hist.axis.Variable(edges, label=xlabel))
        h.fill(s.get(key))
        counts.append(h.values())
        label = legend_label(s, rows.get(s.label), i == ref)
        hep.histplot(h, density=True, label=label, ax=ax, **_style(s, i, ref, colors[i]))
    n_ref = max(counts[ref].sum(), 1.0)
    ref_val = counts[ref] / n_ref
    with np.errstate(divide="ignore", invalid="ignore"):
        band = np.where(ref_val > 0, np.sqrt(counts[ref]) / counts[ref], np.nan)
    rax.stairs(
        1 + band,
        edges,
        baseline=1 - band,
        fill=True,
        color=REF_BAND,
        alpha=0.6,
        label=f"{samples[ref].label} stat.",
    )
    centres = (edges[:-1] + edges[1:]) / 2
    for i in range(len(samples)):
        if i == ref:
            continue
        n = max(counts[i].sum(), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref_val > 0, counts[i] / n / ref_val, np.nan)
            err = np.where(counts[i] > 0, ratio / np.sqrt(counts[i]), np.nan)
        _ratio_points(rax, centres, ratio, err, colors[i])
    _ratio_frame(rax)
    if key in LOG_Y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend
    rax.set_ylabel(ratio_label, fontsize=min(14.0, 280.0 / max(len(ratio_label), 1)))
    rax.set_xlabel(xlabel)
    ax.set_xlabel("")
    ax.set_ylabel("normalised entries")
    ax.legend(loc="upper right", fontsize=12, title=caption or None, title_fontsize=12)
    figure_label(ax, samples, rlabel=waveforms_label(samples))
    return fig


def spectrum_plot(
    samples: list[Sample], ref: int, rows: dict[str, Row], ratio_label: str, tolerance: float
) -> Any:
    """The noise PSD of each input (log y) and its ratio to the reference's, on the
    reference's frequency grid over the common range, with the accepted band shaded."""
    fig, ax, rax = _panels()
    ref_spec = samples[ref].spectrum
    assert ref_spec is not None
    colors = input_colors(samples)
    for i, s in enumerate(samples):
        spec = s.spectrum
        if spec is None or spec.segments == 0:
            continue
        f, p = spec.freq_mhz[1:], spec.power[1:]
        label = legend_label(s, rows.get(s.label), i == ref) + f", {spec.rms_mv:.3g} mV RMS"
        ax.step(f, p, where="mid", color=colors[i], lw=3 if i == ref else 1.5, label=label)
        if i == ref:
            continue
        fr = ref_spec.freq_mhz[1:]
        inside = fr <= min(float(f[-1]), float(fr[-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.interp(fr[inside], f, p) / ref_spec.power[1:][inside]
        rax.step(fr[inside], np.minimum(r, RATIO_TOP * 0.98), where="mid", color=colors[i], lw=1.5)
    rax.axhspan(1 - tolerance, 1 + tolerance, color=REF_BAND, alpha=0.4)
    _ratio_frame(rax)
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 30)  # room for the legend
    ax.set_ylabel(r"noise PSD [mV$^2$/MHz]")
    rax.set_ylabel(ratio_label, fontsize=min(14.0, 280.0 / max(len(ratio_label), 1)))
    rax.set_xlabel("frequency [MHz]")
    title = f"pulse-free segments; ratio band: ±{tolerance:.0%} accepted"
    ax.legend(loc="upper right", fontsize=12, title=title, title_fontsize=12)
    figure_label(ax, samples, rlabel=waveforms_label(samples))
    return fig


LINE_IN = 0.3
"""Height of a header line or a table row on the verdict page, inches."""


def verdict_page(rows: list[Row], header: list[str], labels: dict[str, str]) -> Any:
    """One page: the settings in `header` and the flagging rule, then the verdict table with
    the flags coloured (MISMATCH red)."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    body = [cells(r) for r in rows] or [["-"] * len(HEADER)]
    for line, row in zip(body, rows, strict=False):
        line[0] = labels.get(row.quantity, row.quantity)
    lines = [*header, *rule().split("; ")]
    head_in, table_in = LINE_IN * (len(lines) + 0.5), LINE_IN * (len(body) + 1)
    height = head_in + table_in + 0.2
    fig = plt.figure(figsize=(15.0, height))
    for i, text in enumerate(lines):
        y = 1 - (0.1 + LINE_IN * (i + 0.5)) / height
        fig.text(0.01, y, text, fontsize=11, va="center", weight="bold" if i == 0 else "normal")
    ax = fig.add_axes((0.01, 0.1 / height, 0.98, table_in / height))
    ax.axis("off")
    tab = ax.table(
        cellText=body, colLabels=HEADER, cellLoc="left", bbox=Bbox.from_bounds(0, 0, 1, 1)
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(10)
    chars = [max(len(line[c]) for line in [HEADER, *body]) + 2 for c in range(len(HEADER))]
    flag_col = HEADER.index("verdict")
    for (r, c), cell in tab.get_celld().items():
        cell.set_width(chars[c])
        cell.PAD = 0.5 / chars[c]  # half a character, whatever the column's width
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e6e6e6")
        elif c == flag_col:
            flag = body[r - 1][c]
            cell.set_facecolor(FLAG_COLORS.get(flag, "#f0f0f0"))
            if flag == MISMATCH:
                cell.set_text_props(weight="bold", color="#8b0000")
    return fig
