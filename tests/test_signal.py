"""The noise power spectrum: Parseval, pulse rejection, lines, and the simulator's measured
spectrum reproduced."""

from __future__ import annotations

import numpy as np
import pytest

from ccframe.signal.spectrum import NoiseSpectrum, noise_spectrum
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator


def spectrum_of(waves: np.ndarray, rms: float, sampling_ghz: float = 1.2) -> NoiseSpectrum:
    n = len(waves)
    return noise_spectrum(waves, np.zeros(n, np.float32), np.full(n, rms, np.float32), sampling_ghz)


def test_white_noise_is_flat_and_keeps_its_variance() -> None:
    waves = np.random.default_rng(1).normal(0, 2.0, (300, 2400)).astype(np.float32)
    spec = spectrum_of(waves, 2.0)
    assert 300 * 10 * 0.95 < spec.segments <= 300 * 10  # few segments reach 4 sigma
    assert spec.rms_mv == pytest.approx(2.0, rel=0.02)
    flat = spec.power[2:-1]
    assert flat.mean() == pytest.approx(4.0 / 600.0, rel=0.03)
    assert flat.std() / flat.mean() < 0.1


def test_segments_with_pulses_are_left_out() -> None:
    rng = np.random.default_rng(2)
    waves = rng.normal(0, 1.0, (200, 2400)).astype(np.float32)
    waves[:, 100:110] += 50.0  # a big pulse in the first segment of every waveform
    spec = spectrum_of(waves, 1.0)
    clean = spectrum_of(waves[:, 240:].copy(), 1.0)
    assert spec.segments == pytest.approx(clean.segments, abs=20)
    assert spec.rms_mv == pytest.approx(1.0, rel=0.03)


def test_a_pickup_line_shows_at_its_frequency() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(2400) / 1.2  # ns
    phase = rng.uniform(0, 2 * np.pi, (100, 1))
    waves = rng.normal(0, 1.0, (100, 2400)) + 1.5 * np.sin(2 * np.pi * 0.1 * t + phase)
    spec = spectrum_of(waves.astype(np.float32), 1.0)
    assert spec.freq_mhz[np.argmax(spec.power)] == pytest.approx(100.0, abs=spec.df_mhz)
    assert spec.rms_mv**2 == pytest.approx(1.0 + 1.5**2 / 2, rel=0.05)


def test_no_quiet_segment_gives_an_empty_spectrum() -> None:
    waves = np.full((3, 2400), 100.0, np.float32)
    spec = noise_spectrum(waves, np.zeros(3, np.float32), np.ones(3, np.float32), 1.2)
    assert spec.segments == 0 and not spec.power.any()


def test_the_simulator_reproduces_a_measured_spectrum() -> None:
    freq = np.linspace(0.0, 600.0, 121)
    power = np.exp(-freq / 60.0) + 3.0 * np.exp(-0.5 * ((freq - 150.0) / 8.0) ** 2)
    noise = {
        "rms_mv": 1.5,
        "spectrum": "measured",
        "measured_mhz": freq.tolist(),
        "measured_power": power.tolist(),
    }
    sim = Simulator(SimulateConfig.model_validate({"noise": noise}), seed=4)
    waves = np.zeros((300, sim.n_samples), np.float32)
    sim._noise(np.random.default_rng(5), waves)
    spec = spectrum_of(waves, 1.5)
    assert spec.rms_mv == pytest.approx(1.5, rel=0.03)
    expected = np.interp(spec.freq_mhz, freq, power)
    expected *= spec.power[1:].sum() / expected[1:].sum()
    band = (spec.freq_mhz > 10) & (spec.freq_mhz < 400)
    ratio = spec.power[band] / expected[band]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    assert spec.freq_mhz[np.argmax(spec.power * (spec.freq_mhz > 100))] == pytest.approx(
        150, abs=10
    )


def test_measured_spectrum_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="measured_mhz"):
        SimulateConfig.model_validate({"noise": {"spectrum": "measured"}})
    with pytest.raises(ValueError, match="strictly increasing"):
        SimulateConfig.model_validate(
            {
                "noise": {
                    "spectrum": "measured",
                    "measured_mhz": [0.0, 5.0, 5.0],
                    "measured_power": [1.0, 1.0, 1.0],
                }
            }
        )
