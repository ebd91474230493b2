"""`ccframe calibrate`: the measurements and fits, and the whole command on beam-test-like
files (raw ADC codes, negative pulses) with known settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

from ccframe.calibrate import pulses as pl
from ccframe.calibrate.measure import Settings, amplitude_shape, measure, slow_noise
from ccframe.calibrate.models import double_exponential, fit_polya, fit_shape, peak_time
from ccframe.calibrate.solver import groups
from ccframe.calibrate.spectrum import compact
from ccframe.cli import main
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator
from ccframe.steering.loader import load_steering

SCALE = 1000.0 / 65536  # DRS4: V = ADC / 65536 - 0.5
OFFSET = -500.0

# A beam-test-like setup far from ccframe's defaults: 2 GS/s, 1024 samples, slow pulses,
# low gain, 1.5 mV of noise with a measured spectrum and a pickup line, negative pulses on a
# -3 mV pedestal, then 16-bit codes.
TRUTH = {
    "particle": "mu",
    "momentum": {"distribution": "fixed", "min_gev": 165.0},
    "detector": {
        "tube_radius_cm": 0.5,
        "sampling_ghz": 2.0,
        "window_ns": 512.0,
        "pretrigger_ns": 40.0,
    },
    "pulse": {"amplitude_mv": 5.0, "rise_ns": 2.0, "fall_ns": 12.0, "polarity": "negative"},
    "noise": {
        "rms_mv": 1.5,
        "spectrum": "measured",
        "measured_mhz": [0, 20, 50, 100, 118, 120, 122, 150, 300, 500, 1000],
        "measured_power": [4, 3, 2, 1, 1, 30, 1, 0.7, 0.3, 0.05, 0.01],
    },
    "digitization": {"baseline_mv": -3.0},
}
# What the user states: the physics the data cannot fix.
PHYSICS = {
    "particle": "mu",
    "momentum": {"distribution": "fixed", "min_gev": 165.0},
    "detector": {"tube_radius_cm": 0.5},
}


def beam_file(tmp_path: Path, n: int, seed: int = 1) -> tuple[Path, Path]:
    """A ROOT file of raw uint16 codes (tree h, branch ch0, no truth) and the steering file
    a user would write for it."""
    waves = Simulator(SimulateConfig.model_validate(TRUTH), seed).generate(0, n).waveform
    codes = np.clip(np.rint((waves - OFFSET) / SCALE), 0, 65535).astype(np.uint16)
    path = tmp_path / "beam.root"
    with uproot.recreate(path) as f:
        f.mktree("h", {"ch0": ("uint16", (codes.shape[1],))})
        f["h"].extend({"ch0": codes})
    steering = {
        "schema_version": 1,
        "name": "beam",
        "seed": 3,
        "data": {
            "files": [str(path)],
            "tree": "h",
            "waveform_branch": "ch0",
            "sampling_ghz": 2.0,
            "scale": SCALE,
            "offset_mv": OFFSET,
            "polarity": "negative",
            "truth": "none",
            "baseline_window_ns": 20.0,
        },
        "simulate": {"n_waveforms": 2000, **PHYSICS},
    }
    yaml_path = tmp_path / "beam.yaml"
    yaml_path.write_text(yaml.safe_dump(steering, sort_keys=False))
    return path, yaml_path


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


# --- pieces -------------------------------------------------------------------------------


def test_shape_fit_recovers_an_exact_pulse():
    t = np.arange(-5.0, 60.0, 0.25)
    y = double_exponential(t, 1.7, 0.3, 2.0, 12.0)
    fit = fit_shape(pl.Profile(t, y, np.full(t.size, 1e-3), np.full(t.size, 10.0)))
    assert fit.rise_ns == pytest.approx(2.0, rel=1e-3)
    assert fit.fall_ns == pytest.approx(12.0, rel=1e-3)
    assert peak_time(2.0, 12.0) == pytest.approx(math.log(6) * 24 / 10)


def test_polya_fit_of_truncated_amplitudes():
    rng = np.random.default_rng(1)
    x = rng.gamma(1.5, 6.0 / 1.5, 20000)
    fit = fit_polya(x, 3.0, 1.5)
    assert fit.mean_mv == pytest.approx(6.0, rel=0.03)
    assert 0 < fit.mean_err < 0.2


def test_amplitude_shape_grows_with_the_polya_shape():
    rng = np.random.default_rng(2)
    values = [amplitude_shape(rng.gamma(k, 6.0 / k, 20000), 3.0)[0] for k in (1.0, 1.5, 3.0)]
    assert values[0] < values[1] < values[2]
    assert amplitude_shape(np.ones(5), 3.0) is None


def test_compact_spectrum_keeps_lines_and_power():
    f = np.linspace(0.0, 2500.0, 501)
    p = 1.0 / (1.0 + f / 300.0)
    p[200] *= 50.0  # a narrow pickup line at 1000 MHz
    cf, cp = compact(f, p, max_points=200)
    assert cf.size <= 200 and np.all(np.diff(cf) > 0)
    assert cf[0] == 0.0 and cp[0] == p[0]
    assert 1000.0 in cf and cp[cf == 1000.0][0] == p[200]
    assert np.trapezoid(np.interp(f, cf, cp), f) == pytest.approx(np.trapezoid(p, f), rel=0.05)
    small_f, small_p = compact(f[:50], p[:50])
    assert np.array_equal(small_f, f[:50]) and np.array_equal(small_p, p[:50])


def _isolated_reference(row, pos, height, n, pre, post, tail, margin):
    out = []
    for j in range(pos.size):
        ok = pos[j] >= pre and pos[j] + post < n
        for k in range(pos.size):
            if k == j or row[k] != row[j]:
                continue
            lag = pos[j] - pos[k]
            if 0 < lag < tail.size and (lag <= pre or height[k] * tail[lag] > margin):
                ok = False
            lag = pos[k] - pos[j]
            if 0 < lag <= post and height[k] > height[j] * tail[lag] + margin:
                ok = False
        out.append(ok)
    return np.flatnonzero(out)


@pytest.mark.parametrize("seed", range(5))
def test_isolation_kernel_matches_a_reference(seed):
    rng = np.random.default_rng(seed)
    m = 60
    row = np.sort(rng.integers(0, 4, m))
    pos = np.concatenate(
        [np.sort(rng.choice(400, (row == r).sum(), replace=False)) for r in range(4)]
    )
    height = rng.uniform(3.0, 30.0, m)
    tail = np.exp(-np.arange(80) / 8.0)
    window = pl.PulseWindow(pre=6, lead=2, post=30, separation=2)
    cands = pl.Candidates(row, pos, height)
    got = pl.isolated(cands, 400, window, tail, 3.0)
    assert np.array_equal(got, _isolated_reference(row, pos, height, 400, 6, 30, tail, 3.0))
    out = np.zeros(m, dtype=bool)  # the kernel's body, for coverage
    pl._isolated.py_func(row, pos, height, 400, 6, 30, tail, 3.0, out)
    assert np.array_equal(np.flatnonzero(out), got)
    assert pl.isolated(pl.Candidates(row[:0], pos[:0], height[:0]), 400, window, tail, 3).size == 0


def test_measure_finds_pulses_and_slow_noise():
    cfg = SimulateConfig.model_validate(
        {**TRUTH, "pulse": {**TRUTH["pulse"], "polarity": "positive"}}
    )
    waves = Simulator(cfg, 4).generate(0, 600).waveform
    m = measure(waves, Settings(2.0, 40, 1.5, 2.0, 12.0))
    stats = m.statistics()
    assert stats["baseline_mv"][0] == pytest.approx(-3.0, abs=0.1)
    assert 1.3 < stats["noise_rms_mv"][0] < 1.6
    assert len(m.pulses.amplitude) > 50 and m.shape is not None
    assert 40.0 < stats["first_pulse_ns"][0] < 60.0
    assert stats["slow_noise_var"][0] > 0
    white = np.random.default_rng(0).standard_normal((100, 1024)).astype(np.float32)
    flat = slow_noise(white, np.zeros(100, np.float32), np.ones(100, np.float32), 2.0)
    assert flat is not None and flat[0] < 0.01  # 400-sample means of unit white noise


def test_solver_finds_a_linear_response():
    (group,) = groups([(("a", "A", False), ("b", "B", True))])
    truth = np.array([[2.0, 0.0], [0.3, 1.0]])  # d(log A, B) / d(log a, b)

    def stats(values):
        y = truth @ np.array([math.log(values["a"]), values["b"]])
        return {"A": (math.exp(y[0]), 0.0), "B": (y[1], 0.0)}

    target = stats({"a": 3.0, "b": 7.0})
    values = {"a": 1.0, "b": 0.0}
    for _ in range(12):
        values = group.step(values, stats(values), target)
    assert values["a"] == pytest.approx(3.0, rel=1e-3)
    assert values["b"] == pytest.approx(7.0, abs=1e-2)


# --- the command --------------------------------------------------------------------------


@pytest.mark.slow  # ~12 s: 3000 data waveforms, 3000 simulated per iteration
def test_calibrate_recovers_the_electronics(tmp_path, capsys):
    """Noise RMS within 5%, rise and fall within 15%, gain within 10% (issue 13)."""
    _, steering = beam_file(tmp_path, 3000)
    out = tmp_path / "beam_sim.yaml"
    code, _, err = cli(capsys, "calibrate", steering, "-o", out, "--sim-waveforms", 3000)
    assert code == 0, err
    assert "Traceback" not in err
    sim = yaml.safe_load(out.read_text())["simulate"]
    assert sim["noise"]["rms_mv"] == pytest.approx(1.5, rel=0.05)
    assert sim["pulse"]["rise_ns"] == pytest.approx(2.0, rel=0.15)
    assert sim["pulse"]["fall_ns"] == pytest.approx(12.0, rel=0.15)
    assert sim["pulse"]["amplitude_mv"] * sim.get("gain", {}).get("mean", 1.0) == pytest.approx(
        5.0, rel=0.10
    )
    # The reader's frame: positive pulses on +3 mV (the -3 mV pedestal of negative pulses).
    assert sim["pulse"]["polarity"] == "positive"
    assert sim["digitization"]["baseline_mv"] == pytest.approx(3.0, abs=0.1)
    assert sim["detector"] | {"pretrigger_ns": 0} == {
        "tube_radius_cm": 0.5, "sampling_ghz": 2.0, "window_ns": 512.0, "pretrigger_ns": 0
    }  # fmt: skip
    assert sim["detector"]["pretrigger_ns"] == pytest.approx(40.0, abs=3.0)
    assert sim["particle"] == "mu" and sim["n_waveforms"] == 2000  # physics inputs kept
    # The pickup line at 120 MHz survives in the written spectrum.
    f, p = np.array(sim["noise"]["measured_mhz"]), np.array(sim["noise"]["measured_power"])
    assert sim["noise"]["spectrum"] == "measured" and f.size <= 201
    assert p[np.argmin(np.abs(f - 120.0))] > 5 * np.median(p[(f > 60) & (f < 200)])

    # A steering file ccframe runs: simulates (no data files), trains (ml added).
    config = load_steering(out)
    assert config.name == "beam_sim" and not config.data.files
    assert config.data.baseline_window_ns == 20.0 and config.data.scale == 1.0
    assert config.ml is not None
    assert config.ml.dataset.match.delay_ns == pytest.approx(
        peak_time(sim["pulse"]["rise_ns"], sim["pulse"]["fall_ns"]), abs=0.01
    )
    header = out.read_text().split("schema_version")[0]
    assert "ccframe calibrate" in header and "--steering" in header and "data.scale=" in header

    info = json.loads((tmp_path / "beam_sim.calibration.json").read_text())
    assert info["waveforms"] == 3000 and info["samples"] == 1024
    assert info["fitted"]["rise_ns"]["uncertainty"] > 0
    assert set(info["goodness"]) >= {"pulse_shape_chi2_ndf", "amplitude_chi2_ndf"}
    assert info["checks"]["drift_span_ratio"] == pytest.approx(1.0, abs=0.05)
    for ext in ("png", "pdf"):
        assert (tmp_path / f"beam_sim.calibration.{ext}").stat().st_size > 10_000

    # Never overwrites without --force.
    code, _, err = cli(capsys, "calibrate", steering, "-o", out)
    assert code != 0 and "exists; use --force" in err and "Traceback" not in err


def test_calibrated_simulation_matches_the_data_it_was_fitted_to(tmp_path, capsys):
    """The fitted file's simulation, read like any input, looks like the data read through
    the user's mapping."""
    from ccframe.io.reader import iter_batches

    _, steering = beam_file(tmp_path, 1200, seed=2)
    out = tmp_path / "fit.yaml"
    code, _, err = cli(
        capsys, "calibrate", steering, "-o", out, "--sim-waveforms", 1200, "--iterations", 3
    )
    assert code == 0, err
    config = load_steering(out)
    data = load_steering(steering).data
    waves = np.concatenate([b.waveforms for b in iter_batches(data)])
    sim = Simulator(config.simulate, 9).generate(0, 1200).waveform
    assert np.median(sim) == pytest.approx(np.median(waves), abs=0.1)
    assert np.percentile(sim, 99.5) == pytest.approx(np.percentile(waves, 99.5), rel=0.1)


