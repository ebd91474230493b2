"""The quantities `ccframe compare` measures on each input, batch by batch: noise and
baseline, the noise power spectrum, candidates (one set of settings for every input), the
traditional reconstruction's count and first/last peak times, and the ML chain's outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.compare.inputs import Kind
from ccframe.errors import InputError
from ccframe.io.reader import WaveformBatch, expand_files, iter_batches
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.config import CandidateConfig
from ccframe.kernels.jagged import flat
from ccframe.logs import Log
from ccframe.metrics.streaming import compact
from ccframe.ml.chain import accepted_counts
from ccframe.reco.config import TraditionalConfig
from ccframe.signal.spectrum import NoiseSpectrum, noise_spectrum
from ccframe.steering.schema import Steering

QUANTITIES = {
    "noise_rms_mv": "noise RMS [mV]",
    "baseline_mv": "baseline [mV]",
    "amplitude_mv": "candidate amplitude [mV]",
    "candidates": "candidates per waveform",
    "candidate_time_ns": "candidate time in window [ns]",
    "first_peak_ns": "first traditional peak in window [ns]",
    "last_peak_ns": "last traditional peak in window [ns]",
    "n_clusters_traditional": "clusters per waveform (traditional)",
    "accepted_peaks": "accepted peaks per waveform (ML)",
    "n_clusters_ml": "clusters per waveform (ML)",
}
"""Histogrammed quantities, in the order of the plots and the verdict table."""
SPECTRUM = "noise_psd"
SPECTRUM_LABEL = "noise power spectral density"
INTEGER = {"candidates", "accepted_peaks", "n_clusters_traditional"}
LOG_Y = {"amplitude_mv"}
MAPPING = {"noise_rms_mv", "baseline_mv", "amplitude_mv"}
"""Quantities set by the data: mapping (scale, offset, polarity): no overlap at all means a
wrong mapping, and they are refused; elsewhere (times, counts) it is a mismatch, flagged."""
SIGNED = {"baseline_mv"}
"""Quantities around zero: their ratio of means means nothing."""
CANDIDATE_KEYS = {"amplitude_mv", "candidates", "candidate_time_ns"}
TRADITIONAL_KEYS = {"first_peak_ns", "last_peak_ns", "n_clusters_traditional"}
ML_KEYS = {"accepted_peaks", "n_clusters_ml"}


@dataclass
class Sample:
    """The compared quantities of one input."""

    label: str
    kind: Kind
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    spectrum: NoiseSpectrum | None = None
    waveforms: int = 0
    track_time: str | None = None  # where clusterization's drift times start (see measure)

    def add(self, key: str, value: np.ndarray) -> None:
        """Keep one batch's values compact (`compact`: counts as int32, float32 as given)."""
        self.values.setdefault(key, []).append(compact(np.asarray(value)))

    def get(self, key: str) -> np.ndarray | None:
        """Every batch's values of `key` as float64 (None: never added)."""
        parts = self.values.get(key)
        return np.concatenate(parts).astype(np.float64, copy=False) if parts else None

    def add_spectrum(self, spec: NoiseSpectrum) -> bool:
        """Merge one batch's spectrum; False when its frequency grid differs (another
        sampling rate in the same input), which is then left out."""
        if self.spectrum is None:
            self.spectrum = spec
            return True
        if spec.freq_mhz.shape != self.spectrum.freq_mhz.shape or not np.allclose(
            spec.freq_mhz, self.spectrum.freq_mhz
        ):
            return False
        self.spectrum = self.spectrum.merge(spec)
        return True


def sample_files(steering: Steering, out_dir: Path, max_events: int, log: Log) -> list[str]:
    """The input's files: data.files, or its simulate: section simulated into out_dir (at
    most max_events waveforms)."""
    if steering.data.files:
        return expand_files(steering.data.files)
    assert steering.simulate is not None  # the schema requires files or simulate
    from ccframe.simulate.stage import simulate_to_root

    sim = steering.simulate
    sim = sim.model_copy(update={"n_waveforms": min(sim.n_waveforms, max_events)})
    target = out_dir / steering.name / "sim.root"
    if not target.is_file():
        log(f"compare: simulating {sim.n_waveforms} waveforms for '{steering.name}'")
        simulate_to_root(sim, steering.seed, target)
    return [str(target)]


def first_last(positions: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last entry of every non-empty list of a flat jagged array."""
    has = np.diff(offsets) > 0
    return positions[offsets[:-1][has]], positions[offsets[1:][has] - 1]


WINDOW_START = "the window start"
"""`track_time_source` of an input that does not know where the track crossed."""


def track_time_source(batch: WaveformBatch, steering: Steering) -> str:
    """Where the clusterization's drift times of this input start: the truth's
    pretrigger_ns, data.pretrigger_ns, or (neither) the window start."""
    if batch.truth is not None and "pretrigger_ns" in batch.truth.fields:
        return "the truth's pretrigger_ns"
    if steering.input_data.pretrigger_ns is not None:
        return f"data.pretrigger_ns = {steering.input_data.pretrigger_ns:g} ns"
    return WINDOW_START


def measure(
    steering: Steering,
    kind: Kind,
    out_dir: Path,
    max_events: int,
    candidates: CandidateConfig,
    traditional: TraditionalConfig,
    chain: Any,
    log: Log,
) -> Sample:
    """Read up to max_events waveforms of one input and collect every quantity."""
    from ccframe.reco.traditional import reconstruct

    sample = Sample(steering.name, kind)
    data = steering.input_data.model_copy(update={"max_events": max_events})
    chain_ok = chain is not None
    reuse = chain_ok and chain.settings.candidates == candidates
    warned = False
    for batch in iter_batches(data, sample_files(steering, out_dir, max_events, log)):
        sample.waveforms += len(batch)
        sample.add("noise_rms_mv", batch.rms)
        sample.add("baseline_mv", batch.baseline)
        spec = noise_spectrum(batch.waveforms, batch.baseline, batch.rms, batch.sampling_ghz)
        if not sample.add_spectrum(spec) and not warned:
            log(
                f"compare: '{steering.name}': {batch.file} has another sampling rate; its "
                "noise spectrum is left out"
            )
            warned = True
        out = None
        if chain_ok:
            try:
                chain.check(batch)
                out = chain.apply(batch)
            except InputError as exc:
                log(f"compare: '{steering.name}': no ML quantities ({exc})")
                chain_ok = False
        if out is not None:
            sample.add("accepted_peaks", accepted_counts(out["offsets"], out["accept"]))
            sample.add("n_clusters_ml", out["n_clusters_ml"])
        if out is not None and reuse:  # the chain's scan is the same: it runs once
            pos, off = out["position"].astype(np.int64), out["offsets"]
        else:
            pos, off = flat(
                find_candidates(batch.waveforms, batch.baseline, batch.rms, candidates), np.int64
            )
        row = np.repeat(np.arange(len(batch)), np.diff(off))
        sample.add("amplitude_mv", batch.waveforms[row, pos] - batch.baseline[row])
        sample.add("candidates", np.diff(off))
        sample.add("candidate_time_ns", pos / batch.sampling_ghz)
        result = reconstruct(batch, traditional.finder, traditional.clusterize)
        sample.track_time = sample.track_time or track_time_source(batch, steering)
        sample.add("n_clusters_traditional", result.n_clusters)
        first, last = first_last(*flat(result.peaks, np.int64))
        sample.add("first_peak_ns", first / batch.sampling_ghz)
        sample.add("last_peak_ns", last / batch.sampling_ghz)
    return sample
