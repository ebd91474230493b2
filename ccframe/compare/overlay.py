"""`ccframe compare`: two or more inputs (e.g. simulation and a beam-test run) overlaid,
normalised, with ratio panels: noise RMS, baseline, candidate amplitude spectrum, candidates
per waveform, candidate times and, given a trained chain whose sampling the input matches,
accepted peaks per waveform and the predicted number of clusters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.errors import InputError
from ccframe.io.atomic import write_json
from ccframe.io.reader import expand_files, iter_batches
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.config import CandidateConfig
from ccframe.kernels.jagged import flat
from ccframe.logs import Log
from ccframe.ml.chain import accepted_counts
from ccframe.steering.schema import Steering

QUANTITIES = {
    "noise_rms_mv": "noise RMS [mV]",
    "baseline_mv": "baseline [mV]",
    "amplitude_mv": "candidate amplitude [mV]",
    "candidates": "candidates per waveform",
    "candidate_time_ns": "candidate time in window [ns]",
    "accepted_peaks": "accepted peaks per waveform",
    "n_clusters_ml": "predicted number of clusters",
}
INTEGER = {"candidates", "accepted_peaks"}
LOG_Y = {"amplitude_mv"}


@dataclass
class Sample:
    """The compared quantities of one input."""

    label: str
    simulated: bool
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, key: str, value: np.ndarray) -> None:
        self.values.setdefault(key, []).append(np.asarray(value, dtype=np.float64))

    def get(self, key: str) -> np.ndarray | None:
        parts = self.values.get(key)
        return np.concatenate(parts) if parts else None


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


def measure(steering: Steering, out_dir: Path, max_events: int, chain: Any, log: Log) -> Sample:
    """Read up to max_events waveforms of one input and collect every quantity."""
    sample = Sample(steering.name, simulated=steering.simulate is not None)
    data = steering.input_data.model_copy(update={"max_events": max_events})
    cand_cfg = chain.settings.candidates if chain is not None else CandidateConfig()
    chain_ok = chain is not None
    for batch in iter_batches(data, sample_files(steering, out_dir, max_events, log)):
        sample.add("noise_rms_mv", batch.rms)
        sample.add("baseline_mv", batch.baseline)
        if chain_ok:
            try:
                chain.check(batch)
            except InputError as exc:
                log(f"compare: '{steering.name}': no ML quantities ({exc})")
                chain_ok = False
        if chain_ok:  # the chain's own candidates: the scan runs once
            out = chain.apply(batch)
            pos, off = out["position"], out["offsets"]
            sample.add("accepted_peaks", accepted_counts(off, out["accept"]))
            sample.add("n_clusters_ml", out["n_clusters_ml"])
        else:
            cands = find_candidates(batch.waveforms, batch.baseline, batch.rms, cand_cfg)
            pos, off = flat(cands, np.int64)
        row = np.repeat(np.arange(len(batch)), np.diff(off))
        sample.add("amplitude_mv", batch.waveforms[row, pos] - batch.baseline[row])
        sample.add("candidates", np.diff(off))
        sample.add("candidate_time_ns", pos / batch.sampling_ghz)
    return sample


def common_edges(key: str, arrays: list[np.ndarray]) -> np.ndarray:
    """Shared bins over the inputs' central 99% (integer-wide for counts)."""
    lo = min(float(np.percentile(a, 0.5)) for a in arrays)
    hi = max(float(np.percentile(a, 99.5)) for a in arrays)
    if key in INTEGER:
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.5, max(1.0, np.ceil((hi - lo) / 60)))
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, 61)


def overlap_problem(key: str, samples: list[Sample]) -> str | None:
    """Why `key` cannot be compared (central 99% ranges of two inputs do not overlap)."""
    ranges = []
    for s in samples:
        a = s.get(key)
        if a is None or a.size == 0:
            return None
        ranges.append((s.label, float(np.percentile(a, 0.5)), float(np.percentile(a, 99.5))))
    for i, (la, lo_a, hi_a) in enumerate(ranges):
        for lb, lo_b, hi_b in ranges[i + 1 :]:
            if hi_a < lo_b or hi_b < lo_a:
                return (
                    f"{key}: '{la}' [{lo_a:.4g}, {hi_a:.4g}] and '{lb}' [{lo_b:.4g}, {hi_b:.4g}] "
                    "do not overlap; check the data: mapping (scale, offset_mv, polarity, "
                    "sampling_ghz)"
                )
    return None


