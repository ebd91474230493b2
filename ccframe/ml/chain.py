"""The trained two-step chain: candidates -> windows -> LSTM scores -> accepted peaks ->
time list -> CNN count. Saved as a model folder (two .keras files and chain.json with the
kernel settings, threshold and sampling rate) and applied to any reader batch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ccframe.errors import InputError
from ccframe.io.atomic import write_json
from ccframe.io.reader import WaveformBatch
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.config import CandidateConfig, TimeListConfig, WindowConfig
from ccframe.kernels.jagged import flat, to_jagged
from ccframe.kernels.timelist import encode_time_list
from ccframe.kernels.windows import slice_windows

CHAIN_SCHEMA = 1
CLASSIFIER_FILE, COUNTER_FILE, CHAIN_FILE = "classifier.keras", "counter.keras", "chain.json"


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
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ChainSettings:
        return cls(
            candidates=CandidateConfig.model_validate(d["candidates"]),
            window=WindowConfig.model_validate(d["window"]),
            time_list=TimeListConfig.model_validate(d["time_list"]),
            threshold=float(d["threshold"]),
            sampling_ghz=float(d["sampling_ghz"]),
            n_samples=int(d["n_samples"]),
            baseline_window_ns=float(d["baseline_window_ns"]),
        )


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


def accepted_times(
    position: np.ndarray, offsets: np.ndarray, accept: np.ndarray, sampling_ghz: float
) -> ak.Array:
    """Window times (ns) of the accepted candidates, one list per waveform."""
    kept = accepted_counts(offsets, accept)
    return to_jagged(position[accept].astype(np.float64) / sampling_ghz, kept)


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
    position: np.ndarray, offsets: np.ndarray, accept: np.ndarray, settings: ChainSettings
) -> np.ndarray:
    """(n, n_bins, 1) time lists of the accepted candidates of n waveforms."""
    times = accepted_times(position, offsets, accept, settings.sampling_ghz)
    window_ns = settings.n_samples / settings.sampling_ghz
    return encode_time_list(times, window_ns, settings.time_list)


class Chain:
    """The trained classifier and counter with their settings."""

    def __init__(self, classifier: Any, counter: Any, settings: ChainSettings, batch: int) -> None:
        self.classifier, self.counter, self.settings = classifier, counter, settings
        unrolled = any(getattr(layer, "unroll", False) for layer in classifier.layers)
        self.score = Predictor(classifier, batch, xla=unrolled)
        self.count = Predictor(counter, max(1, batch // 16))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for model, name in ((self.classifier, CLASSIFIER_FILE), (self.counter, COUNTER_FILE)):
            tmp = folder / f".{name}.tmp.keras"
            model.save(tmp)
            tmp.replace(folder / name)
        write_json(folder / CHAIN_FILE, self.settings.to_json())

    @classmethod
    def load(cls, folder: Path, batch: int = 8192) -> Chain:
        """Load a saved chain; a missing folder or file, or another schema, is an error."""
        meta_path = folder / CHAIN_FILE
        if not meta_path.is_file():
            raise InputError(
                f"{folder}: no trained chain here (expected {CHAIN_FILE}, {CLASSIFIER_FILE} and "
                f"{COUNTER_FILE} from a `ccframe run` with an ml: section)"
            )
        try:
            meta = json.loads(meta_path.read_text())
            schema = meta.get("schema")
        except (OSError, ValueError, AttributeError) as exc:
            raise InputError(f"{meta_path}: cannot read it ({exc})") from None
        if schema != CHAIN_SCHEMA:
            raise InputError(
                f"{meta_path}: chain schema {schema!r}, this ccframe reads schema {CHAIN_SCHEMA}; "
                "retrain with this version"
            )
        from ccframe.ml.runtime import keras

        models = []
        for name in (CLASSIFIER_FILE, COUNTER_FILE):
            try:
                models.append(keras.models.load_model(folder / name, compile=False))
            except Exception as exc:  # missing, truncated or foreign files
                raise InputError(f"{folder / name}: cannot load the model ({exc})") from None
        try:
            settings = ChainSettings.from_json(meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{meta_path}: incomplete or invalid chain settings ({exc})") from None
        return cls(models[0], models[1], settings, batch)

    def check(self, batch: WaveformBatch) -> None:
        s = self.settings
        if not np.isclose(batch.sampling_ghz, s.sampling_ghz, rtol=1e-6):
            raise InputError(
                f"{batch.file}: sampled at {batch.sampling_ghz} GHz, the chain was trained at "
                f"{s.sampling_ghz} GHz; refusing to apply it (set data.sampling_ghz if the file "
                "states the wrong rate)"
            )
        if batch.n_samples != s.n_samples:
            raise InputError(
                f"{batch.file}: {batch.n_samples} samples per waveform, the chain was trained on "
                f"{s.n_samples} (its time list spans {s.n_samples / s.sampling_ghz:g} ns)"
            )

    def apply(self, batch: WaveformBatch) -> dict[str, Any]:
        """Per waveform: counts and accepted peaks; per candidate: sample and score."""
        self.check(batch)
        s = self.settings
        candidates = find_candidates(batch.waveforms, batch.baseline, batch.rms, s.candidates)
        windows = slice_windows(batch.waveforms, batch.baseline, batch.rms, candidates, s.window)
        position, offsets = flat(candidates, np.int32)
        scores = self.score(windows)
        accept = scores > s.threshold
        counts = self.count(time_lists(position, offsets, accept, s))
        return {
            "position": position,
            "offsets": offsets,
            "score": scores,
            "accept": accept,
            "n_clusters_ml": counts,
        }
