"""Atomic outputs: write to a temporary file beside the target, then rename over it.

The temporary folder's name records the writing process (`.NAME.PID@HOST.XXXX.tmp`), so a
folder left behind by a killed process is recognised and removed by the next write into
the same folder. A run folder can watch every output written into it (`watch_outputs`): to
keep a manifest of what ccframe wrote and to refuse to overwrite a file it did not write."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ccframe.errors import OutputError
from ccframe.resources import is_disk_full

log = logging.getLogger("ccframe")

HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.[^.]+\.tmp$")

Watcher = Callable[[Path, str], None]
"""Called with (target, event): event 'before' may raise to refuse the write, 'after'
records it."""
_watchers: list[Watcher] = []


@contextlib.contextmanager
def watch_outputs(watcher: Watcher) -> Iterator[None]:
    """Call `watcher` around every atomic write while the context is active."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only on success.

    The temporary file sits in a hidden folder beside the target and already has the
    target's name, so formats that record their own file name (ROOT) record the right one.
    A full disk or a file-size limit is an `OutputError` naming the target, and leaves
    nothing behind.
    """
    target = Path(target)
    for watcher in _watchers:
        watcher(target, "before")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target.parent)
        prefix = f".{target.name}.{os.getpid()}@{HOST}."
        folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here ({exc.strerror or exc})") from None
    tmp = folder / target.name
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if is_disk_full(exc):
            raise OutputError(f"{target}: cannot write ({exc.strerror}); nothing was written")  # noqa: B904
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for watcher in _watchers:
        watcher(target, "after")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary folders in `folder` that a process of this host left behind
    when it was killed; return them (each is also logged)."""
    import psutil

    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and e.is_dir()]
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or match["host"] != HOST or psutil.pid_exists(int(match["pid"])):
            continue
        path = Path(entry.path)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        log.warning(
            "removed %s (%.0f MB), left behind by process %s that was killed while writing",
            path,
            size / 1e6,
            match["pid"],
        )
    return removed


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def write_csv(
    target: str | os.PathLike[str],
    rows: list[dict[str, Any]],
    columns: list[str] | None = None,
) -> None:
    """Rows (dicts) as a CSV table with a header; `columns` (default: the keys of every row,
    in order of appearance) picks and orders the columns, missing values are empty."""
    names = columns or list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(target, out.getvalue())


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
