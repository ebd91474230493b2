"""The `ccframe` command line: thin commands that parse, load the steering file and call the
library. Heavy imports (numba, uproot, tensorflow) happen inside the commands."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any, Literal

import click

from ccframe import __version__
from ccframe.errors import CcframeError
from ccframe.resources import is_disk_full

SET_HELP = "Override a steering key, e.g. --set simulate.n_waveforms=500 (repeatable)."


def _echo(message: str) -> None:
    """Errors and warnings: stderr."""
    click.echo(message, err=True)


def _progress(message: str) -> None:
    """Progress: the library's log at INFO, which `_OneLineHandler` prints on stdout (so that
    `ccframe run ... > log` keeps it) unless --quiet raised the level."""
    logging.getLogger("ccframe").info(message)


def _validated(model: Any, values: dict[str, Any]) -> Any:
    """Validate command-line options into a config section; errors become one line."""
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:
            raise click.UsageError(message) from None
        option = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-")
        raise click.BadParameter(message, param_hint=option) from None


def _load(steering: str, overrides: tuple[str, ...]) -> Any:
    from ccframe.steering.loader import load_steering

    return load_steering(steering, overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ccframe")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages (warnings, errors only).")
@click.option("-v", "--verbose", is_flag=True, help="Also debug messages.")
def cli(quiet: bool, verbose: bool) -> None:
    """ccframe: cluster counting for drift chambers.

    Start with `ccframe run steering/quickstart.yaml`. Progress goes to stdout, warnings
    and errors to stderr.
    """
    logging.getLogger("ccframe").setLevel(
        logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    )


@cli.command()
@click.argument("steering", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Replace an existing run folder of the same name.")
@click.pass_obj
def run(argv: list[str], steering: str, overrides: tuple[str, ...], force: bool) -> None:
    """Run the stages that the STEERING file enables."""
    from ccframe.pipeline.run import run as run_pipeline

    config = _load(steering, overrides)
    run_pipeline(config, argv=["ccframe", *argv], force=force, log=_progress)


@cli.command()
@click.argument("steering", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--print", "show", is_flag=True, help="Print the resolved steering file.")
@click.option(
    "--explain",
    is_flag=True,
    help="Print the resolved steering file as `key: value  # [unit] meaning`, a key a line.",
)
def validate(steering: str, overrides: tuple[str, ...], show: bool, explain: bool) -> None:
    """Check a STEERING file without running anything."""
    from ccframe.pipeline.stages import enabled
    from ccframe.steering.loader import dump_steering

    config = _load(steering, overrides)
    if config.sweep is not None:  # the swept keys and values, as `ccframe sweep` checks them
        from ccframe.sweep.trials import check_paths, check_values

        check_paths(config.sweep)
        check_values(config.model_dump(mode="json"), config.sweep)
    if explain:
        from ccframe.steering.explain import explain as explained

        click.echo(explained(config), nl=False)
    elif show:
        click.echo(dump_steering(config), nl=False)
    click.echo(
        f"{steering}: valid (schema {config.schema_version}, name '{config.name}', "
        f"stages: {', '.join(s.name for s in enabled(config))}, output {config.output_dir})"
    )


@cli.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="File to write (default: print it). The shipped copy is steering/ccframe.schema.json.",
)
def schema(output: str | None) -> None:
    """The JSON schema of steering files, every key described (for editors)."""
    from ccframe.steering.explain import json_schema_text

    text = json_schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    from ccframe.errors import OutputError
    from ccframe.io.atomic import write_text

    try:
        write_text(output, text)
    except OSError as exc:
        raise OutputError(f"{output}: cannot write ({exc.strerror or exc})") from None
    _progress(f"schema: written to {output}")


@cli.command()
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="ROOT file to write."
)
@click.option(
    "-n", "--n-waveforms", type=click.IntRange(min=1, max=10**9), help="Number of waveforms."
)
@click.option("--seed", type=click.IntRange(min=0), help="Random seed (default: steering seed).")
@click.option(
    "--first-event",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Id of the first event (to split one sample over jobs).",
)
@click.option(
    "--steering",
    type=click.Path(dir_okay=False),
    help="Take the simulate: section (and seed) from this steering file.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def simulate(
    output: str,
    n_waveforms: int | None,
    seed: int | None,
    first_event: int,
    steering: str | None,
    overrides: tuple[str, ...],
    force: bool,
) -> None:
    """Simulate drift-cell waveforms with full Monte Carlo truth into a ROOT file."""
    from ccframe.simulate.budget import check_budget
    from ccframe.simulate.stage import simulate_to_root
    from ccframe.steering.loader import apply_override
    from ccframe.steering.loader import validate as validate_raw

    if steering is not None:
        config = _load(steering, overrides)
        if config.simulate is None:
            config = _load(steering, ("simulate={}", *overrides))
    else:
        raw: dict[str, Any] = {"schema_version": 1, "name": "simulate", "simulate": {}}
        for item in overrides:
            apply_override(raw, item)
        config = validate_raw(raw, "<defaults>", set_keys=[o.split("=", 1)[0] for o in overrides])
    sim = config.simulate
    if n_waveforms is not None:
        sim = sim.model_copy(update={"n_waveforms": n_waveforms})
    seed = config.seed if seed is None else seed
    check_budget(sim, output, n_key="--n-waveforms" if n_waveforms else None)
    _progress(f"simulate: {sim.n_waveforms} waveforms of {', '.join(sim.particles)}, seed {seed}")
    info = simulate_to_root(sim, seed, output, first_event=first_event, force=force, log=_progress)
    _progress(
        f"wrote {info['entries']} waveforms to {output}:{sim.tree} in {info['wall_s']:.1f} s "
        f"({info['waveforms_per_s']:.0f} waveforms/s)"
    )


@cli.command()
@click.argument("steering", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False),
    help="Calibrated steering file to write (its report and calibration.json go next to it).",
)  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "-n", "--max-events", type=click.IntRange(min=100), default=10_000, show_default=True,
    help="Data waveforms read.",
)  # fmt: skip
@click.option(
    "--sim-waveforms", type=click.IntRange(min=200, max=100_000), default=4000,
    show_default=True, help="Waveforms simulated per iteration.",
)  # fmt: skip
@click.option(
    "--iterations", type=click.IntRange(min=0, max=50), default=8, show_default=True,
    help="Most forward-folding corrections.",
)  # fmt: skip
@click.option("--seed", type=click.IntRange(min=0), help="Random seed (default: steering seed).")
@click.option("--force", is_flag=True, help="Replace OUTPUT and its report if they exist.")
def calibrate(
    steering: str,
    output: str,
    overrides: tuple[str, ...],
    max_events: int,
    sim_waveforms: int,
    iterations: int,
    seed: int | None,
    force: bool,
) -> None:
    """Fit the simulation to the data files (no truth) of STEERING's data: section: noise,
    pulse shape, gain, baseline and time window; write a steering file that simulates
    such data (docs/calibration.md)."""
    from pathlib import Path

    from ccframe.calibrate.command import Options
    from ccframe.calibrate.command import calibrate as run_calibrate

    config = _load(steering, overrides)
    options = Options(max_events, sim_waveforms, iterations, seed)
    run_calibrate(config, steering, Path(output), options, force, _progress)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--tree", default="sim", show_default=True, help="TTree or RNTuple with the waveforms."
)
@click.option("--branch", default="waveform", show_default=True, help="Waveform branch.")
@click.option(
    "-n",
    "--max-events",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Waveforms used for the statistics.",
)
@click.option(
    "--sampling-ghz",
    type=click.FloatRange(min=0, min_open=True),
    help="Sampling rate, when the file has no sampling_ghz branch.",
)
@click.option(
    "--polarity", type=click.Choice(["positive", "negative"]), default="positive", show_default=True
)
@click.option("--scale", type=float, default=1.0, show_default=True, help="mV per raw unit.")
@click.option("--offset-mv", type=float, default=0.0, show_default=True, help="Added after scale.")
@click.option(
    "--baseline-window-ns",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
)
def inspect(
    file: str,
    tree: str,
    branch: str,
    max_events: int,
    sampling_ghz: float | None,
    polarity: str,
    scale: float,
    offset_mv: float,
    baseline_window_ns: float,
) -> None:
    """Show the trees (TTrees, RNTuples) and branches of a ROOT FILE and statistics of its
    waveforms."""
    from ccframe.io.config import DataConfig
    from ccframe.io.inspect import inspect_file

    data = _validated(
        DataConfig,
        {
            "files": [file],
            "tree": tree,
            "waveform_branch": branch,
            "max_events": max_events,
            "sampling_ghz": sampling_ghz,
            "polarity": polarity,
            "scale": scale,
            "offset_mv": offset_mv,
            "baseline_window_ns": baseline_window_ns,
        },
    )
    ctx = click.get_current_context()
    asked = any(
        ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        for name in ("tree", "branch")
    )
    click.echo(inspect_file(file, data, asked=asked))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="ROOT file to write."
)
@click.option(
    "--steering",
    type=click.Path(dir_okay=False),
    help="Read the inputs with this steering file's data: mapping (default: the run's).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=8192,
    show_default=True,
    help="Windows per classifier call.",
)
@click.option(
    "--backend",
    type=click.Choice(["keras", "onnx", "mixed"]),
    default="keras",
    show_default=True,
    help="Run the networks with Keras; with ONNX Runtime (no TensorFlow); or mixed: the "
    "classifier with Keras, the counter with ONNX Runtime, the fastest on CPU. onnx and mixed "
    "need `ccframe export RUN_DIR` first.",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def infer(
    run_dir: str,
    inputs: tuple[str, ...],
    output: str,
    steering: str | None,
    overrides: tuple[str, ...],
    batch: int,
    backend: Literal["keras", "onnx", "mixed"],
    force: bool,
) -> None:
    """Apply the chain trained in RUN_DIR to INPUTS (ROOT files); write per-waveform cluster
    counts and per-candidate scores to OUTPUT."""
    from pathlib import Path

    from ccframe.io.reader import expand_files
    from ccframe.ml.infer import infer as run_infer

    run = Path(run_dir)
    source = steering or str(run / "steering.yaml")
    if steering is None and not Path(source).is_file():
        raise click.BadParameter(f"{run_dir}: not a ccframe run folder (no steering.yaml)")
    config = _load(source, overrides)
    data = config.input_data
    if any(o.split("=", 1)[0].strip() in ("data", "data.tree") for o in overrides):
        data = data.model_copy(update={"tree": config.data.tree})  # --set wins over simulate.tree
    files = expand_files(list(inputs))
    run_infer(run, files, Path(output), data, batch, force, _progress, backend=backend)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace an earlier export.")
def export(run_dir: str, force: bool) -> None:
    """Write the chain trained in RUN_DIR as ONNX next to its chain.json: classifier.onnx,
    counter.onnx and onnx.json (tensor names, opset, the chain's settings), for ONNX Runtime
    in C++ frameworks (key4hep) and `ccframe infer --backend onnx`."""
    from pathlib import Path

    from ccframe.ml.onnx import export_chain

    run = Path(run_dir)
    if not run.is_dir():
        raise click.BadParameter(f"{run_dir}: no such run folder", param_hint="RUN_DIR")
    export_chain(run, force, _progress)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["png", "pdf", "svg"]),
    default=("png", "pdf"),
    show_default=True,
    help="File formats (repeatable); png is always written for the report.",
)
@click.option(
    "--events",
    type=click.IntRange(min=0, max=100),
    default=2,
    show_default=True,
    help="Event displays of test waveforms.",
)
def plot(run_dir: str, formats: tuple[str, ...], events: int) -> None:
    """Make every plot a run's outputs allow (RUN_DIR/plots) and RUN_DIR/report.html."""
    from pathlib import Path

    from ccframe.plots.plotter import make_plots

    make_plots(Path(run_dir), tuple(dict.fromkeys(["png", *formats])), events, _progress)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--noise", "noise", multiple=True, type=float, help="Noise RMS factor (repeatable).")
@click.option("--gain", "gain", multiple=True, type=float, help="Gain factor (repeatable).")
@click.option("--jitter-ns", "jitter", multiple=True, type=float, help="Time jitter sigma, ns.")
@click.option("--max-events", type=click.IntRange(min=1), help="Test waveforms used.")
def robustness(
    run_dir: str,
    noise: tuple[float, ...],
    gain: tuple[float, ...],
    jitter: tuple[float, ...],
    max_events: int | None,
) -> None:
    """Apply the chain trained in RUN_DIR to its test waveforms smeared in noise, gain and
    time jitter; write robustness.json/.csv next to the traditional algorithm's metrics
    (`ccframe plot` then draws them). Defaults: the run's robustness: section, else built-in."""
    from pathlib import Path

    from ccframe.ml.config import RobustnessConfig
    from ccframe.ml.robustness import run_robustness

    run = Path(run_dir)
    if not (run / "steering.yaml").is_file():
        raise click.BadParameter(f"{run_dir}: not a ccframe run folder (no steering.yaml)")
    base = _load(str(run / "steering.yaml"), ()).robustness or RobustnessConfig()
    values: dict[str, Any] = base.model_dump()
    for key, given in (("noise_factors", noise), ("gain_factors", gain), ("jitter_ns", jitter)):
        if given:
            values[key] = list(given)
    if max_events is not None:
        values["max_events"] = max_events
    run_robustness(run, _validated(RobustnessConfig, values), _progress)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to write."
)
@click.option("--chain", type=click.Path(file_okay=False), help="Run folder of a trained chain.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help=SET_HELP + " Applied to every input.")  # fmt: skip
@click.option("--reference", metavar="NAME",
              help="Input the ratios are taken to (default: the first simulation when there is "
              "a data input, else the first input).")  # fmt: skip
@click.option(
    "--candidates", type=click.Choice(["chain", "steering"]),
    help="Candidate settings for every input: the chain's (default with --chain) or the "
    "inputs' ml.dataset.candidates (default otherwise).",
)  # fmt: skip
@click.option(
    "--max-events", type=click.IntRange(min=1), default=5000, show_default=True,
    help="Waveforms read per input.",
)  # fmt: skip
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(["png", "pdf", "svg"]),
    default=("png", "pdf"), show_default=True, help="File formats (repeatable).",
)  # fmt: skip
def compare(
    inputs: tuple[str, ...],
    output: str,
    chain: str | None,
    overrides: tuple[str, ...],
    reference: str | None,
    candidates: Any,
    max_events: int,
    formats: tuple[str, ...],
) -> None:
    """Compare two or more INPUTS (steering files: their name labels the input, data.files
    make it data, a simulate: section simulation) with the same reconstruction settings:
    normalised overlays with a ratio panel to the reference, and a verdict table
    (compare_verdict.csv/.png) flagging each mismatch."""
    from pathlib import Path

    from ccframe.compare.inputs import load_inputs
    from ccframe.compare.overlay import overlay_inputs

    steerings = load_inputs(inputs, overrides)
    chain_dir = Path(chain) if chain else None
    overlay_inputs(steerings, Path(output), max_events, chain_dir, formats, _progress,
                   reference=reference, candidates=candidates)  # fmt: skip


