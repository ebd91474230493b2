"""`ccframe sweep STEERING.yaml`: write the trials' steering files into the sweep folder, run
them (local processes or an HTCondor DAG) and collect the leaderboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccframe.errors import SweepError
from ccframe.io.atomic import write_text
from ccframe.logs import Log
from ccframe.runfolder.rundir import FolderLock
from ccframe.steering.loader import dump_steering, load_steering
from ccframe.steering.schema import Steering
from ccframe.sweep import trials as tr
from ccframe.sweep.collect import SWEEP_FILE, collect
from ccframe.sweep.config import SweepConfig


def prepare(steering: Steering) -> tuple[Path, SweepConfig, dict[str, Any]]:
    """Check the sweep (paths, values); return (folder, sweep, base)."""
    sweep = steering.sweep
    if sweep is None:
        raise SweepError("the steering file has no sweep: section (see steering/lstm_sweep.yaml)")
    tr.check_paths(sweep)
    base = json.loads(json.dumps(steering.model_dump(mode="json")))
    tr.check_values(base, sweep)
    run_dir = Path(steering.output_dir)
    if (run_dir / "run.json").is_file():
        raise SweepError(f"{run_dir}: folder holds a ccframe run, not a sweep; set output=...")
    if run_dir.exists() and not run_dir.is_dir():
        raise SweepError(f"{run_dir}: output exists and is not a folder")
    if sweep.executor == "condor":
        from ccframe.sweep.condor import check

        check(run_dir, sweep)
    return run_dir, sweep, base


def sweep(
    path: str, overrides: tuple[str, ...] = (), dry_run: bool = False, log: Log = print
) -> Path:
    """Set up, run and collect a sweep; return its folder. One sweep at a time per folder."""
    steering = load_steering(path, overrides)
    run_dir, cfg, base = prepare(steering)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"{run_dir}: cannot create the sweep folder ({exc.strerror})") from None
    lock = FolderLock(run_dir)
    if not lock.acquire():
        raise SweepError(f"{run_dir}: another ccframe sweep is running on this folder")
    try:
        write_text(run_dir / SWEEP_FILE, dump_steering(steering))
        return _sweep(steering, run_dir, cfg, base, dry_run, log)
    finally:
        lock.release()


def _sweep(
    steering: Steering,
    run_dir: Path,
    cfg: SweepConfig,
    base: dict[str, Any],
    dry_run: bool,
    log: Log,
) -> Path:

    def make(number: int, params: dict[str, Any]) -> tr.Trial:
        return tr.write_trial(base, cfg, run_dir, number, params)

    log(
        f"sweep '{steering.name}' -> {run_dir}  ({cfg.method}, {len(cfg.parameters)} "
        f"parameter(s), executor {cfg.executor}, metric {cfg.metric} {cfg.direction})"
    )
    if cfg.method == "bayes":
        if cfg.executor == "condor":
            raise SweepError(
                "method bayes asks each trial after the previous ones finished, on this "
                "machine: use executor local (or method grid / random with condor)"
            )
        if dry_run:
            log("sweep: dry run; bayes draws its trials as the sweep runs, none written")
            return run_dir
        return _bayes(steering, run_dir, cfg, make, log)
    points = tr.grid(cfg) if cfg.method == "grid" else tr.random_draws(cfg)
    trials = [make(i, params) for i, params in enumerate(points)]
    log(f"sweep: {len(trials)} trial steering files in {run_dir / tr.TRIALS_DIR}")
    if cfg.executor == "condor":
        from ccframe.sweep.condor import render, submit

        dag = render(run_dir, trials, cfg)
        if dry_run:
            log(f"sweep: dry run, DAG rendered in {dag} (submit: condor_submit_dag {dag})")
            return run_dir
        cluster = submit(dag)
        log(f"sweep: submitted {dag} as cluster {cluster}; then run ccframe collect {run_dir}")
        return run_dir
    if dry_run:
        log(f"sweep: dry run, nothing started (run one: ccframe run {trials[0].steering_file})")
        return run_dir
    from ccframe.sweep.local import run_local

    run_local(trials, cfg, log, _threads(steering))
    collect(run_dir, log)
    _require_a_finished_trial(run_dir)
    return run_dir


def _require_a_finished_trial(run_dir: Path) -> None:
    """A local sweep in which every trial failed is an error (exit code 2)."""
    if not any(t.status() == "done" for t in tr.load_trials(run_dir)):
        raise SweepError(
            f"{run_dir}: every trial failed (reasons in {run_dir / 'leaderboard.csv'} and "
            "each trial's trial.log)"
        )


def _threads(steering: Steering) -> int | None:
    """Threads of one trial: ml.threads when the steering fixes it (else request_cpus)."""
    return steering.ml.threads if steering.ml is not None and steering.ml.threads else None


def _bayes(
    steering: Steering,
    run_dir: Path,
    cfg: SweepConfig,
    make: Callable[[int, dict[str, Any]], tr.Trial],
    log: Log,
) -> Path:
    from ccframe.sweep.bayes import run_bayes, study
    from ccframe.sweep.local import default_parallel, run_local

    def existing(number: int) -> tr.Trial:
        folder = tr.trial_folder(run_dir, number)
        for trial in tr.load_trials(run_dir):
            if trial.folder == folder:
                return trial
        raise SweepError(f"{folder}: trial was asked but never written")

    threads = _threads(steering)
    batch = cfg.parallel or default_parallel(cfg, threads)
    study_ = study(run_dir, steering.name, cfg)
    run_bayes(study_, cfg, make, existing, lambda ts: run_local(ts, cfg, log, threads), batch, log)
    collect(run_dir, log)
    _require_a_finished_trial(run_dir)
    return run_dir
