"""Forward folding: simulate with candidate parameters, measure the simulation exactly as
the data, and correct the parameters until both agree (docs/calibration.md, "Forward
folding")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ccframe.calibrate.measure import HIGH_RMS, Measurement, Settings, measure
from ccframe.calibrate.models import ShapeFit, peak_time
from ccframe.calibrate.solver import Group, groups
from ccframe.calibrate.spectrum import compact
from ccframe.errors import InputError
from ccframe.kernels.baseline import baseline_rms
from ccframe.logs import Log
from ccframe.signal.spectrum import noise_spectrum
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator

THETA_FREE_BELOW = 0.4
"""polya_theta is fitted only when the pulse threshold is below this fraction of the mean
single-electron amplitude (otherwise the spectrum shows only the Polya tail)."""
MIN_PULSES = 100
"""Isolated pulses the data must show."""
TOLERANCE = 0.005
"""Relative agreement of every statistic (or half a standard error) that stops the
iterations."""
REFRESH = 0.15
"""The isolation windows are set again (and the data measured again) when the fitted rise or
fall has moved this much (relative) from the shape they were set for ..."""
MAX_REFRESH = 2
"""... at most this many times."""
WARN_PULL = 3.0
WARN_RELATIVE = 0.03
"""Warn when a statistic of the chosen simulation is WARN_PULL standard errors and
WARN_RELATIVE (relative) off the data's."""

FOLDED = {
    "baseline_mv": ("baseline_mv", True),
    "noise_rms_mv": ("noise_rms_mv", False),
    "slow_power": ("slow_noise_var", False),
    "rise_ns": ("rise_ns", False),
    "fall_ns": ("fall_ns", False),
    "amplitude_mv": ("amplitude_mv", False),
    "polya_shape": ("amplitude_shape", False),
    "pretrigger_ns": ("first_pulse_ns", True),
}
"""Fitted parameter -> (the statistic it is folded with, additive or multiplicative)."""
COUPLED = (
    ("noise_rms_mv", "slow_power"),
    ("rise_ns", "fall_ns"),
    ("amplitude_mv", "polya_shape"),
)
"""Parameters corrected together (their statistics depend on both)."""


@dataclass
class Params:
    """The simulator parameters calibrate fits; `power` is the noise density on the
    measurement's frequency grid `freq_mhz`."""

    values: dict[str, float]
    freq_mhz: np.ndarray
    power: np.ndarray

    def copy(self) -> Params:
        return Params(dict(self.values), self.freq_mhz.copy(), self.power.copy())


@dataclass
class Result:
    """The outcome of a calibration."""

    params: Params
    config: SimulateConfig
    settings: Settings
    data: Measurement
    sim: Measurement
    direct: dict[str, float]
    theta_free: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False
    warnings: list[str] = field(default_factory=list)
    mismatch: Mismatch | None = None


@dataclass(frozen=True)
class Mismatch:
    """How far a simulation's statistics are from the data's."""

    worst: str
    """The statistic with the largest relative difference ..."""
    relative: float
    """... and that difference (relative, or per unit of the value for additive ones)."""
    agree: bool
    """Every statistic within TOLERANCE or half a combined standard error."""
    chi2: float
    """Sum of the squared differences in combined standard errors."""
    max_pull: float
    """Largest difference in combined standard errors."""


def simulate_config(base: SimulateConfig, p: Params, n_samples: int, fs: float) -> SimulateConfig:
    """`base` with the fitted electronics (positive pulses, the reader's mV frame)."""
    v = p.values
    power = p.power.copy()
    power[0] = v["slow_power"]
    f, power = compact(p.freq_mhz, power)
    raw = base.model_dump()
    raw["detector"].update(
        sampling_ghz=fs, window_ns=n_samples / fs, pretrigger_ns=float(v["pretrigger_ns"])
    )
    raw["pulse"].update(
        amplitude_mv=float(v["amplitude_mv"]) / base.gain.mean,
        rise_ns=float(v["rise_ns"]),
        fall_ns=float(v["fall_ns"]),
        polarity="positive",
    )
    raw["gain"]["polya_theta"] = float(max(v["polya_shape"] - 1.0, 0.0))
    raw["noise"].update(
        rms_mv=float(v["noise_rms_mv"]),
        spectrum="measured",
        measured_mhz=[float(x) for x in f],
        measured_power=[float(x) for x in power],
    )
    raw["digitization"]["baseline_mv"] = float(v["baseline_mv"])
    return SimulateConfig.model_validate(raw)


