"""`ccframe compare`: two or more inputs (beam-test data, simulation) measured with the same
candidate and traditional settings, overlaid normalised with a ratio panel to a reference,
and judged quantity by quantity in a verdict table (compare_verdict.csv/.png, compare.json).

Quantities: noise RMS, baseline, the noise power spectrum, candidate amplitudes, candidates
per waveform and their times, the traditional count and first/last peak times and, given a
trained chain whose sampling the input matches, accepted peaks and the ML count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ccframe.compare.inputs import (
    CandidateSource,
    choose_candidates,
    describe_candidates,
    describe_traditional,
    kind_of,
    ratio_label,
    reference_index,
    short_candidates,
    traditional_settings,
    warn,
)
from ccframe.compare.measure import (
    CANDIDATE_KEYS,
    INTEGER,
    MAPPING,
    QUANTITIES,
    SIGNED,
    SPECTRUM,
    SPECTRUM_LABEL,
    WINDOW_START,
    Sample,
    measure,
)
from ccframe.compare.verdict import (
    COLUMNS,
    MISMATCH,
    REFUSED,
    SPECTRUM_TOLERANCE,
    Row,
    compare_distribution,
    compare_spectrum,
    effective_size,
    rule,
    table,
)
from ccframe.errors import InputError
from ccframe.io.atomic import write_csv, write_json
from ccframe.logs import Log
from ccframe.steering.schema import Steering

VERDICT = "compare_verdict"


def common_edges(key: str, arrays: list[np.ndarray]) -> np.ndarray:
    """Shared bins over the inputs' central 99%: integer-wide for counts, else 2 n^(1/3)
    bins (Rice's rule for the smallest input), 10 to 60."""
    lo = min(float(np.percentile(a, 0.5)) for a in arrays)
    hi = max(float(np.percentile(a, 99.5)) for a in arrays)
    if key in INTEGER:
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.5, max(1.0, np.ceil((hi - lo) / 60)))
    if hi <= lo:
        hi = lo + 1.0
    bins = int(np.clip(2 * min(a.size for a in arrays) ** (1 / 3), 10, 60))
    return np.linspace(lo, hi, bins + 1)


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


def independent(
    key: str, s: Sample, a: np.ndarray, ref: Sample, b: np.ndarray
) -> tuple[int, int] | None:
    """Effective numbers of independent entries of a per-candidate quantity, else None."""
    if key not in CANDIDATE_KEYS or key == "candidates":
        return None
    counts, ref_counts = s.get("candidates"), ref.get("candidates")
    if counts is None or ref_counts is None:
        return None
    return effective_size(a, counts), effective_size(b, ref_counts)


def judge(
    key: str, samples: list[Sample], arrays: list[np.ndarray], ref: int, edges: np.ndarray
) -> dict[str, Row]:
    """The verdict rows of one histogrammed quantity, by input (the reference has none)."""
    ref_counts = np.histogram(arrays[ref], edges)[0]
    return {
        s.label: compare_distribution(
            key,
            s.label,
            samples[ref].label,
            a,
            arrays[ref],
            np.histogram(a, edges)[0],
            ref_counts,
            independent=independent(key, s, a, samples[ref], arrays[ref]),
            signed=key in SIGNED,
        )
        for i, (s, a) in enumerate(zip(samples, arrays, strict=True))
        if i != ref
    }


def _load_chain(chain_dir: Path | None) -> Any:
    if chain_dir is None:
        return None
    from ccframe.ml.chain import Chain

    return Chain.load(chain_dir)


