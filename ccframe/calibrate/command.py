"""`ccframe calibrate`: read the data, fold, check, and write the calibrated steering file,
calibration.json and the report (docs/calibration.md)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.calibrate import output as out
from ccframe.calibrate.fit import Result, fold
from ccframe.calibrate.read import adc_step, read_sample
from ccframe.calibrate.report import draw_report, goodness
from ccframe.errors import OutputError
from ccframe.io.atomic import write_json, write_text
from ccframe.logs import Log
from ccframe.simulate.config import SimulateConfig
from ccframe.steering.schema import Steering

logger = logging.getLogger("ccframe")

DRIFT_TOLERANCE = 0.05
"""Warn when the last pulses of data and simulation differ by more than this fraction of
the simulated drift span (and by more than 3 standard errors)."""


@dataclass(frozen=True)
class Options:
    """How much calibrate reads and simulates."""

    max_events: int = 10_000
    sim_waveforms: int = 4000
    iterations: int = 8
    seed: int | None = None


def _adc(waves: np.ndarray, scale: float, rms: float) -> tuple[int, float] | None:
    """(bits, LSB) for the simulation when the data are ADC codes whose step matters (at
    least a tenth of the noise); the bits cover the data's range."""
    lsb = adc_step(waves, scale)
    if lsb is None or lsb < 0.1 * rms:
        return None
    top = float(np.max(np.abs(waves))) / lsb
    return int(min(32, max(2, math.ceil(math.log2(top + 1)) + 2))), lsb


def drift_check(result: Result, window_ns: float) -> tuple[dict[str, Any], list[str]]:
    """Compare the last pulse times of data and simulation (the x-t relation's maximum
    drift time); warn, never rescale."""
    d, s = result.data.statistics(), result.sim.statistics()
    if "last_pulse_ns" not in d or "last_pulse_ns" not in s:
        return {}, []
    (dv, de), (sv, se) = d["last_pulse_ns"], s["last_pulse_ns"]
    pre = result.params.values["pretrigger_ns"]
    span = max(sv - pre, 1e-9)
    diff = dv - sv
    check = {
        "last_pulse_quantile_ns": {"data": dv, "simulation": sv, "error": math.hypot(de, se)},
        "drift_span_ratio": (dv - pre) / span,
        "window_ns": window_ns,
    }
    warnings = []
    if abs(diff) > max(DRIFT_TOLERANCE * span, 3 * math.hypot(de, se)):
        warnings.append(
            f"the last pulses come {abs(diff):.0f} ns {'later' if diff > 0 else 'earlier'} in "
            f"the data than in the simulation ({dv:.0f} vs {sv:.0f} ns, 95% quantile): the x-t "
            "relation's maximum drift time (simulate.drift, detector.tube_radius_cm) may not "
            "fit this cell; calibrate does not rescale it"
        )
    if dv > 0.98 * window_ns:
        warnings.append("pulses reach the end of the window: the last-pulse check is limited by it")
    return check, warnings


def calibrate(
    config: Steering, source: str, output: Path, options: Options, force: bool, log: Log
) -> dict[str, Any]:
    """Fit the simulate: section of `config` to its data files; write the outputs."""
    targets = out.paths(output)
    for path in targets.values():
        if path.exists() and not force:
            raise OutputError(f"{path}: exists; use --force to replace it or choose another -o")
    t0 = time.perf_counter()
    sample = read_sample(config.data, options.max_events, source)
    inputs = {Path(f).resolve() for f in [source, *sample.files]}
    for path in targets.values():
        if path.resolve() in inputs:
            raise OutputError(f"{path}: is an input of this calibration; choose another -o")
    fs = sample.sampling_ghz
    n_base = max(1, round(config.data.baseline_window_ns * fs))
    base = config.simulate or SimulateConfig()
    log(
        f"calibrate: {len(sample.waves)} waveforms of {sample.n_samples} samples at {fs:g} GHz "
        f"from {len(sample.files)} file(s)"
    )
    rough = float(np.median(np.std(sample.waves[:, :n_base], axis=1)))
    adc = _adc(sample.waves, config.data.scale, rough)
    if adc is not None or base.digitization.adc_bits is not None:
        digit = {"adc_bits": adc[0] if adc else None, "adc_lsb_mv": adc[1] if adc else 0.5}
        base = base.model_copy(update={"digitization": base.digitization.model_copy(update=digit)})
    seed = config.seed if options.seed is None else options.seed
    result = fold(
        sample.waves,
        fs,
        n_base,
        base,
        seed,
        options.sim_waveforms,
        options.iterations,
        source,
        log,
    )
    window_ns = sample.n_samples / fs
    check, warnings = drift_check(result, window_ns)
    result.warnings += warnings
    if adc is not None:
        check["adc"] = {"bits": adc[0], "lsb_mv": adc[1]}
    good = goodness(result)
    errors = out.uncertainties(result)
    # Validated before anything is written; the steering file is written last.
    text = out.steering_text(config, source, result, output, sample.files, len(sample.waves), adc)
    info = out.calibration_json(
        source,
        sample.files,
        result,
        good,
        check,
        len(sample.waves),
        sample.n_samples,
        fs,
        targets,
    )
    title = f"ccframe calibrate: {', '.join(Path(f).name for f in sample.files)[:80]}"
    draw_report(result, errors, good, title, [targets["png"], targets["pdf"]])
    write_json(targets["json"], info)
    write_text(output, text)
    for warning in result.warnings:
        logger.warning("calibrate: %s", warning)
    v = result.params.values
    log(
        f"calibrate: noise {v['noise_rms_mv']:.3g} mV, rise {v['rise_ns']:.3g} ns, fall "
        f"{v['fall_ns']:.3g} ns, amplitude {v['amplitude_mv']:.3g} mV, pretrigger "
        f"{v['pretrigger_ns']:.3g} ns in {time.perf_counter() - t0:.0f} s -> {output}, "
        f"{targets['json']}, {targets['png']}"
    )
    log(
        f"calibrate: next: ccframe run {output}, then count the data with the `ccframe infer` "
        f"command in its header (data.pretrigger_ns = {v['pretrigger_ns']:.4g} ns: where the "
        "track crossed, for the clusterization)"
    )
    return info
