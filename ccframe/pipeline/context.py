"""What the stages of one `ccframe run` share: the resolved steering file, the run folder and
its file names, the input files, and the products of earlier stages held in memory (tuned
thresholds, the resolved traditional settings, the trained chain, summary and metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccframe.io.atomic import write_json
from ccframe.io.config import DataConfig
from ccframe.logs import Log
from ccframe.reco.config import TraditionalConfig
from ccframe.runfolder.artifacts import METRICS, SUMMARY, Artifacts
from ccframe.steering.schema import Steering


@dataclass
class RunContext:
    """One run's shared state. Stages read what earlier stages left here instead of reading
    it back from the run folder."""

    steering: Steering
    artifacts: Artifacts
    log: Log
    files: list[str] = field(default_factory=list)
    """The input files: data.files, or the simulated sample once the simulate stage ran."""
    tuned: dict[str, Any] | None = None
    """The tune stage's thresholds (as written to its tuned.yaml)."""
    traditional: TraditionalConfig = field(default_factory=TraditionalConfig)
    """The traditional settings with tuned (or given) thresholds applied."""
    chain: Any = None
    """The trained ML chain (ccframe.ml.chain.Chain), once the ml stage ran."""
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    products: dict[str, Any] = field(default_factory=dict)
    """Anything else one stage hands to a later one, by name."""

    @property
    def run_dir(self) -> Path:
        return self.artifacts.run_dir

    @property
    def data(self) -> DataConfig:
        """The mapping the input is read with."""
        return self.steering.input_data

    @property
    def seed(self) -> int:
        return self.steering.seed

    def save_summary(self) -> None:
        write_json(self.artifacts.path(SUMMARY), self.summary)

    def save_metrics(self) -> None:
        write_json(self.artifacts.path(METRICS), self.metrics)
