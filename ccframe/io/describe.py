"""Waveform statistics over a stream of batches (for `inspect` and the run summary)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import awkward as ak
import numpy as np

from ccframe.io.reader import WaveformBatch


def describe(batches: Iterable[WaveformBatch]) -> dict[str, Any]:
    """Counts, baseline, noise RMS, amplitude range and (when present) truth summaries."""
    baseline, rms, amplitude = [], [], []
    n_clusters, n_electrons, chord = [], [], []
    files: list[str] = []
    n_samples = sampling = None
    for batch in batches:
        if batch.file not in files:
            files.append(batch.file)
        n_samples, sampling = batch.n_samples, batch.sampling_ghz
        baseline.append(batch.baseline)
        rms.append(batch.rms)
        amplitude.append(batch.waveforms.max(axis=1) - batch.baseline)
        truth = batch.truth
        if truth is not None and {"n_clusters", "chord_cm"} <= set(truth.fields):
            n_clusters.append(ak.to_numpy(truth.n_clusters))
            chord.append(ak.to_numpy(truth.chord_cm))
            if "n_electrons" in truth.fields:
                n_electrons.append(ak.to_numpy(truth.n_electrons))
    if not baseline:
        return {"files": files, "waveforms": 0}
    b, r, a = (np.concatenate(x).astype(np.float64) for x in (baseline, rms, amplitude))
    out: dict[str, Any] = {
        "files": files,
        "waveforms": int(b.size),
        "samples_per_waveform": n_samples,
        "sampling_ghz": sampling,
        "window_ns": round(n_samples / sampling, 3) if n_samples and sampling else None,
        "baseline_mv": {"mean": float(b.mean()), "std": float(b.std())},
        "noise_rms_mv": {"mean": float(r.mean()), "median": float(np.median(r))},
        "amplitude_mv": {
            "min": float(a.min()),
            "median": float(np.median(a)),
            "max": float(a.max()),
        },
    }
    if n_clusters:
        nc, ch = np.concatenate(n_clusters), np.concatenate(chord)
        truth_summary = {
            "clusters_per_waveform": float(nc.mean()),
            "clusters_per_cm": float(nc.sum() / ch.sum()) if ch.sum() > 0 else None,
        }
        if n_electrons:
            ne = np.concatenate(n_electrons)
            truth_summary["electrons_per_waveform"] = float(ne.mean())
            truth_summary["electrons_per_cluster"] = float(ne.sum() / max(nc.sum(), 1))
        out["truth"] = truth_summary
    return out


def format_description(desc: dict[str, Any]) -> str:
    """A readable block of the statistics from `describe`."""
    if not desc.get("waveforms"):
        return "  no waveforms read"
    lines = [
        f"  waveforms        {desc['waveforms']}  ({desc['samples_per_waveform']} samples, "
        f"{desc['sampling_ghz']:g} GHz, {desc['window_ns']:g} ns)",
        f"  baseline         {desc['baseline_mv']['mean']:.3f} mV "
        f"(spread {desc['baseline_mv']['std']:.3f} mV)",
        f"  noise RMS        {desc['noise_rms_mv']['mean']:.3f} mV "
        "(mean over waveforms, baseline window)",
        f"  amplitude        {desc['amplitude_mv']['min']:.2f} .. "
        f"{desc['amplitude_mv']['max']:.2f} mV (median {desc['amplitude_mv']['median']:.2f} mV)",
    ]
    truth = desc.get("truth")
    if truth:
        line = f"  truth            {truth['clusters_per_waveform']:.2f} clusters/waveform"
        if truth.get("clusters_per_cm") is not None:
            line += f", {truth['clusters_per_cm']:.2f} clusters/cm"
        if "electrons_per_cluster" in truth:
            line += f", {truth['electrons_per_cluster']:.3f} electrons/cluster"
        lines.append(line)
    return "\n".join(lines)
