"""Steering section `sweep:`: which steering keys vary, how trials are drawn, which metric
ranks them and where they run. `ccframe run` ignores it; `ccframe sweep` reads it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, PositiveInt, model_validator

from ccframe.settings import Section


class _SweepSection(Section):
    model_config = ConfigDict(use_attribute_docstrings=True)


class Parameter(_SweepSection):
    """One swept steering key: a list of values, or a uniform range."""

    values: list[Any] | None = Field(None, min_length=1)
    """The values to try (any YAML value: numbers, strings, lists, partial mappings)."""
    min: int | float | None = None
    """Lower end of a uniform range (integers when min and max are both integers)."""
    max: int | float | None = None
    """Upper end of a uniform range."""
    log: bool = False
    """Draw uniformly in the logarithm (min > 0)."""

    @model_validator(mode="after")
    def _one_kind(self) -> Parameter:
        has_range = self.min is not None or self.max is not None
        if (self.values is None) == (not has_range):
            raise ValueError("give either values: [...] or min: and max:")
        if has_range:
            if self.min is None or self.max is None:
                raise ValueError("a range needs both min and max")
            if not self.min < self.max:
                raise ValueError(f"min ({self.min}) must be below max ({self.max})")
            if self.log and self.min <= 0:
                raise ValueError("log: true needs min > 0")
        elif self.log:
            raise ValueError("log applies to a min/max range, not to values")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.min, int) and isinstance(self.max, int)


class Resources(_SweepSection):
    """Resources per trial (HTCondor requests; request_cpus and max_runtime_s also apply to
    local trials)."""

    request_cpus: int = Field(1, gt=0, le=1024)
    """Cores per trial (OMP/TF threads follow it)."""
    request_memory_mb: PositiveInt = 4096
    """[MB] Memory per trial."""
    request_disk_mb: PositiveInt = 4096
    """[MB] Scratch disk per trial."""
    max_runtime_s: PositiveInt | None = None
    """[s] A trial running longer is stopped (condor: removed; local: killed); unset: no
    limit."""
    retries: int = Field(1, ge=0, le=20)
    """DAG retries of a failed trial (condor)."""
    requirements: str | None = None
    """ClassAd requirements expression (condor)."""
    accounting_group: str | None = None
    """accounting_group of the jobs (condor)."""
    transfer: Literal["files", "shared"] = "shared"
    """shared: the job runs in its trial folder on a shared file system; files: the
    steering file is transferred in and the run folder back (as the trial's `out/`)."""


class SweepConfig(Resources):
    """A sweep over steering keys (dotted paths, e.g. ml.classifier.lstm_units)."""

    method: Literal["grid", "random", "bayes"] = "grid"
    """grid: every combination of the values; random: seeded draws; bayes: optuna TPE."""
    parameters: dict[str, Parameter] = Field(min_length=1)
    """Dotted steering key -> values or range."""
    trials: int = Field(10, gt=0, le=100_000)
    """Number of trials (random, bayes)."""
    seed: int = Field(0, ge=0, lt=2**32)
    """Seed of the random and bayes draws."""
    vary_seed: bool = False
    """Give trial N the steering seed + N (default: every trial the steering's seed)."""
    metric: str = "ml.classifier.test.f1"
    """Dotted path into a trial's metrics.json that ranks the trials."""
    direction: Literal["maximize", "minimize"] = "maximize"
    """Whether a larger or smaller metric is better."""
    tie_breakers: list[str] = Field(
        default=["ml.classifier.test.auc", "ml.classifier.test.efficiency_x_purity"]
    )
    """Metrics that rank trials of equal metric, in order (same direction)."""
    executor: Literal["local", "condor"] = "local"
    """Where trials run: local processes, or an HTCondor DAG."""
    parallel: int | None = Field(None, gt=0, le=1024)
    """Local trials at once (default: cores // threads per trial, at least 1)."""

    @model_validator(mode="after")
    def _grid_has_values(self) -> SweepConfig:
        if self.method == "grid":
            ranged = [k for k, p in self.parameters.items() if p.values is None]
            if ranged:
                raise ValueError(
                    f"method grid needs values: [...] for every parameter; {ranged[0]} has a "
                    "min/max range (use method random or bayes)"
                )
        return self
