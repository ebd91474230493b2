"""Robustness of a trained chain: its test-split waveforms smeared in noise level, gain and
time jitter, reconstructed by the ML chain and by the traditional algorithm, with the metrics
against the truth at each smearing value."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError
from ccframe.io.atomic import write_csv, write_json
from ccframe.io.reader import WaveformBatch, iter_batches
from ccframe.kernels.baseline import baseline_rms
from ccframe.kernels.config import MatchConfig
from ccframe.kernels.jagged import to_jagged
from ccframe.kernels.matching import match_labelled
from ccframe.logs import Log
from ccframe.metrics.counting import count_metrics, fmt, json_ready
from ccframe.metrics.streaming import Columns, ScoreHistogram
from ccframe.ml import evaluate
from ccframe.ml.chain import Chain
from ccframe.ml.config import RobustnessConfig
from ccframe.ml.dataset import TEST
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.stage import traditional_of_run
from ccframe.reco.traditional import ELECTRONS, peak_truth, reconstruct, reference_peaks
from ccframe.runfolder.artifacts import ROBUSTNESS, ROBUSTNESS_TABLE, Artifacts


def smear(
    batch: WaveformBatch, kind: str, value: float, rng: np.random.Generator, baseline_ns: float
) -> WaveformBatch:
    """A copy of `batch` smeared by one `kind` (noise, gain, jitter_ns) at `value`; baseline
    and RMS are measured again in the first `baseline_ns`."""
    waves = batch.waveforms.astype(np.float32, copy=True)
    base = batch.baseline[:, None]
    truth = batch.truth
    if kind == "noise":
        if value < 1:
            raise InputError(f"robustness noise factor {value}: must be >= 1 (noise is added)")
        extra = batch.rms * np.sqrt(value * value - 1.0)
        waves += (rng.standard_normal(waves.shape) * extra[:, None]).astype(np.float32)
    elif kind == "gain":
        if not 0 < value <= 1:
            raise InputError(f"robustness gain factor {value}: must be in (0, 1]")
        waves = base + (waves - base) * np.float32(value)
        extra = batch.rms * np.sqrt(1.0 - value * value)  # restores the noise RMS
        waves += (rng.standard_normal(waves.shape) * extra[:, None]).astype(np.float32)
    elif kind == "jitter_ns":
        shifts = np.rint(rng.normal(0.0, value, len(waves)) * batch.sampling_ghz).astype(int)
        n = waves.shape[1]
        source = (np.arange(n)[None, :] - shifts[:, None]) % n
        waves = np.take_along_axis(waves, source, axis=1)
        truth = shifted_truth(truth, shifts, batch.sampling_ghz)
    else:
        raise ValueError(f"unknown smearing {kind!r}")
    n_base = max(1, round(baseline_ns * batch.sampling_ghz))
    baseline, rms = baseline_rms(waves, n_base)
    return replace(batch, waveforms=waves, baseline=baseline, rms=rms, truth=truth)


def shifted_truth(truth: ak.Array | None, shifts: np.ndarray, sampling_ghz: float) -> Any:
    """The truth of waveforms moved by `shifts` samples: the track's window time
    (pretrigger_ns) and labelled peak positions move with them."""
    if truth is None:
        return None
    moved = {
        "pretrigger_ns": shifts / sampling_ghz,
        "peak_sample": shifts,
        "peak_time_ns": shifts / sampling_ghz,
    }
    for name, shift in moved.items():
        if name in truth.fields:
            truth = ak.with_field(truth, truth[name] + shift, name)
    return truth


def test_entries(artifacts: Artifacts, max_events: int) -> tuple[np.ndarray, np.ndarray]:
    """The file index and entry of the run's first `max_events` test-split waveforms (from its
    predictions tree)."""
    pred_file = artifacts.predictions
    if not pred_file.is_file():
        raise InputError(f"{pred_file}: not found; robustness needs a run with ml:")
    import uproot

    with uproot.open(pred_file) as f:
        pred = f["predictions"].arrays(["file_index", "entry", "split"], library="np")
    test = pred["split"] == TEST
    return pred["file_index"][test][:max_events], pred["entry"][test][:max_events]


def test_split_batches(artifacts: Artifacts, max_events: int) -> Iterator[WaveformBatch]:
    """The run's test-split waveforms (`test_entries`), batch by batch; each input file is
    read only up to its last test waveform, and not at all without one."""
    file_index, entries = test_entries(artifacts, max_events)
    data = artifacts.steering.input_data
    for index, path in enumerate(artifacts.input_files()):
        wanted = entries[file_index == index]
        if wanted.size == 0:
            continue
        limited = data.model_copy(update={"max_events": int(wanted.max()) + 1})
        for batch in iter_batches(limited, [path]):
            keep = np.isin(batch.entry, wanted)
            if keep.any():
                yield batch.rows(keep)


CACHE_BYTES = 256 * 2**20
"""Test-split waveforms are kept in memory between smearing values up to this size (the
default 3000 waveforms of 2400 samples take 29 MB); more are read again for each value, so
that memory does not grow with them."""


class TestSplit:
    """The run's test-split waveforms (`test_split_batches`) for every smearing value: read
    once and kept when they take at most `cache_bytes`, else read again on each iteration."""

    __test__ = False  # not a pytest class

    def __init__(self, artifacts: Artifacts, max_events: int, cache_bytes: int = CACHE_BYTES):
        self.artifacts, self.max_events, self.cache_bytes = artifacts, max_events, cache_bytes
        self._cache: list[WaveformBatch] | None = None
        self._read = False

    def __iter__(self) -> Iterator[WaveformBatch]:
        if self._cache is not None:
            yield from self._cache
            return
        keep: list[WaveformBatch] | None = None if self._read else []
        size = 0
        for batch in test_split_batches(self.artifacts, self.max_events):
            size += batch.waveforms.nbytes
            keep = keep if size <= self.cache_bytes else None
            if keep is not None:
                keep.append(batch)
            yield batch
        self._cache, self._read = keep, True


class SettingTally:
    """What the metrics of one smearing value need, batch by batch, in memory that does not
    grow with the candidates: their scores in a `ScoreHistogram`, the totals of candidates,
    accepted peaks, matched electrons and found clusters, and per waveform (compact) the true,
    ML and traditional counts."""

    def __init__(self) -> None:
        self.scores = ScoreHistogram()
        self.counts = Columns()
        self.accepted = self.found = self.electrons = 0
        self.clusters = self.clusters_found = 0
        self.clusters_known = True  # every batch has electron truth

    def add_candidates(self, out: dict[str, Any], label: np.ndarray) -> None:
        """One batch's candidates (the chain's output) and their truth labels (0: noise)."""
        accept = np.asarray(out["accept"], dtype=bool)
        self.scores.add(out["score"], label > 0)
        self.accepted += int(np.count_nonzero(accept))
        self.found += int(np.count_nonzero(accept & (label > 0)))

    def add_clusters(self, out: dict[str, Any], cluster: np.ndarray | None) -> None:
        """One batch's true clusters with an accepted, matched peak (`cluster`: each
        candidate's; None without electron truth)."""
        if cluster is None:
            self.clusters_known = False
            return
        counts = np.diff(out["offsets"])
        accept = np.asarray(out["accept"], dtype=bool)
        self.clusters_found += int(evaluate.clusters_found(accept, cluster, counts).sum())

    def result(self) -> dict[str, Any]:
        """The metrics `evaluate_setting` returns (peak finding as `evaluate.end_to_end`)."""
        true = self.counts.get("true")
        clusters = int(true.sum())
        e, a = self.electrons, self.accepted
        cluster_efficiency = None
        if self.clusters_known:
            cluster_efficiency = self.clusters_found / clusters if clusters else float("nan")
        return {
            "waveforms": int(true.size),
            "auc": self.scores.auc(),
            "peak_efficiency": self.found / e if e else float("nan"),
            "peak_purity": self.found / a if a else float("nan"),
            "cluster_efficiency": cluster_efficiency,
            "ml": count_metrics(self.counts.get("ml"), true),
            "traditional": count_metrics(self.counts.get("traditional").astype(float), true),
        }


