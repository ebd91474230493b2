"""Shared fixtures. Nothing here writes into the source tree: outputs go to tmp paths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Numba's on-disk cache must not land in the source tree; set before numba is imported.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ccframe-numba-cache"))

import pytest
from hypothesis import settings

settings.register_profile("ccframe", database=None, deadline=None)
settings.load_profile("ccframe")

SAMPLES = Path(__file__).parent / "samples"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated ROOT file (200 default pions, seed 7)."""
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
    """A minimal valid steering file whose run folder lies in tmp_path."""
    path = tmp_path / "tiny.yaml"
    path.write_text(MINIMAL_STEERING.format(output=tmp_path / "run"))
    return path
