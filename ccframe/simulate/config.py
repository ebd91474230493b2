"""Typed simulator parameters; every default, and where it comes from, is in docs/physics.md."""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from ccframe.settings import RunFile, Section
from ccframe.simulate.physics import MASS_GEV, MIN_BETA_GAMMA

MAX_SAMPLES = 10_000_000
"""Samples per waveform the simulator makes (1 ms at 10 GS/s)."""

Particle = Literal["e", "mu", "pi", "K", "p"]

FISCHLE_PERCENT = (
    76.60,
    12.50,
    4.60,
    2.00,
    1.20,
    0.75,
    0.50,
    0.36,
    0.25,
    0.19,
    0.14,
    0.10,
    0.08,
    0.06,
    0.048,
    0.043,
    0.038,
    0.034,
    0.030,
)


def _fischle_default() -> list[float]:
    """P(k) in % for k = 1..35: the Fischle table, then 10.9/k^2 from k = 20."""
    return list(FISCHLE_PERCENT) + [10.9 / k**2 for k in range(20, 36)]


class MomentumSpectrum(Section):
    """Momentum in GeV/c: `fixed` uses min_gev; `uniform` / `log_uniform` draw in [min, max]."""

    distribution: Literal["fixed", "uniform", "log_uniform"] = "uniform"
    """How momenta are drawn: fixed (every track at min_gev), uniform in [min_gev, max_gev],
    or log_uniform (uniform in log p over that range)."""
    min_gev: PositiveFloat = 4.0
    """[GeV/c] Lowest momentum (the momentum of every track when fixed); beta*gamma must stay
    >= 0.5 for each particle (the cluster-density fit's validity)."""
    max_gev: PositiveFloat = 180.0
    """[GeV/c] Highest momentum (uniform, log_uniform)."""

    @model_validator(mode="after")
    def _ordered(self) -> MomentumSpectrum:
        if self.distribution != "fixed" and self.max_gev < self.min_gev:
            raise ValueError(f"max_gev ({self.max_gev}) must be >= min_gev ({self.min_gev})")
        return self


class Detector(Section):
    """Cell geometry and readout window."""

    tube_radius_cm: float = Field(0.75, gt=0.0, le=100.0)
    """[cm] Radius R of the drift tube (the wire on its axis); at most the last drift.radius_cm."""
    impact_min_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Lowest impact parameter (track-wire distance) as a fraction of R; impact parameters are
    uniform between the two fractions."""
    impact_max_fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Highest impact parameter as a fraction of R (1: tracks up to the tube wall)."""
    sampling_ghz: float = Field(1.2, gt=0.0, le=100.0)
    """[GHz] Sampling rate of the digitizer (samples per ns; 1.2 GHz = 0.833 ns per sample)."""
    window_ns: float = Field(2000.0, gt=0.0, le=1e6)
    """[ns] Length of the digitized window; samples per waveform = window_ns x sampling_ghz."""
    pretrigger_ns: float = Field(50.0, ge=0.0)
    """[ns] Window time at which the track crosses the cell (t = 0 of the truth times); the
    samples before it hold only noise (the baseline window)."""

    @model_validator(mode="after")
    def _impact_range(self) -> Detector:
        if self.impact_max_fraction <= self.impact_min_fraction:
            raise ValueError("impact_max_fraction must be > impact_min_fraction")
        if self.pretrigger_ns >= self.window_ns:
            raise ValueError("pretrigger_ns must be < window_ns")
        return self

    @property
    def n_samples(self) -> int:
        return round(self.window_ns * self.sampling_ghz)

    @model_validator(mode="after")
    def _bounded_waveform(self) -> Detector:
        if not 1 <= self.n_samples <= MAX_SAMPLES:
            raise ValueError(
                f"window_ns x sampling_ghz gives {self.n_samples} samples per waveform; "
                f"between 1 and {MAX_SAMPLES} are supported"
            )
        return self


class Ionization(Section):
    """Cluster density fit n_cl(beta*gamma) (clusters/cm) and cluster-size distribution."""

    density_fit: list[float] = Field(
        default=[0.628333, 15.43253, 3.4623e-6, 2.02641, 2.64968], min_length=5, max_length=5
    )
    """P1..P5 of the cluster density n_cl(beta*gamma) = P1 / beta^P4 (P2 - beta^P4 - ln(P3 +
    (beta*gamma)^-P5)), clusters per cm (He/iC4H10 90/10, Delphes TrkUtil)."""
    density_scale: PositiveFloat = 1.0
    """Factor on the cluster density (another gas mixture, or a scan of the density)."""
    cluster_size_percent: list[float] = Field(default_factory=_fischle_default, min_length=1)
    """P(k) in % of a cluster holding k = 1, 2, ... electrons (renormalised); default: Fischle
    et al. for k <= 19, then 10.9/k^2 up to k = 35."""

    @field_validator("cluster_size_percent")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(p < 0 for p in v) or sum(v) <= 0:
            raise ValueError("cluster sizes need non-negative probabilities with a positive sum")
        return v


