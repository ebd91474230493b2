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
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = Field(42, ge=0, lt=2**63)
    output: str = "runs/{name}"
    data: DataConfig = DataConfig()
    simulate: SimulateConfig | None = None
    tune: TuneConfig | None = None
    traditional: TraditionalConfig | None = None
    ml: MLConfig | None = None
    infer: InferConfig | None = None
    robustness: RobustnessConfig | None = None
    pid: PidConfig | None = None
    plots: PlotsConfig | None = None
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
