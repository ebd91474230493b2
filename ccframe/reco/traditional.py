"""Traditional reconstruction: DERIV or D2 peaks, clusterization, and their truth metrics
(docs/algorithms.md: "DERIV peak finding", "D2 peak finding", "Clusterization", "Metrics")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from ccframe.io.reader import WaveformBatch
from ccframe.kernels.clusterize import clusterize
from ccframe.kernels.config import ClusterizeConfig, D2Config, DerivConfig, MatchConfig
from ccframe.kernels.d2 import find_d2
from ccframe.kernels.deriv import find_deriv
from ccframe.kernels.jagged import flat, to_jagged
from ccframe.kernels.matching import Match, expected_samples, match_peaks
from ccframe.metrics.counting import count_metrics, momentum_edges, peak_finding_metrics, versus
from ccframe.reco.config import TraditionalConfig


@dataclass
class TraditionalResult:
    """Per waveform: peaks (sample index), their amplitude and cluster, cluster counts."""

    peaks: ak.Array
    amplitude: ak.Array
    cluster: ak.Array
    n_clusters: np.ndarray


def find_peaks(batch: WaveformBatch, finder: DerivConfig | D2Config) -> ak.Array:
    """DERIV or D2 peaks, by the type of the finder's parameters."""
    if isinstance(finder, DerivConfig):
        return find_deriv(batch.waveforms, batch.baseline, batch.rms, batch.sampling_ghz, finder)
    return find_d2(batch.waveforms, batch.baseline, batch.rms, finder)


def peak_amplitudes(batch: WaveformBatch, peaks: ak.Array) -> ak.Array:
    """Baseline-subtracted sample value (mV) at each peak (var * float32)."""
    pos, offsets = flat(peaks, np.int64)
    row = np.repeat(np.arange(len(batch)), np.diff(offsets))
    amp = batch.waveforms[row, pos] - batch.baseline[row]
    return to_jagged(amp.astype(np.float32), np.diff(offsets))


def track_times(batch: WaveformBatch, peaks: ak.Array) -> ak.Array:
    """Peak times in ns after the track crossing: sample / sampling_ghz - pretrigger_ns, the
    pre-trigger taken from the truth. Without that truth (real data) it is 0, so the times
    count from the start of the window."""
    pretrigger = 0.0
    if batch.truth is not None and "pretrigger_ns" in batch.truth.fields:
        pretrigger = batch.truth.pretrigger_ns
    return peaks / batch.sampling_ghz - pretrigger


def reconstruct(
    batch: WaveformBatch, finder: DerivConfig | D2Config, cluster_cfg: ClusterizeConfig
) -> TraditionalResult:
    """Peaks, their amplitudes, their clusters and the clusters per waveform."""
    peaks = find_peaks(batch, finder)
    amplitude = peak_amplitudes(batch, peaks)
    cluster, counts = clusterize(track_times(batch, peaks), amplitude, cluster_cfg)
    return TraditionalResult(peaks, amplitude, cluster, counts)


def match_truth(batch: WaveformBatch, peaks: ak.Array, cfg: MatchConfig) -> Match:
    """One-to-one matching of the peaks to the batch's true electrons (needs truth)."""
    truth = batch.truth
    if truth is None:
        raise ValueError("matching needs truth")
    expected = expected_samples(truth, batch.sampling_ghz, cfg)
    return match_peaks(peaks, expected, truth.electron_primary, cfg)


class Accumulator:
    """Collects per-waveform results of many batches, then computes the metrics."""

    def __init__(self) -> None:
        self.columns: dict[str, list[np.ndarray]] = {}
        self.peaks = self.matched = self.electrons = 0
        self.clusters = self.clusters_found = 0

    def add(self, **columns: np.ndarray) -> None:
        for key, value in columns.items():
            self.columns.setdefault(key, []).append(np.asarray(value))

    def add_matching(self, match: Match, batch: WaveformBatch) -> None:
        truth = batch.truth
        assert truth is not None  # matching needs truth
        self.peaks += int(ak.sum(ak.num(match.peak_label)))
        self.matched += int(ak.sum(match.peak_label > 0))
        self.electrons += int(ak.sum(ak.num(match.electron_found)))
        found = match.cluster_found(truth.electron_cluster, ak.to_numpy(truth.n_clusters))
        self.clusters += int(ak.sum(ak.num(found)))
        self.clusters_found += int(ak.sum(found))

    def column(self, key: str) -> np.ndarray:
        return np.concatenate(self.columns[key]) if key in self.columns else np.zeros(0)

    def metrics(self, momentum_bins: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.electrons:
            out["peak_finding"] = peak_finding_metrics(
                self.peaks, self.matched, self.electrons, self.clusters, self.clusters_found
            )
        if "n_clusters_true" in self.columns:
            pred, true = self.column("n_clusters_reco"), self.column("n_clusters_true")
            out["count"] = count_metrics(pred, true)
            if "momentum_gev" in self.columns:
                p = self.column("momentum_gev")
                out["count_vs_momentum"] = versus(p, momentum_edges(p, momentum_bins), pred, true)
        return out


def has_truth(batch: WaveformBatch) -> bool:
    needed = {
        "n_clusters",
        "electron_time_ns",
        "electron_primary",
        "electron_cluster",
        "pretrigger_ns",
    }
    return batch.truth is not None and needed <= set(batch.truth.fields)


# Truth copied into output trees: logical truth name -> output branch.
TRUTH_BRANCHES = {
    "event_id": "event_id",
    "momentum_gev": "momentum_gev",
    "pdg": "pdg",
    "n_clusters": "n_clusters_true",
    "n_electrons": "n_electrons_true",
}


def truth_branches(truth: ak.Array | None) -> dict[str, np.ndarray]:
    """The per-waveform truth an output tree carries (those the input has)."""
    if truth is None:
        return {}
    return {b: ak.to_numpy(truth[n]) for n, b in TRUTH_BRANCHES.items() if n in truth.fields}


def tree_chunk(batch: WaveformBatch, result: TraditionalResult, match: Match | None) -> dict:
    """Branches of the per-waveform output tree for one batch."""
    chunk: dict[str, Any] = {"entry": batch.entry, "n_clusters_reco": result.n_clusters}
    chunk.update(truth_branches(batch.truth))
    fields = {
        "sample": ak.values_astype(result.peaks, np.int32),
        "time_ns": ak.values_astype(result.peaks / batch.sampling_ghz, np.float32),
        "amplitude_mv": result.amplitude,
        "cluster": result.cluster,
    }
    if match is not None:
        fields["label"] = match.peak_label
    chunk["peak"] = ak.zip(fields)
    return chunk


def config_with_thresholds(cfg: TraditionalConfig, tuned: dict[str, Any]) -> TraditionalConfig:
    """The traditional config with a tuned set (from the tune stage) applied."""
    update: dict[str, Any] = {"algorithm": tuned["algorithm"]}
    if tuned["algorithm"] == "deriv":
        update["deriv"] = DerivConfig.model_validate(tuned["deriv"])
    else:
        update["d2"] = D2Config.model_validate(tuned["d2"])
    update["clusterize"] = ClusterizeConfig.model_validate(tuned["clusterize"])
    return cfg.model_copy(update=update)
