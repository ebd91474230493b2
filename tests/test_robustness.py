"""Smearing a trained chain's test waveforms: each smearing on its own, and the command."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ccframe.cli import main
from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.ml.robustness import smear


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


@pytest.fixture(scope="module")
def batch(sim_file):
    return next(iter_batches(DataConfig(files=[str(sim_file)])))


def test_noise_scales_the_measured_rms(batch):
    out = smear(batch, "noise", 2.0, np.random.default_rng(1), 25.0)
    ratio = out.rms / batch.rms
    assert np.median(ratio) == pytest.approx(2.0, rel=0.06)
    assert out.truth is batch.truth and batch.waveforms is not out.waveforms


def test_gain_scales_the_signal_at_fixed_noise(batch):
    out = smear(batch, "gain", 0.5, np.random.default_rng(2), 25.0)
    assert np.median(out.rms / batch.rms) == pytest.approx(1.0, rel=0.06)
    peak_in = (batch.waveforms - batch.baseline[:, None]).max(axis=1)
    peak_out = (out.waveforms - out.baseline[:, None]).max(axis=1)
    big = peak_in > 30  # where the noise hardly moves the maximum
    assert np.median(peak_out[big] / peak_in[big]) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(InputError, match=r"must be in \(0, 1\]"):
        smear(batch, "gain", 1.5, np.random.default_rng(2), 25.0)


def test_jitter_moves_waveform_and_truth_together(batch):
    out = smear(batch, "jitter_ns", 5.0, np.random.default_rng(3), 25.0)
    shift_ns = np.asarray(out.truth.pretrigger_ns - batch.truth.pretrigger_ns)
    shift = np.rint(shift_ns * batch.sampling_ghz).astype(int)
    assert shift.std() > 3  # about 5 ns x 1.2 GHz
    for i in range(0, len(batch), 37):
        assert np.array_equal(out.waveforms[i], np.roll(batch.waveforms[i], shift[i]))
    same = smear(replace(batch), "jitter_ns", 0.0, np.random.default_rng(3), 25.0)
    assert np.array_equal(same.waveforms, batch.waveforms)


@pytest.mark.slow  # ~10-15 s, plus the session's `trained` run
def test_robustness_command_and_its_plots(trained_copy, capsys):
    run = trained_copy
    code = run_cli(
        "robustness", str(run), "--noise", "1", "--noise", "1.5", "--gain", "0.7",
        "--jitter-ns", "2", "--max-events", "40",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((run / "robustness.json").read_text())
    assert [(r["smearing"], r["value"]) for r in rows] == [
        ("noise", 1.0), ("noise", 1.5), ("gain", 0.7), ("jitter_ns", 2.0)
    ]  # fmt: skip
    assert all(r["waveforms"] == 40 for r in rows)
    assert rows[1]["auc"] < rows[0]["auc"] + 0.02  # more noise does not help
    assert (run / "robustness.csv").read_text().count("\n") == 5
    assert run_cli("plot", str(run), "--events", "0", "--format", "png") == 0
    names = {p.stem for p in (run / "plots").glob("robustness_*.png")}
    assert "robustness_noise_relative_resolution_core" in names


def test_robustness_refuses_bad_factors_and_writes_nothing(trained_copy, capsys):
    assert run_cli("robustness", str(trained_copy), "--noise", "0.5") == 2
    assert "noise_factors must be >= 1" in capsys.readouterr().err
    assert not list(trained_copy.glob("robustness.*"))
