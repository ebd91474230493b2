"""`ccframe compare`: overlays with ratio panels, ML quantities from a chain, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from ccframe.cli import main


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def write_input(tmp_path, name, data=None, seed=4, **simulate):
    steering = {
        "schema_version": 1,
        "name": name,
        "seed": seed,
        "simulate": {"n_waveforms": 150, **simulate},
        "data": data or {},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(steering))
    return str(path)


def read_summary(out):
    return json.loads((out / "compare.json").read_text())


def verdicts(summary):
    """(quantity, input) -> verdict row."""
    return {(r["quantity"], r["input"]): r for r in summary["verdict"]}


ALL_QUANTITIES = {
    "noise_rms_mv", "baseline_mv", "amplitude_mv", "candidates", "candidate_time_ns",
    "first_peak_ns", "last_peak_ns", "n_clusters_traditional", "noise_psd",
}  # fmt: skip


def test_compare_with_a_chain_keeps_the_candidate_settings_visible(trained, tmp_path, capsys):
    """The inputs ask for 4.5 RMS candidates, the chain was trained on 2.5: the chain's are
    used for every input and a warning says so; --candidates steering keeps the inputs'."""
    a = write_input(tmp_path, "nominal")
    b = write_input(tmp_path, "noisy", noise={"rms_mv": 1.5})
    common = (a, b, "--chain", str(trained), "--format", "png",
              "--set", "ml.dataset.candidates.min_amplitude_rms=4.5")  # fmt: skip
    out = tmp_path / "cmp"
    assert run_cli("compare", *common, "-o", str(out)) == 0
    printed = capsys.readouterr()
    assert "compare: candidates: A > 2.5 x noise RMS" in printed.out
    assert f"(the chain's, {trained})" in printed.out
    warning = [line for line in printed.err.splitlines() if "candidates" in line]
    assert len(warning) == 1 and "differ from ml.dataset.candidates of 'nominal'" in warning[0]
    summary = read_summary(out)
    q = summary["quantities"]
    assert set(q) == ALL_QUANTITIES | {"accepted_peaks", "n_clusters_ml"}
    assert summary["candidates"]["settings"]["min_amplitude_rms"] == 2.5
    assert q["noise_rms_mv"]["noisy"]["mean"] == pytest.approx(
        1.5 * q["noise_rms_mv"]["nominal"]["mean"], rel=0.05
    )
    assert q["candidates"]["nominal"]["n"] == 150
    assert q["n_clusters_traditional"]["nominal"]["mean"] > 5
    for key in q:
        assert (out / f"compare_{key}.png").stat().st_size > 5000

    own = tmp_path / "own"
    assert run_cli("compare", *common, "-o", str(own), "--candidates", "steering") == 0
    printed = capsys.readouterr()
    assert "compare: candidates: A > 4.5 x noise RMS" in printed.out
    assert "the chain scans with its own (A > 2.5" in printed.err
    q_own = read_summary(own)["quantities"]
    assert {"accepted_peaks", "n_clusters_ml"} <= set(q_own)  # the chain's own scan
    # the same chain settings and accepted peaks; fewer candidates at 4.5 RMS
    assert q_own["n_clusters_ml"] == q["n_clusters_ml"]
    assert q_own["candidates"]["nominal"]["mean"] < q["candidates"]["nominal"]["mean"]


def test_compare_candidates_unchanged_without_a_chain(tmp_path, capsys):
    """--set applies to every input; the candidate line is printed without a chain too."""
    a = write_input(tmp_path, "nominal")
    b = write_input(tmp_path, "other", noise={"rms_mv": 1.2})
    out = tmp_path / "cmp"
    code = run_cli("compare", a, b, "-o", str(out), "--format", "png",
                   "--set", "simulate.n_waveforms=60")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "compare: candidates: A > 2.5 x noise RMS, -D2s > 0 x RMS (the default), every " \
        "input" in printed  # fmt: skip
    assert "compare: traditional: DERIV n1=3" in printed
    q = read_summary(out)["quantities"]
    assert set(q) == ALL_QUANTITIES
    assert q["candidates"]["nominal"]["n"] == q["candidates"]["other"]["n"] == 60
    assert run_cli("compare", a, b, "-o", str(out), "--candidates", "chain") == 2
    assert "--candidates chain needs --chain" in capsys.readouterr().err