@cli.command()
@click.argument("steering", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Replace an existing run folder of the same name.")
@click.pass_obj
def pid(argv: list[str], steering: str, overrides: tuple[str, ...], force: bool) -> None:
    """Run a STEERING file with a pid: section (its training, tuning and the track scan):
    separation power versus momentum for the truth, DERIV, D2 and the ML chain."""
    from ccframe.errors import SteeringError
    from ccframe.pipeline.run import run as run_pipeline

    config = _load(steering, overrides)
    if config.pid is None:
        raise SteeringError(f"{steering}: no pid: section (see steering/pid_scan.yaml)")
    run_pipeline(config, argv=["ccframe", *argv], force=force, log=_progress)


@cli.command()
@click.argument("steering", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write the trials' steering files (and the condor DAG) but start nothing.",
)
def sweep(steering: str, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run the sweep that the STEERING file's sweep: section describes (one run per trial in
    OUTPUT/trials/NNNN), then collect the leaderboard."""
    from ccframe.sweep.run import sweep as run_sweep

    run_sweep(steering, overrides, dry_run, _progress)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def collect(run_dir: str) -> None:
    """Rank a sweep's trials: RUN_DIR/leaderboard.csv, a table, the best trial in
    RUN_DIR/best."""
    from pathlib import Path

    from ccframe.sweep.collect import collect as run_collect

    run_collect(Path(run_dir), click.echo)


class TerminatedError(CcframeError):
    """SIGTERM (a batch system or `kill`): stop like an interrupt, recording the failure."""

    exit_code = 143


def _on_sigterm(signum: int, frame: Any) -> None:
    raise TerminatedError("terminated (SIGTERM)")


class _OneLineHandler(logging.Handler):
    """The library's log: `ccframe: warning: ...` on the current stderr, information on
    stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            _echo(f"ccframe: {record.levelname.lower()}: {record.getMessage()}")
        else:
            click.echo(record.getMessage())


def _setup_logging() -> None:
    """The library's log (`logging.getLogger('ccframe')`): warnings as one line on stderr."""
    logger = logging.getLogger("ccframe")
    if not any(isinstance(h, _OneLineHandler) for h in logger.handlers):
        logger.addHandler(_OneLineHandler())
    logger.setLevel(logging.INFO)


def main(args: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    os.environ.setdefault("MPLBACKEND", "agg")  # plots go to files, never to a window
    _setup_logging()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        argv = sys.argv[1:] if args is None else list(args)
        cli.main(args=argv, prog_name="ccframe", standalone_mode=False, obj=argv)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see {exc.ctx.command_path} --help)"
        _echo(f"ccframe: error: {exc.format_message()}{hint}")
        sys.exit(exc.exit_code)
    except click.Abort:
        _echo("ccframe: aborted")
        sys.exit(1)
    except CcframeError as exc:
        _echo(f"ccframe: error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _echo("ccframe: interrupted")
        sys.exit(130)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _echo(f"ccframe: error: {where}cannot write ({exc.strerror}); free space, write elsewhere")
        sys.exit(2)
    sys.exit(0)
