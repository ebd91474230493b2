"""An independent generator of beam-test-like ROOT files, for tests and benchmarks.

It does not use ccframe's simulator (`ccframe.simulate`): the physics is re-implemented here
in NumPy from the same published numbers (docs/physics.md, /work/shared/physics.md), so that
a chain calibrated and trained on ccframe's simulation can be checked against waveforms it
did not make. The electronics are written the way a digitizer records them: raw ADC codes
in a fixed-size branch, negative pulses, a baseline pedestal, coloured or band-limited noise
with a pickup line and a slow ripple, and a pulse shape evaluated sample by sample.

Physics (what a calibration cannot fit; the user states it): a track crosses a round tube
of radius R at an impact parameter uniform in [0, R); primary clusters are Poisson along
the chord with the Delphes cluster-density fit at the particle's beta*gamma, uniform in
position; cluster sizes follow the Fischle table (k <= 35, renormalised); each electron
arrives at Normal(t(r), sigma_t(r)) from the Garfield x-t table (PCHIP), clipped at 0; its
avalanche charge is Polya (Gamma of shape 1 + theta, mean 1).

Electronics (`Electronics`, what the presets change): sampling rate, samples, pretrigger,
the single-electron pulse (double exponential with rise/fall, an optional ion tail, an
optional RC low-pass, normalised so that a mean-gain electron peaks at `gain_mv`), noise
from a power spectrum plus a pickup line and a slow ripple (random phases), baseline,
polarity, ADC quantisation and storage type.

Outputs of `generate`: the waveform file (tree `h`, branch `ch0` by default), the hidden
truth in a separate file (`<stem>_truth.root`, tree `truth`) and the true settings in
`<stem>_settings.json`. `data_mapping` gives the `data:` section a user would write for the
waveform file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import uproot
from scipy.interpolate import PchipInterpolator

MASS_GEV = {"e": 0.000511, "mu": 0.10566, "pi": 0.13957, "K": 0.49368, "p": 0.93827}
"""Particle masses (GeV)."""
DENSITY_FIT = (0.628333, 15.43253, 3.4623e-6, 2.02641, 2.64968)
"""Delphes TrkUtil::Nclusters parameters for He/iC4H10 90/10 (clusters/cm)."""
FISCHLE_PERCENT = (
    *(76.60, 12.50, 4.60, 2.00, 1.20, 0.75, 0.50, 0.36, 0.25, 0.19),
    *(0.14, 0.10, 0.08, 0.06, 0.048, 0.043, 0.038, 0.034, 0.030),
    *(10.9 / k**2 for k in range(20, 36)),
)
"""P(k) in % for k = 1..35 electrons per cluster (Fischle et al. 1991, then 10.9/k^2)."""
XT_RADIUS_CM = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75)
XT_TIME_NS = (0.0, 9.5, 28.7, 82.6, 162.0, 277.0, 427.0, 626.0, 920.0, 1173.0)
XT_SIGMA_NS = (0.0, 1.0, 1.9, 3.4, 5.7, 8.8, 13.2, 19.3, 32.0, 46.0)
"""Garfield++ x-t relation (key4hep digitizer map) with (0, 0, 0) prepended."""
BLOCK = 256
"""Waveforms generated together (each block has its own random stream)."""


@dataclass(frozen=True)
class Physics:
    """What a user states as physics inputs: particle, momentum and the tube."""

    particle: str = "mu"
    momentum_gev: float = 165.0
    tube_radius_cm: float = 0.75
    density_fit: tuple[float, ...] = DENSITY_FIT
    cluster_size_percent: tuple[float, ...] = FISCHLE_PERCENT

    @property
    def beta_gamma(self) -> float:
        return self.momentum_gev / MASS_GEV[self.particle]

    @property
    def cluster_density_per_cm(self) -> float:
        """The Delphes fit n_cl(beta*gamma) in clusters/cm."""
        p1, p2, p3, p4, p5 = self.density_fit
        bg = self.beta_gamma
        beta_p4 = (bg / np.sqrt(1.0 + bg * bg)) ** p4
        return float(p1 / beta_p4 * (p2 - beta_p4 - np.log(p3 + bg ** (-p5))))


@dataclass(frozen=True)
class Electronics:
    """The digitizer and front end: everything a calibration is expected to fit."""

    sampling_ghz: float = 1.2
    n_samples: int = 1024
    pretrigger_ns: float = 50.0
    rise_ns: float = 1.0
    fall_ns: float = 5.0
    ion_tail_fraction: float = 0.0
    ion_tail_t0_ns: float = 2.0
    ion_tail_cut_ns: float = 200.0
    rc_ns: float | None = None
    gain_mv: float = 8.0
    polya_theta: float = 0.5
    noise_rms_mv: float = 1.0
    noise_freq_mhz: tuple[float, ...] = (0.0, 1000.0)
    noise_power: tuple[float, ...] = (1.0, 1.0)
    pickup_mv: float = 0.0
    pickup_mhz: float = 40.0
    ripple_mv: float = 0.0
    ripple_mhz: float = 1.5
    baseline_mv: float = 0.0
    polarity: Literal["positive", "negative"] = "negative"
    adc_bits: int | None = 16
    adc_lsb_mv: float = 1000.0 / 65536
    adc_zero_code: int = 32768
    storage: Literal["uint16", "int16", "float32"] = "uint16"
    tree: str = "h"
    branch: str = "ch0"

    @property
    def window_ns(self) -> float:
        return self.n_samples / self.sampling_ghz

    @property
    def total_noise_rms_mv(self) -> float:
        """Expected RMS of everything but the pulses about the nominal baseline: the spectral
        noise, the pickup line, the ripple and the quantisation."""
        var = self.noise_rms_mv**2 + (self.pickup_mv**2 + self.ripple_mv**2) / 2.0
        if self.adc_bits is not None:
            var += self.adc_lsb_mv**2 / 12.0
        return float(np.sqrt(var))


@dataclass(frozen=True)
class Preset:
    """A named beam-test-like setup: physics inputs and electronics."""

    name: str
    physics: Physics = field(default_factory=Physics)
    electronics: Electronics = field(default_factory=Electronics)


def drs4() -> Preset:
    """A DRS4-like board: 1.2 GSa/s, 1024 samples, 16-bit codes V = ADC/65536 - 0.5 V,
    negative fast pulses (rise 1.2 ns, fall 6 ns), higher gain than ccframe's default,
    coloured noise of 1.3 mV. A 1.2 cm tube, so that the longest drift fits the window."""
    electronics = Electronics(
        sampling_ghz=1.2,
        n_samples=1024,
        pretrigger_ns=50.0,
        rise_ns=1.2,
        fall_ns=6.0,
        gain_mv=11.0,
        noise_rms_mv=1.3,
        noise_freq_mhz=(0.0, 20.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0),
        noise_power=(6.0, 3.0, 2.0, 1.4, 1.0, 0.7, 0.45, 0.25, 0.1),
        baseline_mv=-3.2,
        adc_bits=16,
        adc_lsb_mv=1000.0 / 65536,
        adc_zero_code=32768,
        storage="uint16",
    )
    return Preset("drs4", Physics(tube_radius_cm=0.6), electronics)


def fast_adc() -> Preset:
    """A fast ADC: 2 GSa/s, 2048 samples, 14-bit signed codes stored as int16, slower
    negative pulses (rise 2 ns, fall 14 ns), lower gain, noise band-limited to ~250 MHz
    with a 37 MHz pickup line and a 1.7 MHz ripple, a +12 mV pedestal. A 1.3 cm tube."""
    electronics = Electronics(
        sampling_ghz=2.0,
        n_samples=2048,
        pretrigger_ns=40.0,
        rise_ns=2.0,
        fall_ns=14.0,
        gain_mv=6.0,
        noise_rms_mv=0.9,
        noise_freq_mhz=(0.0, 100.0, 150.0, 200.0, 250.0, 300.0),
        noise_power=(1.0, 1.0, 0.8, 0.45, 0.1, 0.0),
        pickup_mv=0.35,
        pickup_mhz=37.0,
        ripple_mv=0.5,
        ripple_mhz=1.7,
        baseline_mv=12.0,
        adc_bits=14,
        adc_lsb_mv=2000.0 / 16384,
        adc_zero_code=0,
        storage="int16",
    )
    return Preset("fast_adc", Physics(tube_radius_cm=0.65), electronics)


PRESETS = {"drs4": drs4, "fast_adc": fast_adc}


def preset(name: str) -> Preset:
    """A preset by name (`drs4`, `fast_adc`)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}") from None


