"""What `ccframe compare` compares with what: each input's kind (data or simulation), the
reference the ratios are taken to, and the one set of candidate and traditional settings
every input is reconstructed with (printed, never changed silently)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ccframe.errors import InputError, SteeringError, closest
from ccframe.kernels.config import CandidateConfig
from ccframe.logs import Log
from ccframe.reco.config import TraditionalConfig
from ccframe.steering.schema import Steering

warn = logging.getLogger("ccframe").warning
"""A difference the user must see: one line on stderr (`ccframe: warning: ...`)."""
Kind = Literal["data", "simulation"]
CandidateSource = Literal["chain", "steering"]


def load_inputs(paths: tuple[str, ...], overrides: tuple[str, ...]) -> list[Steering]:
    """The inputs' steering files with the `--set` overrides applied to each."""
    from ccframe.steering.loader import load_steering

    return [load_steering(path, overrides) for path in paths]


def kind_of(steering: Steering) -> Kind:
    """'data' for an input that reads data.files (even with a simulate: section, which
    compare then does not use), else 'simulation' (its simulate: section is simulated)."""
    return "data" if steering.data.files else "simulation"


def reference_index(steerings: list[Steering], name: str | None) -> int:
    """The input the ratios are taken to: `name`, else the first simulation when there is a
    data input, else the first input."""
    names = [s.name for s in steerings]
    if name is not None:
        if name not in names:
            raise InputError(
                f"compare: --reference {name!r} is not an input; the inputs are "
                f"{', '.join(names)}{closest(name, names)}"
            )
        return names.index(name)
    kinds = [kind_of(s) for s in steerings]
    if "data" in kinds and "simulation" in kinds:
        return kinds.index("simulation")
    return 0


def ratio_label(kinds: list[Kind], names: list[str], ref: int) -> str:
    """The ratio panel's axis label: 'data / simulation' when every other input is data and
    the reference a simulation, else 'X / <reference>'."""
    others = [k for i, k in enumerate(kinds) if i != ref]
    if kinds[ref] == "simulation" and all(k == "data" for k in others):
        return "data / simulation"
    if len(others) == 1:
        other = next(n for i, n in enumerate(names) if i != ref)
        return f"{other} / {names[ref]}"
    return f"input / {names[ref]}"


def describe_candidates(cfg: CandidateConfig) -> str:
    """One line: the candidate thresholds in noise RMS."""
    text = f"A > {cfg.min_amplitude_rms:g} x noise RMS, -D2s > {cfg.min_curvature_rms:g} x RMS"
    sep = cfg.min_separation_samples
    return text + (f", non-maximum suppression within {sep} samples" if sep > 1 else "")


def short_candidates(cfg: CandidateConfig) -> str:
    """A plot's caption of the candidate settings."""
    text = rf"candidates: $A > {cfg.min_amplitude_rms:g}\,\sigma_{{noise}}$"
    if cfg.min_curvature_rms:
        text += rf", $-D_2 > {cfg.min_curvature_rms:g}\,\sigma$"
    if cfg.min_separation_samples > 1:
        text += f", sep. {cfg.min_separation_samples}"
    return text


@dataclass(frozen=True)
class CandidateChoice:
    """The candidate settings every input is scanned with, and where they come from."""

    config: CandidateConfig
    source: str
    note: str | None = None

    def line(self) -> str:
        return (
            f"compare: candidates: {describe_candidates(self.config)} ({self.source}), every input"
        )


def steering_candidates(steerings: list[Steering]) -> tuple[CandidateConfig, str]:
    """The inputs' ml.dataset.candidates: those that set them must agree (`--set` applies
    to every input); the default when none does."""
    given = [
        (s.name, s.ml.dataset.candidates)
        for s in steerings
        if s.ml is not None and "candidates" in s.ml.dataset.model_fields_set
    ]
    if not given:
        return CandidateConfig(), "the default"
    name, cfg = given[0]
    for other, other_cfg in given[1:]:
        if other_cfg != cfg:
            raise InputError(
                f"compare: inputs '{name}' and '{other}' set different ml.dataset.candidates "
                f"({describe_candidates(cfg)} vs {describe_candidates(other_cfg)}); every input "
                "needs the same: align them with --set ml.dataset.candidates.KEY=VALUE"
            )
    return cfg, f"ml.dataset.candidates of '{name}'"


