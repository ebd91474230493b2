"""Shared fixtures. Nothing here writes into the source tree: outputs go to tmp paths."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Caches must not land in the source tree (subprocesses started by the tests inherit these).
# Numba's: set before numba is imported. Hypothesis's: with database=None it still writes
# .hypothesis/constants/ (a cache of literals from the code under test) in the working folder.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ccframe-numba-cache"))
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "ccframe-hypothesis")
)

import pytest
import yaml
from hypothesis import settings

# No example database (failing examples are not replayed across runs), no deadline (the first
# call of a kernel compiles it).
settings.register_profile("ccframe", database=None, deadline=None)
settings.load_profile("ccframe")

SAMPLES = Path(__file__).parent / "samples"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated ROOT file (200 default pions, seed 7, tree 'sim')."""
    from ccframe.simulate.config import SimulateConfig
    from ccframe.simulate.stage import simulate_to_root

    path = tmp_path_factory.mktemp("sim") / "sim.root"
    simulate_to_root(SimulateConfig(n_waveforms=200, chunk_size=256), seed=7, path=path)
    return path


MINIMAL_STEERING = """\
schema_version: 1
name: tiny
seed: 5
output: {output}
simulate:
  n_waveforms: 300
  chunk_size: 256
"""


@pytest.fixture
def steering_file(tmp_path: Path) -> Path:
    """A minimal valid steering file whose run folder is tmp_path/run."""
    path = tmp_path / "tiny.yaml"
    # A JSON string is a valid YAML scalar, whatever characters the tmp path holds.
    path.write_text(MINIMAL_STEERING.format(output=json.dumps(str(tmp_path / "run"))))
    return path


TINY_ML = {
    "classifier": {
        "lstm_units": 4,
        "dense": [8],
        "dropout": [0.0],
        "training": {"epochs": 2, "batch_size": 256},
    },
    "counter": {
        "filters": [4],
        "pool_size": 8,
        "dense": [8],
        "dropout": [0.0],
        "training": {"epochs": 2, "batch_size": 32},
    },
}


def tiny_steering(
    tmp_path: Path, name: str = "tinyml", n: int = 300, traditional=None, top=None, **ml
):
    """A steering file with tiny ML models (ml keys override TINY_ML's sections; `top`: more
    top-level sections)."""
    steering = {
        "schema_version": 1,
        "name": name,
        "seed": 3,
        "output": str(tmp_path / "{name}"),
        "simulate": {"n_waveforms": n, "chunk_size": 256},
        "ml": {**TINY_ML, **ml},
    }
    if traditional is not None:
        steering["traditional"] = traditional
    steering.update(top or {})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(steering, sort_keys=False))  # a sweep's grid keeps its order
    return path


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder of one tiny end-to-end run: simulate 300 pions, DERIV + clusterization, the
    ML chain with tiny models.

    Shared by the whole session, so read-only: a test that writes into a run folder (`plot`,
    `robustness`, `run --force`...) takes `trained_copy`. At the end of the session the folder
    must be as the run left it, else the tests' results would depend on their order."""
    from ccframe.cli import main

    tmp = tmp_path_factory.mktemp("ml")
    path = tiny_steering(tmp, traditional={})
    with pytest.raises(SystemExit) as info:
        main(["run", str(path)])
    assert info.value.code == 0
    run = tmp / "tinyml"
    before = _snapshot(run)
    yield run
    after = _snapshot(run)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test wrote into the shared `trained` run folder: {changed[:10]}"


@pytest.fixture
def trained_copy(trained: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the `trained` run folder for tests that write into a run
    folder: same folder name, every file (run.json's outputs and steering.yaml stay consistent),
    links kept as links. Commands given the copy (`plot`, `robustness`...) write only into it;
    its simulated sample is the copy's own sim.root."""
    return Path(shutil.copytree(trained, tmp_path / trained.name, symlinks=True))


# `--set` overrides that shrink a shipped steering file (simulate, tune, ml) to a smoke run.
TINY_OVERRIDES = (
    "simulate.n_waveforms=400",
    "tune.max_events=200",
    "tune.n1=[4.0, 5.0]",
    "ml.classifier.lstm_units=4",
    "ml.classifier.dense=[8]",
    "ml.classifier.dropout=[0.0]",
    "ml.classifier.training.epochs=1",
    "ml.counter.filters=[4]",
    "ml.counter.training.epochs=1",
)


def set_args(*overrides: str) -> list[str]:
    """`--set KEY=VALUE` pairs for the command line."""
    return [a for item in overrides for a in ("--set", item)]


def small_steering(
    tmp_path: Path,
    name: str = "tiny",
    output: str = "run",
    n: int = 50,
    seed: int = 5,
    **sections,
) -> Path:
    """A steering file simulating `n` waveforms in one chunk (run folder tmp_path/output),
    with more top-level sections."""
    steering = {
        "schema_version": 1,
        "name": name,
        "seed": seed,
        "output": str(tmp_path / output),
        "simulate": {"n_waveforms": n, "chunk_size": min(n, 100)},
        **sections,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(steering, sort_keys=False))
    return path