def test_compare_labels_data_and_simulation(sim_file, tmp_path, capsys):
    """An input that reads data.files is data, also with a simulate: section (calibrate's
    input, say) and a --set simulate.*; the ratio is data / simulation."""
    beam = {
        "schema_version": 1,
        "name": "beam",
        "data": {"files": [str(sim_file)]},
        "simulate": {"n_waveforms": 50, "particle": "mu"},
    }
    data = tmp_path / "beam.yaml"
    data.write_text(yaml.safe_dump(beam))
    sim = write_input(tmp_path, "mc")
    out = tmp_path / "cmp"
    code = run_cli("compare", str(data), sim, "-o", str(out), "--format", "png",
                   "--set", "simulate.n_waveforms=100")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "compare: inputs: beam (data), mc (simulation, reference)" in capsys.readouterr().out
    summary = read_summary(out)
    assert summary["kinds"] == {"beam": "data", "mc": "simulation"}
    assert summary["reference"] == "mc" and summary["ratio"] == "data / simulation"
    assert {r["input"] for r in summary["verdict"]} == {"beam"}
    assert summary["quantities"]["candidates"]["mc"]["n"] == 100
    assert run_cli("compare", str(data), sim, "-o", str(out), "--reference", "mcc") == 2
    assert "--reference 'mcc' is not an input" in capsys.readouterr().err


def test_verdict_flags_a_mismatch_and_passes_another_seed(tmp_path, capsys):
    """Same settings, another seed: no MISMATCH. White instead of coloured noise and slower
    pulses: the spectrum, the noise RMS and the amplitudes are flagged."""
    a = write_input(tmp_path, "nominal", n_waveforms=300)
    b = write_input(tmp_path, "reseeded", seed=9, n_waveforms=300)
    c = write_input(tmp_path, "white", n_waveforms=300, noise={"spectrum": "white"},
                    pulse={"fall_ns": 10.0})  # fmt: skip
    out = tmp_path / "cmp"
    assert run_cli("compare", a, b, c, "-o", str(out), "--format", "png") == 0
    printed = capsys.readouterr().out
    assert "MISMATCH" in printed and "compare: verdict (MISMATCH: KS p < 0.001" in printed
    rows = verdicts(read_summary(out))
    same = {q: r["verdict"] for (q, i), r in rows.items() if i == "reseeded"}
    assert set(same) == ALL_QUANTITIES and set(same.values()) == {"OK"}, same
    assert rows[("noise_psd", "white")]["verdict"] == "MISMATCH"
    assert rows[("amplitude_mv", "white")]["verdict"] == "MISMATCH"
    assert rows[("noise_psd", "white")]["n"] > 100  # pulse-free segments
    csv = (out / "compare_verdict.csv").read_text().splitlines()
    assert csv[0].startswith("quantity,input,reference,n,") and len(csv) == 1 + len(rows)
    assert (out / "compare_verdict.png").stat().st_size > 20000


def test_traditional_thresholds_of_the_chain_run(tmp_path):
    """A chain's run folder with a tuned.yaml: its thresholds for every input, printed."""
    from ccframe.compare.inputs import traditional_settings
    from ccframe.steering.loader import load_steering

    run = tmp_path / "run"
    run.mkdir()
    (run / "steering.yaml").write_text(Path(write_input(tmp_path, "run")).read_text())
    tuned = {"algorithm": "deriv", "deriv": {"n1": 4.0, "n2": 1.5, "n3": 0.0, "n4": 0.5},
             "clusterize": {"c_sqrt_ns": 0.15}}  # fmt: skip
    (run / "tuned.yaml").write_text(yaml.safe_dump(tuned))
    inputs = [load_steering(write_input(tmp_path, n)) for n in ("x", "y")]
    lines = []
    cfgs = traditional_settings(inputs, run, lines.append)
    assert [c.deriv.n1 for c in cfgs] == [4.0, 4.0]
    assert cfgs[0].clusterize.c_sqrt_ns == 0.15
    assert lines == [
        "compare: traditional: DERIV n1=4, n2=1.5, n3=0, n4=0.5, clusterization c=0.15 "
        f"(tuned thresholds of {run / 'tuned.yaml'}), every input"
    ]


