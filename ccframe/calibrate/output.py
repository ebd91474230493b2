"""What calibrate writes: the calibrated steering file and calibration.json."""

from __future__ import annotations

import json
import math
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ccframe import __version__
from ccframe.calibrate.fit import FOLDED, Result
from ccframe.calibrate.models import peak_time
from ccframe.steering.loader import validate
from ccframe.steering.schema import Steering

DATA_KEPT = ("baseline_window_ns", "chunk_size", "on_bad_waveform")
"""data: keys that also apply to the simulated sample; the others describe the data files."""
DATA_MAPPING = (
    "tree",
    "waveform_branch",
    "sampling_ghz",
    "sampling_branch",
    "polarity",
    "scale",
    "offset_mv",
    "truth",
    "pretrigger_ns",
)
"""data: keys that map the data files onto ccframe's conventions (what infer needs)."""
KEY = {
    "baseline_mv": "simulate.digitization.baseline_mv",
    "noise_rms_mv": "simulate.noise.rms_mv",
    "slow_power": "simulate.noise.measured_power[0] (mV^2/MHz at 0 MHz)",
    "rise_ns": "simulate.pulse.rise_ns",
    "fall_ns": "simulate.pulse.fall_ns",
    "amplitude_mv": "simulate.pulse.amplitude_mv x simulate.gain.mean",
    "polya_shape": "1 + simulate.gain.polya_theta",
    "pretrigger_ns": "simulate.detector.pretrigger_ns",
}
"""Where each fitted parameter goes in the steering file."""
WIDE_TUNE: dict[str, Any] = {
    "n1": [2.0, 3.0, 4.0, 5.0, 6.0],
    "n2": [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5],
    "c_sqrt_ns": [0.0, 0.1, 0.15, 0.2, 0.23, 0.26, 0.3, 0.4, 0.5],
    "max_relative_bias": 0.02,
}
"""The tune grid of a calibrated steering file (keys its input leaves unset). The default
grid is made for the default electronics: slow pulses (rise 2 ns, fall 14 ns) need N2 below
0.5 and c up to 0.5, where the default grid has no point within 24% of the true count; the
2% bias bound keeps DERIV's own bias on the fitted simulation well inside what transfers to
the data (docs/calibration.md)."""


def paths(output: Path) -> dict[str, Path]:
    """The steering file and, next to it, <stem>.calibration.json/.png/.pdf."""
    stem = output.with_suffix("") if output.suffix in (".yaml", ".yml") else output
    return {
        "steering": output,
        "json": Path(f"{stem}.calibration.json"),
        "png": Path(f"{stem}.calibration.png"),
        "pdf": Path(f"{stem}.calibration.pdf"),
    }


def run_name(output: Path) -> str:
    """A steering `name` from the output file's name."""
    stem = output.name.split(".")[0] or "calibrated"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:100]
    return name if name[0].isalnum() else f"c{name}"[:100]


