"""The tune and traditional stages end to end, and the efficiency DERIV reaches on pions."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from conftest import REPO

from ccframe.cli import main
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.kernels.config import ClusterizeConfig, DerivConfig, MatchConfig
from ccframe.metrics.counting import (
    calibrated_resolution,
    count_metrics,
    json_ready,
    momentum_edges,
    versus,
)
from ccframe.reco.config import TraditionalConfig, TuneConfig
from ccframe.reco.stage import tuned_methods
from ccframe.reco.traditional import (
    METRIC_COLUMNS,
    Accumulator,
    match_truth,
    reconstruct,
    tree_chunk,
)
from ccframe.reco.tune import tune


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def test_shipped_traditional_steering_runs_small(tmp_path, capsys):
    code = run_cli(
        "run",
        str(REPO / "steering" / "traditional.yaml"),
        "--set",
        f"output={tmp_path / 'run'}",
        "--set",
        "simulate.n_waveforms=600",
        "--set",
        "tune.max_events=300",
        "--set",
        "tune.n1=[4.0, 5.0]",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    run = tmp_path / "run"
    tuned = yaml.safe_load((run / "tuned.yaml").read_text())
    assert tuned["algorithm"] == "deriv" and tuned["deriv"]["n1"] in (4.0, 5.0)
    assert abs(tuned["calibration"]["relative_bias"]) <= 0.05
    metrics = json.loads((run / "metrics.json").read_text())["traditional"]
    assert metrics["parameters"]["deriv"] == tuned["deriv"]
    assert 0 < metrics["peak_finding"]["efficiency"] < 1
    assert metrics["waveforms"] == 600
    assert 580 < metrics["count"]["waveforms"] <= 600  # waveforms with true clusters
    assert len(metrics["count_vs_momentum"]) >= 4
    tree = uproot.open(run / "traditional.root")["traditional"]
    arrays = tree.arrays()
    assert len(arrays) == 600
    assert {
        "n_clusters_traditional",
        "n_clusters_true",
        "momentum_gev",
        "peak_time_ns",
        "peak_label",
        "n_peaks",
    } <= set(tree.keys())
    assert np.array_equal(ak.to_numpy(ak.num(arrays.peak_time_ns)), ak.to_numpy(arrays.n_peaks))
    assert "peak finding" in out and "cluster count" in out  # progress: stdout

    # reuse the tuned set in a run without a tune stage
    code = run_cli(
        "run",
        str(REPO / "steering" / "traditional.yaml"),
        "--set",
        "tune=null",
        "--set",
        f"output={tmp_path / 'again'}",
        "--set",
        "simulate.n_waveforms=300",
        "--set",
        f"traditional.thresholds={run / 'tuned.yaml'}",
    )
    assert code == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())["traditional"]
    assert again["parameters"]["deriv"] == tuned["deriv"]


def test_bad_thresholds_file_is_clear(tmp_path, capsys, steering_file):
    bogus = tmp_path / "bogus.yaml"
    bogus.write_text("just: text\n")
    code = run_cli("run", str(steering_file), "--set", f"traditional.thresholds={bogus}")
    err = capsys.readouterr().err
    assert code != 0 and "traditional.thresholds" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def pions(tmp_path_factory):
    from ccframe.simulate.config import SimulateConfig
    from ccframe.simulate.stage import simulate_to_root

    path = tmp_path_factory.mktemp("pions") / "pions.root"
    simulate_to_root(SimulateConfig(n_waveforms=1000), seed=3, path=path)
    return list(iter_batches(DataConfig(files=[str(path)])))


def test_tuned_deriv_finds_most_primary_clusters(pions):
    tuned, table = tune(pions[:1], TuneConfig(max_events=1000, n1=[4.0, 5.0, 6.0]))
    assert len(table) == 3 * 3 * 2 * 2 * 7
    cfg = DerivConfig.model_validate(tuned["deriv"])
    acc = Accumulator()
    for batch in pions:
        result = reconstruct(batch, cfg, ClusterizeConfig.model_validate(tuned["clusterize"]))
        acc.add_matching(match_truth(batch, result.peaks, MatchConfig()), batch)
    m = acc.metrics(4)["peak_finding"]
    # Measured on 1000 default pions (seed 3): tuned set n1=5, n2=0.5, n3=0, n4=0.5, c=0.3
    # (count bias -0.010, resolution 0.233 core / 0.331 RMS); clusters with a found electron
    # 0.764, electrons 0.676, purity 0.573.
    assert m["cluster_efficiency"] == pytest.approx(0.76, abs=0.04)
    assert m["cluster_efficiency"] > 0.5  # "most primary clusters"
    assert m["efficiency"] == pytest.approx(0.68, abs=0.04)
    assert m["purity"] == pytest.approx(0.57, abs=0.05)


def test_an_adaptive_grid_keeps_the_best_of_both_rules(pions):
    cfg = TuneConfig(
        n1=[4.0, 5.0], n2=[0.5], n3=[0.0], n4=[0.5], c_sqrt_ns=[0.1, 0.3],
        amplitude_power=[0.0, 0.5], min_window_ns=[0.0, 2.0],
    )  # fmt: skip
    assert cfg.adaptive and cfg.grid_points == 2 * 2 * 2 * 2
    with pytest.raises(ValueError, match=r"grid values must be <= 4\.0"):
        TuneConfig(amplitude_power=[5.0])
    with pytest.raises(ValueError, match="grid values must be >= 0"):
        TuneConfig(min_window_ns=[-1.0])
    tuned, table = tune(pions[:1], cfg)
    assert len(table) == cfg.grid_points
    fixed, adaptive = tuned["fixed_clusterization"], tuned["adaptive_clusterization"]
    assert fixed["clusterize"]["amplitude_power"] == fixed["clusterize"]["min_window_ns"] == 0
    assert adaptive["clusterize"]["amplitude_power"] or adaptive["clusterize"]["min_window_ns"]
    # the best of all points (the run's traditional settings) is the better of the two
    scores = [t["calibration"]["relative_resolution_core"] for t in (fixed, adaptive)]
    assert tuned["calibration"]["relative_resolution_core"] == min(scores)
    adaptive_rows = [r for r in table if r["amplitude_power"] or r["min_window_ns"]]
    assert len(adaptive_rows) == 12
    # two names for the pid stage's comparison
    methods = tuned_methods(TraditionalConfig(), tuned)
    assert set(methods) == {"deriv", "deriv_adaptive"}
    assert methods["deriv"].clusterize.model_dump() == fixed["clusterize"]
    assert methods["deriv_adaptive"].clusterize.model_dump() == adaptive["clusterize"]
    # a fixed grid has one method, named by its rule
    plain, _ = tune(
        pions[:1], cfg.model_copy(update={"amplitude_power": [0.0], "min_window_ns": [0.0]})
    )
    assert "fixed_clusterization" not in plain and "adaptive_clusterization" not in plain
    assert set(tuned_methods(TraditionalConfig(), plain)) == {"deriv"}


def test_the_calibrated_objective_divides_out_the_response(pions):
    cfg = TuneConfig(n1=[3.0, 4.0, 5.0], n2=[0.5], n3=[0.0], n4=[0.5], c_sqrt_ns=[0.0, 0.3])
    calibrated = cfg.model_copy(update={"objective": "calibrated_resolution_core"})
    tuned, table = tune(pions[:1], calibrated)
    scores = [r["calibrated_resolution_core"] for r in table]
    assert tuned["calibration"]["calibrated_resolution_core"] == min(scores)
    # no bias limit: points far from the truth's mean count are allowed
    assert any(abs(r["relative_bias"]) > cfg.max_relative_bias for r in table)
    n_true = np.concatenate([np.asarray(b.truth.n_clusters) for b in pions[:1]])
    rng = np.random.default_rng(1)
    noisy = n_true + rng.normal(0, 2, n_true.size)
    # a linear map of a count does not change its calibrated resolution; shrinking it
    # towards the mean does not improve it
    assert calibrated_resolution(noisy, n_true) == pytest.approx(
        calibrated_resolution(0.5 * noisy + 10, n_true), rel=1e-9
    )
    assert np.isnan(calibrated_resolution(np.full(n_true.size, 7.0), n_true))  # no response


def test_data_pretrigger_stands_in_for_the_truth(sim_file):
    """Without pretrigger truth (beam-test data), data.pretrigger_ns sets where the track
    crossed: the counts equal those with the truth; without it they differ."""
    finder, merge = DerivConfig(), ClusterizeConfig(c_sqrt_ns=0.3)

    def counts(**data: object) -> np.ndarray:
        cfg = DataConfig(files=[str(sim_file)], **data)
        return np.concatenate([reconstruct(b, finder, merge).n_clusters for b in iter_batches(cfg)])

    with_truth = counts()
    no_truth = {"truth": {"n_clusters": "n_clusters"}}
    assert np.array_equal(counts(**no_truth, pretrigger_ns=50.0), with_truth)
    assert not np.array_equal(counts(**no_truth), with_truth)


def test_accumulator_keeps_16_bytes_per_waveform_and_the_whole_arrays_metrics(sim_file):
    """The traditional metrics from the accumulated compact columns equal those of the whole
    per-waveform arrays; only the counts (int32) and momentum (float64) are kept."""
    finder, merge = DerivConfig(), ClusterizeConfig(c_sqrt_ns=0.3)
    acc, chunks = Accumulator(), []
    for batch in iter_batches(DataConfig(files=[str(sim_file)], chunk_size=64)):
        chunk = tree_chunk(batch, reconstruct(batch, finder, merge), None)
        acc.add(**{k: v for k, v in chunk.items() if k != "peak"})
        chunks.append(chunk)
    whole = {k: np.concatenate([c[k] for c in chunks]) for k in METRIC_COLUMNS}
    pred, true, p = (whole[k] for k in METRIC_COLUMNS)
    assert acc.columns.nbytes == 16 * true.size
    m = acc.metrics(4)
    assert json_ready(m["count"]) == json_ready(count_metrics(pred, true))
    rows = versus(p, momentum_edges(p, 4), pred, true)
    assert json_ready(m["count_vs_momentum"]) == json_ready(rows)