def check_data(m: Measurement, waves: np.ndarray, source: str) -> ShapeFit:
    """The data's pulse-shape fit; refuse data without enough pulses, with a hint at the
    likely cause."""
    n = len(m.pulses.amplitude)
    if n >= MIN_PULSES and m.shape is not None:
        return m.shape
    dev = waves[: min(len(waves), 2000)] - m.baseline_mv[: min(len(waves), 2000), None]
    hint = ""
    if float(np.mean(dev**3)) < 0:
        hint = "; the pulses look negative-going: set data.polarity"
    raise InputError(
        f"{source}: {n} isolated pulses above {HIGH_RMS:g} noise RMS in {m.n_waveforms} "
        f"waveforms; calibrate needs at least {MIN_PULSES} (read more with --max-events){hint}"
    )


def direct_estimates(data: Measurement, k_input: float) -> dict[str, float]:
    """First guesses from the data alone (a measurement that passed `check_data`)."""
    stats = data.statistics()
    rise, fall = stats["rise_ns"][0], stats["fall_ns"][0]
    tp = peak_time(rise, fall)
    return {
        "baseline_mv": stats["baseline_mv"][0],
        "noise_rms_mv": stats["noise_rms_mv"][0],
        "slow_power": float(data.noise.power[1]),
        "rise_ns": rise,
        "fall_ns": fall,
        "amplitude_mv": stats.get("amplitude_mv", (float(np.median(data.pulses.amplitude)),))[0],
        "polya_shape": k_input,
        "pretrigger_ns": max(stats.get("first_pulse_ns", (tp, 0.0))[0] - tp, 0.0),
    }


def noise_unit(waves: np.ndarray, fs: float, n_base: int, source: str) -> float:
    """The data's noise RMS (pulse-free segments of up to 2000 waveforms), the unit of
    every threshold."""
    sample = np.ascontiguousarray(waves[:2000], dtype=np.float32)
    baseline, rms = baseline_rms(sample, n_base)
    noise = noise_spectrum(sample, baseline, rms, fs)
    if noise.segments == 0 or not noise.rms_mv > 0:
        raise InputError(
            f"{source}: no pulse-free 200 ns segment in {len(sample)} waveforms; the noise "
            "cannot be measured (check data.scale, data.baseline_window_ns)"
        )
    return noise.rms_mv


def start(
    waves: np.ndarray, fs: float, n_base: int, base: SimulateConfig, source: str
) -> tuple[Settings, Measurement, dict[str, float], bool]:
    """Measure the data twice (windows first from the input's pulse shape, then from the
    data's); decide whether the Polya shape is constrained; the direct estimates."""
    rms = noise_unit(waves, fs, n_base, source)
    k_input = 1.0 + base.gain.polya_theta
    settings = Settings(fs, n_base, rms, base.pulse.rise_ns, base.pulse.fall_ns, k_input)
    data = measure(waves, settings)
    shape = check_data(data, waves, source)
    settings = replace(settings, rise_ns=shape.rise_ns, fall_ns=shape.fall_ns)
    data = measure(waves, settings)
    check_data(data, waves, source)
    direct = direct_estimates(data, k_input)
    theta_free = settings.high_mv < THETA_FREE_BELOW * direct["amplitude_mv"]
    return settings, data, direct, theta_free


