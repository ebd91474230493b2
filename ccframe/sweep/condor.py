"""The HTCondor executor: render the submit descriptions, the trial wrapper and the DAG
(with a final `ccframe collect` node) into RUN/condor/ and submit the DAG.

The Jinja2 templates live in the top-level `condor/` folder of the source tree and ship as
package data (`ccframe/sweep/templates`, a link to it in the checkout);
CCFRAME_CONDOR_TEMPLATES names another folder."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shlex
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from ccframe.errors import CondorError
from ccframe.io.atomic import write_text
from ccframe.sweep.config import SweepConfig
from ccframe.sweep.trials import Trial

CONDOR_DIR = "condor"
TEMPLATES = ("trial.sub.j2", "run_trial.sh.j2", "collect.sub.j2", "sweep.dag.j2")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GROUP = re.compile(r"[A-Za-z0-9_.@-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN = 60  # characters of a refused value shown in the message


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


# ---- checks and quoting of the values rendered into the submit files, DAG and script ----


def _refuse(what: str, value: str, problem: str, expected: str) -> NoReturn:
    shown = repr(value[:_SHOWN]) + ("..." if len(value) > _SHOWN else "")
    raise CondorError(f"{what} {shown} {problem}; expected {expected}")


def one_line(value: str, what: str = "a rendered value") -> str:
    """Refuse a control character (a newline would start a new command in the file)."""
    if _CONTROL.search(value):
        _refuse(what, value, "holds a control character (newline, tab, ...)", "one line of text")
    return value


def condor_text(value: str, what: str = "a submit-file value") -> str:
    """Refuse control characters and '$' (HTCondor expands $(...), $$(...) and $ENV(...) as
    macros in every submit-file value, quoted or not)."""
    one_line(value, what)
    if "$" in value:
        _refuse(what, value, "holds '$', which HTCondor expands as a macro", "no '$' in it")
    return value


def condor_value(value: str, what: str = "a submit-file value") -> str:
    """An unquoted submit-file value: also no final backslash (it joins the next line)."""
    condor_text(value, what)
    if value.endswith("\\"):
        _refuse(what, value, "ends with a backslash, which joins the next line", "no final '\\'")
    return value


def condor_path(value: str, what: str = "a path in a submit file") -> str:
    """A plain path value (executable, initialdir, log): the rest of the line, spaces
    included, but HTCondor strips leading and trailing white space."""
    condor_value(value, what)
    if not value or value != value.strip():
        _refuse(what, value, "is empty or starts or ends with a space", "a path")
    return value


def condor_arguments(args: Iterable[str]) -> str:
    """`arguments` in HTCondor's new syntax: the whole list in double quotes, an argument
    with a space or a single quote in single quotes (' doubled), every " doubled."""
    words = []
    for arg in args:
        condor_text(arg, "an argument")
        if not arg or any(c in arg for c in " '"):
            arg = "'" + arg.replace("'", "''") + "'"
        words.append(arg.replace('"', '""'))
    return '"' + " ".join(words) + '"'


def condor_environment(env: Mapping[str, str]) -> str:
    """`environment` in HTCondor's new syntax: NAME=VALUE entries quoted as arguments are."""
    entries = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            _refuse("an environment name", name, "is not a variable name", "letters, digits, _")
        condor_text(value, name)
        entries.append(f"{name}={value}")
    return condor_arguments(entries)


def dag_path(value: str) -> str:
    """A submit-file path on a DAG JOB/FINAL line: bare, or in double quotes (\\ and \"
    escaped) when it holds a space or a quote, which DAGMan's lexer reads as one token."""
    one_line(value, "a path in the DAG")
    if value and not any(c in value for c in " '\""):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shell_quote(value: Any) -> str:
    """One shell word (shlex.quote)."""
    return shlex.quote(one_line(str(value)))


def check_requirements(text: str) -> str:
    """sweep.requirements: one line without macros that parses as a ClassAd expression
    (when the HTCondor bindings are installed)."""
    what = "sweep.requirements"
    if not isinstance(text, str):
        _refuse(what, str(text), "is not a string", "a ClassAd expression")
    condor_value(text, what)
    parse = _classad_parser()
    if parse is not None:
        try:
            parse(text)
        except Exception:  # the bindings raise several types; all mean "does not parse"
            _refuse(what, text, "does not parse", 'a ClassAd expression, e.g. (OpSys == "LINUX")')
    return text


def check_accounting_group(name: str) -> str:
    """sweep.accounting_group: a plain group name."""
    if not isinstance(name, str) or not _GROUP.fullmatch(name):
        _refuse(
            "sweep.accounting_group",
            str(name),
            "is not a group name",
            "letters, digits and _ . @ -",
        )
    return name


def _classad_parser() -> Callable[[str], Any] | None:
    """classad2.ExprTree (or classad.ExprTree), or None without the bindings."""
    for module in ("classad2", "classad"):
        try:
            return importlib.import_module(module).ExprTree
        except (ImportError, AttributeError):
            continue
    return None


def _whole(what: str, value: Any, minimum: int) -> int:
    """A number rendered bare: an int (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _refuse(what, str(value), f"is not a whole number >= {minimum}", "a number")
    return value


def _check(run_dir: Path, trials: list[Trial], sweep: SweepConfig, pythonpath: str) -> None:
    """Refuse, before anything is written, a value the submit files, DAG or script could not
    carry verbatim (the templates' filters check again)."""
    condor_text(str(run_dir), "the run folder")
    for trial in trials:
        condor_path(str(trial.folder.resolve()), "the trial folder")
    condor_path(sys.executable, "the Python interpreter (sys.executable)")
    if pythonpath:
        condor_text(pythonpath, "PYTHONPATH")
    if sweep.requirements:
        check_requirements(sweep.requirements)
    if sweep.accounting_group:
        check_accounting_group(sweep.accounting_group)
    for name in ("request_cpus", "request_memory_mb", "request_disk_mb"):
        _whole(f"sweep.{name}", getattr(sweep, name), 1)
    _whole("sweep.retries", sweep.retries, 0)
    if sweep.max_runtime_s is not None:
        _whole("sweep.max_runtime_s", sweep.max_runtime_s, 1)
    if sweep.transfer not in ("files", "shared"):
        _refuse("sweep.transfer", str(sweep.transfer), "is unknown", "files or shared")


def check(run_dir: Path, sweep: SweepConfig) -> None:
    """Refuse a sweep whose run folder, interpreter, PYTHONPATH or resources the condor
    files could not carry, before any trial is written."""
    _check(run_dir.resolve(), [], sweep, os.environ.get("PYTHONPATH", ""))


def _environment(jinja2: Any) -> Any:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=lambda value: one_line(value) if isinstance(value, str) else value,
    )
    env.filters.update(
        sh=shell_quote,
        condor_path=condor_path,
        condor_value=condor_value,
        condor_text=condor_text,
        condor_args=condor_arguments,
        condor_env=condor_environment,
        dag_path=dag_path,
    )
    return env


def render(run_dir: Path, trials: list[Trial], sweep: SweepConfig) -> Path:
    """Write RUN/condor/{trial_NNNN.sub,run_trial.sh,collect.sub,sweep.dag}; return the DAG.
    Every value is checked (or quoted) first: nothing is written for a refused one."""
    try:
        import jinja2
    except ImportError:
        raise CondorError(
            "executor condor needs jinja2: python -m pip install jinja2 (or ccframe[sweep])"
        ) from None

    env = _environment(jinja2)
    run_dir = run_dir.resolve()
    condor_dir = run_dir / CONDOR_DIR
    pythonpath = os.environ.get("PYTHONPATH", "")
    _check(run_dir, trials, sweep, pythonpath)
    context: dict[str, Any] = {
        **sweep.model_dump(),
        "name": run_dir.name,
        "run_dir": str(run_dir),
        "condor_dir": str(condor_dir),
        "python": sys.executable,
        "pythonpath": pythonpath,
        "wrapper": str(condor_dir / "run_trial.sh"),
    }

    def text(template: str, **extra: Any) -> str:
        return str(env.get_template(template).render(context, **extra))

    wrapper = condor_dir / "run_trial.sh"
    files = {wrapper: text("run_trial.sh.j2")}
    nodes = []
    for trial in trials:
        submit = condor_dir / f"trial_{trial.number:04d}.sub"
        files[submit] = text(
            "trial.sub.j2", number=f"{trial.number:04d}", folder=str(trial.folder.resolve())
        )
        nodes.append({"node": f"t{trial.number:04d}", "submit": str(submit)})
    collect = condor_dir / "collect.sub"
    files[collect] = text("collect.sub.j2")
    dag = condor_dir / "sweep.dag"
    files[dag] = text("sweep.dag.j2", trials=nodes, collect=str(collect))
    for path, content in files.items():
        write_text(path, content)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
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
