"""The trained chain as ONNX: `ccframe export` writes both networks (classifier.onnx,
counter.onnx) and onnx.json next to chain.json, for ONNX Runtime in C++ frameworks (key4hep)
and for `ccframe infer --backend onnx`, which runs them without importing TensorFlow.

Each network has one float32 input with a dynamic batch dimension named `batch` and one
output of shape (batch, 1); opset `OPSET`. onnx.json records the names and shapes, the
chain's settings (candidates, window normalisation, time-list binning, threshold) with what
they mean, the versions that wrote it, and a SHA-256 of the files the networks came from, so
a chain retrained after its export is refused rather than half applied."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ccframe import __version__
from ccframe.errors import CcframeError, InputError, OutputError, reason
from ccframe.io.atomic import atomic_path, write_json
from ccframe.kernels.config import CandidateConfig, TimeListConfig, WindowConfig
from ccframe.ml.chain import (
    CHAIN_FILE,
    CLASSIFIER_FILE,
    COUNTER_FILE,
    MAX_CHAIN_BYTES,
    ChainSettings,
    read_settings,
)
from ccframe.runfolder.artifacts import CLASSIFIER_ONNX, COUNTER_ONNX, ONNX_META, STATUS

OPSET = 17
"""ONNX opset of the exported networks: ONNX Runtime >= 1.13 reads it."""
ONNX_SCHEMA = 1
INSTALL = "pip install 'ccframe[onnx]'"
CHECK_ROWS = 64
"""Inputs on which an export is checked against Keras before it is written."""
CHECK_TOLERANCE = 1e-4
"""Largest |ONNX - Keras| of an export, relative to max(1, |Keras|)."""


class Network:
    """One network of the chain: its Keras file, ONNX file and tensor names."""

    def __init__(self, key: str, keras_file: str, onnx_file: str, input_name: str, output: str):
        self.key, self.keras_file, self.onnx_file = key, keras_file, onnx_file
        self.input_name, self.output = input_name, output


NETWORKS = (
    Network("classifier", CLASSIFIER_FILE, CLASSIFIER_ONNX, "window", "score"),
    Network("counter", COUNTER_FILE, COUNTER_ONNX, "time_list", "count"),
)
MEANING = {
    "classifier": "signal probability of the candidate at the window's centre; the peak is "
    "accepted if score > chain.threshold",
    "counter": "number of clusters of the waveform (a float), from its accepted peaks' time list",
}
EXPORTED = (CLASSIFIER_ONNX, COUNTER_ONNX, ONNX_META)


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _doc(section: type[Any]) -> str:
    return " ".join((section.__doc__ or "").split())


# --- export --------------------------------------------------------------------------------


def export_chain(run_dir: Path, force: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Write the chain saved in `run_dir` as ONNX (classifier.onnx, counter.onnx, onnx.json),
    each network checked against Keras on `CHECK_ROWS` inputs before it is written; return
    onnx.json's record. Existing files are replaced only with `force`; a run folder's
    run.json lists the files (so `ccframe run --force` removes them)."""
    settings = read_settings(run_dir)
    for net in NETWORKS:
        if not (run_dir / net.keras_file).is_file():
            raise InputError(f"{run_dir / net.keras_file}: missing; the chain is incomplete")
    existing = [run_dir / name for name in EXPORTED if (run_dir / name).exists()]
    if existing and not force:
        raise OutputError(f"{existing[0]}: exists; use --force to replace it")
    _require("tf2onnx", "onnx", "onnxruntime", what="ccframe export")
    from ccframe.runfolder.rundir import FolderLock, add_outputs, describe_writer, read_status

    lock = FolderLock(run_dir)
    is_run = (run_dir / STATUS).is_file()
    if is_run and not lock.acquire():
        raise OutputError(
            f"{run_dir}: a run is live in this folder ({describe_writer(read_status(run_dir))}); "
            "export its chain once it has finished"
        )
    try:
        if is_run:
            add_outputs(run_dir, EXPORTED)
        record = _export(run_dir, settings, log)
    finally:
        lock.release()
    log(
        f"export: {run_dir / CLASSIFIER_ONNX}, {run_dir / COUNTER_ONNX} (opset {OPSET}), "
        f"{run_dir / ONNX_META}"
    )
    return record


