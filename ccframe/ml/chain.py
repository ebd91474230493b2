"""The trained two-step chain: candidates -> windows -> LSTM scores -> accepted peaks ->
time list -> CNN count. Saved as a model folder (two .keras files and chain.json with the
kernel settings, threshold and sampling rate) and applied to any reader batch."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import awkward as ak
import numpy as np
from pydantic import BaseModel, ValidationError

from ccframe.errors import InputError, closest
from ccframe.io.atomic import atomic_path, write_json
from ccframe.io.config import DataConfig
from ccframe.io.prefetch import prefetch
from ccframe.io.reader import (
    WaveformBatch,
    check_waveform_branch,
    open_tree,
    reason,
    require_branch,
    sample_layout,
    sampling_of,
)
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.config import CandidateConfig, TimeListConfig, WindowConfig
from ccframe.kernels.jagged import flat, to_jagged
from ccframe.kernels.timelist import encode_accepted
from ccframe.kernels.windows import slice_windows

CHAIN_SCHEMA = 1
CLASSIFIER_FILE, COUNTER_FILE, CHAIN_FILE = "classifier.keras", "counter.keras", "chain.json"
COUNT_CHUNK = 8192
"""Waveforms whose time lists are encoded at once by `Chain.count_all`."""
MAX_CHAIN_BYTES = 1 << 20
"""A chain.json is a few hundred bytes; anything over this is not one."""
MAX_SAMPLES = 100_000_000
MAX_SAMPLING_GHZ = 1000.0
MAX_WINDOW_NS = 1e9
KEYS = (
    "schema",
    "candidates",
    "window",
    "time_list",
    "threshold",
    "sampling_ghz",
    "n_samples",
    "baseline_window_ns",
)
OPTIONAL_KEYS = ("tail_cancellation_ns",)
"""Keys a chain.json may lack (written by later versions; absent means unset)."""
Model = TypeVar("Model", bound=BaseModel)
T = TypeVar("T")
Backend = Literal["keras", "onnx", "mixed"]
"""How the chain's networks run: both with Keras, both with ONNX Runtime (`ccframe export`
first), or `mixed`: the classifier with Keras (XLA) and the counter with ONNX Runtime, the
fastest on CPU (docs/performance.md)."""
"""What runs the two networks: Keras (TensorFlow) or ONNX Runtime (`ccframe export` first)."""


@dataclass
class ChainSettings:
    """What inference needs besides the two networks."""

    candidates: CandidateConfig
    window: WindowConfig
    time_list: TimeListConfig
    threshold: float
    sampling_ghz: float
    n_samples: int
    baseline_window_ns: float
    tail_cancellation_ns: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CHAIN_SCHEMA,
            "candidates": self.candidates.model_dump(),
            "window": self.window.model_dump(),
            "time_list": self.time_list.model_dump(),
            "threshold": self.threshold,
            "sampling_ghz": self.sampling_ghz,
            "n_samples": self.n_samples,
            "baseline_window_ns": self.baseline_window_ns,
            "tail_cancellation_ns": self.tail_cancellation_ns,
        }

    @classmethod
    def from_json(cls, d: Any, where: str = CHAIN_FILE) -> ChainSettings:
        """Validated settings from the parsed chain.json `d` (`where` names it in errors):
        schema version, known keys only, sections valid, finite numbers in range."""
        if not isinstance(d, dict):
            raise invalid(where, f"expected a JSON object, got {type(d).__name__}")
        _check_schema(d, where)
        unknown = [k for k in d if k not in KEYS + OPTIONAL_KEYS]
        if unknown:
            key = str(unknown[0])
            raise invalid(where, f"unknown key '{key}'{closest(key, KEYS + OPTIONAL_KEYS)}")
        missing = [k for k in KEYS if k not in d]
        if missing:
            raise invalid(where, f"key '{missing[0]}' is missing")
        settings = cls(
            candidates=_section(d, "candidates", CandidateConfig, where),
            window=_section(d, "window", WindowConfig, where),
            time_list=_section(d, "time_list", TimeListConfig, where),
            threshold=_number(d, "threshold", where, 0.0, 1.0),
            sampling_ghz=_number(d, "sampling_ghz", where, 0.0, MAX_SAMPLING_GHZ, open_low=True),
            n_samples=_integer(d, "n_samples", where, 1, MAX_SAMPLES),
            baseline_window_ns=_number(d, "baseline_window_ns", where, 0.0, MAX_WINDOW_NS, True),
            tail_cancellation_ns=(
                None
                if d.get("tail_cancellation_ns") is None
                else _number(d, "tail_cancellation_ns", where, 0.0, MAX_WINDOW_NS, True)
            ),
        )
        settings.check_consistent(where)
        return settings

    @property
    def binning(self) -> tuple[float, float, TimeListConfig]:
        """(sampling_ghz, window_ns, time-list settings): how peak samples become bins."""
        return self.sampling_ghz, self.n_samples / self.sampling_ghz, self.time_list

    def check_consistent(self, where: str) -> None:
        """The window and the baseline window must fit in the waveforms trained on."""
        if self.window.width > self.n_samples:
            raise invalid(
                where,
                f"key 'window': {self.window.width} samples, more than the "
                f"{self.n_samples} of a waveform ('n_samples')",
            )
        n_base = max(1, round(self.baseline_window_ns * self.sampling_ghz))
        if n_base > self.n_samples:
            raise invalid(
                where,
                f"key 'baseline_window_ns': {n_base} samples, more than the "
                f"{self.n_samples} of a waveform ('n_samples')",
            )

    def mismatch(self, file: str, sampling_ghz: float, n_samples: int) -> str | None:
        """Why waveforms of `file` (rate, length) cannot go through this chain, or None; the
        message says which simulate: keys make training waveforms like the file's."""
        if not np.isclose(sampling_ghz, self.sampling_ghz, rtol=1e-6):
            return (
                f"{file}: sampled at {sampling_ghz} GHz, the chain was trained at "
                f"{self.sampling_ghz} GHz; refusing to apply it (set data.sampling_ghz if the "
                f"file states the wrong rate). {retrain_hint(sampling_ghz, n_samples)}"
            )
        if n_samples != self.n_samples:
            return (
                f"{file}: {n_samples} samples per waveform, the chain was trained on "
                f"{self.n_samples} (its time list spans {self.n_samples / self.sampling_ghz:g} "
                f"ns). {retrain_hint(sampling_ghz, n_samples)}"
            )
        return None