# --- physics --------------------------------------------------------------------------------


@dataclass
class Tracks:
    """One block of events: per event, per cluster and per electron arrays (flat)."""

    impact_cm: np.ndarray  # (n,)
    chord_cm: np.ndarray  # (n,)
    n_clusters: np.ndarray  # (n,)
    n_electrons: np.ndarray  # (n,)
    electron_event: np.ndarray  # (E,) index of the event in the block
    electron_time_ns: np.ndarray  # (E,) after the track crossing
    electron_charge: np.ndarray  # (E,) in units of the mean gain
    first_cluster_time_ns: np.ndarray  # (n,) earliest primary arrival (inf if none)


def _xt() -> tuple[PchipInterpolator, PchipInterpolator]:
    return PchipInterpolator(XT_RADIUS_CM, XT_TIME_NS), PchipInterpolator(XT_RADIUS_CM, XT_SIGMA_NS)


def draw_tracks(rng: np.random.Generator, n: int, physics: Physics, theta: float) -> Tracks:
    """Impact parameters, clusters, electrons, arrival times and charges for n events."""
    R = physics.tube_radius_cm
    if XT_RADIUS_CM[-1] < R:
        raise ValueError(f"tube radius {R} cm exceeds the x-t table ({XT_RADIUS_CM[-1]} cm)")
    impact = rng.uniform(0.0, R, n)
    chord = 2.0 * np.sqrt(R * R - impact * impact)
    n_cl = rng.poisson(physics.cluster_density_per_cm * chord)
    cl_event = np.repeat(np.arange(n), n_cl)
    s = (rng.random(cl_event.size) - 0.5) * chord[cl_event]
    radius = np.hypot(impact[cl_event], s)
    p = np.asarray(physics.cluster_size_percent, float)
    size = rng.choice(p.size, size=cl_event.size, p=p / p.sum()) + 1
    e_cluster = np.repeat(np.arange(cl_event.size), size)
    t_of_r, sigma_of_r = _xt()
    r_e = radius[e_cluster]
    times = np.maximum(t_of_r(r_e) + sigma_of_r(r_e) * rng.standard_normal(r_e.size), 0.0)
    charge = rng.gamma(1.0 + theta, 1.0 / (1.0 + theta), r_e.size)
    first_of_cluster = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    first = np.full(n, np.inf)
    np.minimum.at(first, cl_event, times[first_of_cluster] if size.size else np.empty(0))
    return Tracks(
        impact_cm=impact,
        chord_cm=chord,
        n_clusters=n_cl.astype(np.int32),
        n_electrons=np.bincount(cl_event, weights=size, minlength=n).astype(np.int32),
        electron_event=cl_event[e_cluster],
        electron_time_ns=times,
        electron_charge=charge,
        first_cluster_time_ns=first,
    )


