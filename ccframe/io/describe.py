"""Waveform statistics over a stream of batches (for `inspect` and the run summary)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import awkward as ak
import numpy as np

from ccframe.io.reader import WaveformBatch


class Description:
    """Waveform statistics accumulated batch by batch (`add`), summarised by `result`."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.n_samples: int | None = None
        self.sampling: float | None = None
        self._columns: dict[str, list[np.ndarray]] = {}

    def _keep(self, name: str, values: np.ndarray) -> None:
        self._columns.setdefault(name, []).append(values)

    def add(self, batch: WaveformBatch) -> None:
        if batch.file not in self.files:
            self.files.append(batch.file)
        self.n_samples, self.sampling = batch.n_samples, batch.sampling_ghz
        self._keep("baseline", batch.baseline)
        self._keep("rms", batch.rms)
        self._keep("amplitude", batch.waveforms.max(axis=1) - batch.baseline)
        truth = batch.truth
        if truth is not None and {"n_clusters", "chord_cm"} <= set(truth.fields):
            self._keep("n_clusters", ak.to_numpy(truth.n_clusters))
            self._keep("chord", ak.to_numpy(truth.chord_cm))
            if "n_electrons" in truth.fields:
                self._keep("n_electrons", ak.to_numpy(truth.n_electrons))

    def _column(self, name: str) -> np.ndarray | None:
        parts = self._columns.get(name)
        return np.concatenate(parts).astype(np.float64) if parts else None

    def result(self) -> dict[str, Any]:
        """Counts, baseline, noise RMS, amplitude range and (when present) truth summaries."""
        b, r, a = self._column("baseline"), self._column("rms"), self._column("amplitude")
        if b is None or r is None or a is None:
            return {"files": self.files, "waveforms": 0}
        n_samples, sampling = self.n_samples, self.sampling
        out: dict[str, Any] = {
            "files": self.files,
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
        nc, ch, ne = self._column("n_clusters"), self._column("chord"), self._column("n_electrons")
        if nc is not None and ch is not None:
            truth_summary = {
                "clusters_per_waveform": float(nc.mean()),
                "clusters_per_cm": float(nc.sum() / ch.sum()) if ch.sum() > 0 else None,
            }
            if ne is not None:
                truth_summary["electrons_per_waveform"] = float(ne.mean())
                truth_summary["electrons_per_cluster"] = float(ne.sum() / max(nc.sum(), 1))
            out["truth"] = truth_summary
        return out


def describe(batches: Iterable[WaveformBatch]) -> dict[str, Any]:
    """Counts, baseline, noise RMS, amplitude range and (when present) truth summaries."""
    description = Description()
    for batch in batches:
        description.add(batch)
    return description.result()


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