def retrain_hint(sampling_ghz: float, n_samples: int) -> str:
    """What to set to train a chain on waveforms like the data's (rate, samples), in one
    sentence: the simulate: keys and values, and `ccframe calibrate`."""
    window_ns = n_samples / sampling_ghz
    pretrigger = " (and simulate.detector.pretrigger_ns below it)" if window_ns <= 50 else ""
    return (
        f"To count these waveforms, train a chain on matching ones: set "
        f"simulate.detector.sampling_ghz = {sampling_ghz:.10g} and simulate.detector.window_ns "
        f"= {window_ns:.10g}{pretrigger} (window_ns x sampling_ghz = {n_samples} samples, as "
        "in the data) and run again; `ccframe calibrate STEERING -o OUT.yaml`, its data: "
        "section naming the file, writes such a simulate: section with the noise and pulse "
        "shape fitted to the data"
    )


def invalid(where: str, detail: str) -> InputError:
    """The error for a chain.json whose content is wrong."""
    return InputError(f"{where}: incomplete or invalid chain settings: {detail}")


def _check_schema(d: dict[str, Any], where: str) -> None:
    schema = d.get("schema")
    if isinstance(schema, bool) or schema != CHAIN_SCHEMA:
        raise InputError(
            f"{where}: chain schema {_shown(schema)} (key 'schema'), this ccframe reads schema "
            f"{CHAIN_SCHEMA}; retrain with this version"
        )


