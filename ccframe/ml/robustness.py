"""Robustness of a trained chain: its test-split waveforms smeared in noise level, gain and
time jitter, reconstructed by the ML chain and by the traditional algorithm, with the metrics
against the truth at each smearing value."""

from __future__ import annotations

from collections.abc import Iterator
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


def test_split_batches(artifacts: Artifacts, max_events: int) -> Iterator[WaveformBatch]:
    """The run's test-split waveforms (from its predictions tree), batch by batch."""
    pred_file = artifacts.predictions
    if not pred_file.is_file():
        raise InputError(f"{pred_file}: not found; robustness needs a run with ml:")
    import uproot

    pred = uproot.open(pred_file)["predictions"].arrays(["file_index", "entry", "split"])
    test = ak.to_numpy(pred.split) == TEST
    file_index = ak.to_numpy(pred.file_index)[test][:max_events]
    entries = ak.to_numpy(pred.entry)[test][:max_events]
    files = artifacts.input_files()
    for batch in iter_batches(artifacts.steering.input_data, files):
        keep = np.isin(batch.entry, entries[file_index == files.index(batch.file)])
        if keep.any():
            yield batch.rows(keep)


def evaluate_setting(
    chain: Chain, traditional: TraditionalConfig, match: MatchConfig, batches: list[WaveformBatch]
) -> dict[str, Any]:
    """ML and traditional metrics against the truth on (smeared) batches."""
    scores, labels, clusters, accept, n_ml, n_trad, n_true = [], [], [], [], [], [], []
    per_waveform = []
    electrons = 0
    clusters_known = True  # every batch has electron truth
    for batch in batches:
        truth = batch.truth
        assert truth is not None
        out = chain.apply(batch)
        counts = np.diff(out["offsets"])
        cands = to_jagged(out["position"], counts)
        reference, reference_label = reference_peaks(batch, match)
        m = match_labelled(cands, reference, reference_label, match)
        labels.append(ak.to_numpy(ak.flatten(m.peak_label)))
        known = peak_truth(truth) == ELECTRONS
        clusters_known = clusters_known and known
        clusters.append(
            m.peak_cluster(truth.electron_cluster)
            if known
            else np.full(len(labels[-1]), -1, np.int32)
        )
        per_waveform.append(counts)
        scores.append(out["score"])
        accept.append(out["accept"])
        electrons += int(ak.sum(reference_label > 0))
        n_ml.append(out["n_clusters_ml"])
        n_trad.append(reconstruct(batch, traditional.finder, traditional.clusterize).n_clusters)
        n_true.append(ak.to_numpy(truth.n_clusters))
    s, lab, acc = np.concatenate(scores), np.concatenate(labels), np.concatenate(accept)
    true = np.concatenate(n_true)
    peaks = evaluate.end_to_end(
        acc,
        lab,
        np.concatenate(clusters),
        np.concatenate(per_waveform),
        electrons,
        true,
        clusters_known=clusters_known,
    )
    auc = evaluate.classification(s, lab > 0, chain.settings.threshold)["auc"]
    return {
        "waveforms": int(true.size),
        "auc": auc,
        "peak_efficiency": peaks["efficiency"],
        "peak_purity": peaks["purity"],
        "cluster_efficiency": peaks["cluster_efficiency"],
        "ml": count_metrics(np.concatenate(n_ml), true),
        "traditional": count_metrics(np.concatenate(n_trad).astype(float), true),
    }


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
    batches = list(test_split_batches(artifacts, cfg.max_events))
    if not batches:
        raise InputError(f"{artifacts.run_dir}: no test-split waveforms found in the run's input")
    rows: list[dict[str, Any]] = []
    grid = (("noise", cfg.noise_factors), ("gain", cfg.gain_factors),
            ("jitter_ns", cfg.jitter_ns))  # fmt: skip
    for kind, values in grid:
        for k, value in enumerate(values):
            rng = np.random.default_rng([cfg.seed, k, len(rows)])
            window = steering.data.baseline_window_ns
            smeared = [smear(b, kind, value, rng, window) for b in batches]
            result = evaluate_setting(chain, traditional, match, smeared)
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
