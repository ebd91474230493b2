"""The `data:` section: which ROOT files to read and how their branches map to ccframe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from ccframe.settings import Section

# Logical truth names and the branch that holds each in a ccframe-simulated file.
TRUTH_EVENT = (
    "event_id",
    "pdg",
    "momentum_gev",
    "beta_gamma",
    "impact_cm",
    "chord_cm",
    "n_clusters",
    "n_electrons",
    "pretrigger_ns",
)
TRUTH_CLUSTER = ("cluster_time_ns", "cluster_size", "cluster_position_cm", "cluster_radius_cm")
TRUTH_ELECTRON = ("electron_time_ns", "electron_cluster", "electron_primary", "electron_charge")
TRUTH_NAMES = TRUTH_EVENT + TRUTH_CLUSTER + TRUTH_ELECTRON


class DataConfig(Section):
    """Input waveforms. Raw values become mV as `raw * scale + offset_mv`; pulses are made
    positive (`polarity: negative` flips them); baseline and noise RMS come from the first
    `baseline_window_ns` (docs/algorithms.md, "Baseline and noise RMS")."""

    files: list[str] = Field(default_factory=list)
    tree: str = "sim"
    waveform_branch: str = "waveform"
    truth: Literal["auto", "none"] | dict[str, str] = "auto"
    sampling_ghz: PositiveFloat | None = None
    sampling_branch: str = "sampling_ghz"
    polarity: Literal["positive", "negative"] = "positive"
    scale: float = 1.0
    offset_mv: float = 0.0
    baseline_window_ns: PositiveFloat = 25.0
    max_events: PositiveInt | None = None
    chunk_size: int = Field(10_000, gt=0, le=10_000_000)
    on_bad_waveform: Literal["error", "skip"] = "error"

    @field_validator("truth")
    @classmethod
    def _known_truth(cls, v: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(v, dict):
            from ccframe.errors import closest

            for key in v:
                if key not in TRUTH_NAMES:
                    raise ValueError(
                        f"unknown truth name {key!r}{closest(key, TRUTH_NAMES)}; "
                        f"expected one of {', '.join(TRUTH_NAMES)}"
                    )
        return v

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("scale must not be 0")
        return v
