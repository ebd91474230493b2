"""The names of a run folder's files, in one place. Every stage that writes a file and every
command that reads a run folder (plot, robustness, infer, collect) takes the name from here,
so a renamed output (`ml.output`, `traditional.output`, `tune.output`, ...) is found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ccframe.errors import InputError, SteeringError
from ccframe.ml.config import MLConfig
from ccframe.reco.config import TraditionalConfig, TuneConfig
from ccframe.steering.schema import Steering

STEERING = "steering.yaml"
STATUS = "run.json"
SUMMARY = "summary.json"
METRICS = "metrics.json"
THRESHOLDS = "thresholds.yaml"
"""A copy of `traditional.thresholds` (a tuned.yaml of another run), so the run folder
holds every input of its traditional reconstruction."""
TUNE_TABLE = "tune.csv"
ROC = "roc_test.csv"
ROBUSTNESS = "robustness.json"
ROBUSTNESS_TABLE = "robustness.csv"
PID = "pid.json"
PID_TABLE = "pid.csv"
PID_TRACKS_TREE = "pid.root"
REPORT = "report.html"
CLASSIFIER_ONNX = "classifier.onnx"
COUNTER_ONNX = "counter.onnx"
ONNX_META = "onnx.json"
"""`ccframe export`: the chain's two networks as ONNX, and what a C++ reader needs besides
(input and output names, opset, the chain's settings), next to chain.json."""
PLOTS = "plots"
WAVEFORM_COUNTER_FILE = "waveform_counter.keras"
"""The one-step counter on whole waveforms (`ml.waveform_counter`)."""
PEAK_MAP_FILE = "peak_map.keras"
"""The per-sample peak map with its count readout (`ml.peak_map`)."""
PEAK_SEQUENCE_FILE = "peak_sequence.keras"
"""The per-peak clusterizer over the chain's candidates (`ml.peak_sequence`)."""
COUNTER_FILES = {"waveform": WAVEFORM_COUNTER_FILE, "peak_map": PEAK_MAP_FILE}
"""The saved counters on whole waveforms, by method name."""


def tuned_other(algorithm: str) -> tuple[str, str]:
    """The tuned thresholds and grid table of the peak finder that the pid stage tunes
    besides the tune stage's own (`deriv` or `d2`)."""
    return f"tuned_{algorithm}.yaml", f"tune_{algorithm}.csv"


def history(model: str) -> str:
    """Per-epoch history of the `classifier`, `counter` or `waveform_counter`."""
    return f"history_{model}.csv"


@dataclass(frozen=True)
class Artifacts:
    """Paths of one run folder's files, honouring the steering file's `output` keys."""

    run_dir: Path
    steering: Steering

    @classmethod
    def of_run(cls, run_dir: Path) -> Artifacts:
        """The artifacts of an existing run folder (read from its steering.yaml)."""
        from ccframe.steering.loader import load_steering

        path = run_dir / STEERING
        if not path.is_file():
            raise InputError(f"{run_dir}: not a ccframe run folder (no {STEERING})")
        try:
            return cls(run_dir, load_steering(path))
        except SteeringError as exc:
            raise InputError(f"{run_dir}: its {STEERING} is not valid ({exc})") from None

    def path(self, name: str) -> Path:
        return self.run_dir / name

    @property
    def simulated(self) -> Path | None:
        sim = self.steering.simulate
        return self.path(sim.output) if sim is not None else None

    @property
    def tuned(self) -> Path:
        return self.path((self.steering.tune or TuneConfig()).output)

    @property
    def thresholds(self) -> Path:
        return self.path(THRESHOLDS)

    @property
    def traditional(self) -> Path:
        return self.path((self.steering.traditional or TraditionalConfig()).output)

    @property
    def predictions(self) -> Path:
        return self.path((self.steering.ml or MLConfig()).output)

    @property
    def inferred(self) -> Path | None:
        infer = self.steering.infer
        return self.path(infer.output) if infer is not None else None

    @property
    def pid_tracks(self) -> Path | None:
        pid = self.steering.pid
        return self.path(pid.output) if pid is not None else None

    def input_files(self) -> list[str]:
        """The files the run read, in order: data.files, or its simulated sample."""
        from ccframe.io.reader import expand_files

        if self.simulated is not None and not self.steering.data.files:
            return [str(self.simulated)]
        return expand_files(self.steering.data.files)
