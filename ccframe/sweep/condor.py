"""The HTCondor executor: render the submit descriptions, the trial wrapper and the DAG
(with a final `ccframe collect` node) into RUN/condor/ and submit the DAG.

The Jinja2 templates live in the top-level `condor/` folder of the source tree and ship as
package data (`ccframe/sweep/templates`, a link to it in the checkout);
CCFRAME_CONDOR_TEMPLATES names another folder."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ccframe.errors import CondorError
from ccframe.io.atomic import write_text
from ccframe.sweep.config import SweepConfig
from ccframe.sweep.trials import Trial

CONDOR_DIR = "condor"
TEMPLATES = ("trial.sub.j2", "run_trial.sh.j2", "collect.sub.j2", "sweep.dag.j2")


def template_dir() -> Path:
    """The folder with the templates: CCFRAME_CONDOR_TEMPLATES, else the package's
    templates, else the checkout's condor/ folder."""
    env = os.environ.get("CCFRAME_CONDOR_TEMPLATES")
    packaged = Path(__file__).parent / "templates"
    checkout = Path(__file__).resolve().parents[2] / "condor"
    folder = Path(env) if env else packaged if packaged.is_dir() else checkout
    missing = [t for t in TEMPLATES if not (folder / t).is_file()]
    if missing:
        raise CondorError(
            f"{folder}: condor templates not found ({', '.join(missing)}); set "
            "CCFRAME_CONDOR_TEMPLATES to the condor/ folder of a ccframe checkout"
        )
    return folder


def render(run_dir: Path, trials: list[Trial], sweep: SweepConfig) -> Path:
    """Write RUN/condor/{trial_NNNN.sub,run_trial.sh,collect.sub,sweep.dag}; return the DAG."""
    try:
        import jinja2
    except ImportError:
        raise CondorError(
            "executor condor needs jinja2: python -m pip install jinja2 (or ccframe[sweep])"
        ) from None

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    run_dir = run_dir.resolve()
    condor_dir = run_dir / CONDOR_DIR
    context: dict[str, Any] = {
        **sweep.model_dump(),
        "name": run_dir.name,
        "run_dir": str(run_dir),
        "condor_dir": str(condor_dir),
        "python": sys.executable,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "wrapper": str(condor_dir / "run_trial.sh"),
    }
    wrapper = condor_dir / "run_trial.sh"
    write_text(wrapper, env.get_template("run_trial.sh.j2").render(context))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    nodes = []
    for trial in trials:
        submit = condor_dir / f"trial_{trial.number:04d}.sub"
        text = env.get_template("trial.sub.j2").render(
            context, number=f"{trial.number:04d}", folder=str(trial.folder.resolve())
        )
        write_text(submit, text)
        nodes.append({"node": f"t{trial.number:04d}", "submit": str(submit)})
    collect = condor_dir / "collect.sub"
    write_text(collect, env.get_template("collect.sub.j2").render(context))
    dag = condor_dir / "sweep.dag"
    write_text(
        dag, env.get_template("sweep.dag.j2").render(context, trials=nodes, collect=str(collect))
    )
    return dag


def bindings() -> Any:
    """The HTCondor Python bindings (htcondor2, or the older htcondor)."""
    try:
        import htcondor2 as htcondor
    except ImportError:
        try:
            import htcondor  # type: ignore[no-redef]
        except ImportError:
            raise CondorError(
                "executor condor needs the HTCondor Python bindings: python -m pip install "
                "htcondor (or use --dry-run and condor_submit_dag)"
            ) from None
    return htcondor


def submit(dag: Path) -> int:
    """Submit the DAG to the local schedd; return the DAGMan job's cluster id."""
    htcondor = bindings()
    try:
        with _quiet_stderr():  # the bindings also print their errors on fd 2
            description = htcondor.Submit.from_dag(str(dag), {"force": True})
            schedd = htcondor.Schedd()
            result = schedd.submit(description)
    except Exception as exc:  # the bindings raise several types; all mean "no schedd"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CondorError(f"{dag}: cannot submit the DAG ({reason})") from None
    return int(result.cluster())


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