def test_statistics_of_the_verdict():
    """chi2 of equal shapes is small, KS of shifted samples flags; many entries with a tiny
    shift are significant but not a mismatch."""
    import numpy as np

    from ccframe.compare.verdict import MISMATCH, OK, chi2_shapes, compare_distribution

    assert chi2_shapes(np.array([10, 20, 30]), np.array([20, 40, 60])) == (0.0, 2)
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 100_000), rng.normal(0.02, 1, 100_000)
    edges = np.linspace(-4, 4, 41)
    h = lambda x: np.histogram(x, edges)[0]  # noqa: E731
    row = compare_distribution("x", "a", "b", a + 10, b + 10, h(a), h(b))
    assert row.ks_p < 1e-3 and row.ks_d < 0.05 and row.verdict == OK
    row = compare_distribution("x", "a", "b", a + 10, b + 10.5, h(a), h(b - 0.5))
    assert row.verdict == MISMATCH and "D=" in row.why
    row = compare_distribution("x", "a", "b", a[:50] + 10, b[:50] + 10.5, h(a), h(b))
    assert row.verdict == OK and "not significant" in row.why


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
    printed = capsys.readouterr().out
    assert "A > 4.5 x noise RMS" in printed and "of 'quickstart'" in printed  # its candidates
    summary = read_summary(out)
    q = summary["quantities"]
    assert summary["reference"] == "quickstart"
    assert verdicts(summary)[("noise_psd", "beamtest_like")]["verdict"] == "MISMATCH"  # white
    assert q["candidate_time_ns"]["beamtest_like"]["mean"] < 512  # 1024 samples at 2 GHz
    assert q["noise_rms_mv"]["beamtest_like"]["mean"] > q["noise_rms_mv"]["quickstart"]["mean"]


def test_data_without_a_track_time_is_called_out(sim_file, tmp_path, capsys):
    """Data without pretrigger truth and without data.pretrigger_ns count drift times from
    the window start: compare says its traditional counts are not comparable; with
    data.pretrigger_ns it does not."""
    beam = {
        "schema_version": 1,
        "name": "beam",
        "data": {"files": [str(sim_file)], "truth": "none"},
    }
    data = tmp_path / "beam.yaml"
    data.write_text(yaml.safe_dump(beam))
    sim = write_input(tmp_path, "mc", n_waveforms=100)
    out = tmp_path / "cmp"
    assert run_cli("compare", str(data), sim, "-o", str(out), "--format", "png") == 0
    err = capsys.readouterr().err
    assert "traditional counts are not comparable" in err and "the window start" in err
    code = run_cli("compare", str(data), sim, "-o", str(tmp_path / "cmp2"), "--format", "png",
                   "--set", "data.pretrigger_ns=50")  # fmt: skip
    assert code == 0
    assert "not comparable" not in capsys.readouterr().err


def test_sample_keeps_counts_and_float32_compact_and_gives_float64():
    """A Sample's values come back as the float64 arrays they were given as, though counts
    are kept in 4 bytes and float32 values as float32."""
    import numpy as np

    from ccframe.compare.measure import Sample

    rng = np.random.default_rng(2)
    given = {
        "candidates": [rng.integers(0, 90, 50) for _ in range(3)],
        "amplitude_mv": [rng.normal(20, 5, 70).astype(np.float32) for _ in range(3)],
        "candidate_time_ns": [rng.integers(0, 2400, 70) / 1.2 for _ in range(3)],
    }
    sample = Sample("a", "simulation")
    for key, parts in given.items():
        for part in parts:
            sample.add(key, part)
        got = sample.get(key)
        assert got is not None and got.dtype == np.float64
        assert np.array_equal(got, np.concatenate([p.astype(np.float64) for p in parts]))
    kept = {k: sum(p.nbytes for p in v) for k, v in sample.values.items()}
    assert kept == {"candidates": 150 * 4, "amplitude_mv": 210 * 4, "candidate_time_ns": 210 * 8}
    assert sample.get("noise_rms_mv") is None
