"""Robustness of a trained chain: its test-split waveforms smeared in noise level, gain and
time jitter, reconstructed by the ML chain and by the traditional algorithm, with the metrics
against the truth at each smearing value."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError
from ccframe.io.atomic import write_json, write_text
from ccframe.io.reader import WaveformBatch, iter_batches
from ccframe.kernels.baseline import baseline_rms
from ccframe.kernels.config import MatchConfig
from ccframe.kernels.jagged import to_jagged
from ccframe.kernels.matching import expected_samples, match_peaks
from ccframe.metrics.counting import count_metrics
from ccframe.ml import evaluate
from ccframe.ml.chain import Chain
from ccframe.ml.config import RobustnessConfig
from ccframe.pipeline.rundir import input_files
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.stage import resolve_traditional
from ccframe.reco.traditional import reconstruct
from ccframe.steering.loader import load_steering
from ccframe.steering.schema import Steering

Log = Callable[[str], None]
TEST = 2


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
        if truth is not None and "pretrigger_ns" in truth.fields:
            truth = ak.with_field(truth, truth.pretrigger_ns + shifts / batch.sampling_ghz,
                                  "pretrigger_ns")  # fmt: skip
    else:
        raise ValueError(f"unknown smearing {kind!r}")
    n_base = max(1, round(baseline_ns * batch.sampling_ghz))
    baseline, rms = baseline_rms(waves, n_base)
    return replace(batch, waveforms=waves, baseline=baseline, rms=rms, truth=truth)


def test_batches(run_dir: Path, steering: Steering, max_events: int) -> Iterator[WaveformBatch]:
    """The run's test-split waveforms (from predictions.root), batch by batch."""
    pred_file = run_dir / "predictions.root"
    if not pred_file.is_file():
        raise InputError(f"{run_dir}: no predictions.root; robustness needs a run with ml:")
    import uproot

    pred = uproot.open(pred_file)["predictions"].arrays(["file_index", "entry", "split"])
    test = ak.to_numpy(pred.split) == TEST
    file_index = ak.to_numpy(pred.file_index)[test][:max_events]
    entries = ak.to_numpy(pred.entry)[test][:max_events]
    files = input_files(run_dir, steering)
    for batch in iter_batches(steering.input_data, files):
        keep = np.isin(batch.entry, entries[file_index == files.index(batch.file)])
        if keep.any():
            yield _rows(batch, keep)


def _rows(batch: WaveformBatch, keep: np.ndarray) -> WaveformBatch:
    return replace(
        batch,
        waveforms=batch.waveforms[keep],
        baseline=batch.baseline[keep],
        rms=batch.rms[keep],
        entry=batch.entry[keep],
        truth=batch.truth[keep] if batch.truth is not None else None,
    )


def evaluate_setting(
    chain: Chain, traditional: TraditionalConfig, match: MatchConfig, batches: list[WaveformBatch]
) -> dict[str, Any]:
    """ML and traditional metrics against the truth on (smeared) batches."""
    scores, labels, clusters, accept, n_ml, n_trad, n_true = [], [], [], [], [], [], []
    per_waveform = []
    electrons = 0
    for batch in batches:
        truth = batch.truth
        assert truth is not None
        out = chain.apply(batch)
        counts = np.diff(out["offsets"])
        cands = to_jagged(out["position"], counts)
        m = match_peaks(cands, expected_samples(truth, batch.sampling_ghz, match),
                        truth.electron_primary, match)  # fmt: skip
        labels.append(ak.to_numpy(ak.flatten(m.peak_label)))
        clusters.append(m.peak_cluster(truth.electron_cluster))
        per_waveform.append(counts)
        scores.append(out["score"])
        accept.append(out["accept"])
        electrons += int(ak.sum(ak.num(truth.electron_time_ns)))
        n_ml.append(out["n_clusters_ml"])
        n_trad.append(reconstruct(batch, traditional.finder, traditional.clusterize).n_clusters)
        n_true.append(ak.to_numpy(truth.n_clusters))
    s, lab, acc = np.concatenate(scores), np.concatenate(labels), np.concatenate(accept)
    true = np.concatenate(n_true)
    peaks = evaluate.end_to_end(
        acc, lab, np.concatenate(clusters), np.concatenate(per_waveform), electrons, true
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
    """Every smearing value of `cfg`; writes robustness.json/.csv and the plots."""
    steering = load_steering(run_dir / "steering.yaml")
    if steering.ml is None:
        raise InputError(f"{run_dir}: not an ML run (its steering.yaml has no ml: section)")
    chain = Chain.load(run_dir)
    tuned = None
    if (run_dir / "tuned.yaml").is_file():
        import yaml

        tuned = yaml.safe_load((run_dir / "tuned.yaml").read_text())
    traditional = resolve_traditional(steering.traditional or TraditionalConfig(), tuned)
    match = steering.ml.dataset.match
    batches = list(test_batches(run_dir, steering, cfg.max_events))
    if not batches:
        raise InputError(f"{run_dir}: no test-split waveforms found in the run's input")
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
                f"robustness: {kind}={value:g}: AUC {result['auc']:.4f}, ML resolution "
                f"{ml['relative_resolution_core']:.3f} (bias {ml['relative_bias']:+.3f}), "
                f"traditional {trad['relative_resolution_core']:.3f} "
                f"(bias {trad['relative_bias']:+.3f})"
            )
    write_json(run_dir / "robustness.json", rows)
    write_text(run_dir / "robustness.csv", _csv(rows))
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    names = ["smearing", "value", "waveforms", "auc"]
    names += ["peak_efficiency", "peak_purity", "cluster_efficiency"]
    extra = ["relative_bias", "relative_resolution_core", "relative_resolution_rms"]
    writer = csv.writer(out)
    writer.writerow(names + [f"{m}_{e}" for m in ("ml", "traditional") for e in extra])
    for r in rows:
        writer.writerow([r[n] for n in names] + [r[m].get(e) for m in ("ml", "traditional")
                                                 for e in extra])  # fmt: skip
    return out.getvalue()
