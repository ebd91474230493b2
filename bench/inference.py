"""End-to-end inference speed of the two-step chain, from a ROOT file to cluster counts,
as a ratio to what its own classifier allows.

    python bench/inference.py [--n 20000] [--steering steering/quickstart.yaml] [--onnx]

Builds the classifier and counter of the steering file's `ml:` section (random weights:
speed does not depend on them, except through the number of accepted peaks, fixed here by
a threshold that accepts about the signal fraction of candidates), simulates n default
waveforms into a temporary ROOT file, and measures in one process, on both cores:
- the classifier-only ceiling: the LSTM alone (the chain's compiled call) on the file's
  windows, in waveforms/s at the file's candidates per waveform;
- the chain end to end, read included (`Chain.apply_all`: reading and the kernels one
  batch ahead of the networks), and `ccframe infer`'s whole job (also DERIV +
  clusterization per waveform and writing predictions.root), each as a ratio to the
  ceiling (target: >= 0.60 and >= 15,000 waveforms/s);
- every stage of the chain timed alone (read + baseline, candidates, windows, LSTM, time
  list, CNN), and ways of calling the LSTM (`model.predict`, compiled, compiled + XLA).

With --waveform, the one-step counter of `ml.waveform_counter`, the per-sample peak map of
`ml.peak_map` with its peak readout and the chain followed by the per-peak clusterization of
`ml.peak_sequence` (random weights; their defaults when the steering file has none) are
timed on the same file, read included, against the chain end to end.

With --onnx (needs `pip install 'ccframe[onnx]'`) the same chain is saved, exported with
`ccframe export`'s code and loaded once per backend (`Chain.load(..., backend=...)`: keras,
onnx, mixed); the classifier alone (same windows), the counter alone (same time lists) and
`Chain.apply_all` end to end (same file, read included) are timed for each in turn, best of
--repeat, as ratios to keras; the mixed chain's end to end also as a ratio to the ceiling.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from ccframe.io.reader import iter_batches
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.jagged import flat
from ccframe.kernels.windows import slice_windows
from ccframe.ml.chain import Chain, ChainSettings, Predictor, time_lists
from ccframe.ml.models import build_classifier, build_counter
from ccframe.ml.runtime import configure
from ccframe.simulate.stage import simulate_to_root
from ccframe.steering.loader import load_steering

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("keras", "onnx", "mixed")


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--steering", default=str(REPO / "steering" / "quickstart.yaml"))
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--onnx", action="store_true", help="compare Keras with ONNX Runtime")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the backend comparison")
    parser.add_argument(
        "--waveform",
        action="store_true",
        help="also time the one-step waveform counter and the peak map (ml.waveform_counter, "
        "ml.peak_map, or their defaults)",
    )
    args = parser.parse_args()
    steering = load_steering(args.steering)
    ml = steering.ml
    if ml is None or steering.simulate is None:
        raise SystemExit(f"{args.steering}: needs simulate: and ml: sections")
    configure(ml.device, ml.threads, steering.seed)
    d = ml.dataset
    width = d.window.before + 1 + d.window.after
    classifier = build_classifier(ml.classifier, width)
    counter = build_counter(ml.counter, d.time_list.n_bins, 20.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.root"
        sim = steering.simulate.model_copy(update={"n_waveforms": args.n})
        simulate_to_root(sim, steering.seed, path)
        data = steering.input_data
        stages = dict.fromkeys(["read", "candidates", "windows", "lstm", "time list", "cnn"], 0.0)
        score = Predictor(classifier, args.batch, xla=ml.classifier.unroll)
        count = Predictor(counter, max(1, args.batch // 16))
        # warm-up: trace the compiled functions and load the kernels
        warm = next(iter_batches(data.model_copy(update={"max_events": 64}), [str(path)]))
        w = warm.waveforms
        p = find_candidates(w, warm.baseline, warm.rms, d.candidates)
        score(slice_windows(w, warm.baseline, warm.rms, p, d.window))
        count(np.zeros((1, d.time_list.n_bins, 1), np.float32))
        n_windows = 0
        all_windows, all_lists = [], []
        t_start = time.perf_counter()
        reader = iter_batches(data, [str(path)])
        while True:
            batch, dt = timed(next, reader, None)
            stages["read"] += dt
            if batch is None:
                break
            cands, dt = timed(find_candidates, batch.waveforms, batch.baseline, batch.rms,
                              d.candidates)  # fmt: skip
            stages["candidates"] += dt
            windows, dt = timed(slice_windows, batch.waveforms, batch.baseline, batch.rms,
                                cands, d.window)  # fmt: skip
            stages["windows"] += dt
            scores, dt = timed(score, windows)
            stages["lstm"] += dt
            threshold = float(np.quantile(scores, 0.7))
            position, offsets = flat(cands, np.int32)
            settings = ChainSettings(d.candidates, d.window, d.time_list, threshold,
                                     batch.sampling_ghz, batch.n_samples, 25.0)  # fmt: skip
            lists, dt = timed(time_lists, position, offsets, scores > threshold, settings)
            stages["time list"] += dt
            _, dt = timed(count, lists)
            stages["cnn"] += dt
            n_windows += len(windows)
            if len(all_windows) < 2:
                all_windows.append(windows)
                all_lists.append(lists)
        total = time.perf_counter() - t_start
        settings = ChainSettings(d.candidates, d.window, d.time_list, threshold,
                                 warm.sampling_ghz, warm.n_samples,
                                 data.baseline_window_ns)  # fmt: skip
        saved = Chain.from_keras(classifier, counter, settings, args.batch)
        per_waveform = n_windows / args.n
        ceiling = ceiling_ratios(saved, np.concatenate(all_windows), per_waveform, path, data,
                                 Path(tmp), args.repeat)  # fmt: skip
        if args.onnx:
            inputs = (np.concatenate(all_windows), np.concatenate(all_lists))
            onnx_rates = compare_backends(saved, Path(tmp), path, data, inputs, args)
        if args.waveform:
            one_step = waveform_rates(saved, ml, warm.n_samples, path, data, args.repeat)
    n = args.n
    print(f"{n} waveforms, {per_waveform:.1f} candidates per waveform, best of {args.repeat}:")
    lstm = ceiling.pop("classifier alone (ceiling)")
    print(f"  {'classifier alone (ceiling)':<34s} {lstm:>10,.0f} waveforms/s")
    for name, rate in ceiling.items():
        print(f"  {name:<34s} {rate:>10,.0f} waveforms/s  {rate / lstm:5.2f} of the ceiling "
              "(target >= 0.60 and >= 15,000 waveforms/s)")  # fmt: skip
    print(f"each stage alone, one after the other: {n / total:,.0f} waveforms/s in all")
    for name, t in stages.items():
        print(f"  {name:<11s} {t:7.2f} s  {t / total:6.1%}  {n / t:>12,.0f} waveforms/s")
    x = np.concatenate(all_windows)
    rates = {}
    _, t = timed(classifier.predict, x[:4096], 4096, 0)
    _, t = timed(classifier.predict, x, 4096, 0)
    rates["model.predict, batch 4096"] = len(x) / t
    for xla in (False, True):
        f = Predictor(classifier, args.batch, xla=xla)
        f(x[: args.batch])
        _, t = timed(f, x)
        rates[f"compiled call, batch {args.batch}{', XLA' if xla else ''}"] = len(x) / t
    base = rates["model.predict, batch 4096"]
    print(f"LSTM ({classifier.count_params():,} parameters, unroll={ml.classifier.unroll}) "
          f"on {len(x):,} windows:")  # fmt: skip
    for name, r in rates.items():
        print(f"  {name:<34s} {r:>10,.0f} windows/s  {r / base:5.2f}x predict")
    if args.onnx:
        per_waveform = n_windows / n
        print(f"each backend on the same chain and inputs (best of {args.repeat}, interleaved; "
              f"{per_waveform:.1f} windows per waveform; ratio to keras):")  # fmt: skip
        for what, rates_of in onnx_rates.items():
            unit = "windows/s" if what == "classifier alone" else "waveforms/s"
            keras_rate = rates_of["keras"]
            cells = "  ".join(f"{b} {r:>9,.0f} ({r / keras_rate:4.2f})"
                              for b, r in rates_of.items())  # fmt: skip
            print(f"  {what:<17s} {cells} {unit}")
        mixed = onnx_rates["end to end"]["mixed"]
        print(
            f"  mixed end to end: {mixed / lstm:4.2f} of the ceiling above (target >= 0.60 "
            "and >= 15,000 waveforms/s)"
        )
    if args.waveform:
        chain_rate = one_step.pop("two-step chain end to end")
        print(f"counters on whole waveforms against the two-step chain (best of {args.repeat}, "
              "interleaved, read included):")  # fmt: skip
        print(f"  {'two-step chain end to end':<34s} {chain_rate:>10,.0f} waveforms/s")
        for name, rate in one_step.items():
            print(f"  {name:<34s} {rate:>10,.0f} waveforms/s  {rate / chain_rate:5.2f}x the "
                  "chain (target >= 2,000 waveforms/s)")  # fmt: skip


def waveform_rates(chain: Chain, ml, n_samples: int, path: Path, data, repeat: int):
    """Waveforms/s of the one-step counter and of the peak map (random weights, the steering
    file's topologies or the defaults) on every batch of the file, read and normalization
    included, and of the chain end to end, interleaved."""
    from ccframe.ml.config import PeakMapConfig, PeakSequenceConfig, WaveformCounterConfig
    from ccframe.ml.models import (
        build_peak_map,
        build_peak_sequence,
        build_waveform_counter,
        peak_map_counter,
        sequence_counter,
    )
    from ccframe.ml.sequence import SequenceCounter
    from ccframe.ml.waveform import WaveformCounter

    map_cfg = ml.peak_map or PeakMapConfig()
    models = {
        "one-step counter": build_waveform_counter(
            ml.waveform_counter or WaveformCounterConfig(), n_samples, 20.0
        ),
        "peak map": peak_map_counter(build_peak_map(map_cfg, n_samples, 20.0), map_cfg),
    }
    files = [str(path)]
    jobs = {
        "two-step chain end to end": lambda: sum(
            len(b) for b, _, _ in chain.apply_all(iter_batches(data, files))
        )
    }
    seq_cfg = ml.peak_sequence or PeakSequenceConfig()
    per_peak = SequenceCounter(
        sequence_counter(build_peak_sequence(seq_cfg, seq_cfg.max_candidates))
    )

    def chain_and_per_peak() -> int:
        n = 0
        for b, out, _ in chain.apply_all(iter_batches(data, files)):
            n += len(per_peak.count_from(out, b.sampling_ghz, b.n_samples))
        return n

    name = f"chain + per-peak ({per_peak.model.count_params():,} parameters)"
    jobs[name] = chain_and_per_peak
    warm = next(iter_batches(data.model_copy(update={"max_events": 64}), files))
    for name, model in models.items():
        counter = WaveformCounter(model, chain.settings.window)
        counter.count(warm)
        jobs[f"{name} ({model.count_params():,} parameters)"] = partial(
            lambda c: sum(len(c.count(b)) for b in iter_batches(data, files)), counter
        )
    rates: dict[str, float] = {}
    for _ in range(repeat):
        for name, job in jobs.items():
            n, t = timed(job)
            rates[name] = max(rates.get(name, 0.0), n / t)
    return rates


def ceiling_ratios(
    chain: Chain, windows: np.ndarray, per_waveform: float, path: Path, data, folder: Path,
    repeat: int,
) -> dict[str, float]:  # fmt: skip
    """Waveforms/s, best of `repeat` (interleaved): the chain's classifier alone on
    `windows`, the chain end to end on the file (read included), and infer's whole job."""
    from ccframe.io.prefetch import prefetch
    from ccframe.io.rootwrite import write_tree
    from ccframe.ml.infer import chunks
    from ccframe.reco.config import TraditionalConfig

    files = [str(path)]

    def chain_only() -> int:
        return sum(len(b) for b, _, _ in chain.apply_all(iter_batches(data, files)))

    def infer_job() -> int:
        out = prefetch(chunks(chain, TraditionalConfig(), iter_batches(data, files), files))
        return write_tree(folder / "predictions.root", "predictions", out)

    rates: dict[str, float] = {}
    for _ in range(repeat):
        _, t = timed(chain.score, windows)
        name = "classifier alone (ceiling)"
        rates[name] = max(rates.get(name, 0.0), len(windows) / per_waveform / t)
        for name, job in (("chain end to end", chain_only), ("infer (+DERIV, writing)", infer_job)):
            n, t = timed(job)
            rates[name] = max(rates.get(name, 0.0), n / t)
    return rates


def compare_backends(
    saved: Chain, folder: Path, path: Path, data, inputs, args
) -> dict[str, dict[str, float]]:
    """Rates of each backend of one chain: the classifier on the same windows, the counter on
    the same time lists, and `Chain.apply_all` on the file (read included)."""
    from ccframe.ml.onnx import export_chain

    chain_dir = folder / "chain"
    saved.save(chain_dir)
    export_chain(chain_dir, False, lambda message: None)
    chains = {b: Chain.load(chain_dir, args.batch, backend=b) for b in BACKENDS}
    x, lists = inputs
    rates: dict[str, dict[str, float]] = {
        "classifier alone": {},
        "counter alone": {},
        "end to end": {},
    }
    for chain in chains.values():  # warm-up: trace, compile, allocate
        chain.score(x[: args.batch])
        next(iter(map(chain.apply, iter_batches(data.model_copy(update={"max_events": 64}),
                                                [str(path)]))))  # fmt: skip
    for _ in range(args.repeat):
        for name, chain in chains.items():
            _, t = timed(chain.score, x)
            rates["classifier alone"][name] = max(
                rates["classifier alone"].get(name, 0), len(x) / t
            )
            _, t = timed(chain.count, lists)
            rates["counter alone"][name] = max(rates["counter alone"].get(name, 0), len(lists) / t)
            batches = iter_batches(data, [str(path)])
            n, t = timed(lambda c=chain, b=batches: sum(len(x) for x, _, _ in c.apply_all(b)))
            rates["end to end"][name] = max(rates["end to end"].get(name, 0), n / t)
    return rates


if __name__ == "__main__":
    main()
