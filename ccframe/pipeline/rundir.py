"""The run folder: resolved steering file, provenance, status; never silently overwritten."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ccframe import __version__
from ccframe.errors import OutputError
from ccframe.io.atomic import write_json, write_text
from ccframe.steering.loader import dump_steering
from ccframe.steering.schema import Steering

STATUS_FILE = "run.json"
# A folder holding only these is a sweep trial waiting to run (ccframe sweep writes them).
TRIAL_INPUTS = frozenset(
    {"steering.yaml", "trial.json", "trial.log", "resources.json", "trial.out", "trial.err"}
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


class RunDir:
    """A run folder. `prepare` refuses a folder that already holds a run unless `force`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def status(self) -> dict[str, Any] | None:
        import json

        status = self.path / STATUS_FILE
        if not status.is_file():
            return None
        try:
            return dict(json.loads(status.read_text()))
        except (OSError, ValueError):
            return {"status": "unreadable"}

    def prepare(self, steering: Steering, argv: list[str], force: bool = False) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: output exists and is not a folder")
        if self.path.is_dir() and not {p.name for p in self.path.iterdir()} <= TRIAL_INPUTS:
            previous = self.status()
            state = previous.get("status", "unknown") if previous else "unknown contents"
            if not force:
                raise OutputError(
                    f"{self.path}: folder already holds a run ({state}); use --force to replace "
                    "it or --set output=<another folder>"
                )
            if previous is None:
                raise OutputError(
                    f"{self.path}: folder is not a ccframe run; refusing to replace it even with "
                    "--force"
                )
            shutil.rmtree(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the run folder ({exc.strerror or exc})"
            ) from None
        write_text(self.path / "steering.yaml", dump_steering(steering))
        self._started = time.time()
        self._record = {
            "status": "running",
            "name": steering.name,
            "seed": steering.seed,
            "command": argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._started)),
            "git": git_revision(),
            "versions": library_versions(),
            "platform": platform.platform(),
            "executable": sys.executable,
        }
        write_json(self.path / STATUS_FILE, self._record)

    def finish(self, status: str, **extra: Any) -> None:
        self._record.update(status=status, wall_s=round(time.time() - self._started, 3), **extra)
        write_json(self.path / STATUS_FILE, self._record)


def input_files(run_dir: Path, steering: Steering) -> list[str]:
    """The files a run read, in order: data.files, or the simulated sample in the run folder."""
    from ccframe.io.reader import expand_files

    if steering.simulate is not None and not steering.data.files:
        return [str(run_dir / steering.simulate.output)]
    return expand_files(steering.data.files)