class Drift(Section):
    """x-t relation r -> (t, sigma_t), interpolated with PCHIP; (0, 0) is prepended."""

    radius_cm: list[float] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75]
    """[cm] Drift radii of the x-t table, strictly increasing ((0, 0, 0) is prepended)."""
    time_ns: list[float] = [9.5, 28.7, 82.6, 162.0, 277.0, 427.0, 626.0, 920.0, 1173.0]
    """[ns] Drift time to the wire from each radius (Garfield++ map, He/iC4H10 90/10)."""
    sigma_ns: list[float] = [1.0, 1.9, 3.4, 5.7, 8.8, 13.2, 19.3, 32.0, 46.0]
    """[ns] Spread of the drift time at each radius (diffusion)."""
    diffusion: bool = True
    """Draw each electron's arrival time from Normal(t(r), sigma(r)); false: every electron of
    a cluster arrives at t(r)."""

    @model_validator(mode="after")
    def _table(self) -> Drift:
        n = len(self.radius_cm)
        if n < 2 or len(self.time_ns) != n or len(self.sigma_ns) != n:
            raise ValueError("radius_cm, time_ns and sigma_ns need the same length (>= 2)")
        if any(b <= a for a, b in zip([0.0, *self.radius_cm], self.radius_cm, strict=False)):
            raise ValueError("radius_cm must be positive and strictly increasing")
        if any(b < a for a, b in zip([0.0, *self.time_ns], self.time_ns, strict=False)):
            raise ValueError("time_ns must be non-negative and increasing")
        if any(s < 0 for s in self.sigma_ns):
            raise ValueError("sigma_ns must be non-negative")
        return self


class Gain(Section):
    """Polya avalanche gain: Gamma(shape 1 + theta) with the given mean, relative to the
    nominal gain at which a single electron peaks at pulse.amplitude_mv; `mean` != 1 is a
    domain-shift knob that scales every pulse (e.g. a beam-test-like gain)."""

    polya_theta: float = Field(0.5, ge=0.0)
    """Polya parameter theta: avalanche charges are Gamma(shape 1 + theta) (0: exponential)."""
    mean: PositiveFloat = 1.0
    """Mean gain relative to the nominal one (1: an electron of mean charge peaks at
    pulse.amplitude_mv); scales every pulse."""


class Pulse(Section):
    """Single-electron pulse A (exp(-t/fall) - exp(-t/rise)) / norm, plus an optional ion tail."""

    amplitude_mv: PositiveFloat = 8.0
    """[mV] Peak height of the pulse of one electron of nominal charge."""
    rise_ns: PositiveFloat = 1.0
    """[ns] Rise time constant of the double exponential."""
    fall_ns: PositiveFloat = 5.0
    """[ns] Fall time constant (larger than rise_ns); with 1 and 5 ns the pulse peaks 2.0 ns
    after the electron arrives."""
    ion_tail_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of the pulse integral in a 1/(t + t0) ion tail (0: no tail)."""
    ion_tail_t0_ns: PositiveFloat = 0.2
    """[ns] t0 of the ion tail 1/(t + t0)."""
    ion_tail_cut_ns: PositiveFloat = 200.0
    """[ns] The ion tail ends this long after the electron's arrival."""
    polarity: Literal["positive", "negative"] = "positive"
    """Sign of the recorded pulses: negative flips pulses and noise (as beam-test digitizers
    record them; read them back with data.polarity: negative)."""

    @model_validator(mode="after")
    def _distinct(self) -> Pulse:
        if self.fall_ns <= self.rise_ns:
            raise ValueError("fall_ns must be larger than rise_ns")
        return self