# --- electronics ----------------------------------------------------------------------------


def _double_exponential(t: np.ndarray, e: Electronics) -> np.ndarray:
    """Unit-integral double exponential, optionally convolved with an RC low-pass."""
    rise, fall = e.rise_ns, e.fall_ns
    if e.rc_ns is None:
        return (np.exp(-t / fall) - np.exp(-t / rise)) / (fall - rise)
    c = e.rc_ns * (1.0 + 1e-6) if e.rc_ns in (rise, fall) else e.rc_ns
    ec = np.exp(-t / c)
    slow = fall / (fall - c) * (np.exp(-t / fall) - ec)
    fast = rise / (rise - c) * (np.exp(-t / rise) - ec)
    return (slow - fast) / (fall - rise)


def _ion_tail(t: np.ndarray, e: Electronics) -> np.ndarray:
    """1/(t + t0) tail, switched on with the rise time, cut at ion_tail_cut_ns (unnormalised)."""
    tail = (1.0 - np.exp(-t / e.rise_ns)) / (t + e.ion_tail_t0_ns)
    return np.where(t < e.ion_tail_cut_ns, tail, 0.0)


def pulse_support_ns(e: Electronics) -> float:
    """Length after the arrival beyond which a pulse is neglected (< 1e-4 of its peak)."""
    slowest = max(e.fall_ns, e.rc_ns or 0.0)
    length = 12.0 * slowest
    return max(length, e.ion_tail_cut_ns) if e.ion_tail_fraction > 0 else length


def _raw_shape(t: np.ndarray, e: Electronics) -> np.ndarray:
    shape = _double_exponential(t, e)
    if e.ion_tail_fraction > 0:
        grid = np.linspace(0.0, e.ion_tail_cut_ns, 200_001)
        area = np.trapezoid(_ion_tail(grid, e), grid)
        shape = (1.0 - e.ion_tail_fraction) * shape + e.ion_tail_fraction * _ion_tail(t, e) / area
    return np.where(t >= 0.0, shape, 0.0)


def pulse_peak_norm(e: Electronics) -> float:
    """Maximum of the unnormalised pulse (on a 1 ps grid)."""
    grid = np.arange(0.0, pulse_support_ns(e), 0.001)
    return float(_raw_shape(grid, e).max())