def _require(*modules: str, what: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise CcframeError(f"{what} needs {', '.join(missing)}: {INSTALL}")


def _export(run_dir: Path, settings: ChainSettings, log: Callable[[str], None]) -> dict[str, Any]:
    from ccframe.ml.models import load_saved
    from ccframe.ml.runtime import keras, tf

    sources = _sources(run_dir)  # before the models are read: what was exported
    networks: dict[str, Any] = {}
    check: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for net in NETWORKS:
        model = load_saved(run_dir / net.keras_file)
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        rolled = _rolled(model, keras)
        spec = tf.TensorSpec((None, *shape), tf.float32, name=net.input_name)
        if net.key == "classifier":
            x = rng.normal(0.0, 3.0, (CHECK_ROWS, *shape)).astype(np.float32)
        else:
            x = rng.poisson(0.03, (CHECK_ROWS, *shape)).astype(np.float32)
        want = np.asarray(model(x, training=False), dtype=np.float64).reshape(-1)
        target = run_dir / net.onnx_file
        with atomic_path(target) as tmp:
            with warnings.catch_warnings():  # Keras's tf2onnx patch for NumPy 2 warns
                warnings.simplefilter("ignore")
                rolled.export(
                    str(tmp),
                    format="onnx",
                    verbose=False,
                    input_signature=[spec],
                    opset_version=OPSET,
                )
            _finish(tmp, net, settings)
            got = OnnxPredictor(tmp, net, CHECK_ROWS)(x).astype(np.float64)
            diff = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
            if not diff <= CHECK_TOLERANCE:
                raise OutputError(
                    f"{target}: the ONNX {net.key} differs from {net.keras_file} by {diff:.2g} "
                    f"(relative, tolerance {CHECK_TOLERANCE:g}); not written"
                )
        check[net.key] = diff
        networks[net.key] = {
            "file": net.onnx_file,
            "input": net.input_name,
            "input_shape": ["batch", *shape],
            "output": net.output,
            "output_shape": ["batch", 1],
            "meaning": MEANING[net.key],
        }
        log(f"export: {net.key} -> {target} (largest difference to Keras {diff:.1e})")
    record = {
        "schema": ONNX_SCHEMA,
        "ccframe": __version__,
        "opset": OPSET,
        "versions": _versions("tf2onnx", "onnx", "keras", "tensorflow", "tensorflow-cpu"),
        "networks": networks,
        "chain": settings.to_json(),
        "preprocessing": {
            "candidates": _doc(CandidateConfig),
            "window": _doc(WindowConfig),
            "time_list": _doc(TimeListConfig),
        },
        "sources": sources,
        "check": {"rows": CHECK_ROWS, "max_relative_difference": check},
    }
    write_json(run_dir / ONNX_META, record)
    return record


def _rolled(model: Any, keras: Any) -> Any:
    """`model`, or a copy with the same weights whose unrolled LSTM is a loop again: one
    ONNX LSTM operator instead of a chain of operators per time step (smaller, standard,
    and faster in ONNX Runtime)."""
    if not any(getattr(layer, "unroll", False) for layer in model.layers):
        return model

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if config.get("unroll"):
            config["unroll"] = False
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _versions(*names: str) -> dict[str, str]:
    """Versions of the installed distributions among `names`."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _sources(run_dir: Path) -> dict[str, str]:
    """SHA-256 of the files an export comes from."""
    return {name: sha256(run_dir / name) for name in (CLASSIFIER_FILE, COUNTER_FILE, CHAIN_FILE)}


def _finish(path: Path, net: Network, settings: ChainSettings) -> None:
    """Name the batch dimension `batch` and the output `net.output`; store the ccframe
    version and chain settings as model metadata (ONNX Runtime's custom metadata map)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    old_out = graph.output[0].name
    old_batch = graph.input[0].type.tensor_type.shape.dim[0].dim_param
    for node in graph.node:
        node.input[:] = [net.output if n == old_out else n for n in node.input]
        node.output[:] = [net.output if n == old_out else n for n in node.output]
    graph.output[0].name = net.output
    ends = (graph.input[0], graph.output[0])
    for value in (*ends, *(v for v in graph.value_info if v.name != net.output)):
        dims = value.type.tensor_type.shape.dim
        if dims and (value in ends or (old_batch and dims[0].dim_param == old_batch)):
            dims[0].dim_param = "batch"
    graph.name = f"ccframe_{net.key}"
    model.doc_string = f"ccframe {__version__} chain {net.key}: {MEANING[net.key]}"
    onnx.helper.set_model_props(
        model,
        {
            "ccframe_version": __version__,
            "network": net.key,
            "input": net.input_name,
            "output": net.output,
            "chain": json.dumps(settings.to_json()),
        },
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# --- inference -----------------------------------------------------------------------------


class OnnxPredictor:
    """One exported network run by ONNX Runtime (CPU, intra-op threads = the cores), in
    batches of `batch` rows: float32 (n, ...) -> (n,) float32, as `Predictor`."""

    def __init__(self, path: Path, net: Network, batch: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: they raise
        # Threads sleep between calls instead of spinning: the chain's other steps run in
        # between, and a batch node's cores are shared (measured: bench/inference.py --onnx).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # truncated or foreign files: onnxruntime's own types
            raise InputError(f"{path}: cannot load the ONNX network ({exc})") from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [net.input_name] or outputs != [net.output]:
            raise InputError(
                f"{path}: inputs {inputs} and outputs {outputs}, expected [{net.input_name!r}] "
                f"and [{net.output!r}]; export the chain again (`ccframe export --force`)"
            )
        self.input, self.output, self.batch = net.input_name, net.output, batch

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        out = np.empty(n, dtype=np.float32)
        for lo in range(0, n, self.batch):
            part = np.ascontiguousarray(x[lo : lo + self.batch], dtype=np.float32)
            got = self.session.run([self.output], {self.input: part})[0]
            out[lo : lo + len(part)] = np.asarray(got).reshape(-1)
        return out


def read_meta(folder: Path) -> dict[str, Any]:
    """onnx.json of an export in `folder`, checked: every file present, schema known, and
    the networks exported from the chain that is there now."""
    missing = [name for name in EXPORTED if not (folder / name).is_file()]
    if missing:
        raise InputError(
            f"{folder}: no ONNX export of the chain ({missing[0]} missing); run "
            f"`ccframe export {folder}` first"
        )
    path = folder / ONNX_META
    try:
        if path.stat().st_size > MAX_CHAIN_BYTES:
            raise InputError(f"{path}: too large to be an onnx.json")
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read it ({reason(exc)})") from None
    if not isinstance(meta, dict) or meta.get("schema") != ONNX_SCHEMA:
        schema = meta.get("schema") if isinstance(meta, dict) else None
        raise InputError(
            f"{path}: ONNX export schema {json.dumps(schema)[:40]}, this ccframe reads "
            f"{ONNX_SCHEMA}; run `ccframe export {folder} --force`"
        )
    sources = meta.get("sources")
    if not isinstance(sources, dict):
        raise InputError(f"{path}: key 'sources' is missing; run `ccframe export {folder} --force`")
    for name in (CLASSIFIER_FILE, COUNTER_FILE, CHAIN_FILE):
        here = folder / name
        if here.is_file() and sources.get(name) != sha256(here):  # a copy may ship ONNX only
            raise InputError(
                f"{path}: exported from another {name} than the one in {folder} (retrained or "
                f"edited since); run `ccframe export {folder} --force`"
            )
    return meta


def load_predictors(
    folder: Path, batch: int, keys: tuple[str, ...] = ("classifier", "counter")
) -> dict[str, OnnxPredictor]:
    """The networks `keys` that `ccframe export` wrote in `folder`, for ONNX Runtime (the
    counter in batches of batch // 16 time lists, as with Keras)."""
    read_meta(folder)
    _require("onnxruntime", what="--backend onnx or mixed")
    sizes = {"classifier": batch, "counter": max(1, batch // 16)}
    return {
        net.key: OnnxPredictor(folder / net.onnx_file, net, sizes[net.key])
        for net in NETWORKS
        if net.key in keys
    }