class Noise(Section):
    """Gaussian noise scaled to rms_mv, white or with a spectrum: `coloured` uses the
    band-power template, `measured` a power spectrum given at measured_mhz (written by
    `ccframe calibrate`, docs/calibration.md)."""

    rms_mv: float = Field(1.0, ge=0.0)
    """[mV] Noise RMS of the simulated waveform (0: no noise)."""
    spectrum: Literal["coloured", "white", "measured"] = "coloured"
    """coloured: the band_power template (most power at low frequency); white: flat;
    measured: the spectrum in measured_mhz and measured_power."""
    band_power: list[float] = Field(
        default=[1.9, 0.70, 0.44, 0.48, 0.33, 0.24, 0.19, 0.14, 0.07, 0.01], min_length=1
    )
    """Relative noise power in consecutive bands of band_width_mhz from 0 Hz (coloured); the
    last band extends to the Nyquist frequency."""
    band_width_mhz: PositiveFloat = 100.0
    """[MHz] Width of each band of band_power."""
    low_frequency_excess: float = Field(4.0, ge=0.0)
    """Factor on the power below low_frequency_cut_mhz (coloured)."""
    low_frequency_cut_mhz: float = Field(20.0, ge=0.0)
    """[MHz] Frequency below which low_frequency_excess applies."""
    measured_mhz: list[float] = Field(default_factory=list, max_length=100_000)
    """[MHz] Frequencies of the measured spectrum, increasing (spectrum: measured)."""
    measured_power: list[float] = Field(default_factory=list, max_length=100_000)
    """Relative noise power at each of measured_mhz, interpolated linearly (held at the end
    values beyond them); the overall scale is set by rms_mv."""

    @field_validator("band_power")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(p < 0 for p in v) or sum(v) <= 0:
            raise ValueError("band_power needs non-negative values with a positive sum")
        return v

    @model_validator(mode="after")
    def _measured(self) -> Noise:
        f, p = self.measured_mhz, self.measured_power
        if len(f) != len(p):
            raise ValueError("measured_mhz and measured_power need the same length")
        if self.spectrum == "measured":
            if len(f) < 2:
                raise ValueError("spectrum: measured needs measured_mhz and measured_power")
            if any(b <= a for a, b in pairwise(f)) or f[0] < 0:
                raise ValueError("measured_mhz must be non-negative and strictly increasing")
            if any(x < 0 for x in p) or sum(p) <= 0:
                raise ValueError("measured_power needs non-negative values with a positive sum")
        return self


class Digitization(Section):
    """Baseline offset and optional ADC quantization (adc_bits with adc_lsb_mv)."""

    baseline_mv: float = 0.0
    """[mV] Constant offset added to every sample."""
    adc_bits: PositiveInt | None = Field(None, le=32)
    """ADC resolution: samples are rounded to adc_lsb_mv steps and clipped to the 2^bits codes
    of a signed ADC centred on 0 mV; unset: no quantization."""
    adc_lsb_mv: PositiveFloat = 0.5
    """[mV] Step of one ADC code (with adc_bits)."""


class SimulateConfig(Section):
    """The `simulate:` stage: what to generate and where to write it."""

    n_waveforms: int = Field(10_000, gt=0, le=1_000_000_000)
    """Waveforms (events, one track crossing one cell each) to simulate."""
    output: RunFile = "sim.root"
    """ROOT file written, in the run folder."""
    tree: str = "sim"
    """Name of the TTree written."""
    chunk_size: int = Field(5_000, gt=0, le=10_000_000)
    """Waveforms generated and written at a time (rounded down to a multiple of 256, at
    least 256); bounds the memory, not the result."""
    compression: Literal["lz4", "zlib", "zstd", "none"] = "lz4"
    """Compression of the ROOT file."""
    particle: Particle | list[Particle] = "pi"
    """Particle species (e, mu, pi, K, p); a list mixes them, each waveform's drawn at random
    with equal probability."""
    momentum: MomentumSpectrum = MomentumSpectrum()
    """Momentum spectrum of the tracks."""
    detector: Detector = Detector()
    ionization: Ionization = Ionization()
    drift: Drift = Drift()
    gain: Gain = Gain()
    pulse: Pulse = Pulse()
    noise: Noise = Noise()
    digitization: Digitization = Digitization()

    @property
    def particles(self) -> list[str]:
        return [self.particle] if isinstance(self.particle, str) else list(self.particle)

    @model_validator(mode="after")
    def _fit_validity(self) -> SimulateConfig:
        if self.detector.tube_radius_cm > self.drift.radius_cm[-1] * (1 + 1e-9):
            raise ValueError(
                f"detector.tube_radius_cm {self.detector.tube_radius_cm} exceeds the x-t table "
                f"(drift.radius_cm ends at {self.drift.radius_cm[-1]}); extend the table"
            )
        if isinstance(self.particle, list) and not self.particle:
            raise ValueError("particle list is empty")
        for name in self.particles:
            bg = self.momentum.min_gev / MASS_GEV[name]
            if bg < MIN_BETA_GAMMA:
                p_min = MIN_BETA_GAMMA * MASS_GEV[name]
                raise ValueError(
                    f"momentum.min_gev {self.momentum.min_gev} gives beta*gamma {bg:.3g} for "
                    f"{name}, below the cluster-density fit's validity ({MIN_BETA_GAMMA}); "
                    f"use min_gev >= {p_min:.4g}"
                )
        return self