def test_calibrate_errors_are_one_line(tmp_path, capsys):
    _, steering = beam_file(tmp_path, 300)
    raw = yaml.safe_load(steering.read_text())
    # No data files: nothing to calibrate on.
    no_files = tmp_path / "nofiles.yaml"
    no_files.write_text(yaml.safe_dump({**raw, "data": {**raw["data"], "files": []}}))
    code, _, err = cli(capsys, "calibrate", no_files, "-o", tmp_path / "x.yaml")
    assert code != 0 and "data.files" in err and "Traceback" not in err
    # The wrong polarity: no pulses, and a hint.
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({**raw, "data": {**raw["data"], "polarity": "positive"}}))
    code, _, err = cli(capsys, "calibrate", wrong, "-o", tmp_path / "y.yaml")
    assert code != 0 and "data.polarity" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("ccframe: error")]) == 1
    assert not (tmp_path / "y.yaml").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["drs4", "fast_adc"])
def test_calibrate_on_the_independent_generator(tmp_path, capsys, name):
    """Files that ccframe's simulator did not make (tests/beamtest_generator.py)."""
    gen = pytest.importorskip("beamtest_generator")
    p = gen.preset(name)
    e = p.electronics
    made = gen.generate(tmp_path / "beam.root", 4000, p, seed=5)
    steering = tmp_path / "beam.yaml"
    physics = p.physics
    steering.write_text(yaml.safe_dump({
        "schema_version": 1,
        "name": name,
        "data": gen.data_mapping(e, [str(made.waveforms)]),
        "simulate": {
            "particle": physics.particle,
            "momentum": {"distribution": "fixed", "min_gev": physics.momentum_gev},
            "detector": {"tube_radius_cm": physics.tube_radius_cm},
        },
    }))  # fmt: skip
    out = tmp_path / "sim.yaml"
    code, _, err = cli(capsys, "calibrate", steering, "-o", out)
    assert code == 0, err
    sim = yaml.safe_load(out.read_text())["simulate"]
    assert sim["noise"]["rms_mv"] == pytest.approx(e.total_noise_rms_mv, rel=0.05)
    assert sim["pulse"]["rise_ns"] == pytest.approx(e.rise_ns, rel=0.15)
    assert sim["pulse"]["fall_ns"] == pytest.approx(e.fall_ns, rel=0.15)
    assert sim["pulse"]["amplitude_mv"] == pytest.approx(e.gain_mv, rel=0.10)