def fold(
    waves: np.ndarray,
    fs: float,
    n_base: int,
    base: SimulateConfig,
    seed: int,
    n_sim: int,
    iterations: int,
    source: str,
    log: Log,
) -> Result:
    """Calibrate `base`'s electronics on the data `waves` (mV, positive pulses): direct
    estimates, then up to `iterations` corrections from simulations of `n_sim` waveforms."""
    n_samples = waves.shape[1]
    settings, data, direct, theta_free = start(waves, fs, n_base, base, source)
    k_input = 1.0 + base.gain.polya_theta
    p = Params(dict(direct), data.noise.freq_mhz.copy(), data.noise.power.copy())
    d_stats = data.statistics()
    log(
        f"calibrate: data: {data.n_waveforms} waveforms, {len(data.pulses.amplitude)} isolated "
        f"pulses, noise {d_stats['noise_rms_mv'][0]:.3g} mV; direct rise "
        f"{direct['rise_ns']:.3g} ns, fall {direct['fall_ns']:.3g} ns, amplitude "
        f"{direct['amplitude_mv']:.3g} mV"
    )
    if not theta_free:
        log(
            f"calibrate: gain.polya_theta kept at {k_input - 1:g}: pulses above "
            f"{settings.high_mv:.3g} mV show only the Polya tail (above "
            f"{settings.high_mv / direct['amplitude_mv']:.2f} of the mean amplitude)"
        )
    result = Result(p, base, settings, data, data, direct, theta_free)
    solver = solver_groups(theta_free)
    refreshes, best = 0, math.inf
    for it in range(iterations + 1):
        config = simulate_config(base, p, n_samples, fs)
        sim_waves = Simulator(config, seed).generate(0, n_sim).waveform
        sim = measure(sim_waves, settings)
        s_stats = sim.statistics()
        row: dict[str, Any] = {"iteration": it, **p.values}
        row.update({f"sim_{k}": v[0] for k, v in s_stats.items()})
        result.history.append(row)
        m = compare(d_stats, s_stats, theta_free)
        log(f"calibrate: iteration {it}: largest mismatch {m.worst} {m.relative:+.2%}")
        if m.chi2 < best:  # the best iteration so far (measured with the current windows)
            best = m.chi2
            result.config, result.sim, result.params, result.mismatch = config, sim, p, m
        if m.agree or it == iterations:
            break
        p = corrected(p, solver, d_stats, s_stats, data.noise.power, sim.noise.power)
        if refreshes < MAX_REFRESH and _off(settings, p):
            # The windows follow the fitted shape: measure the data again, start afresh.
            refreshes, best = refreshes + 1, math.inf
            settings = replace(settings, rise_ns=p.values["rise_ns"], fall_ns=p.values["fall_ns"])
            data = measure(waves, settings)
            check_data(data, waves, source)
            d_stats = data.statistics()
            result.data, result.settings = data, settings
            solver = solver_groups(theta_free)
    m = result.mismatch or compare(d_stats, s_stats, theta_free)
    result.converged = m.agree
    if m.max_pull > WARN_PULL and abs(m.relative) > WARN_RELATIVE:
        result.warnings.append(
            f"the simulation still differs from the data by {m.relative:+.1%} in {m.worst} "
            f"({m.max_pull:.1f} standard errors) after {iterations} iterations; see the report"
        )
    return result


def solver_groups(theta_free: bool) -> list[Group]:
    """The correction groups: the coupled pairs, every other parameter alone."""
    free = [p for p in FOLDED if theta_free or p != "polya_shape"]
    spec: list[tuple[str, ...]] = [tuple(p for p in pair if p in free) for pair in COUPLED]
    spec += [(p,) for p in free if not any(p in pair for pair in COUPLED)]
    return groups([tuple((p, *FOLDED[p]) for p in g) for g in spec])


def corrected(
    p: Params,
    solver: list[Group],
    data: dict[str, tuple[float, float]],
    sim: dict[str, tuple[float, float]],
    d_power: np.ndarray,
    s_power: np.ndarray,
) -> Params:
    """One correction step of every parameter and of the noise spectrum's shape."""
    new = p.copy()
    for group in solver:
        new.values.update(group.step(p.values, sim, data))
    v = new.values
    v["noise_rms_mv"] = max(v["noise_rms_mv"], 1e-6)
    v["rise_ns"] = max(v["rise_ns"], 0.02)
    v["fall_ns"] = max(v["fall_ns"], 1.05 * v["rise_ns"])
    v["polya_shape"] = float(np.clip(v["polya_shape"], 1.0, 50.0))
    v["slow_power"] = max(v["slow_power"], 1e-9)
    v["pretrigger_ns"] = max(v["pretrigger_ns"], 0.0)
    # Noise powers add (the spectrum given, ADC steps, leakage): move each bin by the
    # difference, within a factor 10 per step.
    new.power = np.clip(p.power + (d_power - s_power), 0.1 * p.power, 10.0 * p.power)
    return new


def compare(
    d: dict[str, tuple[float, float]], s: dict[str, tuple[float, float]], theta_free: bool
) -> Mismatch:
    """Data against simulation over the statistics of the fitted parameters."""
    worst, rel, ok, chi2, pull = "", 0.0, True, 0.0, 0.0
    for name, (stat, additive) in FOLDED.items():
        if stat not in d or stat not in s or (name == "polya_shape" and not theta_free):
            continue
        (dv, de), (sv, se) = d[stat], s[stat]
        scale = max(abs(dv), 1.0) if additive else abs(dv)
        r = (sv - dv) / scale if scale else 0.0
        err = math.hypot(de, se)
        ok &= abs(sv - dv) <= max(TOLERANCE * scale, 0.5 * err)
        if err > 0:
            chi2 += ((sv - dv) / err) ** 2
            pull = max(pull, abs(sv - dv) / err)
        if abs(r) >= abs(rel):
            worst, rel = stat, r
    return Mismatch(worst, rel, ok, chi2, pull)


def _off(settings: Settings, p: Params) -> bool:
    """The measurement's windows were set for a shape more than REFRESH off the fit."""
    return any(
        abs(math.log(p.values[key] / getattr(settings, key))) > math.log(1 + REFRESH)
        for key in ("rise_ns", "fall_ns")
    )
