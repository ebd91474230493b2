"""Resource checks before large allocations: estimate what a setting needs, compare it with
the memory and disk this machine has, and refuse in one line naming the steering key.

A setting that would need more than `SHARE` of the available memory (or more than the free
disk) is refused before anything is allocated, instead of a NumPy allocation traceback, an
OOM kill that takes the machine with it, or a disk filled to the last byte."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from ccframe.errors import ResourceError

SHARE = 0.8
"""Share of the available memory one estimate may claim."""

_FULL_DISK = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable; cgroup limits honoured)."""
    import psutil

    available = int(psutil.virtual_memory().available)
    limit = _cgroup_limit()
    return min(available, limit) if limit is not None else available


def _cgroup_limit() -> int | None:
    """Remaining bytes under a cgroup v2 memory limit, when the process runs under one."""
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    if text == "max":
        return None
    try:
        return max(0, int(text) - used)
    except ValueError:
        return None


def free_disk(path: str | os.PathLike[str]) -> int:
    """Free bytes on the file system that holds `path` (or its nearest existing parent)."""
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return int(shutil.disk_usage(folder).free)


def human(nbytes: float) -> str:
    """1.5 GB, 320 MB, ... (decimal units, as `df -H` prints them)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} B"


def require_memory(nbytes: float, key: str, what: str) -> None:
    """Refuse (`ResourceError` naming `key`) when `what` needs more than SHARE of the
    available memory."""
    available = available_memory()
    if nbytes > SHARE * available:
        raise ResourceError(
            f"{key}: {what} needs about {human(nbytes)} of memory, {human(available)} is "
            f"available; lower {key}"
        )


def require_disk(nbytes: float, path: str | os.PathLike[str], key: str, what: str) -> None:
    """Refuse (`ResourceError` naming `key`) when `what` needs more than the free disk."""
    free = free_disk(path)
    if nbytes > free:
        raise ResourceError(
            f"{key}: {what} needs up to {human(nbytes)} of disk at {path}, {human(free)} is "
            f"free; lower {key} or write elsewhere"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError means no space, a file-size limit or a quota."""
    return isinstance(exc, OSError) and exc.errno in _FULL_DISK