def choose_candidates(
    steerings: list[Steering],
    chain: CandidateConfig | None,
    chain_dir: Path | None,
    source: CandidateSource | None,
) -> CandidateChoice:
    """The chain's candidate settings when a chain is given (its ML quantities need them),
    else the inputs'; `source` chooses. A difference between the two is stated in `note`."""
    own, own_source = steering_candidates(steerings)
    if source is None:
        source = "chain" if chain is not None else "steering"
    if source == "chain":
        if chain is None:
            raise InputError("compare: --candidates chain needs --chain RUN_DIR")
        note = None
        if chain != own:
            note = (
                f"compare: the chain's candidates ({describe_candidates(chain)}) differ "
                f"from {own_source} ({describe_candidates(own)}); using the chain's for every "
                "input, as its ML quantities need them (--candidates steering: the inputs')"
            )
        return CandidateChoice(chain, f"the chain's, {chain_dir}", note)
    note = None
    if chain is not None and chain != own:
        note = (
            f"compare: the candidate quantities use {own_source}; the chain scans with its "
            f"own ({describe_candidates(chain)}) for the ML quantities (--candidates chain: "
            "the chain's for all)"
        )
    return CandidateChoice(own, own_source, note)


def describe_traditional(cfg: TraditionalConfig) -> str:
    """One line: the traditional algorithm, its thresholds and c."""
    finder = ", ".join(f"{k}={v:g}" for k, v in cfg.finder.model_dump().items())
    return f"{cfg.algorithm.upper()} {finder}, clusterization c={cfg.clusterize.c_sqrt_ns:g}"


def chain_thresholds(chain_dir: Path | None) -> tuple[dict[str, Any], Path] | None:
    """The tuned thresholds of the chain's run folder (its thresholds.yaml copy, else its
    tune stage's output), or None (no run folder, or nothing tuned)."""
    from ccframe.runfolder.artifacts import STEERING, Artifacts

    if chain_dir is None or not (chain_dir / STEERING).is_file():
        return None
    from ccframe.reco.stage import load_thresholds

    art = Artifacts.of_run(chain_dir)
    for path in (art.thresholds, art.tuned):
        if path.is_file():
            try:
                return load_thresholds(str(path)), path
            except SteeringError as exc:
                raise InputError(f"--chain {chain_dir}: {exc}") from None
    return None


def traditional_settings(
    steerings: list[Steering], chain_dir: Path | None, log: Log
) -> list[TraditionalConfig]:
    """Per input: its traditional: settings (default without one) with, given a chain whose
    run folder has tuned thresholds, those thresholds; each distinct set is printed."""
    from ccframe.reco.stage import resolve_traditional
    from ccframe.reco.traditional import config_with_thresholds

    tuned = chain_thresholds(chain_dir)
    out = []
    for s in steerings:
        cfg = s.traditional or TraditionalConfig()
        out.append(
            config_with_thresholds(cfg, tuned[0]) if tuned else resolve_traditional(cfg, None)
        )
    origin = f"tuned thresholds of {tuned[1]}" if tuned else "the inputs' traditional: settings"
    lines = {describe_traditional(c) for c in out}
    if len(lines) == 1:
        log(f"compare: traditional: {lines.pop()} ({origin}), every input")
    else:
        for s, c in zip(steerings, out, strict=True):
            log(f"compare: traditional '{s.name}': {describe_traditional(c)} ({origin})")
        warn(
            "compare: the inputs' traditional settings differ; their traditional counts "
            "compare different reconstructions"
        )
    return out
