"""data/README.md documents every branch of every ROOT file ccframe writes: its tables are
parsed and compared with real outputs both ways (documented but missing, written but
undocumented), with the documented types."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import uproot
from conftest import REPO

from ccframe.cli import main

README = REPO / "data" / "README.md"


def documented() -> dict[str, dict[str, dict[str, str]]]:
    """{file: {branch: row}} from the tables of data/README.md; a table belongs to the file
    named (first backticked *.root) in the heading above it, and a row is its cells by
    column name (`branch`, `type`, `infer`, `written`, `meaning`)."""
    files: dict[str, dict[str, dict[str, str]]] = {}
    current = None
    columns: list[str] | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            found = re.search(r"`([\w.-]+\.root)`", line)
            current, columns = (found.group(1) if found else None), None
            continue
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if columns is None:
            columns = cells
            continue
        if set("".join(cells)) <= set("-: ") or current is None or columns[0] != "branch":
            continue
        row = dict(zip(columns, cells, strict=True))
        name = row["branch"].strip("`")
        assert name not in files.setdefault(current, {}), f"{current}: {name} documented twice"
        files[current][name] = row
    return files


DOCS = documented()


def test_the_readme_documents_every_output_file():
    want = {"sim.root", "pid_tracks.root", "predictions.root", "traditional.root", "pid.root"}
    assert want <= set(DOCS), sorted(DOCS)
    assert "n_clusters_traditional" in DOCS["traditional.root"]
    assert DOCS["predictions.root"]["event_id"]["infer"] == "yes"


TYPES = {
    "int8_t": "int8",
    "int32_t": "int32",
    "int64_t": "int64",
    "uint64_t": "uint64",
    "double": "double",
    "float": "float",
    "bool": "bool",
}


def written(path: Path, tree: str) -> dict[str, str]:
    """{branch: type as the README writes it} of a file's tree."""
    out = {}
    for name, branch in uproot.open(path)[tree].items():
        typename = re.sub(r"\[\d+\]$", "[N]", branch.typename)
        base, _, rest = typename.partition("[")
        out[name] = TYPES.get(base, base) + (f"[{rest}" if rest else "")
    return out


def check(
    file: str, got: dict[str, str], docs: dict[str, dict[str, str]], optional=frozenset()
) -> None:
    """Both ways: every documented branch is written (except `optional` ones), every
    written branch is documented, with its documented type."""
    missing = sorted(set(docs) - set(got) - set(optional))
    extra = sorted(set(got) - set(docs))
    assert not missing, f"{file}: documented in data/README.md but not written: {missing}"
    assert not extra, f"{file}: written but not documented in data/README.md: {extra}"
    wrong = {k: (docs[k]["type"], t) for k, t in got.items() if docs[k]["type"] != t}
    assert not wrong, f"{file}: (documented, written) types differ: {wrong}"


def rows(file: str, column: str, *values: str) -> dict[str, dict[str, str]]:
    return {k: r for k, r in DOCS[file].items() if r[column] in values}


def test_simulated_file(trained):
    check("sim.root", written(trained / "sim.root", "sim"), DOCS["sim.root"])


def test_traditional_root(trained):
    check(
        "traditional.root",
        written(trained / "traditional.root", "traditional"),
        DOCS["traditional.root"],
    )


def test_predictions_root(trained):
    path = trained / "predictions.root"
    models = rows("predictions.root", "infer", "model")  # not trained in this run
    check("predictions.root", written(path, "predictions"), DOCS["predictions.root"], set(models))
    # times are window times: ns from the first sample
    t = uproot.open(path)["predictions"].arrays(["candidate_sample", "candidate_time_ns"])
    sample = np.concatenate(t["candidate_sample"].to_list())
    time = np.concatenate(t["candidate_time_ns"].to_list())
    np.testing.assert_allclose(time, sample / 1.2, rtol=1e-6)


@pytest.mark.parametrize("truth", [True, False], ids=["truth", "no-truth"])
def test_infer_output(trained, tmp_path, truth):
    out = tmp_path / "inferred.root"
    args = ["infer", str(trained), str(trained / "sim.root"), "-o", str(out)]
    with pytest.raises(SystemExit) as info:
        main(args + ([] if truth else ["--set", "data.truth=none"]))
    assert info.value.code == 0
    docs = rows("predictions.root", "infer", "yes", "truth")
    want = docs if truth else rows("predictions.root", "infer", "yes")
    check("ccframe infer output", written(out, "predictions"), docs, set(docs) - set(want))
    got = uproot.open(out)["predictions"].arrays(["entry", "event_id"], library="np")
    assert np.array_equal(got["event_id"], got["entry"])  # sim.root: event i is entry i


def test_pid_outputs(trained, tmp_path):
    """pid.root with every method (the ML chain of the trained run), and pid_tracks.root."""
    from ccframe.ml.chain import Chain
    from ccframe.pid.stage import run_pid
    from ccframe.reco.config import TraditionalConfig
    from ccframe.steering.schema import Steering

    steering = Steering.model_validate(
        {
            "schema_version": 1,
            "name": "pid",
            "simulate": {"n_waveforms": 10},
            "pid": {"momenta_gev": [5.0], "tracks": 2, "cells": 3, "bootstrap": 5},
        }
    )
    assert steering.pid is not None
    chain = Chain.load(trained, batch=256)
    run_pid(steering, steering.pid, tmp_path, TraditionalConfig(), chain, lambda _: None)
    check("pid.root", written(tmp_path / "pid.root", "tracks"), DOCS["pid.root"])
    tracks = {**DOCS["sim.root"], **DOCS["pid_tracks.root"]}
    check("pid_tracks.root", written(tmp_path / "pid_tracks.root", "sim"), tracks)