def ratio_plot(key: str, samples: list[Sample], edges: np.ndarray) -> Any:
    """Normalised histograms of `key` for each input, and a ratio to the first input."""
    import hist
    import matplotlib.pyplot as plt
    import mplhep as hep

    from ccframe.plots.style import experiment_label

    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    hists, colors = [], []
    for s in samples:
        h: Any = hist.Hist(hist.axis.Variable(edges, label=QUANTITIES[key]))
        h.fill(s.get(key))
        hists.append(h)
        label = f"{s.label} ({'sim.' if s.simulated else 'data'})"
        (art,) = hep.histplot(h, density=True, label=label, ax=ax)
        colors.append(art.stairs.get_edgecolor())
    ref = hists[0].values() / max(hists[0].sum(), 1)
    centres = hists[0].axes[0].centers
    top = 2.0
    for h, s, color in zip(hists[1:], samples[1:], colors[1:], strict=True):
        val = h.values() / max(h.sum(), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref > 0, val / ref, np.nan)
            err = np.where(ref > 0, np.sqrt(h.values()) / max(h.sum(), 1) / ref, np.nan)
        rax.errorbar(centres, ratio, yerr=err, fmt="o", ms=3, color=color, label=s.label)
        if np.isfinite(ratio).any():
            top = max(top, min(5.0, float(np.nanmax(ratio)) * 1.1))
    rax.axhline(1, color="grey", lw=1)
    rax.set_ylim(0, top)
    if key in LOG_Y:
        ax.set_yscale("log")
    rax.set_ylabel(f"/ {samples[0].label}")
    rax.set_xlabel(QUANTITIES[key])
    ax.set_xlabel("")
    ax.set_ylabel("normalised")
    ax.legend(loc="best", fontsize=13)
    experiment_label(ax, simulation=all(s.simulated for s in samples))
    return fig


def overlay_inputs(
    steerings: list[Steering],
    out_dir: Path,
    max_events: int,
    chain_dir: Path | None,
    formats: tuple[str, ...],
    log: Log,
) -> dict[str, Any]:
    """Measure every input, plot every comparable quantity; returns the summary written to
    out_dir/compare.json. Quantities whose ranges do not overlap are refused (listed)."""
    if len(steerings) < 2:
        raise InputError("compare needs at least two inputs (steering files)")
    labels = [s.name for s in steerings]
    if len(set(labels)) != len(labels):
        raise InputError(f"compare: inputs need distinct names, got {labels}")
    chain = None
    if chain_dir is not None:
        from ccframe.ml.chain import Chain

        chain = Chain.load(chain_dir)
    samples = [measure(s, out_dir, max_events, chain, log) for s in steerings]
    from ccframe.plots.style import save, use_style

    use_style()
    summary: dict[str, Any] = {"inputs": labels, "quantities": {}, "refused": []}
    for key in QUANTITIES:
        arrays = [s.get(key) for s in samples]
        if any(a is None or a.size == 0 for a in arrays):
            continue
        problem = overlap_problem(key, samples)
        if problem:
            log(f"compare: refused {problem}")
            summary["refused"].append(problem)
            continue
        edges = common_edges(key, [a for a in arrays if a is not None])
        save(ratio_plot(key, samples, edges), out_dir, f"compare_{key}", formats)
        summary["quantities"][key] = {
            s.label: {"mean": float(np.mean(a)), "std": float(np.std(a)), "n": int(a.size)}
            for s, a in zip(samples, arrays, strict=True)
            if a is not None
        }
    write_json(out_dir / "compare.json", summary)
    done = ", ".join(summary["quantities"]) or "nothing"
    log(f"compare: {' vs '.join(labels)}: {done} -> {out_dir}")
    if summary["refused"]:
        raise InputError(
            f"compare: {len(summary['refused'])} quantity(ies) refused, first: "
            f"{summary['refused'][0]}"
        )
    return summary