def evaluate_setting(
    chain: Chain,
    traditional: TraditionalConfig,
    match: MatchConfig,
    batches: Iterable[WaveformBatch],
) -> dict[str, Any]:
    """ML and traditional metrics against the truth on (smeared) batches, batch by batch
    (`SettingTally`). The AUC is `ScoreHistogram`'s (binned, within about 1e-5 of the
    unbinned one); the rest as the ml stage computes them (`evaluate.end_to_end`)."""
    tally = SettingTally()
    for batch in batches:
        truth = batch.truth
        assert truth is not None
        out = chain.apply(batch)
        cands = to_jagged(out["position"], np.diff(out["offsets"]))
        reference, reference_label = reference_peaks(batch, match)
        m = match_labelled(cands, reference, reference_label, match)
        label = ak.to_numpy(ak.flatten(m.peak_label))
        tally.add_candidates(out, label)
        known = peak_truth(truth) == ELECTRONS
        tally.add_clusters(out, m.peak_cluster(truth.electron_cluster) if known else None)
        tally.electrons += int(ak.sum(reference_label > 0))
        tally.counts.add("true", ak.to_numpy(truth.n_clusters))
        tally.counts.add("ml", out["n_clusters_ml"])
        reco = reconstruct(batch, traditional.finder, traditional.clusterize)
        tally.counts.add("traditional", reco.n_clusters)
    return tally.result()