def _section(d: dict[str, Any], key: str, model: type[Model], where: str) -> Model:
    try:
        return model.model_validate(d[key])
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in (key, *err["loc"]))
        raise invalid(where, f"key '{loc}': {err['msg']}") from None


def _number(
    d: dict[str, Any], key: str, where: str, low: float, high: float, open_low: bool = False
) -> float:
    """d[key] as a finite float in [low, high] ((low, high] with `open_low`)."""
    value = d[key]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = number and (isinstance(value, int) or math.isfinite(value))  # ints: no overflow
    if ok and (value > low if open_low else value >= low) and value <= high:
        return float(value)
    bounds = f"{'(' if open_low else '['}{low:g}, {high:g}]"
    raise invalid(where, f"key '{key}' is {_shown(value)}; expected a finite number in {bounds}")


def _integer(d: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = d[key]
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise invalid(where, f"key '{key}' is {_shown(value)}; expected an integer in [{low}, {high}]")


def _shown(value: Any) -> str:
    """A short rendering of a JSON value for an error message, as JSON writes it."""
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return json.dumps(value)[:40]


def read_settings(folder: Path) -> ChainSettings:
    """The validated settings of the chain saved in `folder` (no TensorFlow involved)."""
    path = folder / CHAIN_FILE
    if not path.is_file():
        raise InputError(
            f"{folder}: no trained chain here (expected {CHAIN_FILE}, {CLASSIFIER_FILE} and "
            f"{COUNTER_FILE} from a `ccframe run` with an ml: section)"
        )
    try:
        size = path.stat().st_size
        if size > MAX_CHAIN_BYTES:
            raise InputError(f"{path}: {size} bytes, not a chain.json (a few hundred bytes)")
        meta = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a chain.json") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8
        raise InputError(f"{path}: cannot read it ({reason(exc)})") from None
    return ChainSettings.from_json(meta, str(path))


def check_inputs(settings: ChainSettings, data: DataConfig, files: list[str]) -> None:
    """Refuse inputs whose sampling rate or waveform length the chain was not trained on,
    from the files' headers (before anything is read in bulk or TensorFlow is loaded), and a
    reading with another tail cancellation than the chain was trained with."""
    if data.tail_cancellation_ns != settings.tail_cancellation_ns:
        trained, given = settings.tail_cancellation_ns, data.tail_cancellation_ns
        raise InputError(
            f"data.tail_cancellation_ns: the chain was trained on waveforms read with "
            f"{'no tail cancellation' if trained is None else f'{trained:g} ns'}, this steering "
            f"gives {'none' if given is None else f'{given:g} ns'}; set it as in the run"
        )
    for path in files:
        tree = open_tree(path, data.tree)
        branch = require_branch(tree, data.waveform_branch, path, "data.waveform_branch")
        check_waveform_branch(branch, path)
        if type(branch.interpretation).__name__ == "AsJagged":
            continue  # its length is known only once read; Chain.check tests each batch
        problem = settings.mismatch(
            path, sampling_of(tree, data, path), sample_layout(branch, 1)[0]
        )
        if problem:
            raise InputError(problem)


class BatchPredictor(Protocol):
    """One network of the chain, of any backend: float32 inputs (n, ...) -> (n,) float32."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class Predictor:
    """A Keras model called through one compiled function on fixed-size batches (the last
    one padded), so it is traced once; faster than `model.predict` on CPU."""

    def __init__(self, model: Any, batch: int, xla: bool = False) -> None:
        from ccframe.ml.runtime import tf

        self.model, self.batch = model, batch
        self._call = tf.function(lambda x: model(x, training=False), jit_compile=xla)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        out = np.empty(n, dtype=np.float32)
        pad = np.zeros((self.batch, *x.shape[1:]), dtype=np.float32)
        for lo in range(0, n, self.batch):
            part = x[lo : lo + self.batch]
            if len(part) < self.batch:
                pad[: len(part)] = part
                pad[len(part) :] = 0.0
                part = pad
            out[lo : lo + self.batch] = np.asarray(self._call(part)).reshape(-1)[: n - lo]
        return out


def accepted_counts(offsets: np.ndarray, accept: np.ndarray) -> np.ndarray:
    """(n,) int32 accepted candidates per waveform (candidates of waveform i at
    offsets[i]:offsets[i+1])."""
    n = offsets.size - 1
    row = np.repeat(np.arange(n), np.diff(offsets))
    return np.bincount(row[accept], minlength=n).astype(np.int32)


def candidate_record(
    position: np.ndarray,
    counts: np.ndarray,
    sampling_ghz: float,
    score: np.ndarray,
    accept: np.ndarray,
    label: np.ndarray | None = None,
) -> ak.Array:
    """The jagged `candidate` record of predictions trees: sample, time_ns, score, accepted
    (and the truth label when given), `counts[i]` candidates in waveform i."""
    fields = {
        "sample": to_jagged(position, counts),
        "time_ns": to_jagged((position / sampling_ghz).astype(np.float32), counts),
        "score": to_jagged(score, counts),
        "accepted": to_jagged(accept, counts),
    }
    if label is not None:
        fields["label"] = to_jagged(label, counts)
    return ak.zip(fields)


def time_lists(
    position: np.ndarray,
    offsets: np.ndarray,
    accept: np.ndarray,
    settings: ChainSettings,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """(n, n_bins, 1) time lists of the accepted candidates of the waveforms `rows` (all n
    by default), from flat candidate arrays."""
    rows = np.arange(offsets.size - 1) if rows is None else rows
    return encode_accepted(position, offsets, accept, rows, *settings.binning)


class Chain:
    """The trained classifier and counter, as predictors of one backend, with their settings.
    `models`: the Keras models (keras backend), which `save` writes."""

    def __init__(
        self,
        score: BatchPredictor,
        count: BatchPredictor,
        settings: ChainSettings,
        models: tuple[Any, Any] | None = None,
    ) -> None:
        self.score, self.count, self.settings, self.models = score, count, settings, models

    @classmethod
    def from_keras(
        cls, classifier: Any, counter: Any, settings: ChainSettings, batch: int = 8192
    ) -> Chain:
        """The chain of two Keras models, each called through a compiled `Predictor` (the
        classifier with XLA when its LSTM is unrolled)."""
        unrolled = any(getattr(layer, "unroll", False) for layer in classifier.layers)
        score = Predictor(classifier, batch, xla=unrolled)
        count = Predictor(counter, max(1, batch // 16))
        return cls(score, count, settings, (classifier, counter))

    def save(self, folder: Path) -> None:
        if self.models is None:
            raise TypeError("only a chain of Keras models can be saved")
        folder.mkdir(parents=True, exist_ok=True)
        for model, name in zip(self.models, (CLASSIFIER_FILE, COUNTER_FILE), strict=True):
            with atomic_path(folder / name) as tmp:  # listed in run.json, as every output
                model.save(tmp)
        write_json(folder / CHAIN_FILE, self.settings.to_json())

    @classmethod
    def load(
        cls,
        folder: Path,
        batch: int = 8192,
        data: DataConfig | None = None,
        files: list[str] | None = None,
        backend: Backend = "keras",
    ) -> Chain:
        """Load a saved chain; a missing folder or file, an invalid chain.json or another
        schema is an error. With `data` and `files`, inputs the chain cannot take are refused
        before TensorFlow is imported. Backend `onnx` runs the networks that `ccframe export`
        wrote with ONNX Runtime, and never imports TensorFlow; `mixed` runs the exported
        counter with ONNX Runtime and the classifier with Keras."""
        settings = read_settings(folder)
        if data is not None and files is not None:
            check_inputs(settings, data, files)
        exported = {}
        if backend in ("onnx", "mixed"):
            from ccframe.ml.onnx import load_predictors

            keys = ("classifier", "counter") if backend == "onnx" else ("counter",)
            exported = load_predictors(folder, batch, keys)
        if backend == "onnx":
            return cls(exported["classifier"], exported["counter"], settings)
        from ccframe.ml.runtime import keras

        models = []
        for name in (CLASSIFIER_FILE, COUNTER_FILE):
            try:
                models.append(keras.models.load_model(folder / name, compile=False))
            except Exception as exc:  # missing, truncated or foreign files
                raise InputError(f"{folder / name}: cannot load the model ({exc})") from None
        chain = cls.from_keras(models[0], models[1], settings, batch)
        chain.count = exported.get("counter", chain.count)
        return chain

    def count_all(
        self, position: np.ndarray, offsets: np.ndarray, accept: np.ndarray
    ) -> np.ndarray:
        """(n,) float32 counts of n waveforms from their flat candidates, time lists encoded
        and counted COUNT_CHUNK waveforms at a time (memory flat in n)."""
        n = offsets.size - 1
        out = np.empty(n, dtype=np.float32)
        for lo in range(0, n, COUNT_CHUNK):
            rows = np.arange(lo, min(n, lo + COUNT_CHUNK))
            out[rows] = self.count(time_lists(position, offsets, accept, self.settings, rows))
        return out

    def check(self, batch: WaveformBatch) -> None:
        problem = self.settings.mismatch(batch.file, batch.sampling_ghz, batch.n_samples)
        if problem:
            raise InputError(problem)

    def prepare(self, batch: WaveformBatch) -> Prepared:
        """The kernels' half of `apply` (Numba, releases the GIL): candidates and windows."""
        self.check(batch)
        s = self.settings
        candidates = find_candidates(batch.waveforms, batch.baseline, batch.rms, s.candidates)
        windows = slice_windows(batch.waveforms, batch.baseline, batch.rms, candidates, s.window)
        position, offsets = flat(candidates, np.int32)
        return Prepared(batch, windows, position, offsets)

    def finish(self, prepared: Prepared) -> dict[str, Any]:
        """The networks' half of `apply`: scores, accepted peaks, time lists, counts (and each
        candidate's normalized amplitude, its window's centre)."""
        s = self.settings
        scores = self.score(prepared.windows)
        accept = scores > s.threshold
        counts = self.count(time_lists(prepared.position, prepared.offsets, accept, s))
        return {
            "position": prepared.position,
            "offsets": prepared.offsets,
            "score": scores,
            "accept": accept,
            "amplitude": prepared.windows[:, s.window.before, 0],
            "n_clusters_ml": counts,
        }

    def apply(self, batch: WaveformBatch) -> dict[str, Any]:
        """Per waveform: counts and accepted peaks; per candidate: sample and score."""
        return self.finish(self.prepare(batch))

    def apply_all(
        self, batches: Iterable[WaveformBatch], extra: Callable[[WaveformBatch], T] | None = None
    ) -> Iterator[tuple[WaveformBatch, dict[str, Any], T | None]]:
        """`apply` to every batch, pipelined: reading, the kernels' half and `extra(batch)`
        run in a background thread one batch ahead of the networks, so both cores work."""

        def kernels(batch: WaveformBatch) -> tuple[Prepared, T | None]:
            return self.prepare(batch), extra(batch) if extra is not None else None

        for prepared, more in prefetch(map(kernels, batches), depth=1):
            yield prepared.batch, self.finish(prepared), more


@dataclass
class Prepared:
    """A batch with its candidates' windows and flat positions (`Chain.prepare`)."""

    batch: WaveformBatch
    windows: np.ndarray
    position: np.ndarray
    offsets: np.ndarray
