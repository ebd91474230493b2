"""Steering sections `traditional:` and `tune:`."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator

from ccframe.kernels.config import ClusterizeConfig, D2Config, DerivConfig, MatchConfig
from ccframe.settings import RunFile, Section

Algorithm = Literal["deriv", "d2"]
MAX_GRID = 100_000
"""Largest tune grid (threshold sets x clusterization constants)."""


class TraditionalConfig(Section):
    """DERIV or D2 peak finding followed by clusterization, evaluated against truth.

    `thresholds`: a `tuned.yaml` written by the tune stage; its values replace the
    algorithm's thresholds and c. Without it, a tune stage in the same run supplies them."""

    algorithm: Algorithm = "deriv"
    """Peak finder: `deriv` (derivative conditions N1..N4, the `deriv:` keys) or `d2` (summed
    second differences, the `d2:` keys); either is followed by clusterization."""
    deriv: DerivConfig = DerivConfig()
    """Thresholds of the DERIV peak finder (used when algorithm is deriv)."""
    d2: D2Config = D2Config()
    """Thresholds of the D2 peak finder (used when algorithm is d2)."""
    clusterize: ClusterizeConfig = ClusterizeConfig()
    """Merging of peaks into clusters."""
    match: MatchConfig = MatchConfig()
    """Matching of peaks to true electrons, for the peak labels and the efficiency and
    purity (inputs with truth only)."""
    thresholds: str | None = None
    """A tuned.yaml of an earlier tune stage (path relative to the working directory, copied
    into the run folder); its thresholds and c replace the ones above. Unset: those of a tune
    stage in the same run, else the ones above."""
    output: RunFile = "traditional.root"
    """Per-waveform counts and per-peak results (tree `traditional`), in the run folder."""
    momentum_bins: PositiveInt = 8
    """Log-spaced momentum bins of the count metrics versus momentum."""

    @property
    def finder(self) -> DerivConfig | D2Config:
        """The peak finder's parameters for the chosen algorithm."""
        return self.deriv if self.algorithm == "deriv" else self.d2


class TuneConfig(Section):
    """Grid scan of the traditional algorithm's thresholds and c on a calibration sample:
    the set with the smallest relative resolution of (N_reco - N_true)/N_true (`objective`:
    Gaussian-core sigma, or RMS, which waveforms with very few clusters dominate) among those
    with |relative bias| <= max_relative_bias wins (relative bias: sum N_reco / sum N_true
    - 1). See docs/algorithms.md, "Tuning the traditional thresholds"."""

    algorithm: Algorithm = "deriv"
    """Peak finder whose thresholds are scanned: `deriv` (grid n1 x n2 x n3 x n4) or `d2`
    (grid t1_rms x t2_rms), each times c_sqrt_ns."""
    n1: list[float] = Field(default=[2.0, 3.0, 4.0, 5.0], min_length=1)
    """[rms] DERIV amplitude thresholds to try (traditional.deriv.n1)."""
    n2: list[float] = Field(default=[0.5, 1.0, 1.5], min_length=1)
    """[rms] DERIV heights above the neighbours' mean to try (traditional.deriv.n2)."""
    n3: list[float] = Field(default=[0.0, 0.5], min_length=1)
    """DERIV first-derivative thresholds to try, in sigma_D1 (traditional.deriv.n3)."""
    n4: list[float] = Field(default=[0.0, 0.5], min_length=1)
    """DERIV second-derivative thresholds to try, in sigma_D2 (traditional.deriv.n4)."""
    t1_rms: list[float] = Field(default=[2.0, 3.0, 4.0, 5.0], min_length=1)
    """[rms] D2 thresholds T1 to try (traditional.d2.t1_rms)."""
    t2_rms: list[float] = Field(default=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0], min_length=1)
    """[rms] D2 thresholds T2 to try (traditional.d2.t2_rms)."""
    c_sqrt_ns: list[float] = Field(default=[0.0, 0.1, 0.15, 0.2, 0.23, 0.26, 0.3], min_length=1)
    """[sqrt(ns)] Clusterization constants c to try (traditional.clusterize.c_sqrt_ns)."""
    amplitude_power: list[float] = Field(default=[0.0], min_length=1)
    """Adaptive clusterization exponents to try (traditional.clusterize.amplitude_power); a
    grid with a value other than 0 here or in min_window_ns is adaptive: the run then keeps
    the best point of both rules (see `tuned.yaml`'s fixed_clusterization)."""
    min_window_ns: list[float] = Field(default=[0.0], min_length=1)
    """[ns] Adaptive clusterization window floors to try (traditional.clusterize.min_window_ns)."""
    objective: Literal[
        "relative_resolution_core", "relative_resolution_rms", "calibrated_resolution_core"
    ] = "relative_resolution_core"
    """What the best point minimises: the Gaussian-core width of (N_reco - N_true)/N_true,
    its RMS (which waveforms with very few clusters dominate), or calibrated_resolution_core:
    the core width once the count's linear response to N_true is divided out, which rewards
    following the truth and not only a narrow spread (for particle identification; the bias
    limit does not apply to it, since the calibration removes any bias)."""
    max_relative_bias: float = Field(0.05, gt=0.0)
    """Points count only if |sum N_reco / sum N_true - 1| is at most this (0.05 = 5%)."""
    max_events: PositiveInt = 2000
    """Waveforms of the calibration sample: the first ones of the input (needs truth)."""
    output: RunFile = "tuned.yaml"
    """The best thresholds and c with their calibration figures, in the run folder (the
    grid table goes to tune.csv)."""

    @model_validator(mode="after")
    def _bounded_grid(self) -> TuneConfig:
        points = self.grid_points
        if points > MAX_GRID:
            raise ValueError(
                f"the {self.algorithm} grid has {points} points; at most {MAX_GRID} are scanned"
            )
        return self

    @property
    def grid_points(self) -> int:
        """Threshold sets x clusterization constants the scan evaluates."""
        lists = (
            (self.n1, self.n2, self.n3, self.n4)
            if self.algorithm == "deriv"
            else (self.t1_rms, self.t2_rms)
        )
        clusterize = (self.c_sqrt_ns, self.amplitude_power, self.min_window_ns)
        return math.prod(len(v) for v in (*lists, *clusterize))

    @property
    def adaptive(self) -> bool:
        """Whether the grid holds adaptive clusterization points."""
        return any(self.amplitude_power) or any(self.min_window_ns)

    @field_validator(
        "n1", "n2", "n3", "n4", "t1_rms", "t2_rms", "c_sqrt_ns", "amplitude_power", "min_window_ns"
    )
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(x < 0 for x in v):
            raise ValueError("grid values must be >= 0")
        return v

    @field_validator("amplitude_power", "min_window_ns")
    @classmethod
    def _clusterize_range(cls, v: list[float], info: ValidationInfo) -> list[float]:
        high = ClusterizeConfig.model_fields[str(info.field_name)].metadata[-1].le
        if any(x > high for x in v):
            raise ValueError(f"grid values must be <= {high}")
        return v
