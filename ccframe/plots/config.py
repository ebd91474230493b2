"""Steering section `plots:`: which figures formats to write and how many event displays."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ccframe.settings import Section


class PlotsConfig(Section):
    """Every plot the run's outputs allow, in RUN_DIR/plots, and RUN_DIR/report.html."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    formats: list[Literal["png", "pdf", "svg"]] = Field(default=["png", "pdf"], min_length=1)
    """File formats of each plot (report.html embeds the PNGs, so png is always written)."""
    event_displays: int = Field(2, ge=0, le=100)
    """Waveforms of the test split drawn with their candidates, peaks and true electrons."""