def run_robustness(run_dir: Path, cfg: RobustnessConfig, log: Log) -> list[dict[str, Any]]:
    """`ccframe robustness RUN_DIR`: the run's chain and traditional settings, read from its
    folder, on every smearing value of `cfg`."""
    artifacts = Artifacts.of_run(run_dir)
    if artifacts.steering.ml is None:
        raise InputError(f"{run_dir}: not an ML run (its steering.yaml has no ml: section)")
    chain = Chain.load(run_dir)
    return robustness(artifacts, cfg, chain, traditional_of_run(artifacts), log)


def robustness(
    artifacts: Artifacts,
    cfg: RobustnessConfig,
    chain: Chain,
    traditional: TraditionalConfig,
    log: Log,
) -> list[dict[str, Any]]:
    """Every smearing value of `cfg` on the run's test split; writes robustness.json/.csv."""
    steering = artifacts.steering
    assert steering.ml is not None
    match = steering.ml.dataset.match
    split = TestSplit(artifacts, cfg.max_events)
    rows: list[dict[str, Any]] = []
    grid = (("noise", cfg.noise_factors), ("gain", cfg.gain_factors),
            ("jitter_ns", cfg.jitter_ns))  # fmt: skip
    for kind, values in grid:
        for k, value in enumerate(values):
            rng = np.random.default_rng([cfg.seed, k, len(rows)])
            window = steering.data.baseline_window_ns
            smeared = (smear(b, kind, value, rng, window) for b in split)
            result = evaluate_setting(chain, traditional, match, smeared)
            if not result["waveforms"]:
                raise InputError(
                    f"{artifacts.run_dir}: no test-split waveforms found in the run's input"
                )
            rows.append({"smearing": kind, "value": value, **result})
            ml, trad = result["ml"], result["traditional"]
            log(
                f"robustness: {kind}={value:g}: AUC {fmt(result['auc'], '.4f')}, ML resolution "
                f"{fmt(ml['relative_resolution_core'], '.3f')} (bias "
                f"{fmt(ml['relative_bias'], '+.3f')}), traditional "
                f"{fmt(trad['relative_resolution_core'], '.3f')} "
                f"(bias {fmt(trad['relative_bias'], '+.3f')})"
            )
    rows = json_ready(rows)
    write_json(artifacts.path(ROBUSTNESS), rows)
    write_csv(artifacts.path(ROBUSTNESS_TABLE), _table(rows))
    return rows


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """robustness.csv's rows: one per smearing value, the ML and traditional count metrics
    flattened (ml_relative_bias, ...)."""
    names = ["smearing", "value", "waveforms", "auc"]
    names += ["peak_efficiency", "peak_purity", "cluster_efficiency"]
    extra = ["relative_bias", "relative_resolution_core", "relative_resolution_rms"]
    return [
        {n: r[n] for n in names}
        | {f"{m}_{e}": r[m].get(e) for m in ("ml", "traditional") for e in extra}
        for r in rows
    ]
