"""`ccframe run`: the stages a steering file enables, in order, inside one run folder."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ccframe.errors import SteeringError
from ccframe.io.atomic import write_text
from ccframe.io.prefetch import prefetch
from ccframe.io.reader import expand_files, iter_batches
from ccframe.logs import Log, Progress
from ccframe.pipeline.context import RunContext
from ccframe.pipeline.stages import Consumer, enabled
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.stage import load_thresholds_text, resolve_traditional
from ccframe.runfolder.artifacts import Artifacts
from ccframe.runfolder.rundir import RunDir
from ccframe.simulate.budget import check_budget
from ccframe.simulate.config import SimulateConfig
from ccframe.steering.loader import with_absolute_paths
from ccframe.steering.schema import Steering


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
    folder = RunDir(steering.output_dir)
    check_resources(steering, folder.path)
    steering = with_absolute_paths(steering)  # the run folder's steering.yaml works from anywhere
    folder.prepare(steering, argv, force=force)
    todo = enabled(steering)
    log(f"run '{steering.name}' -> {folder.path}  (stages: {', '.join(s.name for s in todo)})")
    ctx = RunContext(steering, Artifacts(folder.path, steering), log)
    try:
        ctx.files = expand_files(steering.data.files) if steering.data.files else []
        for stage in todo:
            if stage.before is not None:
                stage.before(ctx)
        ctx.traditional = resolved_traditional(ctx)
        shared_pass(ctx, [stage.consumer(ctx) for stage in todo if stage.consumer is not None])
        for stage in todo:
            if stage.after is not None:
                stage.after(ctx)
        if steering.plots is not None:
            from ccframe.plots.report import write_report

            record = folder.record | {"status": "done", "wall_s": folder.elapsed()}
            write_report(folder.path, ctx.products["plots"], ctx.metrics, record)
    except BaseException as exc:
        folder.finish("failed", error=str(exc) or type(exc).__name__)
        raise
    folder.finish("done")
    log(f"done: {folder.path}")
    return folder.path


def resolved_traditional(ctx: RunContext) -> TraditionalConfig:
    """The traditional settings with thresholds applied: `traditional.thresholds` (a
    tuned.yaml of another run, copied into the run folder first), else a tune stage's."""
    cfg = ctx.steering.traditional or TraditionalConfig()
    if cfg.thresholds is not None:
        text = load_thresholds_text(cfg.thresholds)
        write_text(ctx.artifacts.thresholds, text)
        return resolve_traditional(
            cfg.model_copy(update={"thresholds": str(ctx.artifacts.thresholds)}), None
        )
    return resolve_traditional(cfg, ctx.tuned)


def shared_pass(ctx: RunContext, consumers: list[Consumer | None]) -> None:
    """Read the input once and hand every batch to each consumer, in stage order (a later
    consumer sees what an earlier one shared for the batch)."""
    active = [c for c in consumers if c is not None]
    if not active:
        return
    with contextlib.ExitStack() as stack:
        entered = [stack.enter_context(c) for c in active]
        progress = Progress("read", ctx.log)
        for batch in prefetch(iter_batches(ctx.data, ctx.files), depth=1):  # read ahead
            shared: dict[str, Any] = {}
            for consumer in entered:
                consumer.add(batch, shared)
            progress.update(len(batch))