def _round(x: float, digits: int = 5) -> float:
    """x to `digits` significant digits (a readable steering file)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def fitted_section(result: Result, adc: tuple[int, float] | None) -> dict[str, Any]:
    """The simulate: keys calibrate sets."""
    cfg = result.config
    det, noise = cfg.detector, cfg.noise
    return {
        "detector": {
            "sampling_ghz": det.sampling_ghz,
            "window_ns": _round(det.window_ns, 9),
            "pretrigger_ns": _round(det.pretrigger_ns, 4),
        },
        "gain": {"polya_theta": _round(cfg.gain.polya_theta, 3)},
        "pulse": {
            "amplitude_mv": _round(cfg.pulse.amplitude_mv, 4),
            "rise_ns": _round(cfg.pulse.rise_ns, 4),
            "fall_ns": _round(cfg.pulse.fall_ns, 4),
            "polarity": "positive",
        },
        "noise": {
            "rms_mv": _round(noise.rms_mv, 4),
            "spectrum": "measured",
            "measured_mhz": [_round(f, 6) for f in noise.measured_mhz],
            "measured_power": [_round(p, 4) for p in noise.measured_power],
        },
        "digitization": {
            "baseline_mv": _round(cfg.digitization.baseline_mv, 4),
            "adc_bits": adc[0] if adc else None,
            **({"adc_lsb_mv": adc[1]} if adc else {}),
        },
    }


def calibrated_raw(
    config: Steering, result: Result, output: Path, adc: tuple[int, float] | None
) -> tuple[dict[str, Any], list[str]]:
    """The calibrated steering file as a mapping, and notes for its header."""
    raw = config.model_dump(mode="json", exclude_unset=True)
    notes: list[str] = []
    raw["name"] = run_name(output)
    if "{name}" not in str(raw.get("output", "{name}")):
        raw.pop("output")
    data = {k: v for k, v in raw.get("data", {}).items() if k in DATA_KEPT}
    raw.pop("data", None)
    if data:
        raw["data"] = data
    sim = raw.pop("simulate", {})
    sim = _merge(sim, fitted_section(result, adc))
    raw["simulate"] = sim
    if not any(k in raw for k in ("ml", "traditional", "tune")):
        raw.update(tune={}, traditional={}, ml={})
        notes.append(
            f"{output.name}: tune:, traditional: and ml: added with their defaults (the input "
            "had none)"
        )
    if "tune" in raw and raw["tune"] is not None:
        widened = [k for k in WIDE_TUNE if k not in raw["tune"]]
        raw["tune"] = {**raw["tune"], **{k: WIDE_TUNE[k] for k in widened}}
        if widened:
            notes.append(f"tune: {', '.join(widened)} widened for electronics unlike the default")
    delay = _round(peak_time(result.config.pulse.rise_ns, result.config.pulse.fall_ns), 3)
    for section in (("ml", "dataset", "match"), ("traditional", "match")):
        node = raw.get(section[0])
        if node is None:
            continue
        for part in section[1:]:
            node = node.setdefault(part, {})
        node.setdefault("delay_ns", delay)
    order = ["schema_version", "name", "seed", "output", "simulate", "data"]
    raw = {k: raw[k] for k in order if k in raw} | {k: v for k, v in raw.items() if k not in order}
    return raw, notes


def infer_flags(config: Steering) -> list[str]:
    """The data: mapping of the input as `--set data.KEY=VALUE` options."""
    given = config.data.model_dump(mode="json", exclude_unset=True)
    return [
        f"--set data.{k}=" + shlex.quote(v if isinstance(v, str) else json.dumps(v))
        for k, v in given.items()
        if k in DATA_MAPPING
    ]


def pretrigger_flag(config: Steering, result: Result) -> str:
    """`--set data.pretrigger_ns=X` with the fitted track time, when the input does not set
    it: without it the data's clusterization would count drift times from the window start,
    unlike the simulation it is tuned on."""
    if config.data.pretrigger_ns is not None:
        return ""
    return f" --set data.pretrigger_ns={result.params.values['pretrigger_ns']:.4g}"


def _lines(words: list[str], width: int = 86) -> list[str]:
    """Words joined into lines of at most `width` characters (a word is never split)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def steering_text(
    config: Steering,
    source: str,
    result: Result,
    output: Path,
    files: list[str],
    n_waveforms: int,
    adc: tuple[int, float] | None,
) -> str:
    """The calibrated steering file with its comment header; validated before it is
    returned, so that an invalid file is never written."""
    raw, notes = calibrated_raw(config, result, output, adc)
    validate(raw, str(output))
    out = paths(output)
    name = raw["name"]
    run_dir = str(raw.get("output", "runs/{name}")).replace("{name}", name)
    first = shlex.quote(files[0]) if files else "DATA.root"
    flags = infer_flags(config)
    pretrigger = pretrigger_flag(config, result)
    header = [
        f"Written by `ccframe calibrate` (ccframe {__version__}) from {source} on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"simulate: is fitted to {n_waveforms} waveforms of {', '.join(files)} "
        f"({'converged' if result.converged else 'NOT converged'});",
        f"values, uncertainties and goodness of fit: {out['json'].name}, report {out['png'].name}.",
        "The simulation is in the reader's frame (mV, positive pulses): data: here reads it",
        "as it is, with no scale, offset or polarity.",
        f"Train on it:    ccframe run {output}",
        f"Count the data: ccframe infer {run_dir} {first} -o counts.root --steering {source}"
        + pretrigger,
    ]
    if flags:
        flags += [pretrigger.strip()] if pretrigger else []
        header += ["  (or, instead of --steering, the data mapping:"]
        header += [f"  {line}" for line in _lines([*flags[:-1], flags[-1] + ")"])]
    header += notes
    text = "".join(f"# {line}\n" for line in header)
    return text + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=100)


def uncertainties(result: Result) -> dict[str, float]:
    """Statistical uncertainty of each fitted parameter: the data's and the last
    simulation's errors on its statistic, combined."""
    d, s = result.data.statistics(), result.sim.statistics()
    out: dict[str, float] = {}
    for name, (stat, additive) in FOLDED.items():
        if stat not in d or stat not in s or (name == "polya_shape" and not result.theta_free):
            continue
        (dv, de), (sv, se) = d[stat], s[stat]
        value = result.params.values[name]
        if additive:
            out[name] = math.hypot(de, se)
        elif dv > 0 and sv > 0:
            out[name] = abs(value) * math.hypot(de / dv, se / sv)
    return out


def calibration_json(
    source: str,
    files: list[str],
    result: Result,
    goodness: dict[str, float],
    checks: dict[str, Any],
    n_waveforms: int,
    n_samples: int,
    sampling_ghz: float,
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Everything measured and fitted, for calibration.json."""
    d, s = result.data.statistics(), result.sim.statistics()
    errors = uncertainties(result)
    fitted = {
        name: {
            "key": KEY[name],
            "value": value,
            "uncertainty": errors.get(name),
            "direct": result.direct.get(name),
            "fitted": name != "polya_shape" or result.theta_free,
        }
        for name, value in result.params.values.items()
    }
    return {
        "ccframe": __version__,
        "input": source,
        "files": files,
        "waveforms": n_waveforms,
        "samples": n_samples,
        "sampling_ghz": sampling_ghz,
        "converged": result.converged,
        "thresholds_mv": {
            "noise_unit": result.settings.rms_ref_mv,
            "neighbours": result.settings.low_mv,
            "pulses": result.settings.high_mv,
        },
        "isolated_pulses": {
            "data": len(result.data.pulses.amplitude),
            "simulation": len(result.sim.pulses.amplitude),
        },
        "fitted": fitted,
        "measured": {k: {"data": d[k], "simulation": s.get(k)} for k in d},
        "goodness": goodness,
        "checks": checks,
        "warnings": result.warnings,
        "problems": {"data": result.data.problems, "simulation": result.sim.problems},
        "iterations": result.history,
        "outputs": {k: str(v) for k, v in outputs.items()},
    }
