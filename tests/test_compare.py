"""`ccframe compare`: overlays with ratio panels, ML quantities from a chain, refusals."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO

from ccframe.cli import main


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def write_input(tmp_path, name, data=None, **simulate):
    steering = {
        "schema_version": 1,
        "name": name,
        "seed": 4,
        "simulate": {"n_waveforms": 150, **simulate},
        "data": data or {},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(steering))
    return str(path)


def test_compare_two_simulations_with_a_chain(trained, tmp_path, capsys):
    a = write_input(tmp_path, "nominal")
    b = write_input(tmp_path, "noisy", noise={"rms_mv": 1.5})
    out = tmp_path / "cmp"
    code = run_cli("compare", a, b, "-o", str(out), "--chain", str(trained), "--format", "png")
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "compare.json").read_text())
    q = summary["quantities"]
    assert set(q) == {
        "noise_rms_mv", "baseline_mv", "amplitude_mv", "candidates", "candidate_time_ns",
        "accepted_peaks", "n_clusters_ml",
    }  # fmt: skip
    assert q["noise_rms_mv"]["noisy"]["mean"] == pytest.approx(
        1.5 * q["noise_rms_mv"]["nominal"]["mean"], rel=0.05
    )
    assert q["candidates"]["nominal"]["n"] == 150
    for key in q:
        assert (out / f"compare_{key}.png").stat().st_size > 5000


def test_compare_refuses_quantities_without_overlap(tmp_path, capsys):
    a = write_input(tmp_path, "nominal")
    b = write_input(tmp_path, "shifted", data={"offset_mv": 50.0})
    out = tmp_path / "cmp"
    assert run_cli("compare", a, b, "-o", str(out), "--format", "png") == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert line.startswith("ccframe: error: compare: 1 quantity(ies) refused, first: baseline_mv:")
    assert "'shifted' [" in line and "do not overlap" in line
    assert (out / "compare_noise_rms_mv.png").is_file()  # the rest is still compared
    assert not (out / "compare_baseline_mv.png").exists()


def test_compare_needs_two_distinct_inputs(tmp_path, capsys):
    a = write_input(tmp_path, "one")
    assert run_cli("compare", a, "-o", str(tmp_path / "c")) == 2
    assert "at least two inputs" in capsys.readouterr().err
    assert run_cli("compare", a, a, "-o", str(tmp_path / "c")) == 2
    assert "distinct names" in capsys.readouterr().err


def test_shipped_beamtest_like_sample_is_a_shifted_simulation(tmp_path, capsys):
    path = REPO / "steering" / "beamtest_like.yaml"
    qs = REPO / "steering" / "quickstart.yaml"
    out = tmp_path / "cmp"
    code = run_cli("compare", str(qs), str(path), "-o", str(out), "--max-events", "200",
                   "--format", "png")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    q = json.loads((out / "compare.json").read_text())["quantities"]
    assert q["candidate_time_ns"]["beamtest_like"]["mean"] < 512  # 1024 samples at 2 GHz
    assert q["noise_rms_mv"]["beamtest_like"]["mean"] > q["noise_rms_mv"]["quickstart"]["mean"]
