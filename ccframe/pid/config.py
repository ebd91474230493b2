"""Steering section `pid:`: tracks of several species and momenta through many cells, and the
separation power of each counting method (docs/algorithms.md, "Particle identification")."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from ccframe.settings import RunFile, Section
from ccframe.simulate.config import Particle


class PidConfig(Section):
    """Each (species, momentum) point simulates `tracks` tracks of `cells` cells (one waveform
    per cell, its own impact parameter), with the `simulate:` section's detector, gas and
    electronics. Per track: the summed count over cells and dN/dx (clusters per cm of total
    chord) for the truth, DERIV and D2 + clusterization, and the ML chain of the same run."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    species: list[Particle] = Field(default=["pi", "K"], min_length=2)
    """Particles simulated at every momentum."""
    momenta_gev: list[float] = Field(default=[1.0, 2.0, 3.0, 5.0, 10.0, 20.0], min_length=1)
    """[GeV/c] Track momenta."""
    pairs: list[Annotated[list[Particle], Field(min_length=2, max_length=2)]] = Field(
        default=[["K", "pi"]], min_length=1
    )
    """Species pairs whose separation is measured."""
    tracks: int = Field(100, gt=0, le=1_000_000)
    """Tracks per species and momentum."""
    cells: int = Field(112, gt=0, le=100_000)
    """Cells (waveforms) per track (IDEA: 112 layers)."""
    truncation: float = Field(1.0, gt=0.0, le=1.0)
    """Fraction of a track's cells kept, those with the lowest counts per cm (1: all)."""
    bootstrap: int = Field(200, gt=0, le=100_000)
    """Bootstrap resamplings of the tracks for the uncertainty of S."""
    output: RunFile = "pid_tracks.root"
    """The simulated tracks, in the run folder (tree as in `simulate`, plus track_id)."""

    @model_validator(mode="after")
    def _pairs_are_simulated(self) -> PidConfig:
        for a, b in self.pairs:
            if a == b or a not in self.species or b not in self.species:
                raise ValueError(
                    f"pair ({a}, {b}): both must be different and among species {self.species}"
                )
        return self
