"""Typed parameters of the waveform kernels (steering sections of the reconstruction).

Every threshold named `*_rms` is in units of the waveform's own noise RMS (the `rms` of a
`WaveformBatch`, from its baseline window), so one set of values serves any gain or noise
level. Each field's docstring is its description in the schema.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ccframe.settings import Section


class _KernelSection(Section):
    model_config = ConfigDict(use_attribute_docstrings=True)


class CandidateConfig(_KernelSection):
    """Loose peak candidates for the ML peak finder (docs/algorithms.md, "Peak candidates").

    With A = wave - baseline, sample i (1 <= i <= n-2) is a candidate if
    A[i] > A[i-1] and A[i] >= A[i+1] (a local maximum, the first sample of a flat top),
    A[i] > min_amplitude_rms * rms, and -D2s[i] > min_curvature_rms * rms, where D2s is the
    central second difference of A smoothed with the binomial [1, 2, 1]/4 filter:
    D2s[i] = (A[i-2] - 2 A[i] + A[i+2]) / 4 (mV per sample^2; A[-1] = A[0] and A[n] = A[n-1],
    edge-replicated). A NaN sample among A[i-2..i+2] makes i no candidate.

    Defaults measured on 1000 default pions (seed 11, 31.6 electrons per waveform): 91
    candidates per waveform, a candidate within 3 samples of 90% of all electrons and of 89%
    of the electrons isolated by > 3 samples (97% of those with gain > 0.375 G). The
    remaining electrons are mostly low-gain (Polya: 14% peak below 2 mV) and cannot be kept
    without hundreds of noise candidates per waveform (1 rms: 290, 93%). The quickstart
    trains on candidates above 4.5 rms (30 per waveform): the classifier rejected most of the
    small pulses between 2.5 and 4.5 rms anyway (count resolution 0.155 instead of 0.153).
    """

    min_amplitude_rms: float = Field(2.5, ge=0.0, le=1000.0)
    """[rms] A[i] must exceed this many noise RMS."""
    min_curvature_rms: float = Field(0.0, ge=0.0, le=1000.0)
    """[rms] -D2s[i] must exceed this many noise RMS; 0 keeps only the sign test (D2s < 0)."""
    min_separation_samples: int = Field(0, ge=0, le=64)
    """Non-maximum suppression: a candidate is dropped if another candidate of the same
    waveform within this many samples has a higher sample value (ties: the earlier one
    stays); 0 keeps every candidate, and so does 1 (candidates are never adjacent)."""


class DerivConfig(_KernelSection):
    """DERIV peak finding, thresholds N1..N4 in units of the noise (docs/algorithms.md,
    "DERIV peak finding").

    D1[i] = (A[i+1] - A[i-1]) / (2 dt), D2[i] = (D1[i+1] - D1[i-1]) / (2 dt) (dt in ns),
    sigma_D1 = rms / (sqrt(2) dt), sigma_D2 = rms / (2 dt^2). Sample i (2 <= i <= n-3, where
    D2 is defined) is accepted if all of
    1. A[i] > n1 * rms,
    2. A[i] - (A[i-1] + A[i+1]) / 2 > n2 * rms,
    3. |D1[i]| < 2 n3 sigma_D1, or D1[i-1] > n3 sigma_D1, or D1[i+1] < -n3 sigma_D1,
    4. D2[i] < -n4 sigma_D2.
    A run of adjacent accepted samples is one peak, at the run's (first) maximum of A.
    Data sets used (8, 1.1, 0.1, 0.1) and (10, 1.2, 0, 0); the defaults are the code's.
    """

    n1: float = Field(3.0, ge=0.0, le=1000.0)
    """Condition 1: amplitude threshold, in noise RMS."""
    n2: float = Field(1.0, ge=0.0, le=1000.0)
    """Condition 2: height above the mean of the two neighbours, in noise RMS."""
    n3: float = Field(0.5, ge=0.0, le=1000.0)
    """Condition 3: first-derivative thresholds, in sigma_D1."""
    n4: float = Field(0.5, ge=0.0, le=1000.0)
    """Condition 4: second-derivative threshold, in sigma_D2."""


class D2Config(_KernelSection):
    """D2 peak finding (CEPC studies), in samples and noise RMS (docs/algorithms.md, "D2 peak
    finding").

    D1[k] = A[k+1] - A[k] where that is > 0 and A[k] >= T1, else 0 (k = 0..n-2);
    D2[k] = max(D1[k+1] - D1[k], 0) (k = 0..n-3); T1 = t1_rms * rms, T2 = t2_rms * rms (mV).
    D2 is summed over each stretch of consecutive positive values; when the sum first exceeds
    T2 the stretch emits one peak, reported at the first local maximum of A at or after
    sample k+1 (k: where the sum crossed T2): climb from k+1 while A[m+1] > A[m]. A peak that
    lands on the previous one (two stretches on one rising edge) is reported once. A rise
    counts only from samples at or above T1, so a pulse must have a rising step that starts
    at or above T1 (a one-sample jump from the baseline to a plateau is not seen).

    Default t2_rms = 0.85 (with t1_rms = 3) makes D2 + clusterization (c = 0.23) unbiased on
    default pions: 19.88 clusters per waveform for 19.76 true (2000 waveforms, seed 29), with
    25.1 peaks for 31.3 true electrons. Matching the mean peak count to the mean number of
    electrons instead needs t2_rms = 0.5 (and then over-counts clusters by 16%).
    """

    t1_rms: float = Field(3.0, ge=0.0, le=1000.0)
    """[rms] T1: D1 counts only where A >= t1_rms * rms."""
    t2_rms: float = Field(0.85, ge=0.0, le=1000.0)
    """[rms] T2: a stretch emits a peak once its integral of D2 exceeds t2_rms * rms (mV)."""


class WindowConfig(_KernelSection):
    """Windows around peaks for the LSTM: samples p - before .. p + after of A = wave -
    baseline (always baseline-subtracted), divided by the waveform's rms (`rms`; 1 where the
    rms is not > 0), by `scale_mv` (`fixed`) or by nothing (`none`). Samples beyond the
    waveform repeat the edge sample (`replicate`, edge-replicated) or are 0 (`zero`)."""

    before: int = Field(5, ge=0, le=512)
    """Samples before the peak sample."""
    after: int = Field(9, ge=0, le=512)
    """Samples after the peak sample."""
    normalization: Literal["rms", "fixed", "none"] = "rms"
    """What A is divided by: the waveform's noise RMS, `scale_mv`, or nothing."""
    scale_mv: float = Field(8.0, gt=0.0, le=1e6)
    """[mV] Divisor of A for normalization `fixed`."""
    edge: Literal["replicate", "zero"] = "replicate"
    """Samples outside the waveform: the edge sample's value, or 0."""

    @property
    def width(self) -> int:
        """Samples of one window: before + 1 + after."""
        return self.before + 1 + self.after