def overlay_inputs(
    steerings: list[Steering],
    out_dir: Path,
    max_events: int,
    chain_dir: Path | None,
    formats: tuple[str, ...],
    log: Log,
    reference: str | None = None,
    candidates: CandidateSource | None = None,
) -> dict[str, Any]:
    """Measure every input with the same settings, plot every comparable quantity, judge it
    against the reference input; returns the summary written to out_dir/compare.json.
    Noise, baseline or amplitudes whose ranges do not overlap are refused (a wrong data:
    mapping; listed, then an `InputError`)."""
    if len(steerings) < 2:
        raise InputError("compare needs at least two inputs (steering files)")
    labels = [s.name for s in steerings]
    if len(set(labels)) != len(labels):
        raise InputError(f"compare: inputs need distinct names, got {labels}")
    ref = reference_index(steerings, reference)
    kinds = [kind_of(s) for s in steerings]
    chain = _load_chain(chain_dir)
    choice = choose_candidates(
        steerings, chain.settings.candidates if chain else None, chain_dir, candidates
    )
    shown = [f"{n} ({k})" for n, k in zip(labels, kinds, strict=True)]
    shown[ref] = shown[ref][:-1] + ", reference)"
    log(f"compare: inputs: {', '.join(shown)}")
    log(choice.line())
    if choice.note:
        warn(choice.note)
    trad = traditional_settings(steerings, chain_dir, log)
    samples = [
        measure(s, k, out_dir, max_events, choice.config, t, chain, log)
        for s, k, t in zip(steerings, kinds, trad, strict=True)
    ]
    starts = {s.track_time == WINDOW_START for s in samples if s.track_time}
    if len(starts) > 1:  # some inputs know where the track crossed, others do not
        warn(
            "compare: the traditional counts are not comparable: drift times start at "
            + ", ".join(f"{s.track_time} ('{s.label}')" for s in samples if s.track_time)
            + "; set data.pretrigger_ns for the data (ccframe calibrate fits it)"
        )
    from ccframe.compare.plots import ratio_plot, spectrum_plot, verdict_page
    from ccframe.plots.style import save, use_style

    use_style()
    rlabel = ratio_label(kinds, labels, ref)
    trad_text = describe_traditional(trad[ref])
    names = {**QUANTITIES, SPECTRUM: SPECTRUM_LABEL}
    if len({describe_traditional(t) for t in trad}) == 1:
        names["n_clusters_traditional"] = f"clusters per waveform ({trad[ref].algorithm.upper()})"
    summary: dict[str, Any] = {
        "inputs": labels,
        "kinds": dict(zip(labels, kinds, strict=True)),
        "reference": labels[ref],
        "ratio": rlabel,
        "candidates": {"settings": choice.config.model_dump(), "source": choice.source},
        "traditional": {
            s.name: t.model_dump(exclude={"output"}) for s, t in zip(steerings, trad, strict=True)
        },
        "quantities": {},
        "refused": [],
    }
    rows: list[Row] = []
    ref_sample = samples[ref]
    for key in QUANTITIES:
        arrays = [s.get(key) for s in samples]
        if any(a is None or a.size == 0 for a in arrays):
            continue
        problem = overlap_problem(key, samples) if key in MAPPING else None
        if problem:
            log(f"compare: refused {problem}")
            summary["refused"].append(problem)
            rows += [
                Row(key, s.label, ref_sample.label, verdict=REFUSED, why="no overlap")
                for i, s in enumerate(samples)
                if i != ref
            ]
            continue
        present = [a for a in arrays if a is not None]
        edges = common_edges(key, present)
        by_input = judge(key, samples, present, ref, edges)
        rows += by_input.values()
        caption = short_candidates(choice.config) if key in CANDIDATE_KEYS else ""
        fig = ratio_plot(key, names[key], samples, ref, edges, by_input, rlabel, caption)
        save(fig, out_dir, f"compare_{key}", formats)
        summary["quantities"][key] = {
            s.label: {"mean": float(np.mean(a)), "std": float(np.std(a)), "n": int(a.size)}
            for s, a in zip(samples, present, strict=True)
        }
    spectra = [s.spectrum for s in samples]
    if ref_sample.spectrum is not None and ref_sample.spectrum.segments:
        by_input = {}
        for i, (s, spec) in enumerate(zip(samples, spectra, strict=True)):
            if i != ref and spec is not None:
                by_input[s.label] = compare_spectrum(
                    SPECTRUM, s.label, ref_sample.label, spec, ref_sample.spectrum
                )
        rows += by_input.values()
        fig = spectrum_plot(samples, ref, by_input, rlabel, SPECTRUM_TOLERANCE)
        save(fig, out_dir, f"compare_{SPECTRUM}", formats)
        summary["quantities"][SPECTRUM] = {
            s.label: {
                "rms_mv": spec.rms_mv,
                "segments": spec.segments,
                "freq_mhz": spec.freq_mhz,
                "power": spec.power,
            }
            for s, spec in zip(samples, spectra, strict=True)
            if spec is not None
        }
    header = [
        f"ccframe compare: {', '.join(shown)}; ratios to '{labels[ref]}' ({rlabel})",
        f"candidates:  {describe_candidates(choice.config)} ({choice.source})",
        f"traditional: {trad_text}",
    ]
    summary["verdict"] = [r.as_dict() for r in rows]
    summary["rule"] = rule()
    write_csv(out_dir / f"{VERDICT}.csv", [r.as_dict() for r in rows], COLUMNS)
    save(verdict_page(rows, header, names), out_dir, VERDICT, formats)
    write_json(out_dir / "compare.json", summary)
    mismatches = [f"{r.quantity} ({r.input})" for r in rows if r.verdict == MISMATCH]
    log("compare: verdict (" + rule() + ")\n" + table(rows))
    done = (
        f"{len(mismatches)} mismatch(es): {', '.join(mismatches)}" if mismatches else "no mismatch"
    )
    log(f"compare: {' vs '.join(labels)}: {done} -> {out_dir}")
    if summary["refused"]:
        raise InputError(
            f"compare: {len(summary['refused'])} quantity(ies) refused, first: "
            f"{summary['refused'][0]}"
        )
    return summary
