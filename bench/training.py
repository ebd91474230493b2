"""Training that streams from disk against `model.fit` on in-memory arrays, in one process.

    python bench/training.py [--n 20000] [--epochs 3] [--steering steering/quickstart.yaml]
                             [--networks classifier,counter]

Simulates n waveforms of the steering file's simulate: section, builds the ML dataset with
`DatasetBuilder` (an array folder on disk, memory-mapped) and trains each network of the
`ml:` section twice from the same initial weights and seed, interleaved: once with
`model.fit` on NumPy arrays copied into memory (the reference), once from the streamed
batches `ccframe run` uses (`WindowBatches`: windows gathered from the memory map;
`TimeListBatches`: time lists encoded per batch). The counter's time lists are those of the
true signal candidates, so both counters see the same inputs. Prints windows/s (classifier)
and waveforms/s (counter) per epoch, the ratio streamed / in memory (target >= 0.80), and
test metrics of both (classifier AUC and F1 at 0.5; counter relative resolution and bias)
with bootstrap standard errors, so "the same metrics within statistical spread" can be read
off. Peak RSS of the dataset build is printed for the record.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.io.reader import iter_batches
from ccframe.ml.batches import TimeListBatches, WindowBatches
from ccframe.ml.dataset import TEST, TRAIN, DatasetBuilder
from ccframe.ml.models import build_classifier, build_counter, classifier_loss, optimizer
from ccframe.ml.runtime import configure, keras
from ccframe.ml.stage import training_samples
from ccframe.simulate.stage import simulate_to_root
from ccframe.steering.loader import load_steering

REPO = Path(__file__).resolve().parents[1]


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._t0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap_se(metric: Any, *arrays: np.ndarray, n: int = 30, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    size = len(arrays[0])
    values = [metric(*(a[idx] for a in arrays)) for idx in rng.integers(0, size, (n, size))]
    return float(np.std(values))


def auc(score: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(score)
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    n1 = y.sum()
    n0 = len(y) - n1
    return float((ranks[y > 0.5].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def f1(score: np.ndarray, y: np.ndarray) -> float:
    p = score > 0.5
    tp = np.sum(p & (y > 0.5))
    return float(2 * tp / (p.sum() + (y > 0.5).sum()))


def resolution(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.std(pred / true - 1))


def bias(pred: np.ndarray, true: np.ndarray) -> float:
    return float(pred.sum() / true.sum() - 1)


def fit_both(
    build: Any, compile_args: dict, memory: tuple, streamed: Any, cfg: Any, seed: int
) -> dict[str, dict[str, Any]]:
    """Fit two copies of one initial model, on in-memory arrays and on streamed batches,
    one epoch of each in turn (so both see the same machine load)."""
    configure(seed=seed)
    models = {"memory": build(), "streamed": build()}
    models["streamed"].set_weights(models["memory"].get_weights())
    times = {kind: EpochTimes() for kind in models}
    for model in models.values():
        model.compile(optimizer=optimizer(cfg.optimizer), **compile_args)
    x, y, w = memory
    for epoch in range(cfg.epochs):
        models["memory"].fit(x, y, sample_weight=w, batch_size=cfg.batch_size, epochs=epoch + 1,
                             initial_epoch=epoch, shuffle=True, verbose=0,
                             callbacks=[times["memory"]])  # fmt: skip
        models["streamed"].fit(streamed, epochs=epoch + 1, initial_epoch=epoch, shuffle=False,
                               verbose=0, callbacks=[times["streamed"]])  # fmt: skip
    return {kind: {"seconds": times[kind].seconds, "model": models[kind]} for kind in models}


def epoch_rate(n: int, seconds: list[float]) -> float:
    """Samples per second of the fastest epoch after the first (which traces and compiles)."""
    return n / min(seconds[1:] or seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steering", default=str(REPO / "steering" / "quickstart.yaml"))
    parser.add_argument("--networks", default="classifier,counter", help="which to train")
    args = parser.parse_args()
    steering = load_steering(args.steering)
    ml, sim = steering.ml, steering.simulate
    if ml is None or sim is None:
        raise SystemExit(f"{args.steering}: needs simulate: and ml: sections")
    seed = steering.seed
    configure(ml.device, ml.threads, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.root"
        t0 = time.perf_counter()
        simulate_to_root(sim.model_copy(update={"n_waveforms": args.n}), seed, path)
        print(f"simulated {args.n} waveforms in {time.perf_counter() - t0:.1f} s")
        rss0 = peak_rss_mb()
        t0 = time.perf_counter()
        with DatasetBuilder(ml.dataset, steering.traditional, seed) as builder:
            for batch in iter_batches(steering.input_data, [str(path)]):
                builder.add(batch)
            ds = builder.result()
        seconds = time.perf_counter() - t0
        print(f"dataset: {ds.n_waveforms} waveforms, {ds.label.size:,} windows on disk in "
              f"{seconds:.1f} s; peak RSS {rss0:.0f} -> {peak_rss_mb():.0f} MB")  # fmt: skip
        if "classifier" in args.networks:
            report_classifier(ml, ds, seed, args.epochs)
        if "counter" in args.networks:
            report_counter(ml, ds, seed, args.epochs)


def report_classifier(ml: Any, ds: Any, seed: int, epochs: int) -> None:
    cfg = ml.classifier.training.model_copy(update={"epochs": epochs})
    split = ds.candidate_split
    train = np.flatnonzero(split == TRAIN)
    y_all = (np.asarray(ds.label) > 0).astype(np.float32)
    use, weights = training_samples(y_all[train], ml.dataset.balance, seed)
    train = train[use]
    w = None
    if weights is not None:
        w = np.where(y_all[train] > 0.5, weights[1], weights[0]).astype(np.float32)
    memory = (np.array(ds.windows[train]), y_all[train], w)
    streamed = WindowBatches(ds.windows, ds.label, train, cfg.batch_size, seed, True, weights)
    result = fit_both(
        lambda: build_classifier(ml.classifier, ds.windows.shape[1]),
        {"loss": classifier_loss(ml.classifier)},
        memory,
        streamed,
        cfg,
        seed,
    )
    test = np.flatnonzero(split == TEST)
    x_test, y_test = np.array(ds.windows[test]), y_all[test]
    print(f"classifier: {train.size:,} training windows, batch {cfg.batch_size}, {epochs} epochs")
    rates = {}
    for kind in ("memory", "streamed"):
        model = result[kind]["model"]
        score = np.asarray(model.predict(x_test, batch_size=8192, verbose=0)).ravel()
        rates[kind] = epoch_rate(train.size, result[kind]["seconds"])
        print(f"  {kind:<9s} {rates[kind]:>10,.0f} windows/s per epoch  "
              f"test AUC {auc(score, y_test):.4f} +- {bootstrap_se(auc, score, y_test):.4f}  "
              f"F1 {f1(score, y_test):.4f} +- {bootstrap_se(f1, score, y_test):.4f}")  # fmt: skip
    print(f"  streamed / in memory: {rates['streamed'] / rates['memory']:.2f} (target >= 0.80)")


def report_counter(ml: Any, ds: Any, seed: int, epochs: int) -> None:
    cfg = ml.counter.training.model_copy(update={"epochs": epochs})
    accept = np.asarray(ds.label) > 0  # the true signal candidates, same for both
    window_ns = ds.n_samples / ds.sampling_ghz
    binning = (ds.sampling_ghz, window_ns, ml.dataset.time_list)
    train = np.flatnonzero(ds.split == TRAIN)
    n_true = ds.n_clusters.astype(np.float32)
    scale = float(n_true[train].mean())
    y = n_true / np.float32(scale)
    candidates = (ds.position, ds.offsets, accept)
    lists = TimeListBatches(candidates, y, train, binning, len(train))[0][0]
    streamed = TimeListBatches(candidates, y, train, binning, cfg.batch_size, seed, True)
    n_bins = ml.dataset.time_list.n_bins

    def build() -> Any:
        model = build_counter(ml.counter, n_bins, scale)
        return keras.Model(model.input, model.get_layer("scaled_count").output)

    result = fit_both(build, {"loss": ml.counter.loss}, (lists, y[train], None), streamed,
                      cfg, seed)  # fmt: skip
    del lists
    test = np.flatnonzero((ds.split == TEST) & (ds.n_clusters > 0))
    test_lists = TimeListBatches(candidates, y, test, binning, len(test))[0][0]
    true = n_true[test].astype(np.float64)
    print(f"counter: {train.size:,} training waveforms, batch {cfg.batch_size}, {epochs} epochs")
    rates = {}
    for kind in ("memory", "streamed"):
        model = result[kind]["model"]
        pred = scale * np.asarray(model.predict(test_lists, batch_size=512, verbose=0)).ravel()
        rates[kind] = epoch_rate(train.size, result[kind]["seconds"])
        print(f"  {kind:<9s} {rates[kind]:>10,.0f} waveforms/s per epoch  test resolution "
              f"{resolution(pred, true):.4f} +- {bootstrap_se(resolution, pred, true):.4f}  "
              f"bias {bias(pred, true):+.4f} +- {bootstrap_se(bias, pred, true):.4f}")  # fmt: skip
    print(f"  streamed / in memory: {rates['streamed'] / rates['memory']:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