@pytest.mark.slow
def test_the_documented_flow(tmp_path, capsys):
    """calibrate -> run (trains on the fitted simulation) -> infer on the data file with the
    input's data: mapping (--steering) or the --set options the header lists."""
    from conftest import TINY_ML

    beam, steering = beam_file(tmp_path, 1200, seed=3)
    raw = yaml.safe_load(steering.read_text())
    raw.update(output=str(tmp_path / "{name}"), ml=TINY_ML)
    steering.write_text(yaml.safe_dump(raw, sort_keys=False))
    sim = tmp_path / "beam_sim.yaml"
    code, _, err = cli(capsys, "calibrate", steering, "-o", sim, "--sim-waveforms", 1200)
    assert code == 0, err
    code, _, err = cli(capsys, "run", sim, "--set", "simulate.n_waveforms=300")
    assert code == 0, err
    run = tmp_path / "beam_sim"
    counts = tmp_path / "counts.root"
    header = [line.lstrip("# ").rstrip(")\n") for line in sim.read_text().splitlines()]
    count_line = next(line for line in header if line.startswith("Count the data:"))
    extra = count_line.split(" --steering ")[1].split()[1:]  # the fitted data.pretrigger_ns
    assert extra[:1] == ["--set"] and extra[1].startswith("data.pretrigger_ns=")
    code, _, err = cli(capsys, "infer", run, beam, "-o", counts, "--steering", steering, *extra)
    assert code == 0, err
    args = " ".join(line for line in header if line.startswith("--set")).split()
    assert "data.pretrigger_ns=" in " ".join(args)
    code, _, err = cli(capsys, "infer", run, beam, "-o", tmp_path / "counts2.root", *args)
    assert code == 0, err
    with uproot.open(counts) as f, uproot.open(tmp_path / "counts2.root") as g:
        for branch in ("n_clusters_ml", "n_clusters_traditional"):
            assert np.array_equal(
                f["predictions"][branch].array(library="np"),
                g["predictions"][branch].array(library="np"),
            )
        assert f["predictions"].num_entries == 1200
