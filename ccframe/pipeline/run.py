"""`ccframe run`: the stages a steering file enables, in order, inside one run folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccframe.errors import SteeringError
from ccframe.io.atomic import write_json
from ccframe.io.describe import describe, format_description
from ccframe.io.reader import expand_files, iter_batches
from ccframe.pipeline.rundir import RunDir
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.stage import resolve_traditional, run_traditional, run_tune
from ccframe.simulate.budget import check_budget
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.stage import simulate_to_root
from ccframe.steering.schema import Steering, stages

Log = Callable[[str], None]


def check_resources(steering: Steering, folder: Path) -> None:
    """Refuse, before the run folder is touched, settings that would not fit in this
    machine's memory or disk (each error names its key)."""
    if steering.simulate is not None:
        check_budget(steering.simulate, folder)
    if steering.ml is not None:
        from ccframe.ml.budget import check_model_budget
        from ccframe.ml.dataset import window_problem

        check_model_budget(steering.ml)
        if steering.simulate is not None and not steering.data.files:
            problem = window_problem(steering.simulate.detector.n_samples, steering.ml.dataset)
            if problem is not None:
                raise SteeringError(f"ml.dataset.window: {problem}")
    if steering.pid is not None:
        pid = steering.pid
        n = pid.tracks * pid.cells * len(pid.species) * len(pid.momenta_gev)
        check_budget(steering.simulate or SimulateConfig(), folder, n, n_key="pid.tracks")


def run(steering: Steering, argv: list[str], force: bool = False, log: Log = print) -> Path:
    """Run every enabled stage; return the run folder. A failure is recorded, then raised."""
    run_dir = RunDir(steering.output_dir)
    check_resources(steering, run_dir.path)
    run_dir.prepare(steering, argv, force=force)
    log(f"run '{steering.name}' -> {run_dir.path}  (stages: {', '.join(stages(steering))})")
    results: dict[str, Any] = {}
    try:
        files = expand_files(steering.data.files) if steering.data.files else []
        if steering.simulate is not None:
            sim = steering.simulate
            target = run_dir.path / sim.output
            log(f"simulate: {sim.n_waveforms} waveforms of {', '.join(sim.particles)} -> {target}")
            results["simulate"] = simulate_to_root(sim, steering.seed, target)
            log(
                f"simulate: done in {results['simulate']['wall_s']:.1f} s "
                f"({results['simulate']['waveforms_per_s']:.0f} waveforms/s)"
            )
            if not files:
                files = [str(target)]
        data = steering.input_data
        t0 = time.perf_counter()
        summary = describe(iter_batches(data, files))
        summary["read_s"] = round(time.perf_counter() - t0, 3)
        results["read"] = summary
        log("read:\n" + format_description(summary))
        write_json(run_dir.path / "summary.json", results)
        tuned = None
        if steering.tune is not None:
            tuned = run_tune(steering.tune, data, files, run_dir.path, log)
        metrics: dict[str, Any] = {}
        traditional = resolve_traditional(steering.traditional or TraditionalConfig(), tuned)
        if steering.traditional is not None:
            metrics["traditional"] = run_traditional(traditional, data, files, run_dir.path, log)
            write_json(run_dir.path / "metrics.json", metrics)
        if steering.ml is not None:
            from ccframe.ml.stage import run_ml

            metrics["ml"] = run_ml(
                steering.ml, data, files, run_dir.path, traditional, steering.seed, log
            )
            write_json(run_dir.path / "metrics.json", metrics)
        if steering.infer is not None:
            from ccframe.ml.infer import infer

            cfg = steering.infer
            results["infer"] = infer(
                Path(cfg.chain), files, run_dir.path / cfg.output, data, cfg.batch, False, log
            )
            write_json(run_dir.path / "summary.json", results)
        if steering.robustness is not None:
            from ccframe.ml.robustness import run_robustness

            run_robustness(run_dir.path, steering.robustness, log)
        if steering.pid is not None:
            from ccframe.pid.stage import run_pid

            chain = None
            if steering.ml is not None:
                from ccframe.ml.chain import Chain

                chain = Chain.load(run_dir.path, steering.ml.inference_batch)
            run_pid(steering, steering.pid, run_dir.path, traditional, chain, log)
        if steering.plots is not None:
            from ccframe.plots.report import make_plots

            formats = tuple(dict.fromkeys(["png", *steering.plots.formats]))
            make_plots(run_dir.path, formats, steering.plots.event_displays, log)
    except BaseException as exc:
        run_dir.finish("failed", error=str(exc) or type(exc).__name__)
        raise
    run_dir.finish("done")
    log(f"done: {run_dir.path}")
    return run_dir.path
