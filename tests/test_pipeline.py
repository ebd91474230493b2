"""`ccframe run` as a list of stages sharing one run context: one read of the input, renamed
outputs found by every reader of the run folder, relocatable run folders, the report written
with the final status, progress on stdout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_ML, small_steering
from test_cli import cli

import ccframe.pipeline.run as pipeline_run

RENAMED = {
    "traditional": {"output": "trad_counts.root"},
    "tune": {"output": "thresholds_tuned.yaml", "max_events": 100, "n1": [4.0, 5.0]},
    "robustness": {
        "noise_factors": [1.0, 2.0],
        "gain_factors": [1.0],
        "jitter_ns": [0.0],
        "max_events": 50,
    },
    "plots": {"formats": ["png"], "event_displays": 1},
}


def steering(tmp_path: Path, **sections) -> Path:
    return small_steering(tmp_path, "stages", "stages", n=300, seed=4, **sections)


@pytest.mark.slow
def test_one_read_of_the_input_serves_read_traditional_and_the_ml_dataset(
    capsys, tmp_path, monkeypatch
):
    reads: list[int] = []
    real = pipeline_run.iter_batches

    def counted(data, files):
        reads.append(1)
        return real(data, files)

    monkeypatch.setattr(pipeline_run, "iter_batches", counted)
    ml = {**TINY_ML, "dataset": {"cache": False}}
    code, out, err = cli(capsys, "run", steering(tmp_path, traditional={}, ml=ml))
    assert code == 0, err
    assert reads == [1]
    metrics = json.loads((tmp_path / "stages" / "metrics.json").read_text())
    # the ML stage's traditional counts are the traditional stage's, not a second reconstruction
    trad = metrics["traditional"]["count"]
    assert metrics["ml"]["count_test"]["traditional"]["overall"]["waveforms"] <= trad["waveforms"]
    assert "read:" in out and "traditional:" in out and "ml: test split" in out


@pytest.mark.slow
def test_renamed_outputs_are_found_and_the_folder_is_relocatable(capsys, tmp_path, monkeypatch):
    ml = {**TINY_ML, "output": "ml_counts.root", "dataset": {"cache": False}}
    code, _, err = cli(capsys, "run", steering(tmp_path, ml=ml, **RENAMED))
    assert code == 0, err
    run = tmp_path / "stages"
    names = {p.name for p in run.iterdir()}
    assert {"trad_counts.root", "thresholds_tuned.yaml", "ml_counts.root"} <= names
    assert not {"traditional.root", "tuned.yaml", "predictions.root"} & names
    plots = {p.name for p in (run / "plots").iterdir()}
    assert "roc.png" in plots and any(n.startswith("robustness_noise") for n in plots)
    report = (run / "report.html").read_text()
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "done" and "running" not in report  # written with the final status

    # move the run folder and work from elsewhere: plot and robustness still find everything
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(run, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    (moved / "robustness.json").unlink()
    code, _, err = cli(capsys, "robustness", "moved", "--noise", "1.5", "--max-events", "40")
    assert code == 0, err
    code, _, err = cli(capsys, "plot", "moved", "--format", "png", "--events", "1")
    assert code == 0, err
    assert any(p.name.startswith("robustness_noise") for p in (moved / "plots").iterdir())


def test_thresholds_of_another_run_are_copied_into_the_run_folder(capsys, tmp_path):
    tuned = tmp_path / "given.yaml"
    tuned.write_text(
        yaml.safe_dump(
            {
                "algorithm": "deriv",
                "deriv": {"n1": 5.0, "n2": 0.5, "n3": 0.0, "n4": 0.5},
                "clusterize": {"c_sqrt_ns": 0.25},
            }
        )
    )
    path = steering(tmp_path, traditional={"thresholds": "given.yaml"})
    code, _, err = cli(capsys, "run", path, "--set", f"traditional.thresholds={tuned}")
    assert code == 0, err
    run = tmp_path / "stages"
    assert (run / "thresholds.yaml").read_text() == tuned.read_text()
    tuned.unlink()  # the run folder holds what it needs
    metrics = json.loads((run / "metrics.json").read_text())["traditional"]
    assert metrics["parameters"]["deriv"]["n1"] == 5.0
    assert metrics["parameters"]["clusterize"]["c_sqrt_ns"] == 0.25


def test_resolved_steering_file_holds_absolute_input_paths(capsys, tmp_path, monkeypatch, sim_file):
    monkeypatch.chdir(sim_file.parent)
    raw = {
        "schema_version": 1,
        "name": "rel",
        "output": str(tmp_path / "rel"),
        "data": {"files": [sim_file.name]},
    }
    path = tmp_path / "rel.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, _, err = cli(capsys, "run", path)
    assert code == 0, err
    resolved = yaml.safe_load((tmp_path / "rel" / "steering.yaml").read_text())
    assert resolved["data"]["files"] == [str(sim_file)]


def test_progress_goes_to_stdout_and_quiet_silences_it(tmp_path):
    path = steering(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "ccframe", "run", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "simulate: done" in proc.stdout and "read:" in proc.stdout and proc.stderr == ""
    proc = subprocess.run(
        [sys.executable, "-m", "ccframe", "-q", "run", str(path), "--force"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
