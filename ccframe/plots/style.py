"""HEP plot style (mplhep), the experiment label and atomic figure saving.

Importing this module chooses no matplotlib backend, so a notebook or script that imports
ccframe keeps its own. Figures are made with pyplot (mplhep's 2-D histograms draw their
colour bar through it) under whatever backend is in use; where none was chosen, matplotlib
picks one on the first figure, the non-interactive Agg when there is no display (batch jobs,
servers). `save` writes the files and closes the figure, so that pyplot lets it go (and a
notebook does not display it a second time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mplhep as hep

from ccframe.io.atomic import atomic_path

COLORS = {
    "ml": "#3f90da",
    "traditional": "#e76300",
    "truth": "#333333",
    "noise": "#bd1f01",
    "waveform": "#832db6",
    "peak_map": "#1b9e3e",
    "peak_sequence": "#0b4f8a",
}


def use_style() -> None:
    """mplhep's ROOT-like style."""
    hep.style.use("ROOT")


def axes(ax: Any = None, figsize: tuple[float, float] = (8.0, 6.5)) -> Any:
    """The given axes, or the axes of a new figure."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def experiment_label(ax: Any, simulation: bool = True, rlabel: str = "") -> Any:
    """'ccframe Simulation' (or 'Data') at the top left, `rlabel` at the top right."""
    return hep.label.exp_label(
        exp="ccframe",
        data=not simulation,
        text="" if simulation else "Data",
        com=None,
        rlabel=rlabel,
        loc=0,
        ax=ax,
        fontsize=16,
    )


def save(fig: Any, folder: Path, name: str, formats: tuple[str, ...]) -> list[Path]:
    """Write `fig` as folder/name.<format> for each format, atomically; close it."""
    paths = []
    for fmt in formats:
        target = folder / f"{name}.{fmt}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=110)
        paths.append(target)
    plt.close(fig)
    return paths
