"""The `ml` stage of `ccframe run`: build the datasets, train the LSTM peak classifier and the
CNN cluster counter, evaluate both on the test split next to the traditional algorithm, and
write the models, histories, metrics and predictions.root into the run folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ccframe.errors import InputError
from ccframe.io.atomic import write_text
from ccframe.io.config import DataConfig
from ccframe.io.rootwrite import write_tree
from ccframe.logs import Log
from ccframe.metrics.counting import count_summary, fmt, json_ready
from ccframe.ml import evaluate
from ccframe.ml.batches import TimeListBatches, WindowBatches
from ccframe.ml.calibration import calibrate
from ccframe.ml.chain import (
    Chain,
    ChainSettings,
    Predictor,
    accepted_counts,
    candidate_record,
)
from ccframe.ml.config import MLConfig
from ccframe.ml.dataset import (
    SPLIT_NAMES,
    TEST,
    TRAIN,
    VALIDATION,
    Dataset,
    DatasetBuilder,
    cache_key,
)
from ccframe.ml.runtime import configure
from ccframe.ml.train import expected_initial_loss, fit
from ccframe.reco.config import TraditionalConfig
from ccframe.runfolder.artifacts import ROC, history

WRITE_CHUNK = 10_000


def ml_data(cfg: MLConfig, data: DataConfig) -> DataConfig:
    """The input mapping of the ML dataset: at most `ml.dataset.max_events` waveforms."""
    return data.model_copy(update={"max_events": cfg.dataset.max_events or data.max_events})


def needs_waveforms(cfg: MLConfig) -> bool:
    """Whether the dataset must store the waveforms (a model on whole waveforms is set)."""
    return cfg.waveform_counter is not None or cfg.peak_map is not None


def dataset_cache(
    cfg: MLConfig,
    data: DataConfig,
    files: list[str],
    run_dir: Path,
    traditional: TraditionalConfig,
    seed: int,
) -> Path | None:
    """Where the dataset of these inputs and settings is cached (None: no cache)."""
    dcfg = cfg.dataset
    if not dcfg.cache:
        return None
    data = ml_data(cfg, data)
    waveforms = needs_waveforms(cfg)
    key = cache_key(files, data.model_dump(exclude={"files"}), dcfg, traditional, seed, waveforms)
    return run_dir.parent / dcfg.cache_dir / f"ml-dataset-{key}"


def cached_dataset(cache: Path | None, log: Log) -> Dataset | None:
    """The cached dataset, or None when there is none (or it cannot be read)."""
    if cache is None or not cache.is_dir():
        return None
    try:
        dataset = Dataset.load(cache)
    except InputError as exc:
        logging.getLogger("ccframe").warning("ml: ignoring the cache (%s); rebuilding it", exc)
        return None
    log(f"ml: dataset from cache {cache}")
    return dataset


def dataset_builder(
    cfg: MLConfig,
    data: DataConfig,
    traditional: TraditionalConfig,
    seed: int,
    cache: Path | None = None,
) -> DatasetBuilder:
    """A `DatasetBuilder` for a pass over the input read with `data`, writing the dataset
    into `cache` (None: a temporary folder)."""
    max_events = ml_data(cfg, data).max_events
    waveforms = needs_waveforms(cfg)
    return DatasetBuilder(cfg.dataset, traditional, seed, max_events, cache, waveforms)


def built_dataset(builder: DatasetBuilder, seconds: float, log: Log) -> Dataset:
    """The builder's dataset (cached by the builder when it was given a cache folder)."""
    dataset = builder.result()
    signal = float(np.mean(np.asarray(dataset.label) > 0)) if dataset.label.size else 0.0
    log(
        f"ml: dataset of {dataset.n_waveforms} waveforms, {dataset.label.size:,} candidates "
        f"({signal:.3f} signal) built in {seconds:.1f} s"
    )
    return dataset


