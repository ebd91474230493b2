"""`ccframe inspect`: what a ROOT file holds, and statistics of its waveforms."""

from __future__ import annotations

from typing import Any

from ccframe.errors import InputError, reason
from ccframe.io.config import DataConfig
from ccframe.io.describe import describe, format_description
from ccframe.io.reader import iter_batches, open_file, open_tree, require_branch


def list_trees(path: str) -> list[dict[str, Any]]:
    """TTrees and RNTuples of a file with their kind ("tree" or "RNTuple"), entries and
    branches or fields (name, type)."""
    _, tables = open_file(path)
    trees = []
    for name, kind in tables.items():
        tree = open_tree(path, name)
        try:
            branches = [(b.name, b.typename) for b in tree.branches]
        except Exception as exc:
            raise InputError(f"{path}: cannot read {kind} '{name}' ({reason(exc)})") from None
        entries = int(tree.num_entries)
        trees.append({"name": name, "kind": kind, "entries": entries, "branches": branches})
    return trees


def inspect_file(path: str, data: DataConfig, asked: bool = False) -> str:
    """A report of the file's trees and, when its waveform branch is there, their statistics.
    `asked`: data.tree or data.waveform_branch was given, so not finding or not reading them
    is an error; otherwise another tree with the waveform branch is taken, or none."""
    trees = list_trees(path)
    out = [f"{path}"]
    if not trees:
        out.append("  no TTrees or RNTuples")
    for tree in trees:
        out.append(f"  {tree['kind']} '{tree['name']}': {tree['entries']} entries")
        width = max((len(n) for n, _ in tree["branches"]), default=0)
        out.extend(f"    {name:<{width}}  {typename}" for name, typename in tree["branches"])
    candidates = [t["name"] for t in trees if data.waveform_branch in dict(t["branches"])]
    if asked:
        require_branch(open_tree(path, data.tree), data.waveform_branch, path, "--branch")
    elif data.tree not in candidates:
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
