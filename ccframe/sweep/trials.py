"""Trials: parameter paths checked against the schema, values drawn (grid, random), and one
concrete steering file per trial in RUN/trials/NNNN/."""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccframe.errors import SteeringError, SweepError, closest
from ccframe.io.atomic import write_json, write_text
from ccframe.runfolder.rundir import LOCK_FILE, FolderLock, describe_writer, read_status
from ccframe.steering.loader import (
    _data_path,
    _model_in,
    absolute_paths,
    dump_steering,
    validate,
)
from ccframe.steering.schema import Steering
from ccframe.sweep.config import Parameter, SweepConfig

TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
KEEP_ON_RETRY = ("steering.yaml", TRIAL_FILE, LOCK_FILE)
WAIT_FOR_WRITER_S = 60.0
"""How long a sweep waits for a trial's earlier process (stopped with its sweep) to end."""


@dataclass
class Trial:
    """One point of the sweep and its folder."""

    number: int
    params: dict[str, Any]
    folder: Path

    @property
    def steering_file(self) -> Path:
        return self.folder / "steering.yaml"

    def status(self) -> str:
        """done, failed, running, interrupted (its process is gone) or pending (from the
        run's run.json)."""
        record = read_status(self.folder)
        return "pending" if record is None else str(record.get("status", "unknown"))


def trial_folder(run_dir: Path, number: int) -> Path:
    return run_dir / TRIALS_DIR / f"{number:04d}"


def check_paths(sweep: SweepConfig) -> None:
    """Every parameter must name a key of the steering schema."""
    for dotted in sweep.parameters:
        parts = dotted.split(".")
        if parts[0] in {"sweep", "output", "schema_version"}:
            raise SteeringError(f"sweep.parameters.{dotted}: '{parts[0]}' cannot be swept")
        model: Any = Steering
        for depth, part in enumerate(parts):
            where = ".".join(parts[: depth + 1])
            if model is None:
                parent = ".".join(parts[:depth])
                raise SteeringError(
                    f"sweep.parameters.{dotted}: {parent} is a value, not a section"
                )
            fields = model.model_fields
            if part not in fields:
                raise SteeringError(
                    f"sweep.parameters.{dotted}: unknown steering key '{where}'"
                    f"{closest(part, fields)}"
                )
            model = _model_in(fields[part].annotation)


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key; a mapping value is merged into an existing section (a partial
    mapping such as {lstm_units: 32, dense: [64, 1]} for ml.classifier)."""
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        merged = copy.deepcopy(node[last])
        for key, item in value.items():
            set_path(merged, str(key), item)
        node[last] = merged
    else:
        node[last] = copy.deepcopy(value)


def check_values(base: dict[str, Any], sweep: SweepConfig) -> None:
    """Each value (or both ends of a range) must be a valid value of its key; checks across
    keys (e.g. one dropout rate per dense layer) wait for the whole trial."""
    from pydantic import ValidationError

    for dotted, param in sweep.parameters.items():
        tries = param.values if param.values is not None else [param.min, param.max]
        for value in tries:
            raw = copy.deepcopy(base)
            set_path(raw, dotted, value)
            try:
                Steering.model_validate(raw)
            except ValidationError as exc:
                paths = [".".join(_data_path(e["loc"], raw)) for e in exc.errors()]
                if any(p == dotted or p.startswith(dotted + ".") for p in paths):
                    validate(raw, f"sweep.parameters.{dotted}")


def grid(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every combination of the parameters' values (the last parameter varies fastest)."""
    names = list(sweep.parameters)
    lists = [sweep.parameters[n].values or [] for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]


def draw(param: Parameter, rng: random.Random) -> Any:
    """One random value of a parameter."""
    if param.values is not None:
        return copy.deepcopy(rng.choice(param.values))
    lo, hi = float(param.min or 0), float(param.max or 0)
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if param.log else rng.uniform(lo, hi)
    if param.is_int:
        return min(max(round(x), int(lo)), int(hi))
    return x


def random_draws(sweep: SweepConfig) -> list[dict[str, Any]]:
    rng = random.Random(sweep.seed)
    return [
        {name: draw(p, rng) for name, p in sweep.parameters.items()} for _ in range(sweep.trials)
    ]


def trial_steering(
    base: dict[str, Any], sweep: SweepConfig, number: int, params: dict[str, Any], folder: Path
) -> Steering:
    """The concrete steering of one trial: parameters set, no sweep section, input paths
    absolute, output in its folder, threads pinned to request_cpus, validated (errors name
    the trial)."""
    raw = copy.deepcopy(base)
    raw.pop("sweep", None)
    for dotted, value in params.items():
        set_path(raw, dotted, value)
    absolute_paths(raw)
    raw["name"] = f"{str(base['name'])[:95]}.{number:04d}"
    raw["output"] = str(folder.resolve())
    if sweep.vary_seed and "seed" not in params:
        raw["seed"] = (int(base["seed"]) + number) % 2**63
    if isinstance(raw.get("ml"), dict) and not raw["ml"].get("threads"):
        raw["ml"]["threads"] = sweep.request_cpus
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items())
    return validate(raw, f"trial {number:04d} ({shown})")


def write_trial(
    base: dict[str, Any], sweep: SweepConfig, run_dir: Path, number: int, params: dict[str, Any]
) -> Trial:
    """Write RUN/trials/NNNN/{steering.yaml,trial.json}; a finished trial is left alone, an
    unfinished one is reset (its old outputs removed)."""
    folder = trial_folder(run_dir, number)
    trial = Trial(number, params, folder)
    steering = trial_steering(base, sweep, number, params, folder)
    record = {"number": number, "parameters": params, "seed": steering.seed}
    if trial.status() == "done":
        if not (folder / TRIAL_FILE).is_file():  # rerun alone with `ccframe run --force`
            write_json(folder / TRIAL_FILE, record)
        elif _recorded(folder) != json.loads(json.dumps(params)):
            raise SweepError(
                f"{folder}: trial {number:04d} already ran with other parameters (the sweep "
                "changed); sweep into another folder: --set output=..."
            )
        return trial
    if folder.is_dir():
        wait_for_writer(folder)
        for entry in folder.iterdir():
            if entry.name not in KEEP_ON_RETRY:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    write_text(trial.steering_file, dump_steering(steering))
    write_json(folder / TRIAL_FILE, record)
    return trial


def wait_for_writer(folder: Path, timeout_s: float = WAIT_FOR_WRITER_S) -> None:
    """Wait until no process writes the trial folder (a trial of a killed sweep receives
    SIGTERM and records its failure); refuse to touch it while one still does."""
    lock = FolderLock(folder)
    deadline = time.monotonic() + timeout_s
    while lock.held_elsewhere():
        if time.monotonic() > deadline:
            raise SweepError(
                f"{folder}: still written by {describe_writer(read_status(folder))} after "
                f"{timeout_s:.0f} s; is another ccframe sweep or run using this folder?"
            )
        time.sleep(0.2)


def _recorded(folder: Path) -> Any:
    try:
        return json.loads((folder / TRIAL_FILE).read_text()).get("parameters")
    except (OSError, ValueError):
        return None


def load_trials(run_dir: Path) -> list[Trial]:
    """The trials written under RUN/trials, by number."""
    trials = []
    root = run_dir / TRIALS_DIR
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        info = folder / TRIAL_FILE
        if not (folder.name.isdigit() and info.is_file()):
            continue
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError) as exc:
            raise SweepError(f"{info}: unreadable trial record ({exc})") from None
        trials.append(Trial(int(data["number"]), dict(data["parameters"]), folder))
    return trials