class MatchConfig(_KernelSection):
    """One-to-one matching of peaks (sample positions) to true electrons. An electron's pulse
    is expected to peak at sample (time_ns + pretrigger_ns + delay_ns) * sampling_ghz; pairs
    closer than the tolerance are taken in increasing distance (ties: earlier peak, then
    earlier electron), each peak and each electron at most once."""

    tolerance_samples: float = Field(3.0, gt=0.0, le=1000.0)
    """Largest |peak - expected| (samples) of a match, inclusive."""
    delay_ns: float = Field(2.0, ge=-1000.0, le=1000.0)
    """[ns] Electron arrival to pulse maximum: 2.0 for the default 1 ns / 5 ns shaping."""


class ClusterizeConfig(_KernelSection):
    """Clusterization (docs/algorithms.md, "Clusterization"): peaks in time order; a peak of
    height a joins the current cluster if |t - t_highest| < max(min_window_ns, c_sqrt_ns *
    sqrt(max(t, 0)) * (a_highest / a) ** amplitude_power), t in ns after the track crossing
    and t_highest, a_highest the time and height of the cluster's highest peak so far; else
    it opens a new cluster. amplitude_power 0 and min_window_ns 0: the fixed rule."""

    c_sqrt_ns: float = Field(0.23, ge=0.0, le=10.0)
    """[sqrt(ns)] c: 0.20-0.26 is typical for He/iC4H10 90/10; 0 makes every peak a cluster."""
    amplitude_power: float = Field(0.0, ge=0.0, le=4.0)
    """Adaptive clusterization: the window grows as (a_highest / a) ** amplitude_power for a
    peak smaller than the cluster's highest; 0: the fixed rule."""
    min_window_ns: float = Field(0.0, ge=0.0, le=1000.0)
    """[ns] Adaptive clusterization: the window is never narrower than this (near the wire,
    where c sqrt(t) vanishes); 0: no floor."""

    @property
    def adaptive(self) -> bool:
        """Whether the window depends on more than the drift time (c sqrt(t))."""
        return self.amplitude_power > 0 or self.min_window_ns > 0


class TimeListConfig(_KernelSection):
    """Peak times as counts in `n_bins` equal bins spanning the waveform window
    [0, n_samples / sampling_ghz) ns (time 0 = the first sample). The one binning rule:
    bin = floor(t_ns * (n_bins / window_ns)) in float64, clipped to [0, n_bins - 1]."""

    n_bins: int = Field(1024, gt=0, le=1_000_000)
    """Bins of the time list (the CNN's input length)."""
