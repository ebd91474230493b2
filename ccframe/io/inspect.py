"""`ccframe inspect`: what a ROOT file holds, and statistics of its waveforms."""

from __future__ import annotations

from typing import Any

from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.io.describe import describe, format_description
from ccframe.io.reader import iter_batches, open_file, reason, rntuples


def list_trees(path: str) -> list[dict[str, Any]]:
    """Trees of a file with their entries and branches (name, type)."""
    file, names = open_file(path)
    trees = []
    for name in names:
        try:
            tree = file[name]
            branches = [(b.name, b.typename) for b in tree.branches]
        except Exception as exc:
            raise InputError(f"{path}: cannot read tree '{name}' ({reason(exc)})") from None
        trees.append({"name": name, "entries": int(tree.num_entries), "branches": branches})
    return trees


def inspect_file(path: str, data: DataConfig) -> str:
    """A report of the file's trees and, when its waveform branch is there, their statistics."""
    trees = list_trees(path)
    out = [f"{path}"]
    others = rntuples(open_file(path)[0])
    out.extend(f"  RNTuple '{name}' (not read by ccframe: it reads TTrees)" for name in others)
    if not trees:
        out.append("  no TTrees")
    for tree in trees:
        out.append(f"  tree '{tree['name']}': {tree['entries']} entries")
        width = max((len(n) for n, _ in tree["branches"]), default=0)
        out.extend(f"    {name:<{width}}  {typename}" for name, typename in tree["branches"])
    chosen = next(
        (
            t
            for t in trees
            if t["name"] == data.tree and data.waveform_branch in dict(t["branches"])
        ),
        None,
    )
    if chosen is None:
        candidates = [t["name"] for t in trees if data.waveform_branch in dict(t["branches"])]
        if not candidates:
            out.append(
                f"  (no tree '{data.tree}' with a '{data.waveform_branch}' branch: "
                "use --tree/--branch for waveform statistics)"
            )
            return "\n".join(out)
        data = data.model_copy(update={"tree": candidates[0]})
    out.append(
        f"waveform statistics of '{data.tree}/{data.waveform_branch}' "
        f"(at most {data.max_events} entries):"
    )
    out.append(format_description(describe(iter_batches(data, files=[path]))))
    return "\n".join(out)
