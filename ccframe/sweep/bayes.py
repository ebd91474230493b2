"""Bayesian sweeps: optuna's TPE sampler, the study kept in RUN/optuna.db so that running the
sweep again resumes it (and `trials` larger than before adds the difference)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccframe.errors import CcframeError, SweepError
from ccframe.sweep.collect import lookup, run_folder
from ccframe.sweep.config import Parameter, SweepConfig
from ccframe.sweep.trials import Trial

STUDY_FILE = "optuna.db"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SweepError(
            "method bayes needs optuna: python -m pip install optuna (or use grid / random)"
        ) from None
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def study(run_dir: Path, name: str, sweep: SweepConfig) -> Any:
    """The sweep's study, created or loaded from RUN/optuna.db."""
    optuna = _optuna()
    storage = f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"
    study_ = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=sweep.seed),
        direction=sweep.direction,
        load_if_exists=True,
    )
    # A resumed study must not replay the first draws: seed by the trials it already holds.
    study_.sampler = optuna.samplers.TPESampler(seed=sweep.seed + len(study_.trials))
    return study_


def suggest(trial: Any, name: str, param: Parameter) -> Any:
    """A value for one parameter; a values list is sampled by index (values may be lists)."""
    if param.values is not None:
        index = trial.suggest_categorical(name, list(range(len(param.values))))
        return param.values[index]
    if param.is_int:
        return trial.suggest_int(name, int(param.min or 0), int(param.max or 0), log=param.log)
    return trial.suggest_float(name, float(param.min or 0), float(param.max or 0), log=param.log)


def tell(study_: Any, number: int, trial: Trial, sweep: SweepConfig) -> None:
    """Report a finished trial's metric to the study (a failure as FAIL)."""
    optuna = _optuna()
    value = None
    if trial.status() == "done":
        try:
            metrics = json.loads((run_folder(trial) / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        value = lookup(metrics, sweep.metric)
    if value is None:
        study_.tell(number, state=optuna.trial.TrialState.FAIL)
    else:
        study_.tell(number, value)


def pending(study_: Any) -> list[int]:
    """Numbers of trials asked but never told (an interrupted invocation)."""
    optuna = _optuna()
    return [t.number for t in study_.trials if t.state == optuna.trial.TrialState.RUNNING]


def run_bayes(
    study_: Any,
    sweep: SweepConfig,
    make_trial: Callable[[int, dict[str, Any]], Trial],
    existing: Callable[[int], Trial],
    run_batch: Callable[[list[Trial]], object],
    batch: int,
    log: Callable[[str], None],
) -> list[Trial]:
    """Ask, run and tell until the study holds `sweep.trials` trials; return all trials."""
    optuna = _optuna()
    for number in pending(study_):
        try:
            trial = existing(number)
        except SweepError:
            study_.tell(number, state=optuna.trial.TrialState.FAIL)
            continue
        run_batch([trial])
        tell(study_, number, trial, sweep)
    done = len(study_.trials)
    if done >= sweep.trials:
        log(f"sweep: the study already holds {done} trial(s) of {sweep.trials}")
    while len(study_.trials) < sweep.trials:
        n = min(batch, sweep.trials - len(study_.trials))
        asked = [study_.ask() for _ in range(n)]
        trials = []
        for opt in asked:
            params = {name: suggest(opt, name, p) for name, p in sweep.parameters.items()}
            try:
                trials.append(make_trial(opt.number, params))
            except CcframeError:
                for other in asked:
                    study_.tell(other.number, state=optuna.trial.TrialState.FAIL)
                raise
        run_batch(trials)
        for opt, trial in zip(asked, trials, strict=True):
            tell(study_, opt.number, trial, sweep)
    return [existing(t.number) for t in study_.trials]
