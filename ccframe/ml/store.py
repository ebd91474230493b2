"""Arrays on disk: appended chunk by chunk to raw files in a folder, described by a manifest
written last, and read back as read-only memory maps. A dataset larger than memory is built
and trained on this way with flat memory (docs/performance.md, "Training that streams")."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ccframe.errors import InputError, OutputError
from ccframe.resources import is_disk_full, require_disk

MANIFEST = "manifest.json"
FORMAT = "ccframe-arrays"


class ArrayWriter:
    """Append arrays by name (each name keeps its dtype and inner shape) to raw files in a
    new `folder`; `close(attrs)` writes the manifest, which makes the folder readable.
    `disk_key` is the steering key named when the disk is too small."""

    def __init__(self, folder: Path, disk_key: str) -> None:
        folder.mkdir(parents=True, exist_ok=False)
        self.folder, self.disk_key = folder, disk_key
        self._files: dict[str, BinaryIO] = {}
        self._layout: dict[str, dict[str, Any]] = {}

    def append(self, name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        layout = self._layout.get(name)
        if layout is None:
            layout = {"dtype": array.dtype.str, "shape": list(array.shape[1:]), "rows": 0}
            self._layout[name] = layout
            self._files[name] = open(self.folder / f"{name}.raw", "wb")  # noqa: SIM115
        elif array.dtype.str != layout["dtype"] or list(array.shape[1:]) != layout["shape"]:
            raise ValueError(
                f"{name}: got {array.dtype.str} {array.shape[1:]}, earlier chunks "
                f"{layout['dtype']} {tuple(layout['shape'])}"
            )
        require_disk(array.nbytes, self.folder, self.disk_key, f"writing '{name}'")
        try:
            array.tofile(self._files[name])
        except OSError as exc:
            if is_disk_full(exc):
                raise OutputError(f"{self.folder}: disk full while writing '{name}'") from None
            raise
        layout["rows"] += len(array)

    def close(self, attrs: dict[str, Any]) -> None:
        """Flush the arrays and write the manifest (arrays and `attrs`, JSON values)."""
        for handle in self._files.values():
            handle.close()
        manifest = {"format": FORMAT, "arrays": self._layout, "attrs": attrs}
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=1))

    def discard(self) -> None:
        """Close and delete everything written (after a failure)."""
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def read_arrays(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of a closed folder as read-only memory maps, and its attributes. A missing
    or inconsistent manifest or file is an `InputError` naming the folder."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        arrays = {
            name: _mapped(folder / f"{name}.raw", layout)
            for name, layout in manifest["arrays"].items()
        }
        return arrays, manifest["attrs"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{folder}: not a readable array folder ({exc})") from None


def _mapped(path: Path, layout: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(layout["dtype"])
    shape = (int(layout["rows"]), *(int(s) for s in layout["shape"]))
    expected = int(np.prod(shape)) * dtype.itemsize
    size = os.path.getsize(path)
    if size != expected:
        raise ValueError(f"{path.name} has {size} bytes, the manifest says {expected}")
    if expected == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)
