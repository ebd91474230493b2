"""The per-sample peak map (`ml.peak_map`): its targets from the truth, its peak readout,
the U-Net's shapes and start, training in the ml stage beside the chain, and the same counts
through the reader (pid, infer) as in the stage."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import tiny_steering

from ccframe.cli import main
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.ml.config import MLConfig, PeakMapConfig
from ccframe.ml.dataset import cluster_starts
from ccframe.ml.peakmap import initial_map_loss, target_maps

TINY_MAP = {
    "filters": [4, 4],
    "kernel_size": 3,
    "bottleneck_dilations": [2],
    "peak_threshold": 0.05,
    "training": {"epochs": 2, "batch_size": 32},
}


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def test_cluster_starts_are_the_earliest_electron_of_each_cluster(sim_file):
    batch = next(iter_batches(DataConfig(), [str(sim_file)]))
    truth = batch.truth
    starts = cluster_starts(truth, batch.sampling_ghz)
    assert starts.size == int(ak.sum(truth.n_clusters)) and starts.dtype == np.float32
    pos = 0
    for i in range(20):
        times, cluster = truth.electron_time_ns[i].to_numpy(), truth.electron_cluster[i].to_numpy()
        for c in range(int(truth.n_clusters[i])):
            want = (times[cluster == c].min() + truth.pretrigger_ns[i]) * batch.sampling_ghz
            assert starts[pos] == pytest.approx(want, rel=1e-6)
            pos += 1


def test_target_maps_count_the_starts_per_position():
    starts = np.array([0.5, 3.9, 4.0, 7.9, np.nan, 100.0, -3.0, 2.0], np.float32)
    offsets = np.array([0, 4, 7, 8])  # waveform 0: 4 clusters, 1: 3 (one NaN), 2: 1
    maps = target_maps(starts, offsets, np.array([2, 0, 1]), 4, 3)
    np.testing.assert_array_equal(maps[0], [1, 0, 0])  # 2.0 -> position 0
    np.testing.assert_array_equal(maps[1], [2, 2, 0])  # 0.5, 3.9 | 4.0, 7.9
    np.testing.assert_array_equal(maps[2], [1, 0, 1])  # -3 at the start, 100 at the end, NaN not
    assert target_maps(starts, offsets, np.array([], np.int64), 4, 3).shape == (0, 3)


def test_peak_count_counts_local_maxima_above_the_threshold():
    from ccframe.ml.models import PeakCount

    rng = np.random.default_rng(2)
    maps = rng.uniform(0, 1, (6, 50)).astype(np.float32)
    got = np.asarray(PeakCount(0.4)(maps)).ravel()
    padded = np.pad(maps, ((0, 0), (1, 1)), constant_values=-np.inf)
    local = (maps >= padded[:, :-2]) & (maps >= padded[:, 2:]) & (maps > 0.4)
    np.testing.assert_array_equal(got, local.sum(axis=1))


@pytest.mark.parametrize(("n_samples", "stride"), [(240, 2), (243, 2), (240, 1), (101, 4)])
def test_the_map_covers_the_waveform_and_starts_at_the_mean(n_samples, stride):
    from ccframe.ml.models import build_peak_map, peak_map_length
    from ccframe.ml.runtime import configure

    configure(seed=1)
    cfg = PeakMapConfig(filters=[4, 4, 4], output_stride=stride, bottleneck_dilations=[2])
    padded, positions = peak_map_length(cfg, n_samples)
    assert padded % 4 == 0 and padded - n_samples < 4 and positions == padded // stride
    model = build_peak_map(cfg, n_samples, 19.5)
    assert model.output_shape == (None, positions)
    out = np.asarray(model(np.zeros((2, n_samples), np.float32)))
    np.testing.assert_allclose(out.sum(axis=1), 19.5, rtol=1e-4)  # relu passes 0 through
    # the loss at that start, as fit() reports it against the measured one
    n = np.array([10.0, 30.0])
    rate = 19.5 / positions
    want = np.mean((positions * rate - n * np.log(rate)) / 19.5)
    assert initial_map_loss(n, positions, 19.5) == pytest.approx(want, rel=1e-5)


def test_peak_map_settings_are_checked():
    with pytest.raises(ValueError, match="output_stride 8 must be a power of 2 up to 4"):
        PeakMapConfig(filters=[4, 4, 4], output_stride=8)
    with pytest.raises(ValueError, match="output_stride 3"):
        PeakMapConfig(output_stride=3)
    assert MLConfig().peak_map is None


@pytest.mark.slow
def test_ml_stage_trains_the_peak_map_and_infer_applies_it(tmp_path, capsys):
    path = tiny_steering(tmp_path, n=300, peak_map=TINY_MAP)
    assert run_cli("run", str(path)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "peak map" in out and "count peak_map" in out
    run = tmp_path / "tinyml"
    metrics = json.loads((run / "metrics.json").read_text())["ml"]
    assert metrics["peak_map"]["training"]["positions"] == 1200
    assert np.isfinite(metrics["count_test"]["peak_map"]["overall"]["response_slope"])
    assert (run / "peak_map.keras").is_file() and (run / "history_peak_map.csv").is_file()
    tree = uproot.open(run / "predictions.root")["predictions"].arrays(
        ["n_clusters_peak_map", "entry"], library="np"
    )
    assert np.all(np.isfinite(tree["n_clusters_peak_map"]))
    branch = uproot.open(run / "predictions.root")["predictions"]["n_clusters_peak_map"]
    assert branch.typename == "float"  # as data/README.md documents it
    order = np.argsort(tree["entry"])

    out = tmp_path / "inferred.root"
    assert run_cli("infer", str(run), str(run / "sim.root"), "-o", str(out)) == 0
    inferred = uproot.open(out)["predictions"].arrays(
        ["n_clusters_peak_map", "entry"], library="np"
    )
    np.testing.assert_allclose(
        inferred["n_clusters_peak_map"][np.argsort(inferred["entry"])],
        tree["n_clusters_peak_map"][order],
        rtol=1e-5,
        atol=1e-4,
    )
