"""The run folder: resolved steering file, provenance, status; never silently overwritten.

One process at a time writes a run folder: it holds an exclusive lock on `.ccframe.lock`
for as long as it runs (the kernel releases it when the process dies, however it dies),
so a `running` status whose lock is free is a run that was killed ("interrupted"). Every
file the run writes is listed in `run.json` ("outputs"); `--force` removes those and
nothing else, and ccframe never overwrites a file in the folder that it did not write."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from ccframe import __version__
from ccframe.errors import InputError, OutputError, reason
from ccframe.io.atomic import HOST, remove_stale_temporaries, watch_outputs, write_json, write_text
from ccframe.runfolder.artifacts import STATUS, STEERING
from ccframe.steering.loader import dump_steering
from ccframe.steering.schema import Steering

log = logging.getLogger("ccframe")

LOCK_FILE = ".ccframe.lock"
# A folder holding trial.json and only these is a sweep trial waiting to run.
TRIAL_INPUTS = frozenset(
    {STEERING, "trial.json", "trial.log", "resources.json", "trial.out", "trial.err"}
)
LIBRARIES = (
    "numpy",
    "scipy",
    "numba",
    "uproot",
    "awkward",
    "pydantic",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "hist",
    "mplhep",
)


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "ccframe": __version__}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def git_revision() -> str | None:
    """The git commit of the ccframe source (with '-dirty'), when it runs from a checkout."""
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return None
    try:
        rev = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() or None


class FolderLock:
    """An exclusive, non-blocking `flock` on FOLDER/.ccframe.lock, held until `release` or
    the end of the process."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fh: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fh = self.path.open("ab")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the lock
            self._fh = None

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now (probed without waiting)."""
        if self._fh is not None or not self.path.is_file():
            return False
        if self.acquire():
            self.release()
            return False
        return True


def read_status(folder: Path) -> dict[str, Any] | None:
    """run.json of a run folder, with a `running` status whose process is gone (its lock is
    free) reported as `interrupted`; None when there is no run.json."""
    status = folder / STATUS
    if not status.is_file():
        return None
    try:
        record = dict(json.loads(status.read_text()))
    except (OSError, ValueError, RecursionError):
        return {"status": "unreadable"}
    if record.get("status") == "running" and not FolderLock(folder).held_elsewhere():
        record["status"] = "interrupted"
    return record


def add_outputs(folder: Path, names: tuple[str, ...]) -> None:
    """Add `names` to the outputs that a finished run's run.json lists, before a command
    (`ccframe export`) writes them into its folder, so that a killed writer leaves nothing
    unlisted and `run --force` removes them; a run.json without a list is left as it is."""
    path = folder / STATUS
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read it ({reason(exc)})") from None
    outputs = record.get("outputs") if isinstance(record, dict) else None
    if not isinstance(outputs, list):
        return
    new = [name for name in names if name not in outputs]
    if new:
        write_json(path, {**record, "outputs": [*outputs, *new]})


def is_pending_trial(entries: set[str]) -> bool:
    """Whether a folder holding these names is a sweep trial waiting to run."""
    return "trial.json" in entries and entries <= TRIAL_INPUTS


def describe_writer(record: dict[str, Any] | None) -> str:
    """'process 123 on host h' from a run.json record (or 'another process')."""
    if record and record.get("pid"):
        return f"process {record['pid']} on host {record.get('host', '?')}"
    return "another process"


class RunDir:
    """A run folder. `prepare` refuses a folder that already holds a run unless `force`, a
    live run always, and a folder of files ccframe did not write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = FolderLock(self.path)
        self._record: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._replaceable: set[str] = set()
        self._watch: Any = None

    def status(self) -> dict[str, Any] | None:
        return read_status(self.path)

    def prepare(self, steering: Steering, argv: list[str], force: bool = False) -> None:
        """Lock the folder, clear a previous run's outputs (`force`), write steering.yaml
        and run.json (status running), and start recording every output written here."""
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: output exists and is not a folder")
        if self.path.is_dir():
            self._refuse_foreign()  # before the lock file is made in a folder not ours
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the run folder ({exc.strerror or exc})"
            ) from None
        if not self._lock.acquire():
            raise OutputError(
                f"{self.path}: a run is live in this folder ({describe_writer(self.status())}); "
                "wait for it to end, or stop it, before running here"
            )
        try:
            remove_stale_temporaries(self.path)
            self._clear(force)
            self._start(steering, argv)
        except BaseException:
            self._lock.release()
            raise

    def _entries(self) -> set[str]:
        return {p.name for p in self.path.iterdir()} - {LOCK_FILE}

    def _clear(self, force: bool) -> None:
        entries = self._entries()
        if not entries:
            return
        if is_pending_trial(entries):
            self._replaceable = {STEERING}  # the sweep wrote it
            return
        self._refuse_foreign()
        previous = read_status(self.path) or {}
        state = previous.get("status", "unknown")
        if state == "running":  # this process holds the lock: its writer is gone
            state = "interrupted"
        if not force:
            raise OutputError(
                f"{self.path}: folder already holds a run ({state}); use --force to replace "
                "it or --set output=<another folder>"
            )
        outputs = previous.get("outputs")
        if not isinstance(outputs, list):
            raise OutputError(
                f"{self.path}: run.json does not list the run's outputs (written by an older "
                "ccframe), so --force cannot tell them from your files; remove the folder "
                "yourself"
            )
        self._remove([*map(str, outputs), STEERING, STATUS])
        kept = sorted(str(p.relative_to(self.path)) for p in self._files())
        if kept:
            more = ", ..." if len(kept) > 5 else ""
            log.warning(
                "%s: kept %d file(s) ccframe did not write: %s%s",
                self.path,
                len(kept),
                ", ".join(kept[:5]),
                more,
            )

    def _refuse_foreign(self) -> None:
        """A folder with files but no run.json (and not a sweep trial) is not ccframe's."""
        entries = self._entries()
        if not entries or STATUS in entries or is_pending_trial(entries):
            return
        listed = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise OutputError(
            f"{self.path}: folder holds files ccframe did not write ({listed}) and is not a "
            "ccframe run; choose another output folder (--set output=...)"
        )

    def _remove(self, names: list[str]) -> None:
        """Remove these run-relative files (never following a link out of the folder),
        then the folders they leave empty."""
        root = self.path.resolve()
        parents: set[Path] = set()
        for name in names:
            path = self.path / name
            if not path.resolve().is_relative_to(root) and not path.is_symlink():
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
                parents.update(p for p in path.parents if p != self.path and self.path in p.parents)
        for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                continue  # not empty: holds the user's files

    def _files(self) -> list[Path]:
        found = self.path.rglob("*")
        return [p for p in found if (p.is_file() or p.is_symlink()) and p.name != LOCK_FILE]

    def _start(self, steering: Steering, argv: list[str]) -> None:
        self._started = time.time()
        self._record = {
            "status": "running",
            "name": steering.name,
            "seed": steering.seed,
            "command": argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._started)),
            "pid": os.getpid(),
            "host": HOST,
            "git": git_revision(),
            "versions": library_versions(),
            "platform": platform.platform(),
            "executable": sys.executable,
            "outputs": self._outputs,
        }
        self._watch = watch_outputs(self._on_write)
        self._watch.__enter__()
        write_text(self.path / STEERING, dump_steering(steering))
        self._write_status()

    def _on_write(self, target: Path, event: str) -> None:
        """Refuse to overwrite a file ccframe did not write; record each output."""
        try:
            name = str(Path(os.path.abspath(target)).relative_to(os.path.abspath(self.path)))
        except ValueError:
            return  # not in this run folder (a cache, another file)
        if name == STATUS:
            return
        if event == "before":
            mine = name in self._outputs or name in self._replaceable
            if name == LOCK_FILE or (os.path.lexists(target) and not mine):
                raise OutputError(
                    f"{target}: exists and was not written by ccframe; refusing to overwrite it "
                    "(move it away, or write this run elsewhere)"
                )
            return
        if name not in self._outputs:
            self._outputs.append(name)
            self._write_status()

    def _write_status(self) -> None:
        write_json(self.path / STATUS, self._record)

    @property
    def record(self) -> dict[str, Any]:
        """The run.json record so far."""
        return dict(self._record)

    def elapsed(self) -> float:
        return round(time.time() - self._started, 3)

    def finish(self, status: str, **extra: Any) -> None:
        """Record the final status (and wall time); stop recording; release the lock. A
        failure to write run.json (a full disk) is logged, not raised over the run's own
        error."""
        self._record.update(status=status, wall_s=round(time.time() - self._started, 3), **extra)
        try:
            self._write_status()
        except OutputError as exc:
            if status == "done":
                raise
            log.warning("%s", exc)
        finally:
            if self._watch is not None:
                self._watch.__exit__(None, None, None)
                self._watch = None
            self._lock.release()
