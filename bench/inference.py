"""End-to-end inference speed of the two-step chain, from a ROOT file to cluster counts.

    python bench/inference.py [--n 20000] [--steering steering/quickstart.yaml]

Builds the classifier and counter of the steering file's `ml:` section (random weights:
speed does not depend on them, except through the number of accepted peaks, fixed here by
a threshold that accepts about the signal fraction of candidates), simulates n default
waveforms into a temporary ROOT file, and times every stage of `Chain.apply` on both cores:
read (uproot + baseline), candidates, windows, LSTM, time list, CNN. It also compares ways
of calling the LSTM on the same windows: `model.predict`, a compiled `tf.function`, and the
compiled function with XLA. Target (issue 4): >= 3,000 waveforms/s end to end on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ccframe.io.reader import iter_batches
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.jagged import flat
from ccframe.kernels.windows import slice_windows
from ccframe.ml.chain import ChainSettings, Predictor, time_lists
from ccframe.ml.models import build_classifier, build_counter
from ccframe.ml.runtime import configure
from ccframe.simulate.stage import simulate_to_root
from ccframe.steering.loader import load_steering

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--steering", default=str(REPO / "steering" / "quickstart.yaml"))
    parser.add_argument("--batch", type=int, default=8192)
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
        all_windows = []
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
        total = time.perf_counter() - t_start
    n = args.n
    print(f"end to end: {n} waveforms in {total:.2f} s = {n / total:,.0f} waveforms/s "
          f"({n_windows / n:.1f} candidates per waveform; target >= 3,000)")  # fmt: skip
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


if __name__ == "__main__":
    main()
