"""A chain refuses waveforms of another digitizer (rate, length) and says how to train one
that takes them: the simulate: keys and values, and `ccframe calibrate`."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from ccframe.kernels.config import CandidateConfig, TimeListConfig, WindowConfig
from ccframe.ml.chain import ChainSettings
from ccframe.steering.loader import load_steering


def settings(sampling_ghz=1.2, n_samples=2400):
    return ChainSettings(
        candidates=CandidateConfig(),
        window=WindowConfig(),
        time_list=TimeListConfig(),
        threshold=0.5,
        sampling_ghz=sampling_ghz,
        n_samples=n_samples,
        baseline_window_ns=25.0,
    )


def keys_in(message):
    """The simulate.detector values the message asks for."""
    found = dict(
        re.findall(r"simulate\.detector\.(sampling_ghz|window_ns) = ([0-9.e+-]+)", message)
    )
    return float(found["sampling_ghz"]), float(found["window_ns"])


@pytest.mark.parametrize(
    ("rate", "samples", "starts"),
    [
        (2.0, 1024, "data.root: sampled at 2.0 GHz, the chain was trained at 1.2 GHz"),
        (1.2, 1200, "data.root: 1200 samples per waveform, the chain was trained on 2400"),
        (1.2, 1024, "data.root: 1024 samples per waveform"),
    ],
)
def test_mismatch_names_the_keys_and_values_to_retrain(rate, samples, starts):
    message = settings().mismatch("data.root", rate, samples)
    assert message is not None and message.startswith(starts), message
    assert "\n" not in message
    assert "ccframe calibrate" in message
    assert f"= {samples} samples" in message
    sampling_ghz, window_ns = keys_in(message)
    assert sampling_ghz == rate
    # the values, set on a steering file, simulate waveforms of the data's rate and length
    steering = load_steering(
        REPO / "steering" / "quickstart.yaml",
        [
            f"simulate.detector.sampling_ghz={sampling_ghz}",
            f"simulate.detector.window_ns={window_ns}",
        ],
    )
    assert steering.simulate.detector.n_samples == samples
    assert settings(rate, samples).mismatch("data.root", rate, samples) is None


def test_short_windows_mention_the_pretrigger():
    message = settings().mismatch("d.root", 5.0, 200)
    assert "simulate.detector.window_ns = 40 (and simulate.detector.pretrigger_ns below it)" in (
        message
    )
