"""Traditional reconstruction: DERIV or D2 peaks, clusterization, and their truth metrics
(docs/algorithms.md: "DERIV peak finding", "D2 peak finding", "Clusterization", "Metrics")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError
from ccframe.io.reader import WaveformBatch
from ccframe.kernels.clusterize import clusterize
from ccframe.kernels.config import ClusterizeConfig, D2Config, DerivConfig, MatchConfig
from ccframe.kernels.d2 import find_d2
from ccframe.kernels.deriv import find_deriv
from ccframe.kernels.jagged import flat, from_offsets, to_jagged
from ccframe.kernels.matching import (
    NOISE,
    PRIMARY,
    SECONDARY,
    Match,
    expected_samples,
    match_labelled,
)
from ccframe.metrics.counting import (
    LABELLED_PEAKS_NOTE,
    count_metrics,
    momentum_edges,
    peak_finding_metrics,
    versus,
)
from ccframe.metrics.streaming import Columns
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
    pre-trigger taken from the truth, else from data.pretrigger_ns (real data; unset: 0, the
    times count from the start of the window)."""
    pretrigger: Any = batch.pretrigger_ns
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


ELECTRON_TRUTH = ("electron_time_ns", "electron_primary", "electron_cluster", "pretrigger_ns")
"""Truth that labels peaks from true electrons (a ccframe-simulated file)."""
PEAK_POSITIONS = ("peak_sample", "peak_time_ns")
"""Positions of labelled peaks (with `peak_label`: the community's Garfield++ samples)."""
ELECTRONS, LABELLED_PEAKS = "electrons", "labelled_peaks"
TRUTH_FORMS = (
    "n_clusters with either electron_time_ns, electron_primary, electron_cluster and "
    "pretrigger_ns (true electrons), or peak_sample or peak_time_ns with peak_label "
    "(labelled peaks)"
)
"""The truth the ML stage trains on, in words (for error messages)."""


def peak_truth(truth: ak.Array | None) -> str | None:
    """Where peak labels come from: ELECTRONS (true electrons), LABELLED_PEAKS (tagged peaks),
    or None (neither); electrons win when a file has both."""
    fields = set(truth.fields) if truth is not None else set()
    if set(ELECTRON_TRUTH) <= fields:
        return ELECTRONS
    if "peak_label" in fields and fields & set(PEAK_POSITIONS):
        return LABELLED_PEAKS
    return None


def reference_peaks(batch: WaveformBatch, cfg: MatchConfig) -> tuple[ak.Array, ak.Array]:
    """The positions (var * float64, samples) and labels (var * int8: 0 noise, 1 primary,
    2 secondary) that peaks are matched to: the expected samples of the true electrons
    (`expected_samples`), or the labelled peaks (peak_sample, or peak_time_ns *
    sampling_ghz, with peak_label; no delay: they are peak positions already). An
    `InputError` for labels other than 0, 1, 2 or lists of unequal length."""
    truth = batch.truth
    form = peak_truth(truth)
    if truth is None or form is None:
        raise ValueError(f"matching needs truth: {TRUTH_FORMS}")
    if form == ELECTRONS:
        primary, off = flat(truth.electron_primary, np.bool_)
        labels = np.where(primary, PRIMARY, SECONDARY).astype(np.int8)
        return expected_samples(truth, batch.sampling_ghz, cfg), to_jagged(labels, np.diff(off))
    if "peak_sample" in truth.fields:
        position, pos_off = flat(truth.peak_sample, np.float64)
    else:
        position, pos_off = flat(truth.peak_time_ns, np.float64)
        position = position * batch.sampling_ghz
    raw, label_off = flat(truth.peak_label, np.float64)
    if not np.array_equal(pos_off, label_off):
        row = int(np.argmax(np.diff(pos_off) != np.diff(label_off)))
        raise InputError(
            f"{batch.file}: entry {int(batch.entry[row])}: data.truth peak_label has "
            f"{int(label_off[row + 1] - label_off[row])} labels for "
            f"{int(pos_off[row + 1] - pos_off[row])} peak positions; expected one label per peak"
        )
    bad = ~np.isin(raw, (NOISE, PRIMARY, SECONDARY))
    if bad.any():
        row = int(np.searchsorted(label_off, np.argmax(bad), side="right")) - 1
        raise InputError(
            f"{batch.file}: entry {int(batch.entry[row])}: data.truth peak_label holds "
            f"{float(raw[bad][0]):g}; expected 0 (noise), 1 (primary) or 2 (secondary)"
        )
    return from_offsets(position, pos_off), from_offsets(raw.astype(np.int8), label_off)