def training_samples(
    y: np.ndarray, balance: str, seed: int
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Indices of the training windows to use and the (noise, signal) class weights, per
    `balance` (`y`: the 0/1 targets of the training windows)."""
    index = np.arange(y.size)
    n1 = int(np.count_nonzero(y > 0.5))
    n0 = y.size - n1
    if balance == "class_weights" and n0 and n1:
        return index, (y.size / (2.0 * n0), y.size / (2.0 * n1))
    if balance == "undersample" and n0 and n1:
        rng = np.random.default_rng([seed, 0xBA1])
        small, large = (
            (index[y > 0.5], index[y <= 0.5]) if n1 < n0 else (index[y <= 0.5], index[y > 0.5])
        )
        keep = rng.choice(large, size=small.size, replace=False)
        return np.sort(np.concatenate([small, keep])), None
    return index, None


def train_classifier(
    cfg: MLConfig, ds: Dataset, run_dir: Path, seed: int, log: Log
) -> tuple[Any, dict[str, Any]]:
    from ccframe.ml.models import build_classifier, classifier_loss
    from ccframe.ml.runtime import keras

    ccfg = cfg.classifier
    split = ds.candidate_split
    train = np.flatnonzero(split == TRAIN)
    y_train = (np.asarray(ds.label[train]) > 0).astype(np.float32)
    use, weights = training_samples(y_train, cfg.dataset.balance, seed)
    train, y_train = train[use], y_train[use]
    val = np.flatnonzero(split == VALIDATION)
    del split
    model = build_classifier(ccfg, ds.windows.shape[1])
    metrics = [
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(name="auc"),
    ]
    batch = ccfg.training.batch_size
    result = fit(
        model,
        WindowBatches(ds.windows, ds.label, train, batch, seed, True, weights),
        WindowBatches(ds.windows, ds.label, val, batch),
        ccfg.training,
        classifier_loss(ccfg),
        metrics,
        "classifier",
        expected_initial_loss(ccfg.loss, y_train, ccfg.focal_gamma),
        run_dir / history("classifier"),
        log,
    )
    return model, result.summary() | {"parameters": model.count_params()}


def train_counter(
    cfg: MLConfig,
    ds: Dataset,
    accept: np.ndarray,
    settings: ChainSettings,
    seed: int,
    run_dir: Path,
    log: Log,
) -> tuple[Any, dict[str, Any]]:
    from ccframe.ml.models import build_counter
    from ccframe.ml.runtime import keras

    train, val = np.flatnonzero(ds.split == TRAIN), np.flatnonzero(ds.split == VALIDATION)
    n_true = ds.n_clusters.astype(np.float32)
    scale = float(n_true[train].mean()) or 1.0
    model = build_counter(cfg.counter, settings.time_list.n_bins, scale)
    scaled = keras.Model(model.input, model.get_layer("scaled_count").output)
    y = n_true / np.float32(scale)
    candidates = (ds.position, ds.offsets, accept)
    binning = settings.binning
    batch = cfg.counter.training.batch_size
    result = fit(
        scaled,
        TimeListBatches(candidates, y, train, binning, batch, seed, True),
        TimeListBatches(candidates, y, val, binning, batch),
        cfg.counter.training,
        cfg.counter.loss,
        [keras.metrics.MeanAbsoluteError(name="mae_scaled")],
        "counter",
        expected_initial_loss(cfg.counter.loss, y[train]),
        run_dir / history("counter"),
        log,
    )
    info = result.summary() | {"parameters": model.count_params(), "count_scale": scale}
    return model, info


def train_chain(
    cfg: MLConfig,
    ds: Dataset,
    data: DataConfig,
    run_dir: Path,
    traditional: TraditionalConfig,
    seed: int,
    log: Log,
) -> tuple[dict[str, Any], Chain, dict[str, Any]]:
    """Train, evaluate and save the chain (and the one-step counter when configured) on a
    dataset; return the metrics (unavailable ones as None), the trained chain and the other
    trained counters by name (`waveform`, `peak_map`: `WaveformCounter`s; `peak_sequence`: a
    `SequenceCounter`, which counts from the chain's outputs)."""
    configure(cfg.device, cfg.threads, seed)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    classifier, clf_info = train_classifier(cfg, ds, run_dir, seed, log)
    timing["classifier_training_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    unrolled = cfg.classifier.unroll
    scores = Predictor(classifier, cfg.inference_batch, xla=unrolled)(ds.windows)
    timing["classifier_inference_s"] = time.perf_counter() - t0
    split = ds.candidate_split
    y = ds.signal
    val = split == VALIDATION
    threshold = evaluate.choose_threshold(scores[val], y[val], cfg.classifier.threshold)
    accept = scores > threshold
    settings = ChainSettings(
        candidates=cfg.dataset.candidates,
        window=cfg.dataset.window,
        time_list=cfg.dataset.time_list,
        threshold=threshold,
        sampling_ghz=ds.sampling_ghz,
        n_samples=ds.n_samples,
        baseline_window_ns=data.baseline_window_ns,
        tail_cancellation_ns=data.tail_cancellation_ns,
    )

    t0 = time.perf_counter()
    counter, cnt_info = train_counter(cfg, ds, accept, settings, seed, run_dir, log)
    timing["counter_training_s"] = time.perf_counter() - t0
    chain = Chain.from_keras(classifier, counter, settings, cfg.inference_batch)
    n_ml = chain.count_all(ds.position, ds.offsets, accept)
    if cfg.counter.calibrate_response:
        wval = ds.split == VALIDATION
        counter, n_ml, cnt_info["response_calibration"] = calibrate(
            counter, n_ml, wval, ds.n_clusters, "counter", log
        )
        chain = Chain.from_keras(classifier, counter, settings, cfg.inference_batch)
    chain.save(run_dir)
    counts = {"ml": n_ml}
    counters: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if cfg.waveform_counter is not None:
        from ccframe.ml.waveform import train_waveform_counter

        counters["waveform"], extra["waveform_counter"], counts["waveform"] = (
            train_waveform_counter(cfg, ds, settings.window, seed, run_dir, log)
        )
    if cfg.peak_sequence is not None:
        from ccframe.ml.sequence import train_peak_sequence

        counters["peak_sequence"], extra["peak_sequence"], counts["peak_sequence"] = (
            train_peak_sequence(cfg, ds, scores, seed, run_dir, log)
        )
    if cfg.peak_map is not None:
        from ccframe.ml.peakmap import train_peak_map

        counters["peak_map"], extra["peak_map"], counts["peak_map"] = train_peak_map(
            cfg, ds, settings.window, seed, run_dir, log
        )

    test = split == TEST
    wtest = ds.split == TEST
    momentum = ds.momentum_gev[wtest]
    metrics: dict[str, Any] = {
        "dataset": dataset_summary(ds),
        "classifier": {
            "training": clf_info,
            "validation": evaluate.classification(scores[val], y[val], threshold),
            "test": evaluate.classification(scores[test], y[test], threshold),
        },
        "peak_finding_test": evaluate.end_to_end(
            accept[test],
            ds.label[test],
            ds.cluster[test],
            np.diff(ds.offsets)[wtest],
            int(ds.n_electrons[wtest].sum()),
            ds.n_clusters[wtest],
            ds.clusters_known,
        ),
        "counter": {"training": cnt_info},
        **{name: {"training": info} for name, info in extra.items()},
        "count_test": evaluate.counting(
            {name: c[wtest] for name, c in counts.items()}
            | {"traditional": ds.n_traditional[wtest].astype(np.float64)},
            ds.n_clusters[wtest],
            momentum,
            cfg.momentum_bins,
        ),
        "traditional": {
            "algorithm": traditional.algorithm,
            traditional.algorithm: traditional.finder.model_dump(),
            "clusterize": traditional.clusterize.model_dump(),
        },
        "timing": {k: round(v, 2) for k, v in timing.items()},
    }
    metrics = json_ready(metrics)
    write_roc(run_dir / ROC, evaluate.roc_table(scores[test], y[test]))
    target = run_dir / cfg.output
    write_tree(target, "predictions", prediction_chunks(ds, scores, accept, counts))
    log(format_ml(metrics, target))
    return metrics, chain, counters


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {
        "waveforms": ds.n_waveforms,
        "candidates": int(ds.label.size),
        "sampling_ghz": ds.sampling_ghz,
        "n_samples": ds.n_samples,
    }
    split = ds.candidate_split
    for code, name in enumerate(SPLIT_NAMES):
        sel = split == code
        out[name] = {
            "waveforms": int(np.count_nonzero(ds.split == code)),
            "candidates": int(sel.sum()),
            "signal_fraction": float(ds.signal[sel].mean()) if sel.any() else float("nan"),
        }
    return out


def prediction_chunks(
    ds: Dataset, scores: np.ndarray, accept: np.ndarray, ml_counts: dict[str, np.ndarray]
) -> Iterator[dict[str, Any]]:
    """Per-waveform branches (`n_clusters_<name>` for each ML count: ml, waveform) and the
    jagged `candidate` record, in chunks."""
    counts = np.diff(ds.offsets)
    for lo in range(0, ds.n_waveforms, WRITE_CHUNK):
        hi = min(ds.n_waveforms, lo + WRITE_CHUNK)
        a, b = ds.offsets[lo], ds.offsets[hi]
        n = counts[lo:hi]
        candidate = candidate_record(
            ds.position[a:b], n, ds.sampling_ghz, scores[a:b], accept[a:b], ds.label[a:b]
        )
        yield {
            "file_index": ds.file_index[lo:hi],
            "entry": ds.entry[lo:hi],
            "event_id": ds.event_id[lo:hi],
            "momentum_gev": ds.momentum_gev[lo:hi],
            "pdg": ds.pdg[lo:hi],
            "split": ds.split[lo:hi],
            "n_clusters_true": ds.n_clusters[lo:hi],
            "n_electrons_true": ds.n_electrons[lo:hi],
            **{f"n_clusters_{name}": c[lo:hi] for name, c in ml_counts.items()},
            "n_clusters_traditional": ds.n_traditional[lo:hi],
            "n_peaks": accepted_counts(ds.offsets[lo : hi + 1] - a, accept[a:b]),
            "candidate": candidate,
        }


def write_roc(path: Path, roc: dict[str, np.ndarray]) -> None:
    rows = ["threshold,fpr,tpr"]
    rows += [f"{t:.6g},{f:.6g},{p:.6g}" for t, f, p in zip(*roc.values(), strict=True)]
    write_text(path, "\n".join(rows) + "\n")


def format_ml(m: dict[str, Any], target: Path) -> str:
    """The ml stage's summary; 'n/a' for unavailable metrics."""
    c = m["classifier"]["test"]
    pf = m["peak_finding_test"]
    lines = [
        f"ml: test split ({m['dataset']['test']['waveforms']} waveforms) -> {target}",
        f"  classifier       AUC {fmt(c['auc'], '.4f')}  F1 {fmt(c['f1'], '.4f')}  "
        f"precision {fmt(c['precision'], '.4f')}  recall {fmt(c['recall'], '.4f')}  "
        f"efficiency x purity {fmt(c['efficiency_x_purity'], '.4f')}  "
        f"(threshold {fmt(c['threshold'], '.3f')})",
        f"  peak finding     efficiency {fmt(pf['efficiency'], '.3f')} of all "
        f"{'peaks tagged 1 or 2' if pf.get('truth') else 'electrons'} "
        f"(candidates reach {fmt(pf['candidate_coverage'], '.3f')}), "
        f"purity {fmt(pf['purity'], '.3f')}",
    ]
    if "count_limit_resolution_core" in pf:
        eff = fmt(pf["cluster_efficiency"], ".3f")
        lines.append(
            f"  clusters found   {eff} of all clusters; counting exactly these (/ {eff}) gives "
            f"resolution {fmt(pf['count_limit_resolution_rms'], '.3f')} (RMS), "
            f"{fmt(pf['count_limit_resolution_core'], '.3f')} (core)"
        )
    for name, entry in m["count_test"].items():
        if name == "ml_gain_over_traditional":
            continue
        lines.append(f"  count {name:<11s} {count_summary(entry['overall'])}")
    gain = m["count_test"].get("ml_gain_over_traditional")
    if gain:
        lines.append(
            "  ML resolution gain over traditional: "
            f"{fmt(gain.get('relative_resolution_rms'), '+.1%')} (RMS), "
            f"{fmt(gain.get('relative_resolution_core'), '+.1%')} (core)"
        )
    return "\n".join(lines)
