"""Particle identification: separation power, its ideal Poisson value, truncation, the stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
import yaml
from conftest import REPO, TINY_OVERRIDES, set_args
from pydantic import ValidationError

from ccframe.cli import main
from ccframe.pid.config import PidConfig
from ccframe.pid.separation import (
    bootstrap_separation,
    cell_separation,
    joint_bootstrap,
    poisson_separation,
    separation,
    truncated_per_cm,
)
from ccframe.simulate.config import Ionization
from ccframe.steering.loader import load_steering


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


@pytest.mark.parametrize(
    ("p", "expected"), [(1.0, 1.2), (2.0, 5.1), (5.0, 6.7), (10.0, 6.4), (20.0, 4.8)]
)
def test_poisson_separation_reproduces_the_reference_table(p, expected):
    # docs/algorithms.md, particle identification: ideal K/pi S for L = 1.65 m
    fit = Ionization().density_fit
    assert poisson_separation("K", "pi", p, 165.0, fit, 1.0) == pytest.approx(expected, abs=0.1)


@pytest.mark.slow
def test_shipped_method_comparison_runs_small(tmp_path, capsys):
    path = REPO / "steering" / "method_comparison.yaml"
    args = set_args(
        *TINY_OVERRIDES,
        "ml.waveform_counter.filters=[4, 4]",
        "ml.waveform_counter.strides=[8, 1]",
        "ml.waveform_counter.dilations=[1, 2]",
        "ml.waveform_counter.training.epochs=1",
        "ml.peak_map.filters=[4, 4]",
        "ml.peak_map.bottleneck_dilations=[2]",
        "ml.peak_map.training.epochs=1",
        "ml.peak_sequence.units=4",
        "ml.peak_sequence.dense=[4]",
        "ml.peak_sequence.training.epochs=1",
        "tune.t1_rms=[3.0, 4.0]",
        "pid.tracks=6",
        "pid.cells=20",
        "pid.momenta_gev=[2.0, 10.0]",
        "pid.bootstrap=20",
        "plots.formats=[png]",
        f"output={tmp_path / 'cmp'}",
    )
    assert run_cli("run", str(path), *args) == 0, capsys.readouterr().err
    run = tmp_path / "cmp"
    rows = json.loads((run / "pid.json").read_text())
    assert {"waveform", "waveform_err", "waveform_over_truth_err", "waveform_cell"} <= set(rows[0])
    # every method on the same tracks: both peak finders with both clusterization rules
    methods = {"deriv", "deriv_adaptive", "d2", "d2_adaptive", "ml", "peak_sequence", "peak_map"}
    assert {f"{m}_over_truth" for m in methods} <= set(rows[0])
    counts = json.loads((run / "metrics.json").read_text())["ml"]["count_test"]
    assert {"ml", "waveform", "peak_map", "peak_sequence", "traditional"} <= set(counts)
    for name in ("pid_K_pi", "pid_share_K_pi", "response", "counts_2d_waveform"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 5000
    report = (run / "report.html").read_text()
    assert "ML one-step (waveform CNN)" in report and "DERIV + adaptive clusterization" in report
    steering = yaml.safe_load((run / "steering.yaml").read_text())
    assert steering["data"]["tail_cancellation_ns"] == 5.0
    capsys.readouterr()


def test_separation_and_bootstrap_error():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 4000), rng.normal(14, 1, 4000)
    assert separation(a, b) == pytest.approx(4.0, rel=0.03)
    s, err = bootstrap_separation(a[:100], b[:100], 300, rng)
    # S from 100 tracks each: the error of a width ratio is about S / sqrt(2 * 100)
    assert 0.5 * s / np.sqrt(200) < err < 2 * s / np.sqrt(200)
    assert np.isnan(separation(np.ones(3), np.ones(3)))


def test_joint_bootstrap_resamples_the_same_tracks_for_every_method():
    rng = np.random.default_rng(2)
    a, b = rng.normal(10, 1, 200), rng.normal(13, 1, 200)
    values = {"truth": (a, b), "half": (a / 2, b / 2), "noisy": (a + rng.normal(0, 1, 200), b)}
    replicas = joint_bootstrap(values, 100, np.random.default_rng(3))
    assert all(r.shape == (100,) for r in replicas.values())
    # a method that is the truth scaled has the truth's S in every replica: its share is
    # exactly 1 with no spread, which separate resamplings would not give
    np.testing.assert_allclose(replicas["half"], replicas["truth"])
    assert np.std(replicas["noisy"] / replicas["truth"]) > 0
    with pytest.raises(ValueError, match="same tracks"):
        joint_bootstrap({"truth": (a, b), "other": (a[:5], b)}, 10, rng)
    assert joint_bootstrap({"truth": (a[:1], b)}, 10, rng)["truth"].size == 0


def test_cell_separation_is_the_width_normalised_distance_of_the_counts():
    pi, k = np.array([10, 12, 14]), np.array([20, 22, 24])
    width = (np.std(pi) + np.std(k)) / 2
    assert cell_separation(pi, k) == pytest.approx(10 / width)
    assert np.isnan(cell_separation(np.full(3, 5), np.full(4, 5)))


def test_truncation_keeps_the_lowest_counts_per_cm():
    counts = np.array([10.0, 20.0, 30.0, 100.0])
    chords = np.ones(4)
    assert truncated_per_cm(counts, chords, 1.0) == 40.0
    assert truncated_per_cm(counts, chords, 0.75) == 20.0
    assert truncated_per_cm(counts, chords, 0.01) == 10.0


def test_pairs_must_be_simulated_species():
    with pytest.raises(ValidationError, match=r"pair \(K, p\)"):
        PidConfig.model_validate({"pairs": [["K", "p"]]})
    with pytest.raises(ValidationError):
        PidConfig.model_validate({"pairs": [["K", "pi", "p"]]})


def test_pid_stage_on_tiny_tracks(tmp_path, capsys):
    steering = {
        "schema_version": 1,
        "name": "tinypid",
        "seed": 2,
        "output": str(tmp_path / "{name}"),
        "simulate": {"n_waveforms": 50},
        "pid": {"tracks": 20, "cells": 40, "momenta_gev": [2.0, 10.0], "bootstrap": 50},
    }
    path = tmp_path / "pid.yaml"
    path.write_text(yaml.safe_dump(steering))
    assert run_cli("pid", str(path)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "pid: 3200 waveforms = 80 tracks x 40 cells" in out
    run = tmp_path / "tinypid"
    rows = json.loads((run / "pid.json").read_text())
    assert [(r["pair"], r["momentum_gev"]) for r in rows] == [("K/pi", 2.0), ("K/pi", 10.0)]
    for r in rows:
        # the truth count follows the ideal Poisson separation within its uncertainty
        assert abs(r["truth"] - r["poisson"]) < 3 * r["truth_err"] + 0.3
        assert {"deriv", "d2", "deriv_over_truth"} <= set(r) and "ml" not in r
        # one cell separates far less than a 40-cell track
        assert 0 < r["truth_cell"] < r["truth"] and {"deriv_cell", "d2_cell"} <= set(r)
    assert "separation power S of single cells" in out
    tracks = uproot.open(run / "pid.root")["tracks"].arrays()
    assert len(tracks) == 80
    assert set(np.unique(tracks["pdg"].to_numpy())) == {211, 321}
    sim = uproot.open(run / "pid_tracks.root")["sim"]
    ids = sim["track_id"].array(library="np")
    assert ids.size == 3200 and np.array_equal(ids, np.arange(3200) // 40)


def test_pid_command_needs_a_pid_section(steering_file, capsys):
    assert run_cli("pid", str(steering_file)) == 2
    assert "no pid: section" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_pid_scan_runs_small(tmp_path, capsys):
    steering = load_steering(REPO / "steering" / "pid_scan.yaml")
    assert steering.pid is not None and steering.pid.pairs == [["K", "pi"]]
    args = set_args(
        *TINY_OVERRIDES,
        "pid.tracks=6",
        "pid.cells=20",
        "pid.momenta_gev=[2.0, 10.0]",
        "pid.bootstrap=20",
        "plots.formats=[png]",
        f"output={tmp_path / 'pid'}",
    )
    assert run_cli("pid", str(REPO / "steering" / "pid_scan.yaml"), *args) == 0
    rows = json.loads((tmp_path / "pid" / "pid.json").read_text())
    assert {"truth", "deriv", "d2", "ml", "ml_over_truth", "ml_over_truth_err"} <= set(rows[0])
    # D2 is tuned like DERIV, on the same calibration sample, for the comparison
    tuned_d2 = yaml.safe_load((tmp_path / "pid" / "tuned_d2.yaml").read_text())
    assert tuned_d2["algorithm"] == "d2" and (tmp_path / "pid" / "tune_d2.csv").is_file()
    assert (tmp_path / "pid" / "tune.csv").is_file()  # the tune stage's own table is kept
    assert (tmp_path / "pid" / "plots" / "pid_K_pi.png").stat().st_size > 5000
    report = (tmp_path / "pid" / "report.html").read_text()
    assert "Separation power" in report and f"{rows[0]['ml']:.2f} &plusmn;" in report
    capsys.readouterr()