def match_truth(batch: WaveformBatch, peaks: ak.Array, cfg: MatchConfig) -> Match:
    """One-to-one matching of the peaks to the batch's true electrons or labelled peaks
    (`reference_peaks`; needs one of them)."""
    reference, labels = reference_peaks(batch, cfg)
    return match_labelled(peaks, reference, labels, cfg)


METRIC_COLUMNS = ("n_clusters_traditional", "n_clusters_true", "momentum_gev")
"""The per-waveform columns the traditional metrics need."""


class Accumulator:
    """Collects what the metrics need of many batches: the matched-peak totals, and per
    waveform only METRIC_COLUMNS, compact (the counts as int32, the momentum as given: 16 bytes
    per waveform), so that memory hardly grows with the number of waveforms."""

    def __init__(self) -> None:
        self.columns = Columns()
        self.peaks = self.matched = self.electrons = 0
        self.clusters = self.clusters_found = 0
        self.source = ELECTRONS

    def add(self, **columns: np.ndarray) -> None:
        """Keep the METRIC_COLUMNS among `columns` (a tree chunk's; the others are ignored)."""
        for key in METRIC_COLUMNS:
            if key in columns:
                self.columns.add(key, np.asarray(columns[key]))

    def add_matching(self, match: Match, batch: WaveformBatch) -> None:
        """Count the matched peaks; with labelled peaks the true "electrons" are the peaks
        labelled 1 or 2, and there are no true clusters to find."""
        truth = batch.truth
        if truth is None:
            raise ValueError("matching needs truth")
        self.peaks += int(ak.sum(ak.num(match.peak_label)))
        self.matched += int(ak.sum(match.peak_label > 0))
        if peak_truth(truth) == LABELLED_PEAKS:
            self.source = LABELLED_PEAKS
            self.electrons += int(ak.sum(truth.peak_label > 0))
            return
        self.electrons += int(ak.sum(ak.num(match.electron_found)))
        found = match.cluster_found(truth.electron_cluster, ak.to_numpy(truth.n_clusters))
        self.clusters += int(ak.sum(ak.num(found)))
        self.clusters_found += int(ak.sum(found))

    def column(self, key: str) -> np.ndarray:
        return self.columns.get(key)

    def metrics(self, momentum_bins: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.electrons:
            out["peak_finding"] = peak_finding_metrics(
                self.peaks, self.matched, self.electrons, self.clusters, self.clusters_found
            )
            if self.source == LABELLED_PEAKS:
                out["peak_finding"].update(LABELLED_PEAKS_NOTE)
        if "n_clusters_true" in self.columns:
            pred, true = self.column("n_clusters_traditional"), self.column("n_clusters_true")
            out["count"] = count_metrics(pred, true)
            if "momentum_gev" in self.columns:
                p = self.column("momentum_gev")
                out["count_vs_momentum"] = versus(p, momentum_edges(p, momentum_bins), pred, true)
        return out


def has_truth(batch: WaveformBatch) -> bool:
    """Whether the batch has the truth the ML stage trains on and the traditional stage
    matches peaks to: n_clusters and either form of `peak_truth`."""
    truth = batch.truth
    return truth is not None and "n_clusters" in truth.fields and peak_truth(truth) is not None


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
    chunk: dict[str, Any] = {"entry": batch.entry, "n_clusters_traditional": result.n_clusters}
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
