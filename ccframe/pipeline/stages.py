"""The stages of `ccframe run`, in order. A stage has up to three parts, each a function of
the `RunContext`: `before` runs before the input is read, `consumer` returns an object that
sees every batch of the one shared pass over the input (a context manager with
`add(batch, shared)`), and `after` runs once the pass is over. To add a stage, write its
function(s) and add one `Stage` line to `STAGES`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ccframe.pipeline.context import RunContext
from ccframe.steering.schema import Steering

if TYPE_CHECKING:  # the stage list is imported by `ccframe validate`: no uproot, no numba
    from ccframe.io.reader import WaveformBatch
    from ccframe.reco.config import TraditionalConfig


class Consumer(Protocol):
    """Sees every batch of the shared pass; `__exit__` completes (or, on an error, drops)
    what it writes."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: Any) -> Any: ...
    def add(self, batch: WaveformBatch, shared: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Stage:
    name: str
    enabled: Callable[[Steering], bool]
    before: Callable[[RunContext], None] | None = None
    consumer: Callable[[RunContext], Consumer | None] | None = None
    after: Callable[[RunContext], None] | None = None


def _section(name: str) -> Callable[[Steering], bool]:
    return lambda steering: getattr(steering, name) is not None


# --- simulate, tune -----------------------------------------------------------------------


def simulate(ctx: RunContext) -> None:
    from ccframe.simulate.stage import simulate_to_root

    sim = ctx.steering.simulate
    assert sim is not None
    target = ctx.artifacts.simulated
    assert target is not None
    ctx.log(f"simulate: {sim.n_waveforms} waveforms of {', '.join(sim.particles)} -> {target}")
    info = simulate_to_root(sim, ctx.seed, target, log=ctx.log)
    ctx.summary["simulate"] = info
    ctx.log(f"simulate: done in {info['wall_s']:.1f} s ({info['waveforms_per_s']:.0f} waveforms/s)")
    if not ctx.steering.data.files:
        ctx.files = [str(target)]


def tune(ctx: RunContext) -> None:
    from ccframe.reco.stage import run_tune

    cfg = ctx.steering.tune
    assert cfg is not None
    ctx.tuned = run_tune(cfg, ctx.data, ctx.files, ctx.run_dir, ctx.log)


# --- the shared pass: read, traditional, ml dataset ---------------------------------------


class _Describe:
    """`Description` as a consumer of the shared pass."""

    def __init__(self) -> None:
        from ccframe.io.describe import Description

        self.description = Description()

    def __enter__(self) -> _Describe:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add(self, batch: WaveformBatch, shared: dict[str, Any] | None = None) -> None:
        self.description.add(batch)


def read_consumer(ctx: RunContext) -> Consumer:
    ctx.products["read"] = _Describe()
    ctx.products["read_started"] = time.perf_counter()
    return ctx.products["read"]


def read_summary(ctx: RunContext) -> None:
    from ccframe.io.describe import format_description

    summary = ctx.products["read"].description.result()
    summary["read_s"] = round(time.perf_counter() - ctx.products["read_started"], 3)
    ctx.summary["read"] = summary
    ctx.log("read:\n" + format_description(summary))
    ctx.save_summary()


def traditional_consumer(ctx: RunContext) -> Consumer:
    from ccframe.reco.stage import TraditionalPass

    ctx.products["traditional"] = TraditionalPass(ctx.traditional, ctx.artifacts.traditional)
    return ctx.products["traditional"]


def traditional_metrics(ctx: RunContext) -> None:
    from ccframe.reco.stage import traditional_summary

    scan = ctx.products["traditional"]
    ctx.metrics["traditional"] = scan.metrics()
    ctx.log(traditional_summary(ctx.metrics["traditional"], scan.target))
    ctx.save_metrics()


def ml_consumer(ctx: RunContext) -> Consumer | None:
    """The dataset builder, unless the dataset is in the cache."""
    from ccframe.ml.stage import cached_dataset, dataset_builder, dataset_cache

    ml = ctx.steering.ml
    assert ml is not None
    cache = dataset_cache(ml, ctx.data, ctx.files, ctx.run_dir, ctx.traditional, ctx.seed)
    ctx.products["ml_cache"] = cache
    ctx.products["ml_dataset"] = cached_dataset(cache, ctx.log)
    if ctx.products["ml_dataset"] is not None:
        return None
    ctx.products["ml_started"] = time.perf_counter()
    builder = dataset_builder(ml, ctx.data, ctx.traditional, ctx.seed, cache)
    ctx.products["ml_builder"] = builder
    return builder


def train(ctx: RunContext) -> None:
    from ccframe.ml.stage import built_dataset, train_chain

    ml = ctx.steering.ml
    assert ml is not None
    dataset = ctx.products.pop("ml_dataset", None)
    if dataset is None:
        seconds = time.perf_counter() - ctx.products["ml_started"]
        builder = ctx.products.pop("ml_builder")
        dataset = built_dataset(builder, seconds, ctx.log)
    ctx.metrics["ml"], ctx.chain, ctx.products["counters"] = train_chain(
        ml, dataset, ctx.data, ctx.run_dir, ctx.traditional, ctx.seed, ctx.log
    )
    ctx.save_metrics()


# --- after the pass ------------------------------------------------------------------------


def infer(ctx: RunContext) -> None:
    from pathlib import Path

    from ccframe.ml.infer import infer as run_infer

    cfg = ctx.steering.infer
    target = ctx.artifacts.inferred
    assert cfg is not None
    assert target is not None
    ctx.summary["infer"] = run_infer(
        Path(cfg.chain),
        ctx.files,
        target,
        ctx.data,
        cfg.batch,
        force=False,
        log=ctx.log,
        backend=cfg.backend,
    )
    ctx.save_summary()


def robustness(ctx: RunContext) -> None:
    from ccframe.ml.chain import Chain
    from ccframe.ml.robustness import robustness as run_robustness

    cfg = ctx.steering.robustness
    assert cfg is not None
    chain = ctx.chain if ctx.chain is not None else Chain.load(ctx.run_dir)
    run_robustness(ctx.artifacts, cfg, chain, ctx.traditional, ctx.log)


def traditional_methods(ctx: RunContext) -> dict[str, TraditionalConfig]:
    """The traditional methods the pid stage compares, by name (`method_name`): the run's
    algorithm (with its adaptive variant where the tune grid has one, `tuned_methods`) and
    the other peak finder, tuned the same way when the run has a tune stage, else with its
    default thresholds."""
    from ccframe.reco.stage import method_name, tuned_for, tuned_methods

    cfg, tune_cfg = ctx.traditional, ctx.steering.tune
    given = ctx.steering.traditional is not None and ctx.steering.traditional.thresholds
    if ctx.tuned is not None and not given:
        finders = tuned_methods(cfg, ctx.tuned)
    else:
        finders = {method_name(cfg): cfg}
    for algorithm in ("deriv", "d2"):
        if algorithm == cfg.algorithm:
            continue
        if tune_cfg is None:
            other = cfg.model_copy(update={"algorithm": algorithm})
            finders[method_name(other)] = other
        else:  # tuned the same way: compare both peak finders at their best
            tuned = tuned_for(algorithm, tune_cfg, ctx.data, ctx.files, ctx.run_dir, ctx.log)
            finders |= tuned_methods(cfg, tuned)
    return finders


def pid(ctx: RunContext) -> None:
    from ccframe.pid.stage import run_pid

    assert ctx.steering.pid is not None
    counters = ctx.products.get("counters", {})
    finders = traditional_methods(ctx)
    run_pid(
        ctx.steering,
        ctx.steering.pid,
        ctx.run_dir,
        ctx.traditional,
        ctx.chain,
        ctx.log,
        counters,
        finders,
    )


def plots(ctx: RunContext) -> None:
    from ccframe.plots.plotter import make_plots

    cfg = ctx.steering.plots
    assert cfg is not None
    formats = tuple(dict.fromkeys(["png", *cfg.formats]))
    ctx.products["plots"] = make_plots(
        ctx.run_dir, formats, cfg.event_displays, ctx.log, report=False
    )


STAGES: tuple[Stage, ...] = (
    Stage("simulate", _section("simulate"), before=simulate),
    Stage("tune", _section("tune"), before=tune),
    Stage("read", lambda steering: True, consumer=read_consumer, after=read_summary),
    Stage(
        "traditional",
        _section("traditional"),
        consumer=traditional_consumer,
        after=traditional_metrics,
    ),
    Stage("ml", _section("ml"), consumer=ml_consumer, after=train),
    Stage("infer", _section("infer"), after=infer),
    Stage("robustness", _section("robustness"), after=robustness),
    Stage("pid", _section("pid"), after=pid),
    Stage("plots", _section("plots"), after=plots),
)


def enabled(steering: Steering) -> list[Stage]:
    """The stages this steering file runs, in order."""
    return [stage for stage in STAGES if stage.enabled(steering)]
