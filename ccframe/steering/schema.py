"""Steering schema, version 1: the root object that every stage adds its section to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ccframe.io.config import DataConfig
from ccframe.ml.config import InferConfig, MLConfig, RobustnessConfig
from ccframe.pid.config import PidConfig
from ccframe.plots.config import PlotsConfig
from ccframe.reco.config import TraditionalConfig, TuneConfig
from ccframe.settings import Section
from ccframe.simulate.config import SimulateConfig
from ccframe.sweep.config import SweepConfig

SCHEMA_VERSION = 1


class Steering(Section):
    """A whole steering file. A stage runs when its section is present."""

    schema_version: Literal[1]
    """Version of the steering format; 1 is the only one."""
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """Name of the run (letters, digits, _ . -): the run folder is named after it."""
    seed: int = Field(42, ge=0, lt=2**63)
    """Seed of every random choice of the run (simulation, splits, training): the same
    seed and steering file give the same run."""
    output: str = "runs/{name}"
    """The run folder, relative to the working directory; {name} is replaced by `name`."""
    data: DataConfig = DataConfig()
    """The input: ROOT files to read and how; without data.files the simulate: stage's
    output is the input."""
    simulate: SimulateConfig | None = None
    """Stage simulate: waveforms with full Monte Carlo truth (sim.root)."""
    tune: TuneConfig | None = None
    """Stage tune: grid scan of the traditional thresholds on the input (tuned.yaml)."""
    traditional: TraditionalConfig | None = None
    """Stage traditional: DERIV or D2 + clusterization on every waveform (traditional.root)."""
    ml: MLConfig | None = None
    """Stage ml: train and test the LSTM peak classifier and CNN cluster counter
    (predictions.root)."""
    infer: InferConfig | None = None
    """Stage infer: apply another run's trained chain to the input (inferred.root)."""
    robustness: RobustnessConfig | None = None
    """Stage robustness: the chain and DERIV on smeared test waveforms (robustness.json)."""
    pid: PidConfig | None = None
    """Stage pid: tracks through many cells and the separation power of each count."""
    plots: PlotsConfig | None = None
    """Stage plots: every plot the run's outputs allow, and report.html."""
    sweep: SweepConfig | None = None
    """Read by `ccframe sweep` only; `ccframe run` ignores it."""

    @model_validator(mode="after")
    def _has_input(self) -> Steering:
        if not self.data.files and self.simulate is None:
            raise ValueError(
                "nothing to read: give data.files or add a simulate: section "
                "(the simulator is the default input)"
            )
        return self

    @property
    def input_data(self) -> DataConfig:
        """The `data:` mapping the input is read with; a simulated input is read from the
        simulate section's tree."""
        if self.simulate is not None and not self.data.files:
            return self.data.model_copy(update={"tree": self.simulate.tree})
        return self.data

    @property
    def output_dir(self) -> str:
        return self.output.replace("{name}", self.name)
