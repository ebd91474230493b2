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
# Labelled peaks (the community's Garfield++ samples): the position of each peak, as a sample
# index or a time in ns from the window's start, and its label 0 noise, 1 primary, 2 secondary.
TRUTH_PEAK = ("peak_sample", "peak_time_ns", "peak_label")
TRUTH_NAMES = TRUTH_EVENT + TRUTH_CLUSTER + TRUTH_ELECTRON + TRUTH_PEAK


class DataConfig(Section):
    """Input waveforms. Raw values become mV as `raw * scale + offset_mv`; pulses are made
    positive (`polarity: negative` flips them); baseline and noise RMS come from the first
    `baseline_window_ns` (docs/algorithms.md, "Baseline and noise RMS")."""

    files: list[str] = Field(default_factory=list)
    """ROOT files to read: paths or globs (`garfield/*.root`); empty: the simulated sample."""
    tree: str = "sim"
    """Name of the TTree or RNTuple that holds the waveforms."""
    waveform_branch: str = "waveform"
    """Branch with one array of samples per entry (fixed size or std::vector)."""
    truth: Literal["auto", "none"] | dict[str, str] = "auto"
    """Monte Carlo truth: auto (the branches of a ccframe-simulated file), none, or a mapping
    logical name -> branch. The classifier's labels come from true electrons
    (electron_time_ns, electron_primary, electron_cluster, pretrigger_ns) or from labelled
    peaks (peak_sample or peak_time_ns, with peak_label 0 noise / 1 primary / 2 secondary);
    the counter's target is n_clusters."""
    sampling_ghz: PositiveFloat | None = None
    """[GHz] Sampling rate; unset: read from `sampling_branch`."""
    sampling_branch: str = "sampling_ghz"
    """Branch with the sampling rate (in `sampling_unit`) when `sampling_ghz` is unset."""
    sampling_unit: Literal["ghz", "ns_per_sample"] = "ghz"
    """Unit of the values in `sampling_branch`: ghz (samples per ns), or ns_per_sample (the
    `sampling_rate` branch of the Garfield++ clusterization samples). `sampling_ghz` is
    always in GHz."""
    polarity: Literal["positive", "negative"] = "positive"
    """Pulse polarity of the input; negative pulses are flipped."""
    scale: float = 1.0
    """[mV per raw unit] The samples in mV are raw * scale + offset_mv."""
    offset_mv: float = 0.0
    """[mV] Added after scaling."""
    baseline_window_ns: PositiveFloat = 25.0
    """[ns] Start of each waveform that gives its baseline and noise RMS."""
    tail_cancellation_ns: PositiveFloat | None = None
    """[ns] Divide each pulse's exponential fall of this time constant out of the waveforms
    as they are read (docs/algorithms.md, "Tail cancellation"), so that pulses a few ns
    apart separate; every algorithm and network then sees the filtered waveforms. Set it to
    the pulse's fall time (simulate.pulse.fall_ns, or what `ccframe calibrate` fits on
    data); unset: the waveforms as recorded."""
    pretrigger_ns: float | None = Field(None, ge=0.0)
    """[ns] Window time at which the track crossed the cell, for inputs without
    `pretrigger_ns` truth (beam-test data: where the trigger puts it; `ccframe calibrate`
    measures it). Clusterization counts peak times from it; unset: from the window start."""
    max_events: PositiveInt | None = None
    """Read at most this many waveforms (all if unset)."""
    chunk_size: int = Field(10_000, gt=0, le=10_000_000)
    """Waveforms read per chunk."""
    on_bad_waveform: Literal["error", "skip"] = "error"
    """A waveform with NaN or inf samples stops the run (error) or is dropped (skip)."""

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
            positions = [k for k in ("peak_sample", "peak_time_ns") if k in v]
            if len(positions) > 1:
                raise ValueError(
                    "map one of peak_sample (sample index) and peak_time_ns (ns), not both"
                )
            if bool(positions) != ("peak_label" in v):
                raise ValueError(
                    "labelled peaks need both a position (peak_sample or peak_time_ns) and "
                    "peak_label (0 noise, 1 primary, 2 secondary)"
                )
        return v

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("scale must not be 0")
        return v