def pulse_mv(t: np.ndarray, e: Electronics) -> np.ndarray:
    """The single-electron pulse in mV for a mean-gain electron, t ns after its arrival:
    peaks at e.gain_mv."""
    return e.gain_mv * _raw_shape(t, e) / pulse_peak_norm(e)


def pulse_area_mv_ns(e: Electronics) -> float:
    """Integral of `pulse_mv` (mV ns) over its support."""
    grid = np.linspace(0.0, pulse_support_ns(e), 400_001)
    return float(np.trapezoid(pulse_mv(grid, e), grid))


def synthesize(
    n: int,
    event: np.ndarray,
    time_ns: np.ndarray,
    charge: np.ndarray,
    e: Electronics,
) -> np.ndarray:
    """Sum of pulses (mV, positive) of electrons arriving at `time_ns` (after the track
    crossing) in events `event` of n waveforms, each pulse evaluated at every sample of its
    support."""
    out = np.zeros(n * e.n_samples)
    if time_ns.size == 0:
        return out.reshape(n, e.n_samples)
    norm = pulse_peak_norm(e)
    fs = e.sampling_ghz
    length = int(np.ceil(pulse_support_ns(e) * fs)) + 1
    t_window = time_ns + e.pretrigger_ns
    k0 = np.ceil(t_window * fs).astype(np.int64)
    step = max(1, 1_000_000 // length)  # electrons per slab: bounded memory
    j = np.arange(length)
    for lo in range(0, time_ns.size, step):
        sl = slice(lo, lo + step)
        k = k0[sl, None] + j[None, :]
        dt = k / fs - t_window[sl, None]
        amp = (e.gain_mv / norm) * charge[sl, None] * _raw_shape(dt, e)
        inside = k < e.n_samples
        index = event[sl, None] * e.n_samples + k
        out += np.bincount(index[inside], weights=amp[inside], minlength=out.size)
    return out.reshape(n, e.n_samples)


def noise_spectrum_amplitude(e: Electronics) -> np.ndarray:
    """sqrt of the relative power on the rfft grid of one waveform (0 at DC and Nyquist)."""
    freq = np.fft.rfftfreq(e.n_samples, d=1.0 / (e.sampling_ghz * 1000.0))
    power = np.interp(freq, e.noise_freq_mhz, e.noise_power, left=0.0, right=0.0)
    power = np.clip(power, 0.0, None)
    power[0] = 0.0
    if e.n_samples % 2 == 0:
        power[-1] = 0.0
    return np.sqrt(power)


def noise(rng: np.random.Generator, n: int, e: Electronics) -> np.ndarray:
    """(n, n_samples) noise in mV: Gaussian noise with the spectrum's shape and an expected
    variance of noise_rms_mv^2, plus the pickup line and the ripple with random phases."""
    ns = e.n_samples
    out = np.zeros((n, ns))
    amp = noise_spectrum_amplitude(e)
    if e.noise_rms_mv > 0 and amp.any():
        spec = amp * (rng.standard_normal((n, amp.size)) + 1j * rng.standard_normal((n, amp.size)))
        expected_var = 4.0 * np.sum(amp**2) / ns**2  # irfft of bins 0 < k < ns/2
        out += np.fft.irfft(spec, n=ns, axis=1) * (e.noise_rms_mv / np.sqrt(expected_var))
    t_us = np.arange(ns) / (e.sampling_ghz * 1000.0)
    for amplitude, mhz in ((e.pickup_mv, e.pickup_mhz), (e.ripple_mv, e.ripple_mhz)):
        if amplitude > 0:
            phase = rng.uniform(0.0, 2.0 * np.pi, (n, 1))
            out += amplitude * np.sin(2.0 * np.pi * mhz * t_us[None, :] + phase)
    return out


def digitize(volts_mv: np.ndarray, e: Electronics) -> np.ndarray:
    """mV -> stored values: ADC codes (rounded, offset by the zero code, clipped to the
    2^bits codes centred on it), or mV as float32 without an ADC."""
    if e.adc_bits is None:
        return volts_mv.astype(np.float32)
    half = 2 ** (e.adc_bits - 1)
    codes = np.rint(volts_mv / e.adc_lsb_mv) + e.adc_zero_code
    return np.clip(codes, e.adc_zero_code - half, e.adc_zero_code + half - 1).astype(e.storage)


def waveforms(rng: np.random.Generator, tracks: Tracks, e: Electronics) -> np.ndarray:
    """Stored waveforms of one block: baseline + polarity * (pulses + noise), digitized."""
    n = tracks.impact_cm.size
    signal = synthesize(
        n, tracks.electron_event, tracks.electron_time_ns, tracks.electron_charge, e
    )
    sign = -1.0 if e.polarity == "negative" else 1.0
    return digitize(e.baseline_mv + sign * (signal + noise(rng, n, e)), e)


# --- files ----------------------------------------------------------------------------------


def data_mapping(e: Electronics, files: list[str] | None = None) -> dict[str, Any]:
    """The `data:` section a user writes to read the waveform file with ccframe."""
    scale = e.adc_lsb_mv if e.adc_bits is not None else 1.0
    offset = -e.adc_zero_code * e.adc_lsb_mv if e.adc_bits is not None else 0.0
    mapping: dict[str, Any] = {
        "files": list(files or []),
        "tree": e.tree,
        "waveform_branch": e.branch,
        "sampling_ghz": e.sampling_ghz,
        "scale": scale,
        "offset_mv": offset,
        "polarity": e.polarity,
        "truth": "none",
    }
    return mapping


def true_settings(p: Preset) -> dict[str, Any]:
    """The generator's settings and derived quantities (what a calibration should find)."""
    e = p.electronics
    return {
        "preset": p.name,
        "physics": {
            **asdict(p.physics),
            "beta_gamma": p.physics.beta_gamma,
            "cluster_density_per_cm": p.physics.cluster_density_per_cm,
        },
        "electronics": asdict(e),
        "derived": {
            "window_ns": e.window_ns,
            "total_noise_rms_mv": e.total_noise_rms_mv,
            "pulse_area_mv_ns": pulse_area_mv_ns(e),
            "electrons_per_cluster": _mean_cluster_size(p.physics),
        },
        "data": data_mapping(e),
    }


def _mean_cluster_size(physics: Physics) -> float:
    p = np.asarray(physics.cluster_size_percent, float)
    return float(np.sum(np.arange(1, p.size + 1) * p) / p.sum())


@dataclass(frozen=True)
class Generated:
    """Paths written by `generate`."""

    waveforms: Path
    truth: Path
    settings: Path


def generate(
    path: str | Path, n: int, setup: Preset | str, seed: int = 1, block: int = BLOCK
) -> Generated:
    """Write n waveforms of `setup` to `path`, the truth beside it (`<stem>_truth.root`,
    tree `truth`, entries aligned) and the true settings (`<stem>_settings.json`)."""
    p = preset(setup) if isinstance(setup, str) else setup
    e = p.electronics
    path = Path(path)
    truth_path = path.with_name(f"{path.stem}_truth.root")
    settings_path = path.with_name(f"{path.stem}_settings.json")
    branch_type = np.dtype((np.dtype(e.storage if e.adc_bits else "float32"), (e.n_samples,)))
    with uproot.recreate(path) as out, uproot.recreate(truth_path) as truth_out:
        out.mktree(e.tree, {e.branch: branch_type})
        truth_out.mktree("truth", _truth_types())
        for i, lo in enumerate(range(0, n, block)):
            rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
            tracks = draw_tracks(rng, min(block, n - lo), p.physics, e.polya_theta)
            out[e.tree].extend({e.branch: waveforms(rng, tracks, e)})
            truth_out["truth"].extend(_truth_chunk(tracks, lo, p))
    settings_path.write_text(json.dumps(true_settings(p), indent=2) + "\n")
    return Generated(path, truth_path, settings_path)


def _truth_types() -> dict[str, str]:
    return {
        "entry": "int64",
        "n_clusters": "int32",
        "n_electrons": "int32",
        "momentum_gev": "float64",
        "impact_cm": "float64",
        "chord_cm": "float64",
        "first_cluster_time_ns": "float64",
    }


def _truth_chunk(tracks: Tracks, start: int, p: Preset) -> dict[str, np.ndarray]:
    n = tracks.impact_cm.size
    return {
        "entry": np.arange(start, start + n, dtype=np.int64),
        "n_clusters": tracks.n_clusters,
        "n_electrons": tracks.n_electrons,
        "momentum_gev": np.full(n, p.physics.momentum_gev),
        "impact_cm": tracks.impact_cm,
        "chord_cm": tracks.chord_cm,
        "first_cluster_time_ns": tracks.first_cluster_time_ns,
    }


def read_truth(generated: Generated | str | Path) -> dict[str, np.ndarray]:
    """The hidden truth of a generated file, as NumPy arrays in entry order."""
    path = generated.truth if isinstance(generated, Generated) else Path(generated)
    with uproot.open(path) as f:
        return f["truth"].arrays(library="np")


def with_electronics(p: Preset, **changes: Any) -> Preset:
    """A copy of a preset with some electronics settings changed (e.g. noise off in tests)."""
    return replace(p, electronics=replace(p.electronics, **changes))
