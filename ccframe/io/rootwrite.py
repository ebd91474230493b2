"""Writing TTrees with uproot, chunk by chunk, atomically."""

from __future__ import annotations

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


def write_tree(
    path: str | os.PathLike[str],
    tree: str,
    chunks: Iterable[Mapping[str, Any]],
    compression: str = "lz4",
) -> int:
    """Write `chunks` (dicts of branch arrays) as one tree; return the number of entries.

    The file appears at `path` only once every chunk is written.
    """
    n_entries = 0
    with (
        atomic_path(path) as tmp,
        uproot.recreate(tmp, compression=COMPRESSION[compression]()) as file,
    ):
        out = None
        for chunk in chunks:
            if out is None:
                file.mktree(tree, _types(chunk), counter_name=counter_name)
                out = file[tree]
            out.extend(dict(chunk))
            n_entries += len(next(iter(chunk.values())))
    return n_entries


def _types(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """uproot branch types from the first chunk (awkward records keep their structure)."""
    import awkward as ak

    types: dict[str, Any] = {}
    for name, value in chunk.items():
        types[name] = value.type if isinstance(value, ak.Array) else value.dtype
        if not isinstance(value, ak.Array) and value.ndim > 1:
            types[name] = (value.dtype, value.shape[1:])
    return types
