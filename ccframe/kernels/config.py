"""Typed parameters of the waveform kernels (steering sections of the reconstruction)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from ccframe.steering.base import Section


class CandidateConfig(Section):
    """Loose candidates for the ML peak finder: local maxima of A = wave - baseline with
    A > min_amplitude_rms * rms and a second difference below -min_curvature_rms * rms."""

    min_amplitude_rms: float = Field(3.0, ge=0.0)
    min_curvature_rms: float = Field(0.0, ge=0.0)


class DerivConfig(Section):
    """DERIV peak finding (physics.md section 9): thresholds N1..N4 in units of the noise."""

    n1: float = Field(3.0, ge=0.0)
    n2: float = Field(1.0, ge=0.0)
    n3: float = Field(0.5, ge=0.0)
    n4: float = Field(0.5, ge=0.0)


class D2Config(Section):
    """D2 peak finding (CEPC): T1 = t1_rms * rms on the amplitude, T2 = t2_rms * rms on the
    integral of the positive second difference."""

    t1_rms: float = Field(3.0, ge=0.0)
    t2_rms: float = Field(1.5, ge=0.0)


class WindowConfig(Section):
    """Windows around peaks: `before` + 1 + `after` samples of the baseline-subtracted
    waveform, divided by the waveform's rms (`rms`), by `scale_mv` (`fixed`) or not (`none`).
    Samples beyond the waveform repeat the edge sample (`replicate`) or are 0 (`zero`)."""

    before: int = Field(5, ge=0, le=512)
    after: int = Field(9, ge=0, le=512)
    normalization: Literal["rms", "fixed", "none"] = "rms"
    scale_mv: PositiveFloat = 8.0
    edge: Literal["replicate", "zero"] = "replicate"


class MatchConfig(Section):
    """One-to-one matching of peaks to true electrons: an electron is expected at sample
    (time_ns + pretrigger_ns + delay_ns) * sampling_ghz, and matches within the tolerance."""

    tolerance_samples: PositiveFloat = 3.0
    delay_ns: float = 2.0


class ClusterizeConfig(Section):
    """Peaks in time order join the current cluster while |t - t_highest| < c * sqrt(t)."""

    c_sqrt_ns: float = Field(0.23, ge=0.0)


class TimeListConfig(Section):
    """Peak times as counts in n_bins equal bins spanning the waveform window."""

    n_bins: PositiveInt = 1024
