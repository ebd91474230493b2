"""Writing TTrees with uproot, chunk by chunk, atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import uproot

from ccframe.io.atomic import atomic_path

COMPRESSION = {
    "lz4": lambda: uproot.LZ4(1),
    "zlib": lambda: uproot.ZLIB(1),
    "zstd": lambda: uproot.ZSTD(1),
    "none": lambda: None,
}


def counter_name(record: str) -> str:
    """ROOT counter branch of a jagged record: `cluster` -> `n_clusters`."""
    return f"n_{record}s"


class TreeWriter:
    """A tree written chunk by chunk (`add`) into a file that appears at `path` only when the
    writer closes without an error (a context manager)."""

    def __init__(self, path: str | os.PathLike[str], tree: str, compression: str = "lz4") -> None:
        self.path, self.tree, self.compression = path, tree, compression
        self.entries = 0
        self._stack = contextlib.ExitStack()
        self._file: Any = None
        self._out: Any = None

    def __enter__(self) -> TreeWriter:
        with self._stack as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            codec = COMPRESSION[self.compression]()
            self._file = stack.enter_context(uproot.recreate(tmp, compression=codec))
            self._stack = stack.pop_all()
        return self

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Append a dict of branch arrays (the first chunk sets the branch types)."""
        if self._out is None:
            self._file.mktree(self.tree, _types(chunk), counter_name=counter_name)
            self._out = self._file[self.tree]
        self._out.extend(dict(chunk))
        self.entries += len(next(iter(chunk.values())))

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._stack.__exit__(*exc))


def write_tree(
    path: str | os.PathLike[str],
    tree: str,
    chunks: Iterable[Mapping[str, Any]],
    compression: str = "lz4",
) -> int:
    """Write `chunks` (dicts of branch arrays) as one tree; return the number of entries.

    The file appears at `path` only once every chunk is written.
    """
    with TreeWriter(path, tree, compression) as writer:
        for chunk in chunks:
            writer.add(chunk)
    return writer.entries


def _types(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """uproot branch types from the first chunk (awkward records keep their structure)."""
    import awkward as ak

    types: dict[str, Any] = {}
    for name, value in chunk.items():
        types[name] = value.type if isinstance(value, ak.Array) else value.dtype
        if not isinstance(value, ak.Array) and value.ndim > 1:
            types[name] = (value.dtype, value.shape[1:])
    return types
